"""Two→one contrastive fusion and OGM-GE gradient modulation, against independent computations."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmlab.fusion import FusedContrastiveModel, make_fusion, modulate_gradients_, ogm_ge_coefficients, scale_gradient


def _model(op="concat", sources=("image", "audio"), **kw):
    torch.manual_seed(0)
    enc = {"image": nn.Linear(5, 4), "audio": nn.Linear(3, 6), "text": nn.Linear(7, 4)}
    fusion = make_fusion(op, {m: enc[m].out_features for m in sources}, 8)
    return FusedContrastiveModel({m: enc[m] for m in (*sources, "text")}, fusion, "text", nn.Linear(4, 8), **kw)


def _batch(b=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(b, 5, generator=g), "audio": torch.randn(b, 3, generator=g),
            "text": torch.randn(b, 7, generator=g)}


def test_ogm_coefficients_match_eq10_by_hand():
    k = ogm_ge_coefficients({"image": 0.6, "audio": 0.2}, alpha=0.5)
    assert float(k["image"]) == pytest.approx(1 - math.tanh(0.5 * 3.0))  # ρ = 0.6 / 0.2 = 3 > 1
    assert float(k["audio"]) == 1.0  # ρ = 1/3 ≤ 1: untouched
    k0 = ogm_ge_coefficients({"image": 0.6, "audio": 0.2}, alpha=0.0)
    assert float(k0["image"]) == 1.0
    k3 = ogm_ge_coefficients({"a": 0.9, "b": 0.3, "c": 0.6}, alpha=1.0)  # ρ_a = 0.9 / mean(0.3, 0.6) = 2
    assert float(k3["a"]) == pytest.approx(1 - math.tanh(2.0))
    assert float(k3["b"]) == 1.0
    with pytest.raises(ValueError, match="alpha"):
        ogm_ge_coefficients({"a": 1.0, "b": 1.0}, alpha=-1)
    with pytest.raises(ValueError, match="at least 2"):
        ogm_ge_coefficients({"a": 1.0}, alpha=1)


def test_scale_gradient_scales_every_upstream_gradient():
    torch.manual_seed(0)
    enc, x = nn.Linear(4, 3), torch.randn(5, 4)
    enc(x).pow(2).sum().backward()
    ref = [p.grad.clone() for p in enc.parameters()]
    enc.zero_grad()
    out = scale_gradient(enc(x), 0.25)
    assert torch.equal(out, enc(x))
    out.pow(2).sum().backward()
    for p, r in zip(enc.parameters(), ref):
        torch.testing.assert_close(p.grad, 0.25 * r)


def test_modulate_gradients_in_place():
    p = nn.Parameter(torch.zeros(2000))
    p.grad = torch.randn(2000, generator=torch.Generator().manual_seed(0))
    g0 = p.grad.clone()
    modulate_gradients_([p], 0.5, noise=False)
    torch.testing.assert_close(p.grad, 0.5 * g0)
    p.grad = g0.clone()
    modulate_gradients_([p], 0.5, noise=True, generator=torch.Generator().manual_seed(1))
    resid = p.grad - 0.5 * g0  # the GE noise: N(0, std(g)²)
    assert resid.std().item() == pytest.approx(g0.std().item(), rel=0.1)


def test_loss_is_clip_between_fused_and_target():
    model, batch = _model(), _batch()
    out = model(batch)
    h = {m: model.encoders[m](batch[m]) for m in ("image", "audio")}
    zs = F.normalize(model.fusion.proj(torch.cat([h["image"], h["audio"]], dim=1)), dim=1)
    zt = F.normalize(model.target_head(model.encoders["text"](batch["text"])), dim=1)
    logits = zs @ zt.T / model.loss.temperature
    y = torch.arange(len(zs))
    ref = 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y))
    torch.testing.assert_close(out.loss, ref)


def test_single_source_model_is_two_tower():
    model = _model(sources=("audio",))
    assert model.sources == ("audio",)
    assert torch.isfinite(model(_batch()).loss)
    with pytest.raises(ValueError, match="ogm_alpha"):
        _model(sources=("audio",), ogm_alpha=1.0)
    with pytest.raises(ValueError, match="target"):
        enc = {"image": nn.Linear(5, 4), "audio": nn.Linear(3, 6)}
        FusedContrastiveModel(enc, make_fusion("concat", {"image": 4, "audio": 6}, 8), "audio", nn.Linear(6, 8))


def test_modality_scores_by_brute_force():
    model, batch = _model(), _batch()
    h = model.features(batch)
    zt = model.embed_target(batch)
    s = model.modality_scores(h, zt)
    tau = model.loss.temperature
    for m, other in (("image", "audio"), ("audio", "image")):
        total = 0.0
        for i in range(len(zt)):  # modality m alone: the other one zero-filled, as ConcatFusion does
            parts = {m: h[m][i], other: torch.zeros_like(h[other][i])}
            z = F.normalize(model.fusion.proj(torch.cat([parts["image"], parts["audio"]])), dim=0)
            total += torch.softmax(zt @ z / tau, dim=0)[i].item()
        assert float(s[m]) == pytest.approx(total, rel=1e-5)


def test_modality_scores_with_present_sum_only_rows_where_the_modality_is_present():
    model, batch = _model(), _batch()
    h = model.features(batch)
    zt = model.embed_target(batch)
    present = {"image": torch.tensor([True, False, True, False, False, True])}
    none = {"image": torch.zeros(len(zt), dtype=torch.bool)}
    s = model.modality_scores(h, zt, present)
    tau = model.loss.temperature
    total = 0.0
    for i in range(len(zt)):  # the image alone (audio zero-filled), rows with an image only
        if present["image"][i]:
            z = F.normalize(model.fusion.proj(torch.cat([h["image"][i], torch.zeros_like(h["audio"][i])])),
                            dim=0)
            total += torch.softmax(zt @ z / tau, dim=0)[i].item()
    assert float(s["image"]) == pytest.approx(total, rel=1e-5)
    assert float(s["audio"]) == pytest.approx(float(model.modality_scores(h, zt)["audio"]), rel=1e-6)
    assert float(model.modality_scores(h, zt, none)["image"]) == pytest.approx(1e-6)  # no row: the floor


def test_ogm_scales_encoder_gradients_by_k():
    base, batch = _model(), _batch()
    ogm = copy.deepcopy(base)
    ogm.ogm_alpha = 2.0
    base.train()(batch).loss.backward()
    ogm.train()(batch).loss.backward()
    k = ogm.last_coefficients
    assert min(float(v) for v in k.values()) < 1  # one modality is modulated
    for m in ("image", "audio"):
        for p, q in zip(base.encoders[m].parameters(), ogm.encoders[m].parameters()):
            torch.testing.assert_close(q.grad, float(k[m]) * p.grad)
    for p, q in zip(base.fusion.parameters(), ogm.fusion.parameters()):  # the fusion layer itself is untouched
        torch.testing.assert_close(q.grad, p.grad)


def test_drop_only_one_modality():
    model = _model(drop_p={"image": 0.5})
    torch.manual_seed(0)
    h = {m: torch.ones(1000, 3) for m in ("image", "audio")}
    from mmlab.fusion.contrastive import _drop_some

    out, present = _drop_some(h, model.drop_p, None)
    assert bool(present["audio"].all()) and torch.equal(out["audio"], h["audio"])
    frac = 1 - present["image"].float().mean().item()
    assert 0.4 < frac < 0.6
    assert torch.equal(out["image"][~present["image"]], torch.zeros(int((~present["image"]).sum()), 3))
    with pytest.raises(ValueError, match="drop_p"):
        _model(drop_p={"text": 0.5})
