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
from mmlab.losses import MAX_LOGIT_SCALE, MIN_LOGIT_SCALE, ClipLoss, info_nce, supcon
from mmlab.metrics import (alignment, mean_pairwise_cosine, modality_gap, retrieval_report,
                           uniformity)

G = torch.Generator().manual_seed(0)


# ----------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0, 7.3, 1e4])
def test_l2_normalize_is_bit_identical_to_f_normalize_where_that_does_not_overflow(dtype, scale):
    x = torch.randn(40, 17, generator=G, dtype=dtype) * scale
    x[5] = 0  # a zero row: stays zero, gradient I/ε
    x[6, :3] = torch.tensor([1e-40, -3e-41, 2e-39], dtype=dtype)  # subnormal entries in float32,
    x[6, 3] = 1e-12  # in a row with an entry ≥ ε: still the plain F.normalize path
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, theirs = l2_normalize(x1), F.normalize(x2, dim=-1)
    w = torch.randn(ours.shape, generator=G, dtype=dtype)
    (ours * w).sum().backward()
    (theirs * w).sum().backward()
    assert torch.equal(ours, theirs) and torch.equal(x1.grad, x2.grad)


@pytest.mark.parametrize("peak", [2e19, 1e30, 3e38])
def test_l2_normalize_keeps_huge_rows_finite_and_unit(peak):
    x = torch.tensor([[peak, -peak / 2, 0.0, peak / 4]], dtype=torch.float32)  # ‖x‖² overflows
    assert not torch.isfinite(x.pow(2).sum())
    want = F.normalize(x.double(), dim=-1).float()  # float64 has the range to do it directly
    got = l2_normalize(x)
    assert torch.allclose(got, want, rtol=1e-6, atol=0) and abs(float(got.norm()) - 1) < 1e-6


@pytest.mark.parametrize("dtype, peak", [(torch.float32, 3e-13), (torch.float32, 1e-20),
                                         (torch.float32, 1e-40), (torch.float64, 1e-300),
                                         (torch.bfloat16, 1e-30)])
def test_l2_normalize_keeps_tiny_rows_unit(dtype, peak):
    # every entry below ε = 1e-12: F.normalize divides by ε and returns a near-zero row
    x = torch.tensor([[peak, -peak / 2, 0.0, peak / 4], [0.0, 0.0, 0.0, 0.0]], dtype=dtype)
    assert float(F.normalize(x.float(), dim=-1)[0].norm()) < 0.5
    # the direction of the stored values (subnormals round peak / 4), normalised in float64,
    # whose squares do not underflow here (1e-300: scaled by hand, exactly)
    stored = x[0].double() * (2.0 ** 990 if dtype == torch.float64 else 1.0)
    want = (stored / stored.norm()).to(dtype)
    got = l2_normalize(x)
    assert torch.allclose(got[0], want, rtol=1e-2 if dtype == torch.bfloat16 else 1e-6, atol=0)
    assert torch.equal(got[1], x[1])  # a zero row stays zero


def test_metrics_and_losses_of_tiny_embeddings_equal_those_of_their_directions():
    a = torch.randn(8, 16, generator=G)
    b = a + 0.3 * torch.randn(8, 16, generator=G)
    for scale in (1e-15, 1e-30):
        assert float(uniformity(a * scale)) == pytest.approx(float(uniformity(a)), rel=1e-5)
        assert float(alignment(a * scale, b * scale)) == pytest.approx(float(alignment(a, b)),
                                                                       rel=1e-5)
        assert float(info_nce(a * scale, b * scale, 0.1).loss) == pytest.approx(
            float(info_nce(a, b, 0.1).loss), rel=1e-5)
        assert retrieval_report(a * scale, b * scale, ks=(1,)) == retrieval_report(a, b, ks=(1,))


def test_retrieval_of_huge_embeddings_equals_retrieval_of_the_same_directions():
    a = torch.randn(8, 16, generator=G)
    b = a + 0.3 * torch.randn(8, 16, generator=G)
    assert retrieval_report(a, b, ks=(1,)) == retrieval_report(a * 1e25, b * 1e25, ks=(1,))
    assert float(alignment(a * 1e25, b * 1e25)) == pytest.approx(float(alignment(a, b)), rel=1e-6)


