"""mmlab.train.diagnose: each symptom against an independent computation, and no false alarm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmlab.data import MultimodalDataset
from mmlab.model import ContrastiveModel
from mmlab.losses import ClipLoss
from mmlab.train import CODES, Finding, GradientNorms, History, diagnose, fit, report

N, D_IN, D, B = 64, 8, 6, 16


def _data(seed: int = 0) -> MultimodalDataset:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(N, D_IN, generator=g)
    return MultimodalDataset({"a": z, "b": z + 0.1 * torch.randn(N, D_IN, generator=g)})


class Detached(nn.Module):
    """A tower whose output is cut from the graph: the bug `tower_not_learning` must catch."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).detach()


def _model(detach_b: bool = False) -> ContrastiveModel:
    torch.manual_seed(0)
    fb = nn.Linear(D_IN, D)
    return ContrastiveModel({"a": nn.Linear(D_IN, D), "b": Detached(fb) if detach_b else fb}, None,
                            ClipLoss(0.2, learnable=True, normalize=False))


def _history(loss: list[float], tau: list[float | None] | None = None, batch_size: int | None = B) -> History:
    n = len(loss)
    return History(step=list(range(1, n + 1)), epoch=[0] * n, loss=loss,
                   temperature=tau if tau is not None else [0.07] * n, terms=[{}] * n, batch_size=batch_size)


def codes(found: list[Finding]) -> list[str]:
    return [f.code for f in found]


def test_loss_at_log_b_matches_the_loss_of_constant_embeddings():
    # Independent value: cross-entropy of a (B, B) matrix of equal logits is log B.
    chance = float(F.cross_entropy(torch.zeros(B, B), torch.arange(B)))
    assert chance == pytest.approx(math.log(B), rel=1e-6)
    found = diagnose(_history([4.0] * 90 + [chance] * 10))
    assert codes(found) == ["loss_at_log_b"]
    assert found[0].evidence["log_b"] == pytest.approx(chance, rel=1e-6)
    assert "misaligned" in found[0].message
    # 10 % below log B: learning, no finding; without B: nothing can be said.
    assert diagnose(_history([0.9 * chance] * 100)) == []
    assert diagnose(_history([chance] * 100, batch_size=None)) == []
    assert codes(diagnose(_history([0.9 * chance] * 100), batch_size=int(round(math.exp(0.9 * chance))))) \
        == ["loss_at_log_b"]


def test_temperature_at_either_clamp_but_not_inside():
    lower = diagnose(_history([1.0] * 20, tau=[0.05] * 10 + [0.01] * 10))
    assert codes(lower) == ["temperature_at_clamp"] and lower[0].evidence["bound"] == pytest.approx(0.01)
    assert lower[0].evidence["first_step"] == 11
    bounced = diagnose(_history([1.0] * 20, tau=[0.01] * 5 + [0.05] * 5 + [0.01] * 10))
    assert bounced[0].evidence["first_step"] == 11  # the final stretch on the clamp, not the first touch
    upper = diagnose(_history([1.0] * 20, tau=[100.0] * 20))
    assert codes(upper) == ["temperature_at_clamp"] and "no signal" in upper[0].message
    assert diagnose(_history([1.0] * 20, tau=[0.0105] * 20)) == []  # 5 % above the clamp: inside
    assert diagnose(_history([1.0] * 20, tau=[None] * 20)) == []


class Fixed(nn.Module):
    """A 'model' whose embeddings are given: collapse is checked on exactly these."""

    def __init__(self, z: torch.Tensor) -> None:
        super().__init__()
        self.z, self.w = z, nn.Parameter(torch.zeros(1))

    def encode(self, batch):
        return {"a": F.normalize(self.z[: len(batch["a"])], dim=-1)}


def _centred_erank_numpy(z: np.ndarray) -> float:
    s = np.linalg.svd(z - z.mean(0), compute_uv=False)
    p = s[s > 0] / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def test_collapse_full_dimensional_and_healthy():
    g = torch.Generator().manual_seed(1)
    data = MultimodalDataset({"a": torch.zeros(N, 1)})
    healthy = torch.randn(N, 16, generator=g)
    assert diagnose(_history([1.0]), Fixed(healthy), data) == []
    one_point = torch.ones(N, 16) + 1e-3 * torch.randn(N, 16, generator=g)
    found = diagnose(_history([1.0]), Fixed(one_point), data)
    assert codes(found) == ["collapse"] and found[0].evidence["mean_cosine"] > 0.99
    # Points on one line through the origin's opposite sides: cosines cancel, rank does not.
    t = torch.randn(N, 1, generator=g)
    t = t.sign() * (1 + t.abs())  # |t| >= 1: the noise stays small after normalising
    line = t * torch.eye(16)[0] + 0.001 * torch.randn(N, 16, generator=g)
    found = diagnose(_history([1.0]), Fixed(line), data)
    assert codes(found) == ["collapse"]
    expected = _centred_erank_numpy(F.normalize(line, dim=-1).double().numpy())
    assert found[0].evidence["centred_effective_rank"] == pytest.approx(expected, rel=1e-4)
    assert found[0].evidence["mean_cosine"] < 0.9


