"""Property tests (hypothesis) for mmlab.losses: invariance to a consistent permutation of the
batch and to rescaling the inputs, Symile(M = 2, n_squared) = InfoNCE, and clean
ValueError/TypeError (never IndexError/RuntimeError) for random bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mmlab.losses as L

DT = torch.float64
FAST = settings(max_examples=15, deadline=None)

PAIR_LOSSES = {
    "info_nce": lambda a, b: L.info_nce(a, b, 0.3),
    "info_nce_chunked": lambda a, b: L.info_nce(a, b, 0.3, chunk_size=2),
    "siglip": lambda a, b: L.siglip(a, b, 0.3, -1.0),
    "siglip_chunked": lambda a, b: L.siglip(a, b, 0.3, -1.0, chunk_size=3),
    "symile_n_squared": lambda a, b: L.symile(a, b, a * b, temperature=0.3, negatives="n_squared"),
    "pairwise": lambda a, b: L.pairwise_info_nce(a, b, a * b, temperature=0.3),
    "debiased": lambda a, b: L.debiased_info_nce(a, b, 0.3, tau_plus=0.2),
    "hard": lambda a, b: L.hard_negative_info_nce(a, b, 0.3, beta=0.5, tau_plus=0.2),
    "supcon": lambda a, b: L.supcon(torch.stack([a, b], 1), (a[:, 0] > 0).long(), 0.3),  # labels move with rows
}
# clip_lite's negative is the next row, so it is invariant to cyclic shifts only (tested separately).


def _batch(seed: int, B: int, D: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, generator=gen, dtype=DT), torch.randn(B, D, generator=gen, dtype=DT)


@pytest.mark.parametrize("name", list(PAIR_LOSSES))
@FAST
@given(seed=st.integers(0, 10_000), B=st.integers(1, 5), D=st.integers(1, 4))
def test_consistent_batch_permutation_leaves_loss_unchanged(name, seed, B, D):
    a, b = _batch(seed, B, D)
    perm = torch.randperm(B, generator=torch.Generator().manual_seed(seed + 1))
    fn = PAIR_LOSSES[name]
    torch.testing.assert_close(fn(a[perm], b[perm]).loss, fn(a, b).loss, rtol=1e-10, atol=1e-12)


@FAST
@given(seed=st.integers(0, 10_000), B=st.integers(1, 5), shift=st.integers(0, 4))
def test_clip_lite_cyclic_shift_invariance(seed, B, shift):
    a, b = _batch(seed, B, 3)
    torch.testing.assert_close(L.clip_lite(a.roll(shift, 0), b.roll(shift, 0)).loss, L.clip_lite(a, b).loss)


@pytest.mark.parametrize("name", list(PAIR_LOSSES))
@FAST
@given(seed=st.integers(0, 10_000), B=st.integers(1, 5), sa=st.floats(1e-3, 1e3), sb=st.floats(1e-3, 1e3))
def test_positive_rescaling_leaves_normalised_loss_unchanged(name, seed, B, sa, sb):
    a, b = _batch(seed, B, 3)
    fn = PAIR_LOSSES[name]
    torch.testing.assert_close(fn(sa * a, sb * b).loss, fn(a, b).loss, rtol=1e-9, atol=1e-11)


@FAST
@given(seed=st.integers(0, 10_000), B=st.integers(1, 6), D=st.integers(1, 5), tau=st.floats(0.01, 2.0))
def test_symile_two_modalities_n_squared_equals_info_nce(seed, B, D, tau):
    a, b = _batch(seed, B, D)
    a.requires_grad_(True)
    b.requires_grad_(True)
    s = L.symile(a, b, temperature=tau, negatives="n_squared").loss
    c = L.info_nce(a, b, tau).loss
    torch.testing.assert_close(s, c, rtol=1e-10, atol=1e-12)
    for gs, gc in zip(torch.autograd.grad(s, [a, b]), torch.autograd.grad(c, [a, b])):
        torch.testing.assert_close(gs, gc, rtol=1e-9, atol=1e-11)


@FAST
@given(seed=st.integers(0, 10_000), B=st.integers(1, 6), tau=st.floats(0.01, 2.0))
def test_losses_are_bounded_below(seed, B, tau):
    a, b = _batch(seed, B, 3)
    assert L.info_nce(a, b, tau).loss >= 0
    assert L.clip_lite(a, b, tau).loss >= 0
    assert L.symile(a, b, a + b, temperature=tau).loss >= 0


ALL_CALLS = {
    "info_nce": lambda a, b: L.info_nce(a, b),
    "info_nce_chunked": lambda a, b: L.info_nce(a, b, chunk_size=2),
    "siglip": lambda a, b: L.siglip(a, b),
    "siglip_chunked": lambda a, b: L.siglip(a, b, chunk_size=2),
    "symile": lambda a, b: L.symile(a, b, a),
    "pairwise": lambda a, b: L.pairwise_info_nce(a, b),
    "clip_lite": lambda a, b: L.clip_lite(a, b),
    "debiased": lambda a, b: L.debiased_info_nce(a, b),
    "hard": lambda a, b: L.hard_negative_info_nce(a, b),
    "queue": lambda a, b: L.queue_info_nce(a, b, b),
    "supcon": lambda a, b: L.supcon(a, b),
    "clip_module": lambda a, b: L.ClipLoss()(a, b),
    "siglip_module": lambda a, b: L.SigLipLoss()(a, b),
    "symile_module": lambda a, b: L.SymileLoss()(a, b),
}

shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)
dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64, torch.bool, torch.int32])
specials = st.sampled_from([None, float("nan"), float("inf"), -float("inf")])


def _tensor(shape, dtype, special, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen) if len(shape) else torch.randn((), generator=gen)
    if special is not None and x.numel():
        x.view(-1)[0] = special
    return x.to(dtype)


@pytest.mark.parametrize("name", list(ALL_CALLS))
@settings(max_examples=25, deadline=None)
@given(shape_a=shapes, shape_b=shapes, dtype_a=dtypes, dtype_b=dtypes, special=specials,
       seed=st.integers(0, 1000))
def test_bad_inputs_raise_value_or_type_error(name, shape_a, shape_b, dtype_a, dtype_b, special, seed):
    a = _tensor(shape_a, dtype_a, special, seed)
    b = _tensor(shape_b, dtype_b, None, seed + 1)
    if name == "supcon":  # labels are the second argument
        b = _tensor(shape_b, dtype_b, None, seed + 1)
    try:
        out = ALL_CALLS[name](a, b)
    except (ValueError, TypeError) as err:
        assert str(err)  # a message, naming the problem
        return
    # accepted inputs must give a finite loss
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("tau", [0.0, -1.0, math.nan, math.inf, "0.1", True, torch.tensor([0.1, 0.2])])
def test_bad_temperatures(tau):
    a, b = _batch(0, 3, 2)
    for fn in (L.info_nce, L.siglip, L.clip_lite, L.debiased_info_nce, L.hard_negative_info_nce):
        with pytest.raises((ValueError, TypeError), match="temperature"):
            fn(a, b, tau)
    with pytest.raises((ValueError, TypeError), match="temperature"):
        L.symile(a, b, temperature=tau)
