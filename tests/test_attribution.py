"""Tests for mmlab.attribution and mmlab.viz.overlays: each against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab.attribution import (
    Attribution,
    attention_rollout,
    attribution_in_box,
    attribution_in_span,
    box_share,
    gradient_attention,
    integrated_gradients,
    randomize_weights,
    rank_correlation,
    similarity_attribution,
    span_share,
    upsample_to_image,
)
from mmlab.viz.overlays import image_overlay, spectrogram_overlay, token_figure, token_overlay

DT = torch.float64


def random_attentions(L: int = 3, B: int = 2, h: int = 3, T: int = 5, requires_grad: bool = False) -> list[Tensor]:
    logits = torch.randn(L, B, h, T, T, dtype=DT, requires_grad=requires_grad)
    return list(logits.softmax(-1).unbind(0))


# ------------------------------------------------------------------------------------------- rollout

def brute_rollout(attentions: list[Tensor], fusion: str = "mean", residual: bool = True) -> np.ndarray:
    """Per sample, per entry loops, then a left-multiplying product."""
    L = len(attentions)
    B, h, T, _ = attentions[0].shape
    out = np.zeros((B, T, T))
    for b in range(B):
        R = np.eye(T)
        for l in range(L):
            a = attentions[l][b].detach().numpy()
            M = np.zeros((T, T))
            for r in range(T):
                for c in range(T):
                    vals = [a[k, r, c] for k in range(h)]
                    M[r, c] = {"mean": np.mean, "max": np.max, "min": np.min}[fusion](vals)
            if residual:
                M = M + np.eye(T)
            M = M / M.sum(1, keepdims=True)
            R = M @ R
        out[b] = R
    return out


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("residual", [True, False])
def test_rollout_matches_brute_force_and_rows_sum_to_one(fusion: str, residual: bool) -> None:
    att = random_attentions()
    r = attention_rollout(att, head_fusion=fusion, residual=residual)
    assert r.shape == (2, 5, 5)
    np.testing.assert_allclose(r.numpy(), brute_rollout(att, fusion, residual), atol=1e-12)
    torch.testing.assert_close(r.sum(-1), torch.ones(2, 5, dtype=DT))


def test_rollout_of_identity_attention_is_identity() -> None:
    eye = torch.eye(6, dtype=DT).expand(1, 2, 6, 6)
    for residual in (True, False):
        torch.testing.assert_close(attention_rollout([eye, eye, eye], residual=residual), torch.eye(6, dtype=DT)[None])


def test_rollout_order_last_layer_on_the_left() -> None:
    a1, a2 = random_attentions(L=2, B=1)
    r = attention_rollout([a1, a2], residual=False)
    torch.testing.assert_close(r[0], a2[0].mean(0) @ a1[0].mean(0))
    assert not torch.allclose(r[0], a1[0].mean(0) @ a2[0].mean(0))


def test_rollout_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="attentions"):
        attention_rollout(torch.rand(1, 2, 3, 3))
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(random_attentions(), head_fusion="median")
    with pytest.raises(ValueError, match="same shape"):
        attention_rollout([torch.rand(1, 2, 3, 3), torch.rand(1, 2, 4, 4)])
    bad = random_attentions(L=2)
    bad[1] = bad[1].clone()
    bad[1][0, 1, 2, 0] = math.nan
    with pytest.raises(ValueError, match=r"`attentions\[1\]`.*1 NaN"):
        attention_rollout(bad)


# ------------------------------------------------------------------------------ gradient attention

def brute_chefer(attentions: list[Tensor], grads: list[Tensor]) -> np.ndarray:
    """Chefer et al. 2021, Eqs. 5-6 written with explicit loops."""
    B, h, T, _ = attentions[0].shape
    out = np.zeros((B, T, T))
    for b in range(B):
        R = np.eye(T)
        for a, g in zip(attentions, grads):
            a, g = a[b].detach().numpy(), g[b].detach().numpy()
            Abar = np.zeros((T, T))
            for r in range(T):
                for c in range(T):
                    Abar[r, c] = sum(max(g[k, r, c] * a[k, r, c], 0.0) for k in range(h)) / h
            R = R + Abar @ R
        out[b] = R
    return out


def test_gradient_attention_matches_loop_on_random_tensors() -> None:
    att = random_attentions(L=3)
    grads = [torch.randn_like(a) for a in att]
    R = gradient_attention(att, grads)
    np.testing.assert_allclose(R.numpy(), brute_chefer(att, grads), atol=1e-12)


def test_gradient_attention_with_autograd_gradients() -> None:
    att = random_attentions(L=2, B=1, requires_grad=True)
    w = torch.randn(5, dtype=DT)
    score = (att[1][0].mean(0) @ att[0][0].mean(0) @ w).sum()  # depends on both layers
    grads = list(torch.autograd.grad(score, att))
    R = gradient_attention(att, grads)
    np.testing.assert_allclose(R.detach().numpy(), brute_chefer(att, grads), atol=1e-12)
    # zero gradients (a score that ignores the attention) leave R = I
    zero = gradient_attention(att, [torch.zeros_like(a) for a in att])
    torch.testing.assert_close(zero, torch.eye(5, dtype=DT)[None])


def test_gradient_attention_rejects_mismatched_grads() -> None:
    att = random_attentions(L=2)
    with pytest.raises(ValueError, match="attention_grads"):
        gradient_attention(att, att[:1])


# ------------------------------------------------------------------------------ integrated gradients

@pytest.mark.parametrize("method", ["riemann_trapezoid", "gausslegendre"])
def test_ig_of_linear_function_is_exact(method: str) -> None:
    w = torch.randn(3, 4, dtype=DT)
    x, base = torch.randn(3, 4, dtype=DT), torch.randn(3, 4, dtype=DT)
    res = integrated_gradients(lambda u: (u * w).sum((1, 2)), x, base, steps=3, method=method)
    torch.testing.assert_close(res.attributions, (x - base) * w, rtol=0, atol=1e-12)
    assert abs(res.completeness_gap) < 1e-12
    # a leading batch dim of 1 is kept
    res1 = integrated_gradients(lambda u: (u * w).sum((1, 2)), x[None], base[None], steps=3, method=method)
    assert res1.attributions.shape == (1, 3, 4)
    torch.testing.assert_close(res1.attributions[0], res.attributions)


def test_ig_of_quadratic_closed_form() -> None:
    # f(x) = Σ x², baseline 0: IG_k = x_k ∫ 2 α x_k dα = x_k² (the trapezoid is exact on linear integrands)
    x = torch.randn(7, dtype=DT)
    res = integrated_gradients(lambda u: (u ** 2).sum(1), x, steps=2)
    torch.testing.assert_close(res.attributions, x ** 2)


def small_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8), nn.Softplus(), nn.Linear(8, 1)).to(DT)


@pytest.mark.parametrize("method,steps,tol", [("riemann_trapezoid", 64, 1e-3), ("gausslegendre", 16, 1e-8)])
def test_ig_completeness_on_smooth_mlp(method: str, steps: int, tol: float) -> None:
    mlp = small_mlp()
    f = lambda u: mlp(u)[:, 0]  # noqa: E731
    x, base = torch.randn(6, dtype=DT) * 2, torch.zeros(6, dtype=DT)
    res = integrated_gradients(f, x, base, steps=steps, method=method)
    direct = float((f(x[None]) - f(base[None])).detach())
    assert abs(res.f_x - res.f_baseline - direct) < 1e-12
    assert abs(res.completeness_gap) < tol
    assert abs(float(res.attributions.sum()) - direct) < tol


def test_ig_chunked_equals_full_and_matches_point_by_point_loop() -> None:
    mlp = small_mlp()
    f = lambda u: mlp(u)[:, 0]  # noqa: E731
    x, base = torch.randn(6, dtype=DT), torch.randn(6, dtype=DT)
    full = integrated_gradients(f, x, base, steps=9)
    chunked = integrated_gradients(f, x, base, steps=9, batch_size=4)
    torch.testing.assert_close(chunked.attributions, full.attributions)
    # independent: one gradient per α in a Python loop, trapezoid weights by hand
    total = torch.zeros(6, dtype=DT)
    for k in range(10):
        p = (base + k / 9 * (x - base)).requires_grad_(True)
        (g,) = torch.autograd.grad(f(p[None]).sum(), p)
        total += g * (0.5 if k in (0, 9) else 1.0) / 9
    torch.testing.assert_close(full.attributions, (x - base) * total)


def test_ig_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="baseline"):
        integrated_gradients(lambda u: u.sum(1), torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="method"):
        integrated_gradients(lambda u: u.sum(1), torch.ones(3), method="simpson")
    with pytest.raises(ValueError, match="shape"):
        integrated_gradients(lambda u: u, torch.ones(3))  # f returns (N, 3), not (N,)


# ------------------------------------------------------------------------ toy models with the interface

class ToyViT(nn.Module):
    """One explicit attention layer over [CLS, patches]; the CLS query attends by position only.

    features = Σ_n A[0, n] · v_n with v_n = W·patch_n + pos_n; the attention logits of the CLS row
    are fixed by position (so A does not depend on the pixels).
    """

    def __init__(self, image_size: int = 8, patch_size: int = 4, dim: int = 6, heads: int = 2) -> None:
        super().__init__()
        self.patch_size, self.grid = patch_size, image_size // patch_size
        n = self.grid ** 2
        self.value = nn.Linear(3 * patch_size ** 2, dim, bias=False)
        self.pos = nn.Parameter(0.1 * torch.randn(n + 1, dim))
        self.logits = nn.Parameter(0.3 * torch.randn(heads, n + 1, n + 1))
        self.out_dim = dim

    def patches(self, x: Tensor) -> Tensor:
        B, p, g = x.shape[0], self.patch_size, self.grid
        return x.reshape(B, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(B, g * g, -1)  # (B, N, 3p²)

    def forward(self, x: Tensor, return_attention: bool = False):
        B = x.shape[0]
        v = torch.cat([torch.zeros(B, 1, self.out_dim, dtype=x.dtype), self.value(self.patches(x))], 1) + self.pos
        A = self.logits.softmax(-1).expand(B, -1, -1, -1)  # (B, h, T, T)
        out = (A.mean(1) @ v)[:, 0]  # (B, dim): the CLS row
        return (out, [A]) if return_attention else out


class ToyModel(nn.Module):
    """ContrastiveModel-like: encoders and heads ModuleDicts, `encode` L2-normalises."""

    def __init__(self, encoders: dict[str, nn.Module], heads: dict[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.heads = nn.ModuleDict(heads or {})

    def encode(self, batch: dict) -> dict[str, Tensor]:
        out = {}
        for m, enc in self.encoders.items():
            if m in batch:
                h = enc(batch[m])
                out[m] = F.normalize(self.heads[m](h) if m in self.heads else h, dim=-1)
        return out


def known_patch_setup(k: int = 3):
    """Image 0: patch k is uniform (its value points along the reference e), the others are a
    zero-mean checkerboard (their value points along u ⊥ e); every token also carries a constant
    offset w ⊥ e, u. Then s = cos(f, e) with f = A₀ₖ·e + b·u + 0.3·w, so patch k raises s and the
    other patches lower it."""
    torch.manual_seed(1)
    enc = ToyViT().to(DT)
    e = torch.zeros(enc.out_dim, dtype=DT)
    e[0] = 1.0
    checker = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2 * 1.0 - 0.5  # (4, 4), zero mean
    with torch.no_grad():
        enc.value.weight.zero_()
        enc.value.weight[0] = 1.0 / 48  # v[0] = mean of the patch
        enc.value.weight[1] = checker.to(DT).flatten().repeat(3) / 12  # v[1] = checkerboard energy
        enc.pos.zero_()
        enc.pos[:, 2] = 0.3
    x = torch.zeros(2, 3, 8, 8, dtype=DT)
    g = enc.grid
    for n in range(g * g):
        r, c = divmod(n, g)
        x[0, :, r * 4:r * 4 + 4, c * 4:c * 4 + 4] = 1.0 if n == k else checker.to(DT)
    x[1] = torch.rand(3, 8, 8, dtype=DT)
    model = ToyModel({"image": enc, "ref": nn.Identity()})
    batch = {"image": x, "ref": torch.stack([e, e]), "label": torch.zeros(2, dtype=torch.int64)}
    r, c = divmod(k, g)
    bbox = (c * 4, r * 4, c * 4 + 4, r * 4 + 4)
    return model, batch, bbox


def occlusion_drop(model: nn.Module, batch: dict, n_patches: int, grid: int) -> Tensor:
    """Independent check: similarity lost when each patch is set to zero."""
    x = batch["image"][:1]
    ref = model.encode({"ref": batch["ref"][:1]})["ref"]
    base = float(model.encode({"image": x})["image"].detach() @ ref[0])
    drops = []
    for n in range(n_patches):
        r, c = divmod(n, grid)
        y = x.clone()
        y[..., r * 4:r * 4 + 4, c * 4:c * 4 + 4] = 0.0
        drops.append(base - float(model.encode({"image": y})["image"].detach() @ ref[0]))
    return torch.tensor(drops)


def test_known_patch_gets_the_attribution() -> None:
    k = 3
    model, batch, bbox = known_patch_setup(k)
    drops = occlusion_drop(model, batch, 4, 2)
    assert int(drops.argmax()) == k  # the toy is what we think it is

    model.train()
    ga = similarity_attribution(model, batch, 0, 0, "image", other="ref", method="grad_attention")
    assert model.training and model.encoders["image"].training  # the flags are restored
    assert isinstance(ga, Attribution) and ga.kind == "patches" and ga.grid_shape == (2, 2)
    assert int(ga.scores.flatten().argmax()) == k
    assert float(ga.scores.flatten()[k]) > 0.5 * float(ga.scores.clamp(min=0).sum())

    ref = model.encode({"ref": batch["ref"][:1]})["ref"][0].detach()
    s = float(model.encode({"image": batch["image"][:1]})["image"][0].detach() @ ref)
    for method in ("input_x_gradient", "integrated_gradients"):
        a = similarity_attribution(model, batch, 0, 0, "image", method=method, steps=16)
        assert a.kind == "pixels" and a.scores.shape == (8, 8) and a.other == "ref"
        assert abs(a.similarity - s) < 1e-12
        per_patch = a.scores.view(2, 4, 2, 4).sum((1, 3))  # (2, 2) summed over each patch's pixels
        assert int(per_patch.flatten().argmax()) == k, method
        assert attribution_in_box(upsample_to_image(per_patch, 8), bbox) > 0.9, method
        assert attribution_in_box(upsample_to_image(ga.scores, 8), bbox) > 0.5
    ig = similarity_attribution(model, batch, 0, 0, "image", method="integrated_gradients", steps=16)
    s_black = float(model.encode({"image": torch.zeros_like(batch["image"][:1])})["image"][0].detach() @ ref)
    assert abs(float(ig.scores.sum()) - (s - s_black)) < 1e-6  # completeness, checked through encode


def test_similarity_attribution_errors() -> None:
    model, batch, _ = known_patch_setup()
    model.encoders["plain"] = nn.Flatten()
    batch = {**batch, "plain": batch["image"]}
    with pytest.raises(ValueError, match="return_attention"):
        similarity_attribution(model, batch, 0, 0, "plain", other="ref", method="rollout")
    with pytest.raises(ValueError, match="modality"):
        similarity_attribution(model, batch, 0, 0, "label")
    with pytest.raises(ValueError, match="`i`"):
        similarity_attribution(model, batch, 5, 0, "image")
    with pytest.raises(ValueError, match="method"):
        similarity_attribution(model, batch, 0, 0, "image", method="lime")


def test_randomized_model_gives_a_different_map() -> None:
    model, batch, _ = known_patch_setup()
    trained = similarity_attribution(model, batch, 0, 0, "image", other="ref", method="input_x_gradient")
    rand = randomize_weights(model, seed=0)
    randomized = similarity_attribution(rand, batch, 0, 0, "image", other="ref", method="input_x_gradient")
    assert rank_correlation(trained.scores, randomized.scores) < 0.5
    # a map always correlates perfectly with itself (the check can tell the two cases apart)
    assert rank_correlation(trained.scores, trained.scores) == pytest.approx(1.0)


def test_randomize_weights_copies_and_reinitialises() -> None:
    torch.manual_seed(123)  # not the seed of the copies below
    net = nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5), ToyViT())
    net[2].register_buffer("fixed", torch.arange(3.0))
    before = {n: p.clone() for n, p in net.named_parameters()}
    state = torch.random.get_rng_state()
    a, b, c = randomize_weights(net, 0), randomize_weights(net, 0), randomize_weights(net, 1)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    for n, p in net.named_parameters():
        assert torch.equal(p, before[n])  # the original is not modified
    pa, pb, pc = dict(a.named_parameters()), dict(b.named_parameters()), dict(c.named_parameters())
    for n in before:
        assert torch.equal(pa[n], pb[n])  # same seed, same weights
        if n != "1.weight" and n != "1.bias":  # LayerNorm resets to ones / zeros
            assert not torch.equal(pa[n], before[n]), n
            assert not torch.equal(pa[n], pc[n]), n
    assert torch.equal(a[2].fixed, torch.arange(3.0))


# ------------------------------------------------------------------------------ real mmlab encoders

def _real_model(encoders: dict[str, nn.Module], heads: dict[str, nn.Module] | None = None):
    from mmlab.losses import ClipLoss
    from mmlab.model import ContrastiveModel

    return ContrastiveModel(encoders, heads, ClipLoss()).eval()


def test_real_vit_in_contrastive_model() -> None:
    enc = pytest.importorskip("mmlab.encoders")
    if not hasattr(enc, "ViTEncoder"):
        pytest.skip("ViTEncoder not available yet")
    torch.manual_seed(0)
    vit = enc.ViTEncoder(image_size=16, patch_size=4, dim=16, depth=2, heads=2, out_dim=8)
    heads = {"image": enc.ProjectionHead(8, 6, kind="mlp")} if hasattr(enc, "ProjectionHead") else None
    model = _real_model({"image": vit, "vec": nn.Linear(5, 6)}, heads)
    batch = {"image": torch.rand(3, 3, 16, 16), "vec": torch.randn(3, 5)}
    z = {m: v.detach() for m, v in model.encode(batch).items()}
    s = float(z["image"][1] @ z["vec"][2])
    for method in ("grad_attention", "rollout"):
        a = similarity_attribution(model, batch, 1, 2, "image", method=method)
        assert a.kind == "patches" and a.scores.shape == (4, 4) and a.other == "vec"
        assert a.similarity == pytest.approx(s, abs=1e-5)
    # grad_attention against the rule applied by hand to the encoder's own attentions
    ref = z["vec"][2].detach()
    feats, atts = vit(batch["image"][1:2], return_attention=True)
    score = F.normalize(model.heads["image"](feats) if "image" in model.heads else feats, dim=-1)[0] @ ref
    grads = torch.autograd.grad(score, atts)
    R = brute_chefer(atts, grads)[0]
    a = similarity_attribution(model, batch, 1, 2, "image", method="grad_attention")
    np.testing.assert_allclose(a.scores.flatten().numpy(), R[0, 1:], rtol=1e-4, atol=1e-6)
    ig = similarity_attribution(model, batch, 1, 2, "image", method="integrated_gradients", steps=8)
    s0 = float(model.encode({"image": torch.zeros(1, 3, 16, 16)})["image"][0].detach() @ z["vec"][2])
    assert ig.kind == "pixels" and abs(float(ig.scores.sum()) - (s - s0)) < 1e-3
    # a CNN gets pixel maps from the gradient methods and a clear error from the attention ones
    conv = _real_model({"image": enc.ConvEncoder(out_dim=6, width=4, depth=2), "vec": nn.Linear(5, 6)})
    assert similarity_attribution(conv, batch, 0, 0, "image", method="input_x_gradient").scores.shape == (16, 16)
    with pytest.raises(ValueError, match="input_x_gradient"):
        similarity_attribution(conv, batch, 0, 0, "image")


def test_real_audio_and_text_transformers() -> None:
    enc = pytest.importorskip("mmlab.encoders")
    if not all(hasattr(enc, n) for n in ("AudioTransformer", "TextTransformer", "Tokenizer")):
        pytest.skip("audio/text transformers not available yet")
    torch.manual_seed(0)
    texts = ["a red circle", "small blue square top left", "green star"]
    tok = enc.Tokenizer.from_texts(texts)
    audio = enc.AudioTransformer(n_mels=8, dim=16, depth=1, heads=2, out_dim=8, frame_stride=4, n_fft=64,
                                 hop_length=32)
    text = enc.TextTransformer(tok, dim=16, depth=2, heads=2, out_dim=8)
    model = _real_model({"audio": audio, "text": text})
    batch = {"audio": torch.randn(3, 32 * 21), "text": texts}
    n_frames = 22
    for method in ("grad_attention", "rollout"):
        a = similarity_attribution(model, batch, 0, 1, "audio", method=method)
        assert a.kind == "frames" and a.scores.shape == (n_frames,)
        # frames of one token share its score
        assert torch.equal(a.scores[:4], a.scores[0].expand(4))
        t = similarity_attribution(model, batch, 1, 0, "text", method=method)
        assert t.kind == "tokens" and t.tokens == tok.tokens(texts[1]) and t.scores.shape == (5,)
    g = similarity_attribution(model, batch, 0, 1, "audio", method="input_x_gradient")
    assert g.scores.shape == (8, n_frames)
    z = {m: v.detach() for m, v in model.encode(batch).items()}
    # audio IG: completeness against the spectrogram path, baseline = each mel band's time average
    ig = similarity_attribution(model, batch, 0, 1, "audio", method="integrated_gradients", steps=16)
    spec = audio.logmel(batch["audio"][:1])
    with torch.no_grad():
        flat = spec.mean(-1, keepdim=True).expand_as(spec)
        s_floor = F.normalize(audio.forward_spectrogram(flat), dim=-1)[0]
    s_floor = float(s_floor @ z["text"][1])
    assert torch.isfinite(ig.scores).all() and ig.scores.shape == (8, n_frames)
    assert abs(float(ig.scores.sum()) - (ig.similarity - s_floor)) < 1e-3
    for method in ("input_x_gradient", "integrated_gradients"):
        t = similarity_attribution(model, batch, 1, 0, "text", method=method, steps=8)
        assert t.scores.shape == (5,) and t.similarity == pytest.approx(float(z["text"][1] @ z["audio"][0]), abs=1e-5)
    # input × gradient on text against the recipe in the encoder's docstring
    ids, mask = tok.encode([texts[1]], max_len=text.max_len)
    e = text.embed(ids).detach().requires_grad_()
    feats = text.forward_embeddings(e, mask)
    zt = F.normalize(model.heads["text"](feats) if "text" in model.heads else feats, dim=-1)
    (grad,) = torch.autograd.grad((zt[0] @ z["audio"][0].detach()), e)
    t = similarity_attribution(model, batch, 1, 0, "text", method="input_x_gradient")
    torch.testing.assert_close(t.scores, (grad * e).sum(-1)[0, 1:].detach(), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------ boxes and maps

def test_attribution_in_box_extremes_and_uniform() -> None:
    bbox = (2, 3, 6, 7)
    inside = torch.zeros(10, 12, dtype=DT)
    inside[3:7, 2:6] = torch.rand(4, 4, dtype=DT) + 0.1
    assert attribution_in_box(inside, bbox) == pytest.approx(1.0)
    outside = torch.rand(10, 12, dtype=DT) + 0.1
    outside[3:7, 2:6] = -1.0  # negative mass inside does not count
    assert attribution_in_box(outside, bbox) == pytest.approx(0.0)
    assert attribution_in_box(torch.ones(10, 12), bbox) == pytest.approx(box_share(bbox, 10, 12))
    assert box_share(bbox, 10, 12) == pytest.approx(16 / 120)
    # fractional boxes: brute force over a 10x super-sampled grid
    fb = (1.25, 0.5, 4.75, 3.2)
    m = torch.rand(5, 6, dtype=DT) - 0.3
    fine = m.repeat_interleave(10, 0).repeat_interleave(10, 1).clamp(min=0)
    ys, xs = torch.meshgrid(torch.arange(50) / 10 + 0.05, torch.arange(60) / 10 + 0.05, indexing="ij")
    inbox = (xs > fb[0]) & (xs < fb[2]) & (ys > fb[1]) & (ys < fb[3])
    expected = float(fine[inbox].sum() / fine.sum())
    assert attribution_in_box(m, fb) == pytest.approx(expected, abs=2e-2)
    assert math.isnan(attribution_in_box(-torch.ones(4, 4), bbox))
    with pytest.raises(ValueError, match="bbox"):
        attribution_in_box(inside, (5, 5, 1, 1))


def brute_in_span(scores: Tensor, start: float, end: float, hop: float, fine: int = 1000) -> tuple[float, float]:
    """(in-span fraction, span share) by super-sampling each frame's cell [(k-½)hop, (k+½)hop) at
    `fine` points and counting the points inside [start, end), with plain Python loops."""
    s = scores.detach().double()
    per_frame = [float(v) for v in (s.clamp(min=0) if s.ndim == 1 else s.clamp(min=0).sum(0))]
    inside_mass, covered = 0.0, 0.0
    for k, mass in enumerate(per_frame):
        hits = sum(1 for q in range(fine) if start <= (k - 0.5 + (q + 0.5) / fine) * hop < end)
        inside_mass += mass * hits / fine
        covered += hits / fine
    total = sum(per_frame)
    return (inside_mass / total if total > 0 else math.nan), covered / len(per_frame)


@pytest.mark.parametrize("start,end,hop", [(0.05, 0.23, 0.01), (0.0, 0.5, 0.02), (0.123, 0.1234, 0.01),
                                           (-1.0, 0.031, 0.01), (0.2, 9.0, 0.01), (0.3, 0.3, 0.01)])
def test_attribution_in_span_matches_brute_force(start: float, end: float, hop: float) -> None:
    torch.manual_seed(0)
    frames = torch.rand(30, dtype=DT) - 0.3  # (frames,) with negative entries that must not count
    spec_map = torch.randn(6, 30, dtype=DT)  # (mels, frames): the positive part is taken per cell
    for scores in (frames, spec_map):
        expected, share = brute_in_span(scores, start, end, hop)
        assert attribution_in_span(scores, start, end, hop_seconds=hop) == pytest.approx(expected, abs=2e-3)
        assert span_share(start, end, 30, hop_seconds=hop) == pytest.approx(share, abs=2e-3)


def test_attribution_in_span_extremes_uniform_and_per_cell_positive_part() -> None:
    hop = 0.01
    inside = torch.zeros(40, dtype=DT)
    inside[10:20] = torch.rand(10, dtype=DT) + 0.1  # frames 10..19, cells [0.095, 0.195)
    assert attribution_in_span(inside, 0.095, 0.195) == pytest.approx(1.0)
    assert attribution_in_span(inside, 0.195, 0.4) == pytest.approx(0.0)
    outside = torch.rand(40, dtype=DT) + 0.1
    outside[10:20] = -5.0  # negative mass inside does not count
    assert attribution_in_span(outside, 0.095, 0.195) == pytest.approx(0.0)
    # a uniform map scores the span's share; the whole clip is [-hop/2, (frames - 1/2)·hop)
    assert attribution_in_span(torch.ones(40), 0.1, 0.25) == pytest.approx(span_share(0.1, 0.25, 40))
    assert span_share(0.1, 0.25, 40) == pytest.approx(0.15 / 0.40)
    assert span_share(-0.005, 0.395, 40, hop_seconds=hop) == pytest.approx(1.0)
    assert span_share(0.2, 0.2, 40) == 0.0 and span_share(5.0, 6.0, 40) == 0.0
    # (mels, frames): the positive part is per cell, so a cell's negative value does not cancel another's
    m = torch.zeros(2, 40, dtype=DT)
    m[0, 15], m[1, 15], m[0, 30] = 2.0, -2.0, 1.0
    assert attribution_in_span(m, 0.145, 0.155) == pytest.approx(2.0 / 3.0)
    assert math.isnan(attribution_in_span(-torch.ones(40), 0.1, 0.2))
    # tensors from the dataset (offset_s[i], duration_s[i]) are accepted as span ends
    assert attribution_in_span(inside, torch.tensor(0.095), torch.tensor([0.195])) == pytest.approx(1.0)


def test_attribution_in_span_rejects_bad_input() -> None:
    scores = torch.rand(20)
    with pytest.raises(ValueError, match="`end_s` must be ≥ `start_s`"):
        attribution_in_span(scores, 0.2, 0.1)
    with pytest.raises(TypeError, match="`start_s`"):
        attribution_in_span(scores, "0.1", 0.2)
    with pytest.raises(ValueError, match="`end_s`.*finite"):
        span_share(0.1, math.inf, 20)
    with pytest.raises(ValueError, match="`start_s`.*single"):
        attribution_in_span(scores, torch.tensor([0.1, 0.2]), 0.3)
    with pytest.raises(ValueError, match="`hop_seconds`"):
        attribution_in_span(scores, 0.1, 0.2, hop_seconds=0.0)
    with pytest.raises(ValueError, match="`frame_scores` must be"):
        attribution_in_span(torch.rand(2, 3, 4), 0.1, 0.2)
    with pytest.raises(TypeError, match="`frame_scores` must have a floating dtype"):
        attribution_in_span(torch.arange(5), 0.1, 0.2)
    with pytest.raises(ValueError, match="`frame_scores`.*1 NaN"):
        attribution_in_span(scores.masked_fill(torch.arange(20) == 4, math.nan), 0.1, 0.2)
    with pytest.raises(ValueError, match="`n_frames`"):
        span_share(0.1, 0.2, 0)


def test_upsample_to_image_nearest_keeps_patch_values() -> None:
    grid = torch.arange(6, dtype=DT).view(2, 3)
    up = upsample_to_image(grid, (8, 12))
    assert up.shape == (8, 12)
    for r in range(8):
        for c in range(12):
            assert up[r, c] == grid[r // 4, c // 4]
    assert upsample_to_image(grid[None].repeat(2, 1, 1), (8, 12), mode="bilinear").shape == (2, 8, 12)
    assert torch.equal(upsample_to_image(grid, [8, 12]), up) and upsample_to_image(grid, 6).shape == (6, 6)
    for size, exc in ((1.5, TypeError), (True, TypeError), ("8", TypeError), (0, ValueError), ((8, 0), ValueError),
                      ((8, 12, 3), ValueError), ((8.0, 12), ValueError)):
        with pytest.raises(exc, match="`image_size` must be a positive int"):
            upsample_to_image(grid, size)
    with pytest.raises(ValueError, match="`patch_scores`.*1 Inf"):
        upsample_to_image(grid.masked_fill(grid == 4, math.inf), 8)


def test_rank_correlation_matches_scipy_with_ties() -> None:
    x = torch.randint(0, 5, (40,)).to(DT)
    y = x + torch.randint(0, 4, (40,)).to(DT)
    expected = scipy.stats.spearmanr(x.numpy(), y.numpy()).statistic
    assert rank_correlation(x, y) == pytest.approx(expected, abs=1e-12)
    assert rank_correlation(x, -x) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation(torch.ones(5), torch.arange(5.0)))
    with pytest.raises(ValueError, match="`y`.*1 NaN"):
        rank_correlation(x, y.masked_fill(torch.arange(40) == 7, math.nan))


# ------------------------------------------------------------------------------ overlays

def _no_cdn(fig) -> None:
    page = fig.to_html(include_plotlyjs=False, full_html=False)
    assert "cdn" not in page.lower() and "<script src=" not in page


def test_image_overlay() -> None:
    img = torch.rand(3, 16, 16)
    fig = image_overlay(img, torch.rand(4, 4), alpha=0.4, title="why")
    assert fig.layout.title.text == "why"
    img_trace, heat = fig.data
    assert np.asarray(img_trace.z).shape == (16, 16, 3)
    assert np.asarray(heat.z).shape == (16, 16) and heat.opacity == 0.4
    assert "pixels" in fig.layout.xaxis.title.text and "pixels" in fig.layout.yaxis.title.text
    assert np.asarray(image_overlay(img, torch.rand(16, 16)).data[1].z).shape == (16, 16)
    _no_cdn(fig)
    with pytest.raises(ValueError, match="image"):
        image_overlay(torch.rand(16, 16, 3), torch.rand(4, 4))


def test_spectrogram_overlay() -> None:
    spec = torch.randn(8, 30)
    fig = spectrogram_overlay(spec, torch.rand(30), hop_seconds=0.02, title="audio")
    base, attr = fig.data
    assert np.asarray(attr.z).shape == (8, 30)
    np.testing.assert_allclose(np.asarray(base.x), np.arange(30) * 0.02)
    assert fig.layout.xaxis.title.text == "time (s)" and fig.layout.yaxis.title.text == "mel bin"
    assert fig.layout.title.text == "audio"
    assert np.asarray(spectrogram_overlay(spec, torch.rand(8, 30)).data[1].z).shape == (8, 30)
    per_frame = torch.rand(30, dtype=DT)
    band = np.asarray(spectrogram_overlay(spec, per_frame).data[1].z)
    np.testing.assert_array_equal(band, np.tile(per_frame.numpy(), (8, 1)))  # one band over all mel bins
    _no_cdn(fig)
    for attr in (torch.rand(29), torch.rand(8, 31), torch.rand(9, 30)):
        with pytest.raises(ValueError, match="`attribution` has shape .* but `spec`"):
            spectrogram_overlay(spec, attr)
    with pytest.raises(ValueError, match="`spec` is empty"):
        spectrogram_overlay(spec[:, :0], torch.rand(0))
    with pytest.raises(TypeError, match="`spec` must have a floating dtype"):
        spectrogram_overlay(spec.long(), torch.rand(30))
    with pytest.raises(ValueError, match="`attribution`.*1 NaN"):
        spectrogram_overlay(spec, per_frame.masked_fill(torch.arange(30) == 3, math.nan))


def test_image_overlay_rejects_integer_and_non_finite_input() -> None:
    img = torch.rand(3, 8, 8)
    with pytest.raises(TypeError, match="`image` must have a floating dtype"):
        image_overlay((img * 255).to(torch.int64), torch.rand(2, 2))
    with pytest.raises(TypeError, match="`image` must have a floating dtype"):
        image_overlay((img.numpy() * 255).astype(np.uint8), torch.rand(2, 2))
    bad = img.clone()
    bad[1, 4, 5] = math.nan
    with pytest.raises(ValueError, match="`image`.*1 NaN"):
        image_overlay(bad, torch.rand(2, 2))
    with pytest.raises(ValueError, match="`attribution`.*1 Inf"):
        image_overlay(img, torch.tensor([[0.0, math.inf], [0.0, 1.0]]))
    assert np.asarray(image_overlay(img.double().numpy(), [[0.0, 1.0], [2.0, 3.0]]).data[1].z).shape == (8, 8)


def test_token_overlay_html_and_figure() -> None:
    html = token_overlay(["a", "<unk>", "circle"], torch.tensor([0.5, -1.0, 0.0]), title="text")
    assert html.count("<span") == 3 and "&lt;unk&gt;" in html and "<script" not in html
    assert "rgba(38, 139, 210, 1.000)" in html  # the strongest (negative) token at full strength
    fig = token_figure(["a", "b"], [0.1, -0.2])
    assert list(fig.data[0].y) == [0.1, -0.2] and fig.layout.title.text
    _no_cdn(fig)
    with pytest.raises(ValueError, match="scores"):
        token_overlay(["a", "b"], [1.0])
