"""Property tests for mmlab.metrics: invariances, brute force on tie-heavy inputs, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmlab import metrics as M
from retrieval_reference import expected_metrics

DT = torch.float64
FEW = settings(max_examples=25, deadline=None)


@st.composite
def tie_heavy_sim(draw, square: bool = True):
    """Small score matrices with few distinct values, so ties are common."""
    bq = draw(st.integers(1, 7))
    bg = bq if square else draw(st.integers(1, 7))
    vals = draw(st.lists(st.integers(-2, 2), min_size=bq * bg, max_size=bq * bg))
    return torch.tensor(vals, dtype=DT).reshape(bq, bg)


def seeded(b: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, d, generator=g, dtype=DT)
    return a, a + 1.5 * torch.randn(b, d, generator=g, dtype=DT)


# ----------------------------------------------------------------------------- brute force
@FEW
@given(sim=tie_heavy_sim(), k=st.integers(1, 9))
def test_recall_mrr_median_vs_enumeration_on_ties(sim, k):
    ref = expected_metrics(sim, (k,))
    assert M.recall_at_k(sim, k) == pytest.approx(ref[f"R@{k}"], abs=1e-12)
    assert M.mean_reciprocal_rank(sim) == pytest.approx(ref["MRR"], abs=1e-12)
    assert M.median_rank(sim) == pytest.approx(ref["median rank"], abs=1e-12)


@FEW
@given(sim=tie_heavy_sim(square=False), data=st.data())
def test_class_level_recall_vs_enumeration_on_ties(sim, data):
    bq, bg = sim.shape
    lg = torch.tensor(data.draw(st.lists(st.integers(0, 2), min_size=bg, max_size=bg)))
    present = sorted(set(lg.tolist()))
    lq = torch.tensor(data.draw(st.lists(st.sampled_from(present), min_size=bq, max_size=bq)))
    ref = expected_metrics(sim, (1, 2, 4), lq, lg)
    kw = dict(labels_query=lq, labels_gallery=lg)
    for k in (1, 2, 4):
        assert M.recall_at_k(sim, k, **kw) == pytest.approx(ref[f"R@{k}"], abs=1e-12)
    assert M.mean_reciprocal_rank(sim, **kw) == pytest.approx(ref["MRR"], abs=1e-12)
    assert M.median_rank(sim, **kw) == pytest.approx(ref["median rank"], abs=1e-12)


# ----------------------------------------------------------------------------- invariances
@FEW
@given(sim=tie_heavy_sim(), seed=st.integers(0, 2**16), k=st.integers(1, 4))
def test_retrieval_is_invariant_to_joint_permutation(sim, seed, k):
    p = torch.randperm(sim.shape[0], generator=torch.Generator().manual_seed(seed))
    perm = sim[p][:, p]  # the same pairs, listed in another order
    # expectations over tie orders: equal up to the order of a float sum
    assert M.recall_at_k(perm, k) == pytest.approx(M.recall_at_k(sim, k), abs=1e-12)
    assert M.mean_reciprocal_rank(perm) == pytest.approx(M.mean_reciprocal_rank(sim), abs=1e-12)
    assert M.median_rank(perm) == pytest.approx(M.median_rank(sim), abs=1e-12)


@FEW
@given(b=st.integers(2, 9), d=st.integers(2, 5), seed=st.integers(0, 2**16), chunk=st.integers(1, 10))
def test_ranks_permutation_and_row_scale(b, d, seed, chunk):
    a, bb = seeded(b, d, seed)
    g = torch.Generator().manual_seed(seed + 1)
    p = torch.randperm(b, generator=g)
    scale_a = torch.rand(b, 1, generator=g, dtype=DT) * 10 + 0.1
    scale_b = torch.rand(b, 1, generator=g, dtype=DT) * 10 + 0.1
    base = M.ranks(a, bb, chunk_size=chunk)
    assert torch.equal(M.ranks(a[p], bb[p], chunk_size=chunk), base[p])
    assert torch.equal(M.ranks(scale_a * a, scale_b * bb, chunk_size=chunk), base)
    full = M.retrieval_report(a, bb, (1, 2), chunk_size=b)
    assert M.retrieval_report(a[p], bb[p], (1, 2), chunk_size=chunk) == pytest.approx(full)


@FEW
@given(b=st.integers(2, 8), d=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_geometry_permutation_and_scale_invariance(b, d, seed):
    a, bb = seeded(b, d, seed)
    g = torch.Generator().manual_seed(seed + 1)
    p = torch.randperm(b, generator=g)
    s = torch.rand(b, 1, generator=g, dtype=DT) * 10 + 0.1  # positive per-row scales
    close = dict(rel=1e-9, abs=1e-12)
    assert M.alignment(a[p], bb[p]).item() == pytest.approx(M.alignment(a, bb).item(), **close)
    assert M.alignment(s * a, bb).item() == pytest.approx(M.alignment(a, bb).item(), **close)
    assert M.uniformity(a[p]).item() == pytest.approx(M.uniformity(a).item(), **close)
    assert M.uniformity(s * a).item() == pytest.approx(M.uniformity(a).item(), **close)
    assert M.modality_gap(a[p], s * bb).item() == pytest.approx(M.modality_gap(a, bb).item(), **close)
    assert M.mean_pairwise_cosine(s * a[p]).item() == pytest.approx(M.mean_pairwise_cosine(a).item(), **close)
    # effective rank: permuting rows, or one global scale, leaves the singular spectrum's shape
    assert M.effective_rank(3.7 * a[p]).item() == pytest.approx(M.effective_rank(a).item(), rel=1e-9)
    # bounds
    assert 1 - 1e-9 <= M.effective_rank(a).item() <= min(b, d) + 1e-9
    assert -4 * 2 - 1e-9 <= M.uniformity(a).item() <= 1e-12
    assert 0 <= M.modality_gap(a, bb).item() <= 2 + 1e-12


@FEW
@given(b=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_self_retrieval_is_perfect(b, seed):
    a, _ = seeded(b, 4, seed)
    rep = M.retrieval_report(a, 2 * a, (1,), chunk_size=3)
    assert rep["a→b R@1"] == rep["b→a R@1"] == 1.0 and rep["a→b median rank"] == 1.0


# ----------------------------------------------------------------------------- bad inputs
@st.composite
def junk_tensor(draw):
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool, torch.float16]))
    x = torch.zeros(shape, dtype=dtype) if dtype == torch.bool else torch.randn(shape).to(dtype)
    if dtype.is_floating_point and x.numel() and draw(st.booleans()):
        x.view(-1)[0] = draw(st.sampled_from([math.nan, math.inf]))
    return x


ANY = st.one_of(junk_tensor(), st.none(), st.integers(-3, 5), st.floats(allow_nan=True), st.floats(-1, 3),
                st.text(max_size=2), st.lists(st.integers(-1, 3), max_size=3))

CALLS = {
    "similarity": lambda x, y, n, z: M.similarity(x, y),
    "recall_at_k": lambda x, y, n, z: M.recall_at_k(x, n, labels_query=y, labels_gallery=z),
    "mean_reciprocal_rank": lambda x, y, n, z: M.mean_reciprocal_rank(x, labels_query=y, labels_gallery=z),
    "median_rank": lambda x, y, n, z: M.median_rank(x, labels_query=z, labels_gallery=y),
    "ranks": lambda x, y, n, z: M.ranks(x, y, chunk_size=n, labels_a=z, labels_b=z),
    "retrieval_report": lambda x, y, n, z: M.retrieval_report(x, y, ks=n, names=z),
    "alignment": lambda x, y, n, z: M.alignment(x, y, alpha=n),
    "uniformity": lambda x, y, n, z: M.uniformity(x, t=n),
    "modality_gap": lambda x, y, n, z: M.modality_gap(x, y),
    "gap_vector": lambda x, y, n, z: M.gap_vector(x, y),
    "effective_rank": lambda x, y, n, z: M.effective_rank(x),
    "mean_pairwise_cosine": lambda x, y, n, z: M.mean_pairwise_cosine(x),
    "zero_shot_accuracy": lambda x, y, n, z: M.zero_shot_accuracy(x, y, z),
    "linear_probe": lambda x, y, n, z: M.linear_probe(x, z, y, z, max_iter=n),
}


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(CALLS)), x=junk_tensor(), y=ANY, n=ANY, z=ANY)
def test_bad_inputs_raise_value_or_type_error(name, x, y, n, z):
    try:
        CALLS[name](x, y, n, z)
    except (ValueError, TypeError):
        pass  # the only acceptable failures; anything else (IndexError, RuntimeError...) fails the test


@FEW
@given(name=st.sampled_from(sorted(CALLS)), b=st.integers(1, 4), d=st.integers(1, 3))
def test_integer_embeddings_are_type_errors(name, b, d):
    x = torch.ones(b, d, dtype=torch.int64)
    with pytest.raises(TypeError):
        CALLS[name](x, x, 1, torch.zeros(b, dtype=torch.int64))
