"""Tests for ProjectionHead and ContrastiveModel against brute-force losses on the masked rows."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from mmlab.encoders import (AudioTransformer, ConvEncoder, ProjectionHead, TextTransformer,
                            Tokenizer, ViTEncoder)
from mmlab.model import ContrastiveModel
from mmlab.losses import ClipLoss, LossOutput, SymileLoss, info_nce

TEXTS = ["zero", "one red", "two blue", "three green", "four", "five small"]
B = len(TEXTS)


def clip_brute_force(a: torch.Tensor, b: torch.Tensor, temperature) -> torch.Tensor:
    """½[CE(S/τ, I) + CE(Sᵀ/τ, I)] with explicit loops over rows and columns."""
    a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    n = a.shape[0]
    a_to_b, b_to_a = 0.0, 0.0
    for i in range(n):
        row = torch.stack([a[i] @ b[j] for j in range(n)]) / temperature
        col = torch.stack([b[i] @ a[j] for j in range(n)]) / temperature
        a_to_b = a_to_b - (row[i] - torch.logsumexp(row, 0))
        b_to_a = b_to_a - (col[i] - torch.logsumexp(col, 0))
    return 0.5 * (a_to_b + b_to_a) / n


def make_model(loss=None, pairs="all") -> ContrastiveModel:
    """ViT + AudioTransformer + TextTransformer; image and text have heads (to D = 5), audio has none."""
    torch.manual_seed(0)
    encoders = {
        "image": ViTEncoder(image_size=8, patch_size=4, dim=8, depth=1, heads=2, out_dim=6),
        "audio": AudioTransformer(n_mels=8, dim=8, depth=1, heads=2, out_dim=5, frame_stride=4, n_fft=64,
                                  hop_length=32),
        "text": TextTransformer(Tokenizer.from_texts(TEXTS), dim=8, depth=1, heads=2, out_dim=6, max_len=8),
    }
    heads = {"image": ProjectionHead(6, 5), "text": ProjectionHead(6, 5, kind="mlp", hidden=7)}
    return ContrastiveModel(encoders, heads, ClipLoss(0.1) if loss is None else loss, pairs=pairs).double()


def make_batch(present=None) -> dict:
    g = torch.Generator().manual_seed(1)
    batch = {"image": torch.rand(B, 3, 8, 8, generator=g, dtype=torch.float64),
             "audio": torch.randn(B, 300, generator=g, dtype=torch.float64),
             "text": list(TEXTS), "label": torch.arange(B)}
    if present is not None:
        batch["present"] = present
    return batch


def params(model):
    return [p for p in model.parameters() if p.requires_grad]


# ---------------------------------------------------------------- ProjectionHead
@pytest.mark.parametrize("kind, hidden", [("linear", None), ("mlp", None), ("mlp", 11)])
def test_projection_head_parameter_count_and_raw_projection(kind, hidden):
    i, o = 9, 4
    head = ProjectionHead(i, o, kind=kind, hidden=hidden)
    h = hidden or i
    expected = i * o + o if kind == "linear" else i * h + h + h * o + o
    assert sum(p.numel() for p in head.parameters()) == expected
    x = torch.randn(3, i)
    z = head(x)
    assert z.shape == (3, o) and head.out_dim == o
    if kind == "linear":  # g(h) = W h + b, not normalised (the model normalises, once)
        torch.testing.assert_close(z, x @ head.net.weight.T + head.net.bias)
    else:
        first, last = head.net[0], head.net[3]
        hid = torch.nn.functional.gelu(x @ first.weight.T + first.bias)
        torch.testing.assert_close(z, hid @ last.weight.T + last.bias)


def test_projection_head_linear_matches_formula_and_validates():
    head = ProjectionHead(5, 3).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    y = x @ head.net.weight.T + head.net.bias
    torch.testing.assert_close(head(x), y)
    with pytest.raises(ValueError, match="'linear', 'mlp'"):
        ProjectionHead(5, 3, kind="conv")
    with pytest.raises(ValueError, match="in_dim=5"):
        head(torch.randn(4, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="`h` is empty"):
        head(torch.zeros(0, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match="`h` must have a floating dtype"):
        head(torch.ones(4, 5, dtype=torch.int64))


# ---------------------------------------------------------------- encode
def test_encode_is_unit_norm_and_skips_absent_modalities():
    model = make_model()
    batch = make_batch()
    del batch["audio"]
    z = model.encode(batch)
    assert set(z) == {"image", "text"}
    for v in z.values():
        assert v.shape == (B, 5)
        torch.testing.assert_close(v.norm(dim=-1), torch.ones(B, dtype=torch.float64))
    raw = model.heads["image"](model.encoders["image"](batch["image"]))
    torch.testing.assert_close(z["image"], raw / raw.norm(dim=-1, keepdim=True))
    with pytest.raises(ValueError, match="missing modalities"):
        model.encode(batch, ["audio"])
    with pytest.raises(ValueError, match="none of the model's modalities"):
        model.encode({"label": torch.arange(3)})


# ---------------------------------------------------------------- forward against brute force
@pytest.mark.parametrize("pairs, expected", [
    ("all", [("image", "audio"), ("image", "text"), ("audio", "text")]),
    ("anchor:text", [("text", "image"), ("text", "audio")]),
    ([("audio", "image")], [("audio", "image")]),
])
def test_forward_is_the_mean_over_pairs_values_and_gradients(pairs, expected):
    model = make_model(pairs=pairs)
    batch = make_batch()
    out = model(batch)
    assert isinstance(out, LossOutput)
    assert list(out.terms) == [f"{a}-{b}" for a, b in expected]
    z = model.encode(batch)
    tau = 1.0 / model.loss.scale()  # keeps the gradient to logit_scale
    refs = [clip_brute_force(z[a], z[b], tau) for a, b in expected]
    ref = torch.stack(refs).mean()
    torch.testing.assert_close(out.loss, ref)
    for (a, b), r in zip(expected, refs):
        torch.testing.assert_close(out.terms[f"{a}-{b}"], r)
    g_out = torch.autograd.grad(out.loss, params(model), allow_unused=True)
    g_ref = torch.autograd.grad(ref, params(model), allow_unused=True)
    for (name, _), x, y in zip(model.named_parameters(), g_out, g_ref):
        assert (x is None) == (y is None), name
        if x is not None:
            torch.testing.assert_close(x, y, msg=lambda m: f"{name}: {m}")
    assert out.logits.shape == (B, B)
    assert model.temperature == pytest.approx(0.1)


class Recording(nn.Module):
    """A loss that records what it was given; `normalize` says whether it normalises itself."""

    def __init__(self, normalize):
        super().__init__()
        self.normalize, self.seen = normalize, []

    def forward(self, a, b):
        self.seen.append((a.detach(), b.detach()))
        return LossOutput(info_nce(a, b, 0.1, normalize=self.normalize).loss, None, {})


@pytest.mark.parametrize("normalize", [True, False])
def test_normalisation_happens_once(normalize):
    """A loss that normalises gets the raw projections; one that does not gets unit rows."""
    model = make_model(loss=Recording(normalize))
    batch = make_batch()
    model(batch)
    raw = model.embed(batch)
    a, b = model.loss.seen[0]
    first, second = model.pairs[0]
    expected = raw if normalize else model.encode(batch)
    torch.testing.assert_close(a, expected[first])
    torch.testing.assert_close(b, expected[second])
    assert (raw[first].norm(dim=-1) - 1).abs().max() > 1e-3  # the raw projections are not unit


def test_present_masks_skip_rows():
    present = {"image": torch.tensor([True, True, False, True, True, True]),
               "text": torch.tensor([True, False, True, True, False, True])}  # audio: no key = all present
    model = make_model()
    batch = make_batch(present)
    out = model(batch)
    z = model.encode(batch)
    tau = model.temperature
    rows = {("image", "audio"): [0, 1, 3, 4, 5], ("image", "text"): [0, 3, 5], ("audio", "text"): [0, 2, 3, 5]}
    refs = {f"{a}-{b}": clip_brute_force(z[a][r], z[b][r], tau) for (a, b), r in rows.items()}
    for k, v in refs.items():
        torch.testing.assert_close(out.terms[k], v)
    torch.testing.assert_close(out.loss, torch.stack(list(refs.values())).mean())
    # the same as dropping the absent rows from the batch by hand
    keep = [0, 3, 5]
    small = {"image": batch["image"][keep], "text": [TEXTS[i] for i in keep]}
    torch.testing.assert_close(out.terms["image-text"], model(small).terms["image-text"])


def test_pair_without_common_rows_is_skipped_and_all_skipped_raises():
    model = make_model()
    present = {"image": torch.tensor([True] + [False] * 5), "text": torch.tensor([False, True] + [False] * 4)}
    out = model(make_batch(present))
    assert set(out.terms) == {"image-audio", "audio-text"}
    batch = make_batch(present)
    del batch["audio"]
    with pytest.raises(ValueError, match="no row"):
        model(batch)
    with pytest.raises(ValueError, match=r"bool tensor of shape \(6,\)"):
        model(make_batch({"image": torch.ones(6)}))


def test_gradients_reach_every_parameter():
    model = make_model()
    present = {"audio": torch.tensor([True, False, True, True, True, True])}
    model(make_batch(present)).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert bool(p.grad.abs().sum() > 0), f"{name} got a zero gradient"
    assert "loss.logit_scale" in dict(model.named_parameters())


def test_conv_encoders_without_heads_and_functional_loss():
    encoders = {"a": ConvEncoder(out_dim=4, width=3), "b": ConvEncoder(out_dim=4, width=3)}
    loss = functools.partial(info_nce, temperature=0.2)
    model = ContrastiveModel(encoders, None, loss).double()
    assert model.temperature is None and len(model.heads) == 0
    batch = {"a": torch.rand(4, 3, 16, 16, dtype=torch.float64), "b": torch.rand(4, 3, 16, 16, dtype=torch.float64)}
    z = model.encode(batch)
    torch.testing.assert_close(model(batch).loss, clip_brute_force(z["a"], z["b"], 0.2))


# ---------------------------------------------------------------- multi-way (Symile)
class RecordingMultiway(nn.Module):
    """A stand-in multi-way loss that records what it was given."""

    multiway = True

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, *zs):
        self.seen = [z.detach().clone() for z in zs]
        loss = sum((z.prod(dim=0)).sum() for z in zs)
        return LossOutput(loss, None, {"part": loss})


def test_multiway_gets_all_modalities_on_rows_where_all_are_present():
    rec = RecordingMultiway()
    model = make_model(loss=rec)
    present = {"image": torch.tensor([True, True, False, True, True, True]),
               "text": torch.tensor([True, False, True, True, True, True])}
    batch = make_batch(present)
    out = model(batch)
    z = model.encode(batch)
    keep = torch.tensor([0, 3, 4, 5])
    assert len(rec.seen) == 3
    for seen, m in zip(rec.seen, ["image", "audio", "text"]):
        torch.testing.assert_close(seen, z[m][keep].detach())
    assert "image-audio-text" in out.terms and "part" in out.terms


def test_multiway_symile_matches_direct_call():
    loss = SymileLoss(0.2, negatives="n_squared")
    model = make_model(loss=loss)
    present = {"audio": torch.tensor([True, True, True, False, True, True])}
    batch = make_batch(present)
    out = model(batch)
    z = model.encode(batch)
    rows = [0, 1, 2, 4, 5]
    ref = loss(z["image"][rows], z["audio"][rows], z["text"][rows])
    torch.testing.assert_close(out.loss, ref.loss)
    assert model.temperature == pytest.approx(0.2)
    assert math.isfinite(float(out.loss.detach()))


# ---------------------------------------------------------------- validation
def test_batch_errors_name_the_batch_key():
    """Bad batches are reported at the model boundary as `batch['<modality>']`."""
    model = make_model()
    cases = [
        ("audio", lambda b: b["audio"][:3], ValueError, r"same batch size.*`batch\['audio'\]` has 3"),
        ("text", lambda b: [], ValueError, r"`batch\['text'\]` is empty"),
        ("image", lambda b: b["image"][:0], ValueError, r"`batch\['image'\]` is empty"),
        ("image", lambda b: torch.tensor(1.0), ValueError, r"`batch\['image'\]` is a 0-D tensor"),
        ("image", lambda b: b["image"].numpy(), TypeError, r"`batch\['image'\]` must be a tensor"),
        # the encoder's own error is kept, prefixed with the batch key and the encoder
        ("image", lambda b: (b["image"] * 255).long(), TypeError,
         r"`batch\['image'\]` was rejected by `encoders\['image'\]` \(ViTEncoder\): .*dtype"),
        ("audio", lambda b: b["audio"][:, None], ValueError,
         r"`batch\['audio'\]` was rejected by `encoders\['audio'\]` \(AudioTransformer\)"),
    ]
    for key, change, exc, pattern in cases:
        batch = make_batch()
        batch[key] = change(batch)
        with pytest.raises(exc, match=pattern):
            model(batch)
        with pytest.raises(exc, match=pattern):
            model.encode(batch)
    model(make_batch())  # the valid batch still works


def test_options_are_validated():
    with pytest.raises(ValueError, match="'all', 'anchor:<modality>'"):
        make_model(pairs="every")
    with pytest.raises(ValueError, match="anchor 'video'"):
        make_model(pairs="anchor:video")
    with pytest.raises(ValueError, match="two different modalities"):
        make_model(pairs=[("image", "image")])
    with pytest.raises(ValueError, match="without an encoder"):
        ContrastiveModel({"a": nn.Linear(2, 2), "b": nn.Linear(2, 2)}, {"c": nn.Identity()}, ClipLoss())
    with pytest.raises(TypeError, match="callable"):
        ContrastiveModel({"a": nn.Linear(2, 2), "b": nn.Linear(2, 2)}, None, "clip")
    with pytest.raises(TypeError, match="dict"):
        make_model()([torch.zeros(2)])
    with pytest.raises(TypeError, match="list of str"):
        batch = make_batch()
        batch["text"] = "one sentence"
        make_model()(batch)


@pytest.mark.parametrize("device", ["meta"] + (["cuda"] if torch.cuda.is_available() else []))
def test_a_cpu_batch_follows_the_model_to_its_device(device: str) -> None:
    # a dataset's batch on the CPU, the model elsewhere ("meta" has no data: shapes only, so the
    # move is checked on any machine; "cuda" checks the values where there is a GPU)
    torch.manual_seed(0)
    model = ContrastiveModel({"a": nn.Linear(3, 4), "b": nn.Linear(5, 4)}, None, ClipLoss(0.1))
    batch = {"a": torch.randn(6, 3), "b": torch.randn(6, 5)}
    expected = model.encode(batch)
    z = model.to(device).encode(batch)
    for m in ("a", "b"):
        assert z[m].device.type == device and z[m].shape == (6, 4)
        if device != "meta":
            torch.testing.assert_close(z[m].cpu(), expected[m])
