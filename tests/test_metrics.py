"""mmlab.metrics against independent computations: sorting loops, closed forms, gradcheck."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import torch

from mmlab import metrics as M
from retrieval_reference import expected_metrics, harmonic, monte_carlo_metrics, rank_distribution

DT = torch.float64


# ----------------------------------------------------------------------------- brute force
def brute_ranks(sim: torch.Tensor, labels_q=None, labels_g=None) -> list[float]:
    """Expected rank of each query's first true match, by enumerating the tie group's orders."""
    return [sum(r * p for r, p in d) for d in rank_distribution(sim, labels_q, labels_g)]


def brute_cos(u: torch.Tensor, v: torch.Tensor) -> float:
    return float((u * v).sum() / (u.norm() * v.norm()))


def embeddings(b: int, d: int, seed: int, noise: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, d, generator=g, dtype=DT)
    return a, a + noise * torch.randn(b, d, generator=g, dtype=DT)


# ----------------------------------------------------------------------------- similarity
def test_similarity_matches_loop():
    a, b = torch.randn(4, 3, dtype=DT), torch.randn(5, 3, dtype=DT)
    s = M.similarity(a, b)
    assert s.shape == (4, 5)
    for i in range(4):
        for j in range(5):
            assert s[i, j].item() == pytest.approx(brute_cos(a[i], b[j]), abs=1e-12)


# ----------------------------------------------------------------------------- rank metrics
def check_against_enumeration(sim, ks, labels_q=None, labels_g=None):
    ref = expected_metrics(sim, ks, labels_q, labels_g)
    kw = {} if labels_q is None else dict(labels_query=labels_q, labels_gallery=labels_g)
    for k in ks:
        assert M.recall_at_k(sim, k, **kw) == pytest.approx(ref[f"R@{k}"], abs=1e-12)
    assert M.mean_reciprocal_rank(sim, **kw) == pytest.approx(ref["MRR"], abs=1e-12)
    assert M.median_rank(sim, **kw) == pytest.approx(ref["median rank"], abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ties", [False, True])
def test_rank_metrics_match_enumeration(seed, ties):
    g = torch.Generator().manual_seed(seed)
    b = 9
    sim = torch.randn(b, b, generator=g, dtype=DT)
    if ties:  # few distinct values: the tie rule decides most ranks
        sim = torch.randint(0, 3, (b, b), generator=g).to(DT)
    check_against_enumeration(sim, (1, 2, 5, b, b + 3))


def test_tie_rule_by_hand():
    # row 0: true score 0.5, one item strictly higher (0.9), one tied (0.5): rank 2 or 3, 1/2 each
    sim = torch.tensor([[0.5, 0.9, 0.5, 0.1],
                        [0.0, 0.0, 0.0, 0.0],  # all four tied: rank 1..4, 1/4 each
                        [0.9, 0.8, 0.1, 0.7],  # three strictly higher: rank 4
                        [0.2, 0.2, 0.2, 0.3]], dtype=DT)  # the match is the maximum: rank 1
    assert M.recall_at_k(sim, 1) == pytest.approx((0 + 1 / 4 + 0 + 1) / 4)
    assert M.recall_at_k(sim, 2) == pytest.approx((1 / 2 + 2 / 4 + 0 + 1) / 4)
    assert M.recall_at_k(sim, 4) == 1.0
    mrr = ((1 / 2 + 1 / 3) / 2 + harmonic(4) / 4 + 1 / 4 + 1) / 4
    assert M.mean_reciprocal_rank(sim) == pytest.approx(mrr)
    assert M.median_rank(sim) == 2.5  # expected ranks 2.5, 2.5, 4, 1: mean of the middle two


@pytest.mark.parametrize("b", [1, 2, 7, 100])
def test_collapsed_model_scores_chance(b):
    """All embeddings equal: every metric is exactly its chance value, in both directions."""
    z = torch.ones(b, 16)
    rep = M.retrieval_report(z, z, (1, 5, 10), chunk_size=3)
    for d in ("a→b", "b→a"):
        for k in (1, 5, 10):
            assert rep[f"{d} R@{k}"] == pytest.approx(min(k, b) / b, abs=1e-12)
        assert rep[f"{d} MRR"] == pytest.approx(harmonic(b) / b, abs=1e-12)
        assert rep[f"{d} median rank"] == pytest.approx((b + 1) / 2, abs=1e-12)
    assert torch.allclose(M.ranks(z, z), torch.full((b,), (b + 1) / 2, dtype=DT))


def test_collapsed_class_level_r1_is_the_class_share():
    labels = torch.tensor([0] * 5 + [1] * 3 + [2] * 12)  # class shares 1/4, 3/20, 3/5
    z = torch.ones(20, 4)
    share = (labels[:, None] == labels[None, :]).double().mean(dim=1)  # (20,) query's class share
    rep = M.retrieval_report(z, z, (1,), labels_a=labels, labels_b=labels)
    assert rep["a→b R@1"] == pytest.approx(float(share.mean()), abs=1e-12)
    sim = torch.zeros(20, 20, dtype=DT)
    assert M.recall_at_k(sim, 1, labels_query=labels, labels_gallery=labels) == pytest.approx(
        float(share.mean()), abs=1e-12)
    # expected rank of the first of m matches among g tied items: (g + 1) / (m + 1)
    counts = torch.bincount(labels).double()[labels]
    assert torch.allclose(M.ranks(z, z, labels_a=labels, labels_b=labels), 21 / (counts + 1))


@pytest.mark.parametrize("seed", range(2))
def test_ties_match_monte_carlo(seed):
    """Random tie-breaking, simulated: the closed forms sit within 5 standard errors."""
    g = torch.Generator().manual_seed(seed)
    bq, bg, trials = 12, 15, 4000
    sim = torch.randint(0, 3, (bq, bg), generator=g).to(DT)
    lg = torch.arange(bg) % 4
    lq = torch.randint(0, 4, (bq,), generator=g)
    for labels in ((None, None), (lq, lg)):
        square = sim[:, :bq] if labels[0] is None else sim
        mc = monte_carlo_metrics(square, (1, 3), trials, seed, *labels)
        kw = {} if labels[0] is None else dict(labels_query=lq, labels_gallery=lg)
        for k in (1, 3):
            se = 0.5 / math.sqrt(trials * bq)  # a bound on the standard error of a mean of 0/1
            assert M.recall_at_k(square, k, **kw) == pytest.approx(mc[f"R@{k}"], abs=5 * se)
        assert M.mean_reciprocal_rank(square, **kw) == pytest.approx(mc["MRR"], abs=5 * 0.5 / math.sqrt(trials * bq))


def test_large_tie_groups_are_computed_in_blocks():
    """Reciprocal ranks of big tie groups go through the blocked sum: same as the closed form."""
    from mmlab.metrics.ties import Ties, reciprocal_in_expectation
    b = 300
    t = Ties(torch.zeros(b, dtype=torch.long), torch.full((b,), b - 1), torch.ones(b, dtype=torch.long))
    assert torch.allclose(reciprocal_in_expectation(t, max_elements=1000), torch.full((b,), harmonic(b) / b, dtype=DT))


def test_median_rank_odd_and_numpy():
    a, b = embeddings(7, 3, seed=5, noise=2.0)
    r = brute_ranks(M.similarity(a, b))
    assert M.median_rank(M.similarity(a, b)) == float(np.median(r))


@pytest.mark.parametrize("seed", range(3))
def test_class_level_retrieval_matches_sorting(seed):
    g = torch.Generator().manual_seed(seed)
    bq, bg = 7, 11
    sim = torch.randn(bq, bg, generator=g, dtype=DT)
    lg = torch.randint(0, 3, (bg,), generator=g)
    lg[:3] = torch.tensor([0, 1, 2])  # every class present in the gallery
    lq = torch.randint(0, 3, (bq,), generator=g)
    check_against_enumeration(sim, (1, 2, 3, 20), lq, lg)
    check_against_enumeration(sim.round(), (1, 2, 3), lq, lg)  # with ties


def test_labels_equal_to_index_is_paired_retrieval():
    a, b = embeddings(8, 4, seed=1, noise=1.5)
    idx = torch.arange(8)
    assert torch.equal(M.ranks(a, b, labels_a=idx, labels_b=idx), M.ranks(a, b))


# ----------------------------------------------------------------------------- chunked ranks
@pytest.mark.parametrize("b", [1, 2, 10])
@pytest.mark.parametrize("chunk", [1, 3, 4, 10, 64])
def test_chunked_ranks_match_full(b, chunk):
    a, bb = embeddings(b, 5, seed=b + chunk, noise=1.5)
    expected = torch.tensor(brute_ranks(M.similarity(a, bb)), dtype=DT)
    got = M.ranks(a, bb, chunk_size=chunk)
    assert got.dtype == torch.float64 and got.shape == (b,)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_chunked_ranks_with_labels(chunk):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 4, generator=g, dtype=DT)
    b = torch.randn(12, 4, generator=g, dtype=DT)
    la, lb = torch.randint(0, 4, (7,), generator=g), torch.arange(12) % 4
    expected = torch.tensor(brute_ranks(M.similarity(a, b), la, lb), dtype=DT)
    assert torch.equal(M.ranks(a, b, chunk_size=chunk, labels_a=la, labels_b=lb), expected)


@pytest.mark.parametrize("chunk", [1, 4, 64])
def test_chunked_report_with_ties_matches_enumeration(chunk):
    """Embeddings drawn from 3 directions: many exact ties, scored the same in every chunking."""
    g = torch.Generator().manual_seed(chunk)
    protos = torch.randn(3, 5, generator=g, dtype=DT)
    a = protos[torch.randint(0, 3, (11,), generator=g)]
    b = protos[torch.randint(0, 3, (11,), generator=g)]
    rep = M.retrieval_report(a, b, (1, 2), chunk_size=chunk)
    s = M.similarity(a, b).round(decimals=9)  # (11, 11): equal rows tie, up to rounding
    for direction, sd in (("a→b", s), ("b→a", s.T)):
        for key, value in expected_metrics(sd, (1, 2)).items():
            assert rep[f"{direction} {key}"] == pytest.approx(value, abs=1e-12)


def test_ranks_never_build_more_than_a_chunk():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        biggest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor):
                    Largest.biggest = max(Largest.biggest, t.numel())
            return out

    b, d, chunk = 40, 3, 4
    a, bb = embeddings(b, d, seed=0)
    with Largest():
        M.ranks(a, bb, chunk_size=chunk)
    assert Largest.biggest <= max(chunk * b, b * d)  # never the (40, 40) matrix


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_retrieval_report_matches_brute_force(chunk):
    a, b = embeddings(10, 4, seed=chunk, noise=1.5)
    ks = (1, 3, 20)
    rep = M.retrieval_report(a, b, ks, names=("img", "txt"), chunk_size=chunk)
    s = M.similarity(a, b)
    for direction, sd in (("img→txt", s), ("txt→img", s.T)):
        ref = expected_metrics(sd, ks)
        for key, value in ref.items():
            assert rep[f"{direction} {key}"] == pytest.approx(value)
    assert len(rep) == 2 * (len(ks) + 2)
    assert all(type(v) is float for v in rep.values())


def test_retrieval_report_with_labels_and_b1():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(6, 3, generator=g, dtype=DT), torch.randn(9, 3, generator=g, dtype=DT)
    la, lb = torch.arange(6) % 3, torch.arange(9) % 3
    rep = M.retrieval_report(a, b, (1, 2), chunk_size=4, labels_a=la, labels_b=lb)
    s = M.similarity(a, b)
    assert rep["a→b R@1"] == pytest.approx(expected_metrics(s, (1,), la, lb)["R@1"])
    assert rep["b→a R@2"] == pytest.approx(expected_metrics(s.T, (2,), lb, la)["R@2"])
    one = M.retrieval_report(a[:1], b[:1], (1,))
    assert one == {"a→b R@1": 1.0, "a→b MRR": 1.0, "a→b median rank": 1.0,
                   "b→a R@1": 1.0, "b→a MRR": 1.0, "b→a median rank": 1.0}


def test_retrieval_metrics_return_floats_geometry_tensors():
    a, b = embeddings(5, 3, seed=0)
    s = M.similarity(a, b)
    assert type(M.recall_at_k(s, 1)) is float
    assert type(M.mean_reciprocal_rank(s)) is float and type(M.median_rank(s)) is float
    for value in (M.alignment(a, b), M.uniformity(a), M.modality_gap(a, b), M.mean_pairwise_cosine(a),
                  M.effective_rank(a)):
        assert isinstance(value, torch.Tensor) and value.ndim == 0


# ----------------------------------------------------------------------------- uniformity
def circle(n: int, d: int = 3) -> torch.Tensor:
    ang = 2 * math.pi * torch.arange(n, dtype=DT) / n
    x = torch.zeros(n, d, dtype=DT)
    x[:, 0], x[:, 1] = ang.cos(), ang.sin()
    return x * torch.linspace(0.5, 3.0, n, dtype=DT)[:, None]  # row scales must not matter


@pytest.mark.parametrize("n", [2, 3, 5, 8])
@pytest.mark.parametrize("t", [0.5, 2.0])
def test_uniformity_of_circle_closed_form(n, t):
    # ‖x_i − x_j‖² = 2 − 2cos(2π(i−j)/N); each difference m = 1..N−1 occurs equally often, so
    # mean_{i<j} = (1/(N−1)) Σ_m e^{−2t} e^{2t cos(2πm/N)}, and by the Bessel sum
    # Σ_{m=0}^{N−1} e^{z cos(2πm/N)} = N (I_0(z) + 2 Σ_{k≥1} I_{kN}(z)).
    z = 2 * t
    bessel = n * (scipy.special.iv(0, z) + 2 * sum(scipy.special.iv(k * n, z) for k in range(1, 40)))
    exact = math.log(math.exp(-z) * (bessel - math.exp(z)) / (n - 1))
    terms = [math.exp(-t * (2 - 2 * math.cos(2 * math.pi * m / n))) for m in range(1, n)]
    by_m = math.log(sum(terms) / (n - 1))
    assert exact == pytest.approx(by_m, abs=1e-12)
    assert M.uniformity(circle(n), t=t).item() == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize("n", [2, 3, 6])
def test_uniformity_of_simplex_and_antipodes(n):
    x = torch.eye(n, dtype=DT) - 1.0 / n  # regular simplex: cos = −1/(N−1), ‖Δ‖² = 2N/(N−1)
    assert M.uniformity(x, t=2).item() == pytest.approx(-2 * 2 * n / (n - 1), abs=1e-12)
    v = torch.randn(1, 4, dtype=DT)
    pairs = torch.cat([v, -3 * v])
    assert M.uniformity(pairs, t=1.5).item() == pytest.approx(-4 * 1.5, abs=1e-12)
    same = v.repeat(5, 1)
    assert M.uniformity(same).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("chunk", [1, 4, 6, 100])
def test_uniformity_matches_double_loop(chunk):
    x = torch.randn(6, 4, dtype=DT)
    xs = [r / r.norm() for r in x]
    vals = [math.exp(-2 * float(((xs[i] - xs[j]) ** 2).sum())) for i in range(6) for j in range(i + 1, 6)]
    expected = math.log(sum(vals) / len(vals))
    assert M.uniformity(x, chunk_size=chunk).item() == pytest.approx(expected, abs=1e-12)


def test_uniformity_chunked_gradient_matches_full():
    x = torch.randn(7, 3, dtype=DT, requires_grad=True)
    (g_full,) = torch.autograd.grad(M.uniformity(x, chunk_size=7), x)
    (g_chunk,) = torch.autograd.grad(M.uniformity(x, chunk_size=2), x)
    assert torch.allclose(g_full, g_chunk, atol=1e-12)


# ----------------------------------------------------------------------------- alignment
@pytest.mark.parametrize("alpha", [1, 2, 3.5])
def test_alignment_closed_forms(alpha):
    a = torch.randn(5, 4, dtype=DT)
    assert M.alignment(a, 2 * a, alpha=alpha).item() == pytest.approx(0.0, abs=1e-12)
    assert M.alignment(a, -0.5 * a, alpha=alpha).item() == pytest.approx(2.0 ** alpha, abs=1e-12)
    b = torch.randn(5, 4, dtype=DT)
    loop = sum(float((a[i] / a[i].norm() - b[i] / b[i].norm()).norm()) ** alpha for i in range(5)) / 5
    assert M.alignment(a, b, alpha=alpha).item() == pytest.approx(loop, abs=1e-12)


# ----------------------------------------------------------------------------- modality gap
def test_modality_gap_closed_forms():
    a = torch.randn(6, 5, dtype=DT)
    assert M.modality_gap(a, 3 * a).item() == pytest.approx(0.0, abs=1e-12)
    # u_i = ±e2, ±e3 (mean 0); a_i = u_i + c e1 normalises to (u_i + c e1)/√(1+c²), so
    # mean(â) = c e1/√(1+c²), mean(b̂) = −c e1/√(1+c²) and the gap is 2c/√(1+c²).
    c = 0.7
    u = torch.tensor([[0, 1, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0], [0, 0, -1, 0]], dtype=DT)
    e1 = torch.tensor([1.0, 0, 0, 0], dtype=DT)
    scale = torch.tensor([[1.0], [2.0], [0.3], [5.0]], dtype=DT)
    a, b = scale * (u + c * e1), scale.flip(0) * (u - c * e1)
    expected = 2 * c / math.sqrt(1 + c * c)
    assert M.modality_gap(a, b).item() == pytest.approx(expected, abs=1e-12)
    assert torch.allclose(M.gap_vector(a, b), expected * e1, atol=1e-12)
    # unpaired clouds of different sizes: b centred on e2 instead
    b2 = torch.tensor([[c, 1, 0, 0], [-c, 1, 0, 0], [0, 1, c, 0], [0, 1, -c, 0], [0, 1, 0, c], [0, 1, 0, -c]],
                      dtype=DT)
    mean_b2 = torch.tensor([0, 1, 0, 0], dtype=DT) / math.sqrt(1 + c * c)
    assert torch.allclose(M.gap_vector(a, b2), c * e1 / math.sqrt(1 + c * c) - mean_b2, atol=1e-12)


def test_gap_vector_matches_loop():
    a, b = torch.randn(4, 3, dtype=DT), torch.randn(7, 3, dtype=DT)
    ma = sum(r / r.norm() for r in a) / 4
    mb = sum(r / r.norm() for r in b) / 7
    assert torch.allclose(M.gap_vector(a, b), ma - mb, atol=1e-12)


# ----------------------------------------------------------------------------- effective rank
def test_effective_rank_closed_forms():
    assert M.effective_rank(torch.diag(torch.tensor([1.0, 1, 1, 0], dtype=DT))).item() == pytest.approx(3.0)
    rank1 = torch.randn(6, 1, dtype=DT) @ torch.randn(1, 4, dtype=DT)
    assert M.effective_rank(rank1).item() == pytest.approx(1.0, abs=1e-6)
    q, _ = torch.linalg.qr(torch.randn(8, 5, dtype=DT))  # 5 orthonormal columns: σ all 1
    assert M.effective_rank(3 * q).item() == pytest.approx(5.0, abs=1e-10)
    assert M.effective_rank(torch.zeros(3, 4, dtype=DT)).item() == 0.0


def test_effective_rank_matches_numpy_entropy():
    x = torch.randn(9, 4, dtype=DT)
    s = np.linalg.svd(x.numpy(), compute_uv=False)
    p = s / s.sum()
    entropy = -sum(pi * math.log(pi) for pi in p)
    assert M.effective_rank(x).item() == pytest.approx(math.exp(entropy), rel=1e-10)
    assert M.effective_rank(x.half()).dtype == torch.float32


# ----------------------------------------------------------------------------- cone
def test_mean_pairwise_cosine_closed_forms_and_loop():
    q, _ = torch.linalg.qr(torch.randn(6, 4, dtype=DT))
    rows = q.T * torch.arange(1, 5, dtype=DT)[:, None]  # (4, 6) orthogonal rows of different norms
    assert M.mean_pairwise_cosine(rows).item() == pytest.approx(0, abs=1e-12)
    v = torch.randn(1, 3, dtype=DT)
    assert M.mean_pairwise_cosine(v * torch.tensor([[1.0], [2], [7]], dtype=DT)).item() == pytest.approx(1.0)
    x = torch.randn(5, 3, dtype=DT)
    loop = [brute_cos(x[i], x[j]) for i in range(5) for j in range(5) if i != j]
    assert M.mean_pairwise_cosine(x).item() == pytest.approx(sum(loop) / len(loop), abs=1e-12)


# ----------------------------------------------------------------------------- gradients
def test_gradcheck_geometry():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 3, generator=g, dtype=DT, requires_grad=True)
    b = torch.randn(5, 3, generator=g, dtype=DT, requires_grad=True)
    c = torch.randn(4, 3, generator=g, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: M.alignment(x, y), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: M.alignment(x, y, alpha=3), (a, b))
    assert torch.autograd.gradcheck(lambda x: M.uniformity(x, t=2), (a,))
    assert torch.autograd.gradcheck(lambda x: M.uniformity(x, t=0.7, chunk_size=2), (a,))
    assert torch.autograd.gradcheck(lambda x, y: M.modality_gap(x, y), (a, c))
    assert torch.autograd.gradcheck(lambda x, y: M.gap_vector(x, y), (a, c))
    assert torch.autograd.gradcheck(M.mean_pairwise_cosine, (a,))
    assert torch.autograd.gradcheck(M.effective_rank, (a,))


@pytest.mark.parametrize("alpha", [0.5, 1, 2, 3])
def test_alignment_gradient_finite_at_identical_pairs(alpha):
    a = torch.randn(4, 3, dtype=DT, requires_grad=True)
    M.alignment(a, a.detach().clone(), alpha=alpha).backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().max() < 1e-12


# ----------------------------------------------------------------------------- dtypes
def test_mixed_and_half_precision_match_float64():
    a, b = embeddings(12, 6, seed=4, noise=0.5)
    assert torch.allclose(M.similarity(a.float(), b), M.similarity(a, b), atol=1e-6)
    assert M.similarity(a.half(), b.half()).dtype == torch.float32
    ref = M.ranks(a, b)
    assert (M.ranks(a.half(), b.float()) - ref).abs().max() <= 1  # only near-ties may move
    for lo in (torch.float16, torch.bfloat16):
        x, y = a.to(lo), b.to(lo)
        xd, yd = x.double(), y.double()  # the same rounded values, computed in float64
        assert M.uniformity(x).item() == pytest.approx(M.uniformity(xd).item(), abs=1e-5)
        assert M.alignment(x, y).item() == pytest.approx(M.alignment(xd, yd).item(), abs=1e-5)
        assert M.modality_gap(x, y).item() == pytest.approx(M.modality_gap(xd, yd).item(), abs=1e-5)
        assert M.mean_pairwise_cosine(x).item() == pytest.approx(M.mean_pairwise_cosine(xd).item(), abs=1e-5)
        assert M.effective_rank(x).item() == pytest.approx(M.effective_rank(xd).item(), abs=1e-4)
        assert M.zero_shot_accuracy(x, b[:3], torch.arange(12) % 3) == M.zero_shot_accuracy(
            xd, b[:3], torch.arange(12) % 3)


# ----------------------------------------------------------------------------- probes
def test_zero_shot_matches_loop():
    g = torch.Generator().manual_seed(0)
    x, e = torch.randn(20, 4, generator=g, dtype=DT), torch.randn(3, 4, generator=g, dtype=DT)
    y = torch.randint(0, 3, (20,), generator=g)
    correct = 0
    for i in range(20):
        scores = [brute_cos(x[i], e[c]) for c in range(3)]
        correct += int(max(range(3), key=lambda c: scores[c]) == int(y[i]))
    assert M.zero_shot_accuracy(x, e, y) == pytest.approx(correct / 20)
    assert M.zero_shot_accuracy(e[y], e, y) == 1.0  # each sample equal to its class embedding


def test_linear_probe_separable_and_label_ids():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (90,), generator=g)
    centres = 6 * torch.eye(3, 5, dtype=DT)
    x = centres[y] + 0.3 * torch.randn(90, 5, generator=g, dtype=DT)
    assert M.linear_probe(x[:60], y[:60], x[60:], y[60:]) == 1.0
    ids = torch.tensor([3, 7, 11])  # non-contiguous class ids give the same accuracy
    noisy = centres[y] + 4 * torch.randn(90, 5, generator=g, dtype=DT)
    acc = M.linear_probe(noisy[:60], y[:60], noisy[60:], y[60:], C=0.5)
    assert M.linear_probe(noisy[:60], ids[y[:60]], noisy[60:], ids[y[60:]], C=0.5) == acc
    assert M.linear_probe(noisy[:60], y[:60], noisy[60:], y[60:], C=0.5) == acc  # deterministic


def test_linear_probe_reaches_bayes_accuracy():
    # two Gaussians N(±μ, I): the Bayes classifier is linear with accuracy Φ(‖μ‖)
    g = torch.Generator().manual_seed(1)
    mu = torch.tensor([0.6, 0.8], dtype=DT)  # ‖μ‖ = 1
    y = torch.randint(0, 2, (4000,), generator=g)
    x = (2 * y[:, None] - 1) * mu + torch.randn(4000, 2, generator=g, dtype=DT)
    bayes = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    acc = M.linear_probe(x[:1000], y[:1000], x[1000:], y[1000:])
    assert acc == pytest.approx(bayes, abs=0.03)


# ----------------------------------------------------------------------------- validation
A = torch.randn(4, 3)
SQ = torch.randn(4, 4)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: M.similarity(torch.randn(3), A), ValueError, ["`a`", "2-D", "(3,)"]),
    (lambda: M.similarity(A, torch.randn(4, 5)), ValueError, ["`a` (4, 3)", "`b` (4, 5)"]),
    (lambda: M.similarity(A.long(), A), TypeError, ["`a`", "floating"]),
    (lambda: M.recall_at_k(SQ, 0), ValueError, ["`k`", "≥ 1"]),
    (lambda: M.recall_at_k(SQ, 1.5), TypeError, ["`k`", "int"]),
    (lambda: M.recall_at_k(torch.randn(3, 4), 1), ValueError, ["`sim`", "square", "labels"]),
    (lambda: M.recall_at_k(torch.empty(0, 0), 1), ValueError, ["`sim`", "empty"]),
    (lambda: M.recall_at_k(torch.tensor([[1.0, float("nan")], [0, 1]]), 1), ValueError, ["`sim`", "NaN"]),
    (lambda: M.recall_at_k(SQ, 1, labels_query=torch.arange(4)), ValueError, ["`labels_gallery`", "None"]),
    (lambda: M.recall_at_k(SQ, 1, labels_query=torch.arange(3), labels_gallery=torch.arange(4)),
     ValueError, ["`labels_query`", "3", "4"]),
    (lambda: M.recall_at_k(SQ, 1, labels_query=torch.zeros(4), labels_gallery=torch.arange(4)),
     TypeError, ["`labels_query`", "integer"]),
    (lambda: M.recall_at_k(SQ, 1, labels_query=torch.tensor([0, 0, 0, 9]), labels_gallery=torch.arange(4)),
     ValueError, ["`labels_query`[3] = 9", "`labels_gallery`"]),
    (lambda: M.ranks(A, SQ[:, :3], labels_a=torch.tensor([0, 1, 1, 2]), labels_b=torch.tensor([0, 1, 1, 1])),
     ValueError, ["`labels_a`[3] = 2", "`labels_b`"]),
    (lambda: M.retrieval_report(A, A[:2], labels_a=torch.tensor([0, 1, 1, 2]), labels_b=torch.tensor([0, 2])),
     ValueError, ["`labels_a`[1] = 1", "`labels_b`"]),
    (lambda: M.retrieval_report(A[:2], A, labels_a=torch.tensor([0, 2]), labels_b=torch.tensor([0, 1, 1, 2])),
     ValueError, ["`labels_b`[1] = 1", "`labels_a`"]),
    (lambda: M.ranks(A, A, chunk_size=0), ValueError, ["`chunk_size`"]),
    (lambda: M.ranks(A, torch.randn(5, 3)), ValueError, ["`a` (4, 3)", "`b` (5, 3)", "labels"]),
    (lambda: M.ranks(A, torch.randn(4, 2)), ValueError, ["`a` (4, 3)", "`b` (4, 2)"]),
    (lambda: M.retrieval_report(A, A, ks=()), ValueError, ["`ks`"]),
    (lambda: M.retrieval_report(A, A, ks=(1, 0)), ValueError, ["`ks"]),
    (lambda: M.retrieval_report(A, A, names="ab"), TypeError, ["`names`"]),
    (lambda: M.alignment(A, torch.randn(5, 3)), ValueError, ["`a` (4, 3)", "`b` (5, 3)"]),
    (lambda: M.alignment(A, A, alpha=0), ValueError, ["`alpha`"]),
    (lambda: M.uniformity(A[:1]), ValueError, ["`x`", "at least 2"]),
    (lambda: M.uniformity(A, t=-1), ValueError, ["`t`"]),
    (lambda: M.uniformity(A, chunk_size=0), ValueError, ["`chunk_size`"]),
    (lambda: M.uniformity(torch.tensor([[1.0, float("inf")], [0, 1]])), ValueError, ["`x`", "Inf"]),
    (lambda: M.modality_gap(A, torch.randn(2, 5)), ValueError, ["`a` (4, 3)", "`b` (2, 5)"]),
    (lambda: M.mean_pairwise_cosine(torch.randn(1, 3)), ValueError, ["`x`"]),
    (lambda: M.effective_rank(torch.randn(2, 2, 2)), ValueError, ["`x`", "2-D"]),
    (lambda: M.zero_shot_accuracy(A, torch.randn(2, 3), torch.tensor([0, 1, 2, 0])),
     ValueError, ["`y`", "[0, 2)"]),
    (lambda: M.linear_probe(A, torch.zeros(4, dtype=torch.long), A, torch.zeros(4, dtype=torch.long)),
     ValueError, ["`train_y`", "single class"]),
    (lambda: M.linear_probe(A, torch.arange(4), torch.randn(2, 5), torch.arange(2)),
     ValueError, ["`test_x`"]),
    (lambda: M.linear_probe(A, torch.arange(4), torch.full((2, 3), float("nan")), torch.arange(2)),
     ValueError, ["`test_x`", "NaN"]),
    (lambda: M.zero_shot_accuracy(A, torch.randn(2, 3), torch.zeros(4)), TypeError, ["`y`", "integer"]),
])
def test_validation_messages(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))
