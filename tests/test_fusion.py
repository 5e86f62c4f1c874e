"""Tests for mmlab.fusion: every operator against an independent computation, in float64."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from mmlab.fusion import (OPERATORS, BilinearFusion, CoAttentionFusion, ConcatFusion, CrossAttentionFusion,
                          FiLMFusion, FusionClassifier, GatedFusion, LateFusion, LowRankTensorFusion,
                          MultiHeadAttention, ProductFusion, SumFusion, TensorFusion, TransformerFusion,
                          make_fusion, modality_dropout)

DIMS2 = {"image": 6, "audio": 5}
DIMS3 = {"image": 6, "audio": 5, "text": 4}
OUT = 8


def feats(dims: dict[str, int], b: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(b, d, generator=g, dtype=torch.float64) for m, d in dims.items()}


def build(name: str, dims: dict[str, int], **kw) -> nn.Module:
    return make_fusion(name, dims, OUT, **kw).double()


def names_for(m: int) -> list[str]:
    return [n for n in OPERATORS if not (n == "bilinear" and m != 2)]


# ---------------------------------------------------------------- parameter counts
def expected_params(name: str, dims: dict[str, int], o: int, **kw) -> int:
    d = list(dims.values())
    n = len(d)
    proj = sum((di + 1) * o for di in d)  # one Linear(D_m, o) per modality
    mha = 4 * (o * o + o)
    if name == "concat":
        return (sum(d) + (n if kw.get("indicator") else 0)) * o + o
    if name in ("sum", "product"):
        return proj
    if name == "gated":
        return proj + (sum(d) + 1) * n * o
    if name == "bilinear":
        return d[0] * d[1] * o + o
    if name == "tensor":
        return math.prod(di + 1 for di in d) * o + o
    if name == "low_rank":
        return kw["rank"] * sum((di + 1) * o for di in d) + o
    if name == "film":
        c = kw["condition"]
        return (sum(v for k, v in dims.items() if k != c) + 1) * o + (dims[c] + 1) * 2 * o
    if name == "cross_attention":
        return proj + mha
    if name == "co_attention":
        return proj + n * mha
    if name == "transformer":
        r, depth = 2, kw.get("depth", 1)
        block = 2 * (2 * o) + mha + (o * r * o + r * o) + (r * o * o + o)
        return proj + n * o + o + depth * block + 2 * o
    if name == "late":
        return sum((di + 1) * o for di in d) + (n if kw.get("weights") == "learnable" else 0)
    raise AssertionError(name)


CASES = [("concat", {}), ("concat", {"indicator": True}), ("sum", {}), ("product", {}), ("gated", {}),
         ("bilinear", {}), ("tensor", {}), ("low_rank", {"rank": 3}), ("film", {"condition": "audio"}),
         ("cross_attention", {"query": "audio"}), ("co_attention", {}), ("transformer", {}),
         ("transformer", {"depth": 2}), ("late", {}), ("late", {"weights": "learnable"})]


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("name,kw", CASES)
def test_parameter_count_matches_formula(name, kw, m):
    dims = DIMS2 if m == 2 else DIMS3
    if name == "bilinear" and m == 3:
        pytest.skip("bilinear is two-modality only")
    op = make_fusion(name, dims, OUT, **kw)
    assert sum(p.numel() for p in op.parameters()) == expected_params(name, dims, OUT, **kw)


def test_concat_without_projection_has_no_parameters_and_full_width():
    op = ConcatFusion(DIMS3, indicator=True)
    assert list(op.parameters()) == [] and op.out_dim == 6 + 5 + 4 + 3


# ---------------------------------------------------------------- gradients and shapes
@pytest.mark.parametrize("name,kw", CASES)
def test_gradients_reach_every_parameter(name, kw):
    dims = DIMS2 if name == "bilinear" else DIMS3  # M = 3 so every attention softmax has > 1 key
    op = make_fusion(name, dims, OUT, **kw).double()
    out = op(feats(dims, 5))
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (out * r).sum().backward()  # random weights: a plain sum is constant after a LayerNorm
    for pname, p in op.named_parameters():
        assert p.grad is not None, pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("b", [1, 5])
@pytest.mark.parametrize("m", [2, 3])
def test_output_shapes(b, m):
    dims = DIMS2 if m == 2 else DIMS3
    for name in names_for(m):
        op = build(name, dims)
        out = op(feats(dims, b))
        assert out.shape == (b, op.out_dim) == (b, OUT), name
        assert torch.isfinite(out).all(), name
        if op.attends:
            fused, attn = op(feats(dims, b), return_attention=True)
            torch.testing.assert_close(fused, out)  # explicit path = fused SDPA path


def test_registry_and_make_fusion():
    assert set(OPERATORS) == {"concat", "sum", "product", "gated", "bilinear", "tensor", "low_rank", "film",
                              "cross_attention", "co_attention", "transformer", "late"}
    for name, cls in OPERATORS.items():
        assert isinstance(make_fusion(name, DIMS2, 4), cls)
    with pytest.raises(ValueError, match="name"):
        make_fusion("nope", DIMS2, 4)


# ---------------------------------------------------------------- closed forms, hand computations
def test_sum_with_missing_modality_is_mean_over_present():
    op = SumFusion(DIMS3, OUT).double()
    x = feats(DIMS3, 4)
    present = {"audio": torch.tensor([True, False, True, False]), "text": torch.tensor([False, False, True, True])}
    out = op(x, present)
    for i in range(4):
        zs = [op.proj[m](x[m][i]) for m in DIMS3 if m not in present or present[m][i]]
        torch.testing.assert_close(out[i], sum(zs) / len(zs))


def test_product_uses_one_for_missing():
    op = ProductFusion(DIMS3, OUT).double()
    x = feats(DIMS3, 3)
    present = {"image": torch.tensor([True, False, False])}
    out = op(x, present)
    for i in range(3):
        want = torch.ones(OUT, dtype=torch.float64)
        for m in DIMS3:
            if m != "image" or present["image"][i]:
                want = want * (x[m][i] @ op.proj[m].weight.T + op.proj[m].bias)
        torch.testing.assert_close(out[i], want)


def test_concat_zero_fills_and_appends_indicator():
    op = ConcatFusion(DIMS2, indicator=True).double()
    x = feats(DIMS2, 3)
    present = {"audio": torch.tensor([True, False, True])}
    out = op(x, present)
    for i in range(3):
        p = float(present["audio"][i])
        want = torch.cat([x["image"][i], x["audio"][i] * p, torch.tensor([1.0, p], dtype=torch.float64)])
        torch.testing.assert_close(out[i], want)


def test_gated_two_modalities_softmax_equals_sigmoid_form():
    op = GatedFusion(DIMS2, OUT).double()
    x = feats(DIMS2, 5)
    w, c = op.gate.weight, op.gate.bias  # (2·out, D1 + D2), (2·out,)
    W, b = w[:OUT] - w[OUT:], c[:OUT] - c[OUT:]  # σ(s1 − s2) = softmax(s1, s2)_1
    g = torch.sigmoid(torch.cat([x["image"], x["audio"]], dim=1) @ W.T + b)
    u1 = torch.tanh(op.proj["image"](x["image"]))
    u2 = torch.tanh(op.proj["audio"](x["audio"]))
    torch.testing.assert_close(op(x), g * u1 + (1 - g) * u2)


def test_gated_renormalises_over_present():
    op = GatedFusion(DIMS3, OUT).double()
    x = feats(DIMS3, 2)
    present = {"text": torch.tensor([False, True])}
    out = op(x, present)
    xz = {m: v.clone() for m, v in x.items()}
    xz["text"][0] = 0.0
    for i in range(2):
        s = op.gate(torch.cat([xz[m][i] for m in DIMS3])).view(3, OUT)
        keep = [0, 1] if i == 0 else [0, 1, 2]
        e = torch.exp(s[keep])
        g = e / e.sum(0)
        u = torch.stack([torch.tanh(op.proj[m](x[m][i])) for m in DIMS3])[keep]
        torch.testing.assert_close(out[i], (g * u).sum(0))


def explicit_tensor_fusion(op: TensorFusion, x: dict[str, torch.Tensor]) -> torch.Tensor:
    """W z + b with z built entry by entry: z[i_1, ..., i_M] = Π_m [h_m; 1][i_m]."""
    b = next(iter(x.values())).shape[0]
    ext = [torch.cat([x[m], torch.ones(b, 1, dtype=x[m].dtype)], 1) for m in op.modalities]
    rows = []
    for s in range(b):
        z = []
        for idx in itertools.product(*(range(e.shape[1]) for e in ext)):  # first modality slowest
            z.append(math.prod(e[s, i] for e, i in zip(ext, idx)))
        rows.append(torch.stack(z))
    return torch.stack(rows) @ op.linear.weight.T + op.linear.bias


@pytest.mark.parametrize("dims", [{"a": 2, "b": 3}, {"a": 2, "b": 3, "c": 2}])
def test_tensor_fusion_matches_explicit_outer_product(dims):
    op = TensorFusion(dims, 4).double()
    x = feats(dims, 3)
    torch.testing.assert_close(op(x), explicit_tensor_fusion(op, x))
    present = {"b": torch.tensor([True, False, True])}
    xz = {m: v.clone() for m, v in x.items()}
    xz["b"][1] = 0.0  # a missing modality keeps only the terms without it
    torch.testing.assert_close(op(x, present), explicit_tensor_fusion(op, xz))


@pytest.mark.parametrize("dims", [{"a": 2, "b": 3}, {"a": 2, "b": 3, "c": 2}])
def test_low_rank_equals_tensor_fusion_with_reconstructed_weight(dims):
    low = LowRankTensorFusion(dims, 4, rank=3).double()
    with torch.no_grad():
        low.bias.normal_()
    full = TensorFusion(dims, 4).double()
    sizes = [d + 1 for d in dims.values()]
    w = torch.zeros(4, math.prod(sizes), dtype=torch.float64)
    for flat, idx in enumerate(itertools.product(*(range(s) for s in sizes))):
        for r in range(3):
            w[:, flat] += math.prod(low.factors[m][r, i] for m, i in zip(dims, idx))
    with torch.no_grad():
        full.linear.weight.copy_(w)
        full.linear.bias.copy_(low.bias)
    x = {m: v.requires_grad_() for m, v in feats(dims, 5).items()}
    y1, y2 = low(x), full(x)
    torch.testing.assert_close(y1, y2)
    r = torch.randn_like(y1)
    g1 = torch.autograd.grad((y1 * r).sum(), list(x.values()))
    g2 = torch.autograd.grad((y2 * r).sum(), list(x.values()))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)
    present = {"a": torch.tensor([True, False, True, True, False])}
    torch.testing.assert_close(low(x, present), full(x, present))


def test_bilinear_matches_formula():
    op = BilinearFusion(DIMS2, 3).double()
    x = feats(DIMS2, 4)
    w, b = op.bilinear.weight, op.bilinear.bias  # (out, D1, D2)
    want = torch.stack([torch.stack([x["image"][i] @ w[k] @ x["audio"][i] + b[k] for k in range(3)])
                        for i in range(4)])
    torch.testing.assert_close(op(x), want)


def test_film_formula():
    op = FiLMFusion(DIMS3, OUT, condition="audio").double()
    x = feats(DIMS3, 3)
    h = torch.cat([x["image"], x["text"]], 1) @ op.proj.weight.T + op.proj.bias
    gb = x["audio"] @ op.film.weight.T + op.film.bias
    torch.testing.assert_close(op(x), (1 + gb[:, :OUT]) * h + gb[:, OUT:])


def test_late_fusion_fixed_weights_hand_computed():
    op = LateFusion(DIMS3, 4, weights={"image": 1.0, "audio": 3.0, "text": 0.0}).double()
    x = feats(DIMS3, 3)
    lg = {m: x[m] @ op.classifiers[m].weight.T + op.classifiers[m].bias for m in DIMS3}
    torch.testing.assert_close(op(x), (1 * lg["image"] + 3 * lg["audio"]) / 4)
    present = {"audio": torch.tensor([True, False, True])}
    out = op(x, present)
    torch.testing.assert_close(out[1], lg["image"][1])  # audio drops out: weights renormalise to image only
    with pytest.raises(ValueError, match="weight"):
        op(x, {"image": torch.tensor([False, True, True]), "audio": torch.tensor([False, True, True])})


def test_late_fusion_learnable_weights_are_softmax():
    op = LateFusion(DIMS2, 4, weights="learnable").double()
    with torch.no_grad():
        op.theta.copy_(torch.tensor([0.3, -1.0]))
    x = feats(DIMS2, 2)
    a = torch.exp(torch.tensor([0.3, -1.0], dtype=torch.float64))
    a = a / a.sum()
    lg = [op.classifiers[m](x[m]) for m in DIMS2]
    torch.testing.assert_close(op(x), a[0] * lg[0] + a[1] * lg[1])


# ---------------------------------------------------------------- attention
def test_multihead_attention_matches_torch_reference():
    d, h = 8, 2
    mine = MultiHeadAttention(d, h).double()
    ref = nn.MultiheadAttention(d, h, batch_first=True).double()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mine.q.weight, mine.k.weight, mine.v.weight]))
        ref.in_proj_bias.copy_(torch.cat([mine.q.bias, mine.k.bias, mine.v.bias]))
        ref.out_proj.weight.copy_(mine.o.weight)
        ref.out_proj.bias.copy_(mine.o.bias)
    x = torch.randn(3, 4, d, dtype=torch.float64)
    keep = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 1, 1]], dtype=torch.bool)
    want, want_w = ref(x, x, x, key_padding_mask=~keep, average_attn_weights=False)
    for explicit in (True, False):
        out, w = mine(x, x, keep[:, None, :].expand(3, 4, 4), return_attention=explicit)
        torch.testing.assert_close(out, want)
        if explicit:
            torch.testing.assert_close(w, want_w)


def test_attention_weights_rows_sum_to_one():
    x = feats(DIMS3, 5)
    _, w = CrossAttentionFusion(DIMS3, OUT, query="text").double()(x, return_attention=True)
    assert w.shape == (5, 4, 1, 2)
    torch.testing.assert_close(w.sum(-1), torch.ones(5, 4, 1, dtype=torch.float64))
    _, w = CoAttentionFusion(DIMS3, OUT).double()(x, return_attention=True)
    assert w.shape == (5, 4, 3, 3)
    torch.testing.assert_close(w.sum(-1), torch.ones(5, 4, 3, dtype=torch.float64))
    assert (w.diagonal(dim1=-2, dim2=-1) == 0).all()  # a modality does not attend to itself
    _, ws = TransformerFusion(DIMS3, OUT, depth=2).double()(x, return_attention=True)
    assert len(ws) == 2
    for w in ws:
        assert w.shape == (5, 4, 4, 4)
        torch.testing.assert_close(w.sum(-1), torch.ones(5, 4, 4, dtype=torch.float64))


OK_WITH_MISSING = ["concat", "sum", "product", "gated", "tensor", "low_rank", "co_attention", "transformer", "late"]


@pytest.mark.parametrize("name", OK_WITH_MISSING + ["film", "cross_attention"])
def test_missing_modality_values_do_not_change_output(name):
    kw = {"condition": "image"} if name == "film" else {"query": "image"} if name == "cross_attention" else {}
    op = build(name, DIMS3, **kw)
    x = feats(DIMS3, 4)
    present = {"audio": torch.tensor([True, False, True, False])}
    y = feats(DIMS3, 4, seed=7)
    x2 = {m: v.clone() for m, v in x.items()}
    x2["audio"][~present["audio"]] = 1e3 * y["audio"][~present["audio"]]
    out, out2 = op(x, present), op(x2, present)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, out2)
    assert not torch.allclose(op(x)[1], op(x2)[1])  # without the mask, the changed values would matter
    if op.attends:
        fused, attn = op(x, present, return_attention=True)
        torch.testing.assert_close(fused, out)


def test_missing_token_gets_zero_attention():
    x = feats(DIMS3, 4)
    present = {"audio": torch.tensor([True, False, True, False])}
    _, ws = TransformerFusion(DIMS3, OUT).double()(x, present, return_attention=True)
    w = ws[0]  # token 0 = CLS, token 2 = audio
    assert (w[~present["audio"]][..., 2] == 0).all() and (w[present["audio"]][..., 2] > 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
    _, w = CrossAttentionFusion(DIMS3, OUT, query="image").double()(x, present, return_attention=True)
    assert (w[~present["audio"]][..., 0] == 0).all()  # context order: audio, text


def test_co_attention_alone_modality_keeps_its_token():
    op = CoAttentionFusion(DIMS2, OUT).double()
    x = feats(DIMS2, 3)
    present = {"audio": torch.tensor([False, True, False])}
    out = op(x, present)
    for i in (0, 2):  # only image present: nothing to attend to, u = t_image, mean over one
        torch.testing.assert_close(out[i], op.tokens["image"](x["image"][i]))


# ---------------------------------------------------------------- clear errors
def test_operators_that_need_a_modality_raise_clearly():
    x = feats(DIMS2, 3)
    miss_audio = {"audio": torch.tensor([True, False, True])}
    with pytest.raises(ValueError, match=r"'audio'.*\[1\].*TensorFusion"):
        BilinearFusion(DIMS2, OUT).double()(x, miss_audio)
    with pytest.raises(ValueError, match=r"conditioning modality 'audio'.*SumFusion"):
        FiLMFusion(DIMS2, OUT, condition="audio").double()(x, miss_audio)
    FiLMFusion(DIMS2, OUT, condition="image").double()(x, miss_audio)  # the modulated one may be missing
    with pytest.raises(ValueError, match=r"query modality 'audio'"):
        CrossAttentionFusion(DIMS2, OUT, query="audio").double()(x, miss_audio)
    with pytest.raises(ValueError, match=r"context modality.*\[1\]"):
        CrossAttentionFusion(DIMS2, OUT, query="image").double()(x, miss_audio)
    with pytest.raises(ValueError, match="exactly 2"):
        BilinearFusion(DIMS3, OUT)


@pytest.mark.parametrize("name", names_for(2))
def test_sample_with_no_modality_raises(name):
    op = build(name, DIMS2)
    none = {m: torch.tensor([True, False]) for m in DIMS2}
    with pytest.raises(ValueError, match=r"sample\(s\) \[1\] have no modality"):
        op(feats(DIMS2, 2), none)


def test_input_validation_messages():
    op = SumFusion(DIMS2, OUT)
    x = {m: v.float() for m, v in feats(DIMS2, 3).items()}
    with pytest.raises(TypeError, match="dict"):
        op([x["image"], x["audio"]])
    with pytest.raises(ValueError, match=r"missing \['audio'\]"):
        op({"image": x["image"]})
    with pytest.raises(ValueError, match=r"unknown \['depth'\]"):
        op({**x, "depth": x["image"]})
    with pytest.raises(ValueError, match=r"features\['audio'\].*D=5.*\(3, 4\)"):
        op({"image": x["image"], "audio": torch.randn(3, 4)})
    with pytest.raises(ValueError, match="same batch size"):
        op({"image": x["image"], "audio": torch.randn(2, 5)})
    with pytest.raises(TypeError, match="floating dtype"):
        op({"image": x["image"], "audio": torch.ones(3, 5, dtype=torch.int64)})
    with pytest.raises(ValueError, match="empty"):
        op({"image": torch.zeros(0, 6), "audio": torch.zeros(0, 5)})
    with pytest.raises(ValueError, match="2-D"):
        op({"image": x["image"], "audio": torch.randn(3, 2, 5)})
    with pytest.raises(TypeError, match=r"present\['audio'\].*bool"):
        op(x, {"audio": torch.ones(3)})
    with pytest.raises(ValueError, match=r"present\['audio'\].*\(3,\)"):
        op(x, {"audio": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="not in `dims`"):
        op(x, {"depth": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(TypeError, match="dims"):
        SumFusion([6, 5], OUT)
    with pytest.raises(ValueError, match="divisible by `heads`"):
        TransformerFusion(DIMS2, 6, heads=4)
    with pytest.raises(ValueError, match="condition"):
        FiLMFusion(DIMS2, OUT, condition="depth")


# ---------------------------------------------------------------- modality dropout
def test_modality_dropout_rate_and_never_all():
    b, p = 20000, 0.5
    x = {m: torch.randn(b, d) + 3 for m, d in DIMS3.items()}
    out, present = modality_dropout(x, p, generator=torch.Generator().manual_seed(0))
    keep = torch.stack([present[m] for m in DIMS3], 1)
    assert keep.any(1).all()  # never all dropped
    expected = p - p ** 3 / 3  # dropped with p, minus the rescue of fully dropped samples
    rate = 1 - keep.double().mean(0)
    assert ((rate - expected).abs() < 4 * math.sqrt(expected * (1 - expected) / b)).all(), rate
    for m in DIMS3:
        assert (out[m][~present[m]] == 0).all()
        assert torch.equal(out[m][present[m]], x[m][present[m]])


def test_modality_dropout_eval_reproducible_and_respects_present():
    x = {m: torch.randn(50, d) for m, d in DIMS2.items()}
    out, present = modality_dropout(x, 0.9, training=False)
    assert all(torch.equal(out[m], x[m]) and present[m].all() for m in DIMS2)
    a = modality_dropout(x, 0.7, generator=torch.Generator().manual_seed(3))[1]
    b = modality_dropout(x, 0.7, generator=torch.Generator().manual_seed(3))[1]
    assert all(torch.equal(a[m], b[m]) for m in DIMS2)
    old = {"audio": torch.arange(50) % 2 == 0}
    _, new = modality_dropout(x, 1.0, generator=torch.Generator().manual_seed(0), present=old)
    assert not (new["audio"] & ~old["audio"]).any()  # already missing stays missing
    assert torch.equal(new["image"] | new["audio"], torch.ones(50, dtype=torch.bool))
    assert (new["image"][~old["audio"]]).all()  # the only present modality is the one kept
    with pytest.raises(ValueError, match="`p`"):
        modality_dropout(x, 1.5)


# ---------------------------------------------------------------- classifier head
def test_fusion_classifier():
    x = feats(DIMS3, 4)
    late = LateFusion(DIMS3, 3).double()
    clf = FusionClassifier(late, 3).double()
    assert isinstance(clf.head, nn.Identity)
    torch.testing.assert_close(clf(x), late(x))
    with pytest.raises(ValueError, match="num_classes"):
        FusionClassifier(late, 5)
    fusion = TransformerFusion(DIMS3, OUT).double()
    clf = FusionClassifier(fusion, 3, hidden=16).double()
    logits, attn = clf(x, return_attention=True)
    assert logits.shape == (4, 3) and len(attn) == 1
    torch.testing.assert_close(logits, clf.head(fusion(x)))
    with pytest.raises(ValueError, match="no attention"):
        FusionClassifier(SumFusion(DIMS3, OUT), 3)(x, return_attention=True)
    for name in names_for(3):
        assert FusionClassifier(build(name, DIMS3), OUT).double()(x).shape == (4, OUT)


@pytest.mark.parametrize("name", OK_WITH_MISSING + ["film", "cross_attention"])
def test_masked_forward_reads_no_values_where_reads_are_not_cheap(name, monkeypatch):
    """On a GPU (values_are_cheap False) a masked forward must not read tensor values on the
    host, and must give the same output as the CPU path, which may read them."""
    import mmlab.fusion._base as base
    import mmlab.fusion.attention as attention
    import mmlab.fusion.late as late

    kw = {"condition": "image"} if name == "film" else {"query": "image"} if name == "cross_attention" else {}
    op = build(name, DIMS3, **kw)
    x = feats(DIMS3, 4)
    cases = [{"audio": torch.tensor([True, False, True, False])}, {"audio": torch.ones(4, dtype=torch.bool)}]
    want = [op(x, p) for p in cases]
    for mod in (base, attention, late):
        monkeypatch.setattr(mod, "values_are_cheap", lambda t: False)

    def host_read(*args, **kwargs):
        raise AssertionError("a host read of tensor values in a masked fusion forward")

    for method in ("__bool__", "item", "tolist", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, method, host_read)
    got = [op(x, p) for p in cases]
    monkeypatch.undo()
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)
