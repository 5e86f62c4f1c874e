"""Cross-modal retrieval metrics: Recall@k, mean reciprocal rank, median rank.

Retrieval is how contrastive models are judged (Radford et al., 2021, "Learning Transferable
Visual Models From Natural Language Supervision", CLIP; Karpathy & Fei-Fei, 2015, "Deep
Visual-Semantic Alignments for Generating Image Descriptions", which popularised R@k and the
median rank). Query i is scored against every gallery item j with `S_ij = cos(a_i, b_j)`, and
the gallery is sorted by score.

The true matches of query i are the set P_i: the paired item {i} (the diagonal), or, when
labels are given, every gallery item with the query's label (class-level retrieval, as in
metric learning: Musgrave et al., 2020, "A Metric Learning Reality Check").

Rank (1-based) and ties. The gallery is sorted by score; items with *equal* scores are put in a
uniformly random order, and every metric is the expectation over that order (the honest rule:
a model that scores every item alike is exactly as good as guessing). For query i let

    s*  = max_{p ∈ P_i} S_ip                      the best true match's score
    h   = #{ j : S_ij > s* }                      items strictly above it
    m   = #{ p ∈ P_i : S_ip = s* }  (m ≥ 1)       true matches tied at s*
    n   = #{ j ∉ P_i : S_ij = s* }                other items tied at s*

The rank is h + U, where U is the position of the first true match in a random order of the
g = m + n tied items, so P(U > u) = C(g − u, m) / C(g, m) for 0 ≤ u ≤ n. Then

    R@k    = P(h + U ≤ k)  = 1 − C(g − (k − h), m) / C(g, m)    (for 0 ≤ k − h ≤ n)
    MRR    = mean_i E[1 / (h + U)]
    rank_i = E[h + U] = h + (g + 1) / (m + 1)     (the expected rank; `ranks` returns it)
    median rank = median_i rank_i

Without ties (n = 0) the rank is the plain integer h + 1. Given a score matrix (`recall_at_k`,
`mean_reciprocal_rank`, `median_rank`), ties are exact equalities. Given embeddings (`ranks`,
`retrieval_report`), cosines within 64 machine epsilons of the best match (7.6e-6 in float32)
count as tied, so that rounding in the chunked matrix product cannot break a tie. A fully
collapsed model (all scores equal) scores chance exactly: paired R@k = k/B, MRR = H_B/B (H_B the
B-th harmonic number), median rank (B + 1)/2; class-level R@1 = the share of the gallery that has
the query's class. The arithmetic lives in `mmlab.metrics.ties`.
(Rank expectations over random tie-breaking: McSherry & Najork, 2008, "Computing Information
Retrieval Performance Measures Efficiently in the Presence of Tied Scores".)

The median of an even number of ranks is the mean of the two middle ones (as `numpy.median`).
k larger than the gallery is allowed and gives R@k = 1; k < 1 is an error.
With labels, every query label must occur among the gallery labels (otherwise the query has no
true match, and a ValueError names it). `sim` may be any score matrix (cosines, logits).

Retrieval metrics are evaluation numbers: they run without grad and return Python floats
(the geometry metrics in `mmlab.metrics.geometry` return 0-d tensors instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmlab._checks import check_embeddings, check_finite_if_cheap, check_int
from mmlab._norm import l2_normalize
from mmlab.metrics._retrieval_checks import (check_coverage, check_ks, check_label_pair,
                                             check_names, check_sim, check_width)
from mmlab.metrics.ties import (Ties, cat_ties, expected_rank, recall_in_expectation,
                                reciprocal_in_expectation, ties_of_block)

# Cosines of unit vectors within this many machine epsilons (float32: 7.6e-6) count as tied in
# `ranks` and `retrieval_report`: the matrix product's rounding differs with the block shape,
# and must not decide a tie. Score matrices passed to `recall_at_k` & co. are compared exactly.
COSINE_TIE_EPS = 64

__all__ = ["similarity", "recall_at_k", "mean_reciprocal_rank", "median_rank", "ranks",
           "retrieval_report"]


# ----------------------------------------------------------------------------- core
def _normalized_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """â, b̂ in a common dtype of at least float32 (half inputs are upcast: fewer spurious ties)."""
    common = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    return l2_normalize(a.to(common), dim=-1), l2_normalize(b.to(common), dim=-1)


def _median(r: Tensor) -> float:
    s = r.cpu().double().sort().values  # (B,) on the CPU: float64 everywhere (MPS has none)
    n = s.shape[0]
    return float(s[n // 2]) if n % 2 else float((s[n // 2 - 1] + s[n // 2]) / 2)


def _sim_ties(sim: Tensor, labels: tuple[Tensor, Tensor] | None) -> Ties:
    """Tie counts of a whole score matrix (exact equality: the caller's scores are taken as
    given)."""
    return cat_ties([ties_of_block(sim, 0, labels)])


def _summary(t: Ties, ks: Sequence[int]) -> dict[str, float]:
    out = {f"R@{k}": float(recall_in_expectation(t, k).mean()) for k in ks}
    out["MRR"] = float(reciprocal_in_expectation(t).mean())
    out["median rank"] = _median(expected_rank(t))
    return out


# ----------------------------------------------------------------------------- public API
def similarity(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity matrix `S_ij = cos(a_i, b_j) = â_i · b̂_j` (differentiable).

    Zero rows are left at zero by the normalisation, so their similarities are 0. CPU inputs
    are checked for NaN/Inf (a ValueError); GPU inputs are not (no device sync).

    Args:
        a: (B_a, D) embeddings.
        b: (B_b, D) embeddings (mixed dtypes are promoted as in `a + b`, and to at least float32).
    Returns:
        (B_a, B_b) tensor of cosines in [-1, 1], float32 or float64.
    """
    check_embeddings("a", a)
    check_embeddings("b", b)
    check_width("a", a, "b", b)
    check_finite_if_cheap("a", a)
    check_finite_if_cheap("b", b)
    a_hat, b_hat = _normalized_pair(a, b)  # (B_a, D), (B_b, D)
    return a_hat @ b_hat.T  # (B_a, B_b)


