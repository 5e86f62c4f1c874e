"""Degenerate numbers are errors or correct values, never garbage.

Huge embeddings (‖x‖ beyond √(float max)), zero rows where a metric is undefined, a single SupCon
sample, a learnable temperature driven far out of range. Each case is compared with an
independent computation: the same input rescaled (normalisation is scale-free), the docstring's
stated value, or `F.normalize` itself where it does not overflow.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmlab._norm import l2_normalize
from mmlab.losses import MAX_LOGIT_SCALE, MIN_LOGIT_SCALE, ClipLoss, supcon
from mmlab.metrics import alignment, mean_pairwise_cosine, modality_gap, retrieval_report, uniformity

G = torch.Generator().manual_seed(0)


# ----------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0, 7.3, 1e4])
def test_l2_normalize_is_bit_identical_to_f_normalize_where_that_does_not_overflow(dtype, scale):
    x = torch.randn(40, 17, generator=G, dtype=dtype) * scale
    x[5] = 0  # a zero row: stays zero, gradient I/ε
    x[6, :3] = torch.tensor([1e-40, -3e-41, 2e-39], dtype=dtype)  # subnormal entries in float32
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, theirs = l2_normalize(x1), F.normalize(x2, dim=-1)
    w = torch.randn(ours.shape, generator=G, dtype=dtype)
    (ours * w).sum().backward()
    (theirs * w).sum().backward()
    assert torch.equal(ours, theirs) and torch.equal(x1.grad, x2.grad)


@pytest.mark.parametrize("peak", [2e19, 1e30, 3e38])
def test_l2_normalize_keeps_huge_rows_finite_and_unit(peak):
    x = torch.tensor([[peak, -peak / 2, 0.0, peak / 4]], dtype=torch.float32)  # ‖x‖² overflows float32
    assert not torch.isfinite(x.pow(2).sum())
    want = F.normalize(x.double(), dim=-1).float()  # float64 has the range to do it directly
    got = l2_normalize(x)
    assert torch.allclose(got, want, rtol=1e-6, atol=0) and abs(float(got.norm()) - 1) < 1e-6


def test_retrieval_of_huge_embeddings_equals_retrieval_of_the_same_directions():
    a = torch.randn(8, 16, generator=G)
    b = a + 0.3 * torch.randn(8, 16, generator=G)
    assert retrieval_report(a, b, ks=(1,)) == retrieval_report(a * 1e25, b * 1e25, ks=(1,))
    assert float(alignment(a * 1e25, b * 1e25)) == pytest.approx(float(alignment(a, b)), rel=1e-6)


# ----------------------------------------------------------------------------- zero rows
@pytest.mark.parametrize("metric", ["uniformity", "mean_pairwise_cosine", "alignment", "modality_gap"])
def test_metrics_that_need_a_direction_refuse_zero_rows(metric):
    x = torch.randn(6, 4, generator=G)
    x[2] = 0
    y = torch.randn(6, 4, generator=G)
    call = {"uniformity": lambda: uniformity(x), "mean_pairwise_cosine": lambda: mean_pairwise_cosine(x),
            "alignment": lambda: alignment(y, x), "modality_gap": lambda: modality_gap(y, x)}[metric]
    with pytest.raises(ValueError, match=r"row 2 is a zero vector \(1 of 6 rows are\).*undefined"):
        call()


def test_all_zero_embeddings_no_longer_score_the_best_uniformity():
    with pytest.raises(ValueError, match="zero vector"):
        uniformity(torch.zeros(5, 3))
    spread = torch.eye(4)  # four orthogonal directions: a real, finite value
    assert math.isclose(float(uniformity(spread)), -4.0, abs_tol=1e-6)  # ‖x̂_i − x̂_j‖² = 2 for every pair


# ----------------------------------------------------------------------------- SupCon
def test_supcon_of_a_single_sample_is_zero_with_finite_gradients():
    z = torch.randn(1, 8, generator=G, requires_grad=True)
    out = supcon(z, torch.tensor([3]))
    assert float(out.loss.detach()) == 0.0 and out.terms == {}  # as the docstring says
    out.loss.backward()
    assert torch.isfinite(z.grad).all()
    two_views = torch.randn(1, 2, 8, generator=G, requires_grad=True)  # one sample, two views: positives
    loss = supcon(two_views, torch.tensor([3])).loss
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)  # each view's only candidate is its positive
    loss.backward()
    assert torch.isfinite(two_views.grad).all()


# ----------------------------------------------------------------------------- temperature
def test_a_far_negative_logit_scale_keeps_the_temperature_finite():
    loss = ClipLoss()
    with torch.no_grad():
        loss.logit_scale.fill_(-800.0)  # a diverged run: exp(800) overflows a float
    assert loss.temperature == pytest.approx(100.0)  # was OverflowError
    assert float(loss.scale().detach()) == pytest.approx(0.01)
    a, b = torch.randn(4, 8, generator=G), torch.randn(4, 8, generator=G)
    assert torch.isfinite(loss(a, b).loss)
    loss.clamp_()
    assert float(loss.logit_scale.detach()) == pytest.approx(MIN_LOGIT_SCALE)
    with torch.no_grad():
        loss.logit_scale.fill_(50.0)
    loss.clamp_()
    assert float(loss.logit_scale.detach()) == pytest.approx(MAX_LOGIT_SCALE) and loss.temperature == pytest.approx(0.01)