# ----------------------------------------------------------------------------- zero rows
@pytest.mark.parametrize("metric",
                         ["uniformity", "mean_pairwise_cosine", "alignment", "modality_gap"])
def test_metrics_that_need_a_direction_refuse_zero_rows(metric):
    x = torch.randn(6, 4, generator=G)
    x[2] = 0
    y = torch.randn(6, 4, generator=G)
    call = {"uniformity": lambda: uniformity(x),
            "mean_pairwise_cosine": lambda: mean_pairwise_cosine(x),
            "alignment": lambda: alignment(y, x),
            "modality_gap": lambda: modality_gap(y, x)}[metric]
    with pytest.raises(ValueError, match=r"row 2 is a zero vector \(1 of 6 rows are\).*undefined"):
        call()


def test_all_zero_embeddings_no_longer_score_the_best_uniformity():
    with pytest.raises(ValueError, match="zero vector"):
        uniformity(torch.zeros(5, 3))
    spread = torch.eye(4)  # four orthogonal directions: a real, finite value
    # ‖x̂_i − x̂_j‖² = 2 for every pair
    assert math.isclose(float(uniformity(spread)), -4.0, abs_tol=1e-6)


# ----------------------------------------------------------------------------- SupCon
def test_supcon_of_a_single_sample_is_zero_with_finite_gradients():
    z = torch.randn(1, 8, generator=G, requires_grad=True)
    out = supcon(z, torch.tensor([3]))
    assert float(out.loss.detach()) == 0.0 and out.terms == {}  # as the docstring says
    out.loss.backward()
    assert torch.isfinite(z.grad).all()
    # one sample, two views: positives of each other
    two_views = torch.randn(1, 2, 8, generator=G, requires_grad=True)
    loss = supcon(two_views, torch.tensor([3])).loss
    # each view's only candidate is its positive
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
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
    assert float(loss.logit_scale.detach()) == pytest.approx(MAX_LOGIT_SCALE)
    assert loss.temperature == pytest.approx(0.01)


# ----------------------------------------------------------------------------- losses
def _loss_cases():
    import mmlab.losses as L
    from mmlab.distributed import distributed_info_nce, distributed_siglip

    def sym(n):
        return lambda a, b, t: L.symile(a, b, a.flip(0), temperature=t, negatives=n,
                                        generator=torch.Generator().manual_seed(3))
    return {
        "info_nce": lambda a, b, t: L.info_nce(a, b, t),
        "info_nce_chunked": lambda a, b, t: L.info_nce(a, b, t, chunk_size=2),
        "siglip": lambda a, b, t: L.siglip(a, b, t),
        "siglip_chunked": lambda a, b, t: L.siglip(a, b, t, chunk_size=2),
        "clip_lite": lambda a, b, t: L.clip_lite(a, b, t),
        "debiased": lambda a, b, t: L.debiased_info_nce(a, b, t, tau_plus=0.1),
        "hard": lambda a, b, t: L.hard_negative_info_nce(a, b, t),
        "block": lambda a, b, t: L.block_info_nce(a, b, t, block_size=2),
        "pairwise": lambda a, b, t: L.pairwise_info_nce(a, b, a.flip(0), temperature=t),
        "symile_n": sym("n"),
        "symile_n_squared": sym("n_squared"),
        "queue_info_nce": lambda a, b, t: L.queue_info_nce(a, b, b.detach().flip(0), t),
        "queue_clip_loss": lambda a, b, t: L.queue_clip_loss(a, b, a.detach()[:2],
                                                             b.detach()[1:], t),
        "supcon": lambda a, b, t: L.supcon(torch.stack([a, b], 1),
                                           torch.tensor([0, 1, 0, 2, 1, 2]), t),
        "distributed_info_nce": lambda a, b, t: distributed_info_nce(a, b, t),
        "distributed_siglip": lambda a, b, t: distributed_siglip(a, b, t),
    }


LOSS_NAMES = list(_loss_cases())