@torch.no_grad()
def recall_at_k(sim: Tensor, k: int, *, labels_query: Tensor | None = None,
                labels_gallery: Tensor | None = None) -> float:
    """Recall@k: the fraction of queries whose true match is among the top k.

    `R@k = mean_i P(rank_i ≤ k)`, where items tied with the best true match are put in a random
    order: with h items strictly above it and m true matches among the g items tied with it,
    `P(rank_i ≤ k) = 1 − C(g − (k − h), m) / C(g, m)` for 0 ≤ k − h ≤ g − m (0 below, 1 above).
    All scores equal gives chance, k / B. P_i = {i} (paired, `sim` square) or, with labels, the
    gallery items sharing query i's label. k larger than the gallery is allowed and gives 1.0.
    (Karpathy & Fei-Fei, 2015; Radford et al., 2021; ties: McSherry & Najork, 2008.)

    Args:
        sim: (B_query, B_gallery) scores, e.g. `similarity(a, b)`; square unless labels are given.
        k: how many top items count as retrieved, an int ≥ 1.
        labels_query: optional (B_query,) integer class ids of the queries (rows).
        labels_gallery: optional (B_gallery,) integer class ids of the gallery (columns).
    Returns:
        R@k as a Python float in [0, 1].
    """
    check_int("k", k, minimum=1)
    sim, labels = check_sim(sim, labels_query, labels_gallery)
    return float(recall_in_expectation(_sim_ties(sim, labels), k).mean())


@torch.no_grad()
def mean_reciprocal_rank(sim: Tensor, *, labels_query: Tensor | None = None,
                         labels_gallery: Tensor | None = None) -> float:
    """Mean reciprocal rank `MRR = mean_i E[1 / rank_i]` (1-based ranks, ties in random order).

    See `recall_at_k` for the rank and the label options (Voorhees, 1999, TREC-8 QA report).
    All scores equal gives chance, H_B / B (H_B = 1 + 1/2 + ... + 1/B).

    Args:
        sim: (B_query, B_gallery) scores; square unless labels are given.
        labels_query: optional (B_query,) integer class ids.
        labels_gallery: optional (B_gallery,) integer class ids.
    Returns:
        MRR as a Python float in (0, 1].
    """
    sim, labels = check_sim(sim, labels_query, labels_gallery)
    return float(reciprocal_in_expectation(_sim_ties(sim, labels)).mean())


@torch.no_grad()
def median_rank(sim: Tensor, *, labels_query: Tensor | None = None,
                labels_gallery: Tensor | None = None) -> float:
    """Median rank `MedR = median_i E[rank_i]` (1-based; 1 is perfect; Karpathy & Fei-Fei, 2015).

    E[rank_i] is the expected rank with tied items in random order (see `ranks`), so all scores
    equal gives (B + 1) / 2. An even number of queries gives the mean of the two middle ranks
    (like `numpy.median`).

    Args:
        sim: (B_query, B_gallery) scores; square unless labels are given.
        labels_query: optional (B_query,) integer class ids.
        labels_gallery: optional (B_gallery,) integer class ids.
    Returns:
        The median rank as a Python float in [1, B_gallery].
    """
    sim, labels = check_sim(sim, labels_query, labels_gallery)
    return _median(expected_rank(_sim_ties(sim, labels)))