def test_gradient_norms_match_a_hand_computation():
    data, model = _data(), _model()
    log = GradientNorms()
    fit(model, data, steps=1, batch_size=N, lr=1e-2, optimizer="sgd", progress=False, device="cpu",
        callbacks=[log])
    # Step 1 by hand: the whole data set is the batch (InfoNCE does not depend on the row order),
    # the symmetric InfoNCE written out here, from the same initial weights.
    ref = _model()
    za = F.normalize(ref.encoders["a"](data.modalities_data["a"]), dim=-1)
    zb = F.normalize(ref.encoders["b"](data.modalities_data["b"]), dim=-1)
    logits = za @ zb.T / 0.2
    y = torch.arange(N)
    (0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y))).backward()
    for m in ("a", "b"):
        params = list(ref.encoders[m].parameters())
        grad = torch.cat([p.grad.flatten() for p in params]).norm()
        weight = torch.cat([p.detach().flatten() for p in params]).norm()
        assert log.norms[m][0] == pytest.approx(float(grad), rel=1e-4)
        assert log.weight_norms[m][0] != pytest.approx(float(weight), rel=1e-6)  # logged after the update
    assert len(log.norms["a"]) == 1


def test_tower_not_learning_is_found_for_the_detached_tower_only():
    data = _data()
    ok_log, bad_log = GradientNorms(), GradientNorms()
    ok = _model()
    h_ok = fit(ok, data, steps=30, batch_size=B, lr=1e-2, progress=False, device="cpu", callbacks=[ok_log])
    bad = _model(detach_b=True)
    h_bad = fit(bad, data, steps=30, batch_size=B, lr=1e-2, progress=False, device="cpu", callbacks=[bad_log])
    assert h_ok.batch_size == B
    assert "tower_not_learning" not in codes(diagnose(h_ok, grad_norms=ok_log))
    found = [f for f in diagnose(h_bad, grad_norms=bad_log) if f.code == "tower_not_learning"]
    assert [f.evidence["tower"] for f in found] == ["b"]
    assert all(v == 0.0 for v in bad_log.norms["b"]) and all(v > 0 for v in bad_log.norms["a"])
    # The detached tower's weights never moved: the finding is what happened.
    assert torch.equal(bad.encoders["b"].inner.weight, _model(detach_b=True).encoders["b"].inner.weight)


def test_fit_diagnose_prints_the_report(capsys):
    fit(_model(detach_b=True), _data(), steps=20, batch_size=B, lr=1e-2, progress=False, device="cpu",
        diagnose=True)
    out = capsys.readouterr().out
    assert "[tower_not_learning] The b tower" in out
    # An iterable of batches (no dataset to embed) and a model without `encode`: the other checks still run.
    batches = [_data().batch(torch.arange(i, i + B)) for i in range(0, N, B)]
    fit(_model(), batches, epochs=2, progress=False, device="cpu", diagnose=True)
    assert "diagnose:" in capsys.readouterr().out
    with pytest.raises(TypeError, match="diagnose"):
        fit(_model(), _data(), steps=1, batch_size=B, progress=False, device="cpu", diagnose="yes")


def test_history_keeps_batch_size_through_a_dict():
    h = _history([1.0, 2.0])
    assert History.from_dict(h.to_dict()).batch_size == B
    old = h.to_dict()
    del old["batch_size"]  # a checkpoint from before batch_size was logged
    assert History.from_dict(old).batch_size is None


def test_bad_arguments_name_the_argument():
    with pytest.raises(TypeError, match="history"):
        diagnose([1.0])
    with pytest.raises(ValueError, match="both `model` and `data`"):
        diagnose(_history([1.0]), model=_model())
    with pytest.raises(TypeError, match="grad_norms"):
        diagnose(_history([1.0]), grad_norms=[1.0])
    assert report([]).startswith("diagnose: no problem found")
    assert set(CODES) == {"loss_at_log_b", "temperature_at_clamp", "collapse", "tower_not_learning"}


def test_a_detached_encoder_under_a_trained_head_is_found():
    # The head still learns (its gradient is not zero), the encoder below it does not.
    torch.manual_seed(0)
    model = ContrastiveModel({"a": nn.Linear(D_IN, D), "b": Detached(nn.Linear(D_IN, D))},
                             {"a": nn.Linear(D, D), "b": nn.Linear(D, D)}, ClipLoss(0.2, normalize=False))
    log = GradientNorms()
    history = fit(model, _data(), steps=20, batch_size=B, lr=1e-2, progress=False, device="cpu", callbacks=[log])
    assert sorted(log.norms) == ["a", "a head", "b", "b head"]
    assert all(v > 0 for v in log.norms["b head"]) and all(v == 0 for v in log.norms["b"])
    found = [f.evidence["tower"] for f in diagnose(history, grad_norms=log) if f.code == "tower_not_learning"]
    assert found == ["b"]