def _loss_and_grads(fn, a, b, t):
    a, b = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    out = fn(a, b, t)
    out.loss.backward()
    return out, a.grad, b.grad


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_losses_of_huge_embeddings_equal_the_losses_of_their_directions(name):
    """Rows with ‖x‖ ≫ 1.8e19 used to become zero vectors inside the losses (loss log B). Each loss
    is scale-free in every row, so scaling two rows by 1e25 must change neither the loss nor the
    direction of any gradient: ∂L/∂(s·a_i) = (∂L/∂a_i)/s."""
    fn = _loss_cases()[name]
    a, b = torch.randn(6, 5, generator=G), torch.randn(6, 5, generator=G)
    s = torch.ones(6, 1)
    s[[0, 3]] = 1e25
    assert not torch.isfinite((a * s).pow(2).sum(dim=1)).all()  # F.normalize would zero them
    ref, ga, gb = _loss_and_grads(fn, a, b, 0.3)
    big, ga_big, gb_big = _loss_and_grads(fn, a * s, b * s, 0.3)
    torch.testing.assert_close(big.loss, ref.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ga_big * s, ga, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gb_big * s, gb, rtol=1e-4, atol=1e-5)


def _graph(t):
    """The autograd nodes behind `t`, depth first, as names: equal graphs sum gradients alike."""
    names, stack = [], [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None:
            names.append(type(node).__name__)
            stack.extend(n for n, _ in node.next_functions)
    return names


def test_loss_normalisation_takes_the_plain_graph_unless_a_row_needs_rescaling():
    """Normal inputs go through exactly `F.normalize` (values, gradients and the autograd graph,
    so models with many modalities sum gradients in the same order); in a batch with a huge row,
    every other row is still bit-identical."""
    from mmlab.losses._prep import NORM_EPS, normalize_rows

    x = torch.randn(7, 5, generator=G, requires_grad=True)
    ours, theirs = normalize_rows(x, NORM_EPS), F.normalize(x, dim=-1, eps=NORM_EPS)
    assert torch.equal(ours, theirs) and _graph(ours) == _graph(theirs)
    y = x.detach().clone()
    y[2] *= 1e30
    mixed = normalize_rows(y, NORM_EPS)
    rows = [0, 1, 3, 4, 5, 6]
    assert torch.equal(mixed[rows], F.normalize(y, dim=-1)[rows])
    torch.testing.assert_close(mixed[2], F.normalize(x[2].detach(), dim=-1), rtol=1e-6, atol=0)


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_half_precision_gradients_at_tau_1e4_match_float64(name, autocast):
    """float16 embeddings with rows of norm 0.2 to 1, τ = 1e-4, with and without float16 autocast:
    the loss is float32 and the gradients are finite and equal to a float64 computation on the
    same values, to float16 precision (logits ~1e4 are rounded at 1e-3 in float32, and to 8 in
    float16, which autocast used to do: SigLIP's loss was Inf)."""
    fn = _loss_cases()[name]
    g = torch.Generator().manual_seed(11)
    a, b = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    a = a / a.norm(dim=1, keepdim=True) * torch.linspace(0.2, 1.0, 6)[:, None]
    a16, b16 = a.half(), b.half()
    with torch.autocast("cpu", dtype=torch.float16, enabled=autocast):
        out, ga, gb = _loss_and_grads(fn, a16, b16, 1e-4)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert out.logits is None or out.logits.dtype == torch.float32
    ref, ra, rb = _loss_and_grads(fn, a16.double(), b16.double(), 1e-4)
    assert float(ra.abs().max()) < 6e4 and float(rb.abs().max()) < 6e4  # representable in float16
    torch.testing.assert_close(out.loss.double(), ref.loss, rtol=1e-5, atol=1e-3)
    for got, want in ((ga, ra), (gb, rb)):
        assert got.dtype == torch.float16 and torch.isfinite(got).all()
        tol = 2e-3 * float(want.abs().max())  # float16 keeps 11 bits: 4.9e-4 of each entry
        torch.testing.assert_close(got.double(), want, rtol=2e-3, atol=tol)


@pytest.mark.parametrize("logit_scale", [math.inf, -math.inf, 1e30, -1e30])
def test_infinite_logit_scale_gives_a_finite_temperature_on_both_sides(logit_scale):
    loss = ClipLoss()
    with torch.no_grad():
        loss.logit_scale.fill_(logit_scale)
    want = 0.01 if logit_scale > 0 else 100.0  # τ clamped to [0.01, 100]
    assert loss.temperature == pytest.approx(want)
    assert float(loss.scale().detach()) == pytest.approx(1 / want)
    a, b = torch.randn(4, 8, generator=G), torch.randn(4, 8, generator=G)
    assert torch.isfinite(loss(a, b).loss)