def _tie_counts(a: Tensor, b: Tensor, chunk_size: int, labels_a: Tensor | None,
                labels_b: Tensor | None) -> Ties:
    """Check the inputs and count, chunk by chunk, the items above and tied with each true match."""
    check_embeddings("a", a)
    check_embeddings("b", b)
    check_int("chunk_size", chunk_size, minimum=1)
    labels = check_label_pair(("labels_a", "labels_b"), (labels_a, labels_b),
                               (a.shape[0], b.shape[0]), ("a", "b"))
    if labels is None and a.shape[0] != b.shape[0]:
        raise ValueError(f"`a` {tuple(a.shape)} and `b` {tuple(b.shape)} must have the same "
                         "batch size without labels: the true match of a_i is b_i. For "
                         "class-level retrieval pass `labels_a` and `labels_b`.")
    check_width("a", a, "b", b)
    if labels is not None:
        check_coverage("labels_a", labels[0], "labels_b", labels[1])
    check_finite_if_cheap("a", a)
    check_finite_if_cheap("b", b)
    a_hat, b_hat = _normalized_pair(a, b)  # (B_a, D), (B_b, D)
    tol = COSINE_TIE_EPS * torch.finfo(a_hat.dtype).eps  # the product's rounding breaks no tie
    out = []
    for start in range(0, a.shape[0], chunk_size):
        stop = min(start + chunk_size, a.shape[0])
        block = a_hat[start:stop] @ b_hat.T  # (n, B_b), n ≤ chunk_size
        block_labels = None if labels is None else (labels[0][start:stop], labels[1])
        out.append(ties_of_block(block, start, block_labels, tol))
    return cat_ties(out)  # (B_a,) each, on the CPU


@torch.no_grad()
def ranks(a: Tensor, b: Tensor, *, chunk_size: int = 4096, labels_a: Tensor | None = None,
          labels_b: Tensor | None = None) -> Tensor:
    """Expected 1-based rank of the true match of each query a_i among the gallery b, in chunks.

    `rank_i = E[h + U] = h + (g + 1) / (m + 1)`: h items score strictly above the best true match,
    and it sits at a uniformly random place among the g = m + n items tied with it (m of them true
    matches; see the module docstring). Without ties this is the integer `1 + h`.
    S = similarity(a, b) is computed for `chunk_size` queries at a time, so at most a
    (chunk_size, B_b) block exists.
    P_i = {i} (paired rows; `a` and `b` must have the same shape) or, with labels, the items of `b`
    whose label equals `labels_a[i]`.

    Args:
        a: (B_a, D) query embeddings.
        b: (B_b, D) gallery embeddings.
        chunk_size: queries per block, an int ≥ 1.
        labels_a: optional (B_a,) integer class ids of the queries.
        labels_b: optional (B_b,) integer class ids of the gallery.
    Returns:
        (B_a,) float64 tensor of expected ranks in [1, B_b], on the CPU (MPS has no float64).
    """
    return expected_rank(_tie_counts(a, b, chunk_size, labels_a, labels_b))


@torch.no_grad()
def retrieval_report(a: Tensor, b: Tensor, ks: Sequence[int] = (1, 5, 10), *,
                     names: Sequence[str] = ("a", "b"), chunk_size: int = 4096,
                     labels_a: Tensor | None = None,
                     labels_b: Tensor | None = None) -> dict[str, float]:
    """Retrieval in both directions as a flat dict of floats, computed in chunks.

    For each direction x→y (queries x, gallery y): `R@k` for every k in `ks` (fraction in [0, 1]),
    `MRR` and `median rank`, each an expectation over a random order of tied items (see the module
    docstring), so a collapsed model scores chance.
    Keys read "a→b R@1", ..., "a→b MRR", "a→b median rank", then the same for "b→a", with
    `names` in place of a and b. (Radford et al., 2021; Karpathy & Fei-Fei, 2015.)

    Args:
        a: (B_a, D) embeddings of the first modality.
        b: (B_b, D) embeddings of the second; B_b = B_a unless labels are given.
        ks: the cut-offs k, ints ≥ 1 (k beyond the gallery size gives 1.0).
        names: display names of the two modalities, e.g. ("image", "text").
        chunk_size: queries per block (memory is O(chunk_size · B)).
        labels_a: optional (B_a,) integer class ids (class-level retrieval).
        labels_b: optional (B_b,) integer class ids.
    Returns:
        dict mapping "x→y metric" to a Python float.
    """
    ks = check_ks(ks)
    na, nb = check_names(names)
    check_embeddings("a", a)
    check_embeddings("b", b)
    if labels_a is not None and labels_b is not None:  # name the arguments as the caller did
        pair = check_label_pair(("labels_a", "labels_b"), (labels_a, labels_b),
                                (a.shape[0], b.shape[0]), ("a", "b"))
        check_coverage("labels_a", pair[0], "labels_b", pair[1])
        check_coverage("labels_b", pair[1], "labels_a", pair[0])
    t_ab = _tie_counts(a, b, chunk_size, labels_a, labels_b)  # (B_a,) each
    t_ba = _tie_counts(b, a, chunk_size, labels_b, labels_a)  # (B_b,) each
    report: dict[str, float] = {}
    for direction, t in ((f"{na}→{nb}", t_ab), (f"{nb}→{na}", t_ba)):
        report.update({f"{direction} {key}": value for key, value in _summary(t, ks).items()})
    return report
