"""Geometry of the embedding space: alignment, uniformity, modality gap, cone, effective rank.

- Alignment and uniformity (Wang & Isola, 2020, "Understanding Contrastive Representation
  Learning through Alignment and Uniformity on the Hypersphere"): positives should land close
  together, and the whole cloud should spread evenly over the sphere.
- Modality gap and the cone effect (Liang et al., 2022, "Mind the Gap: Understanding the
  Modality Gap in Multi-modal Contrastive Representation Learning"): the two modalities of a
  CLIP-style model occupy two separate narrow cones, offset by a constant vector.
- Effective rank (Roy & Vetterli, 2007, "The effective rank: a measure of effective
  dimensionality"): how many directions the embeddings really use (dimensional collapse).

Every metric L2-normalises its inputs first (`â = a/‖a‖`), except `effective_rank`, which is
about the raw matrix. A zero row has no direction, so those metrics refuse it with a clear error
(checked on CPU tensors; on a GPU the check would cost a device sync) rather than score it: an
all-zero cloud would otherwise get uniformity −4, the best possible value. float16/bfloat16
inputs are computed in float32 (sums over many pairs lose too much in half precision). The
scalar metrics return 0-d tensors that keep the autograd graph, so they can be used as
differentiable regularisers (`loss = clip + 0.1 * uniformity(a)`) and checked with gradcheck;
call `float(...)` to log them. (Retrieval metrics return floats.)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmlab._checks import (check_embeddings, check_finite_if_cheap, check_int, check_paired,
                           check_positive, values_are_cheap)
from mmlab._norm import l2_normalize

__all__ = ["alignment", "uniformity", "modality_gap", "gap_vector", "effective_rank",
           "mean_pairwise_cosine"]


def _check_cloud(name: str, x: object, *, min_rows: int = 1) -> Tensor:
    check_embeddings(name, x)
    if x.shape[0] < min_rows:
        raise ValueError(f"`{name}` has shape {tuple(x.shape)}; "
                         "this metric compares pairs of rows, "
                         f"so it needs at least {min_rows} rows.")
    check_finite_if_cheap(name, x)
    return x


def _check_directions(name: str, x: Tensor) -> None:
    """Refuse zero rows, whose direction x̂ = x/‖x‖ is undefined (where values are cheap to
    read)."""
    if values_are_cheap(x):
        zero = (x == 0).all(dim=1).nonzero().flatten()  # (Z,)
        if zero.numel():
            raise ValueError(f"`{name}` row {int(zero[0])} is a zero vector "
                             f"({zero.numel()} of {x.shape[0]} rows are): "
                             "its direction x/‖x‖ is undefined, and so is this metric. "
                             "Drop those rows, or check "
                             "the encoder (a tower whose output is all zero has stopped learning).")


def _upcast(x: Tensor) -> Tensor:
    """float16/bfloat16 → float32 (differentiable); other dtypes unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_two_clouds(a: object, b: object) -> None:
    """Two unpaired clouds: each (B, D), any B, the same D."""
    _check_cloud("a", a)
    _check_cloud("b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"`a` {tuple(a.shape)} and `b` {tuple(b.shape)} "
                         "must have the same embedding "
                         f"width D (dim 1); got {a.shape[1]} and {b.shape[1]}.")


def alignment(a: Tensor, b: Tensor, alpha: float = 2) -> Tensor:
    """Alignment of positive pairs: `L_align = mean_i ‖â_i − b̂_i‖^α` (Wang & Isola, 2020).

    0 for identical directions, 2^α for antipodal pairs (‖â − b̂‖ = 2); lower is better.
    The gradient at a pair with â_i = b̂_i is taken as 0 (a subgradient for α ≥ 1).

    Args:
        a: (B, D) embeddings.
        b: (B, D) embeddings paired row by row with `a`.
        alpha: the exponent α > 0 (2 in the paper).
    Returns:
        0-d tensor (differentiable).
    """
    check_paired(("a", "b"), (a, b))
    alpha = check_positive("alpha", alpha)
    check_finite_if_cheap("a", a)
    check_finite_if_cheap("b", b)
    _check_directions("a", a)
    _check_directions("b", b)
    diff = l2_normalize(_upcast(a), dim=-1) - l2_normalize(_upcast(b), dim=-1)  # (B, D)
    sq = diff.pow(2).sum(dim=1)  # (B,) ‖â_i − b̂_i‖²
    if alpha == 2:
        return sq.mean()  # smooth everywhere, even at â_i = b̂_i
    # ‖·‖^α = (‖·‖²)^(α/2); the double `where` keeps the gradient at â_i = b̂_i finite (0) for any α
    nonzero = sq > 0  # (B,)
    safe = torch.where(nonzero, sq, torch.ones_like(sq))  # (B,)
    return torch.where(nonzero, safe.pow(alpha / 2), torch.zeros_like(sq)).mean()


def uniformity(x: Tensor, t: float = 2, *, chunk_size: int = 4096) -> Tensor:
    """Uniformity: `L_unif = log mean_{i<j} exp(−t ‖x̂_i − x̂_j‖²)` (Wang & Isola, 2020).

    Uses `‖x̂_i − x̂_j‖² = 2 − 2 x̂_i·x̂_j` and, since the pair set is symmetric, the mean over all
    ordered pairs i ≠ j, accumulated with a log-sum-exp over blocks of `chunk_size` rows (at
    most a (chunk_size, B) block of the Gram matrix exists at once without grad).
    Lower is more uniform: identical points give 0 (the maximum) and a single antipodal pair
    gives −4t.

    Args:
        x: (B, D) embeddings, B ≥ 2.
        t: the scale t > 0 (2 in the paper).
        chunk_size: rows per block, an int ≥ 1.
    Returns:
        0-d tensor (differentiable).
    """
    _check_cloud("x", x, min_rows=2)
    t = check_positive("t", t)
    check_int("chunk_size", chunk_size, minimum=1)
    _check_directions("x", x)
    x_hat = l2_normalize(_upcast(x), dim=-1)  # (B, D)
    n = x.shape[0]
    cols = torch.arange(n, device=x.device)  # (B,)
    parts = []
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        sq_dist = 2 - 2 * x_hat[start:stop] @ x_hat.T  # (m, B) ‖x̂_i − x̂_j‖²
        diagonal = cols[None, :] == torch.arange(start, stop, device=x.device)[:, None]  # (m, B)
        exponent = (-t * sq_dist).masked_fill(diagonal, float("-inf"))  # (m, B), i = j left out
        parts.append(torch.logsumexp(exponent.flatten(), dim=0))
    return torch.logsumexp(torch.stack(parts), dim=0) - math.log(n * (n - 1))


def gap_vector(a: Tensor, b: Tensor) -> Tensor:
    """The modality gap vector `Δ = mean_i â_i − mean_j b̂_j` (Liang et al., 2022).

    `a` and `b` need not be paired (their B may differ).

    Args:
        a: (B_a, D) embeddings of one modality.
        b: (B_b, D) embeddings of the other.
    Returns:
        (D,) tensor (differentiable).
    """
    _check_two_clouds(a, b)
    _check_directions("a", a)
    _check_directions("b", b)
    # (B_a, D), (B_b, D)
    a_hat, b_hat = l2_normalize(_upcast(a), dim=-1), l2_normalize(_upcast(b), dim=-1)
    return a_hat.mean(dim=0) - b_hat.mean(dim=0)  # (D,)


def modality_gap(a: Tensor, b: Tensor) -> Tensor:
    """The modality gap `‖Δ‖ = ‖mean_i â_i − mean_j b̂_j‖` (Liang et al., 2022).

    0 when the two clouds have the same centre; at most 2.

    Args:
        a: (B_a, D) embeddings of one modality.
        b: (B_b, D) embeddings of the other.
    Returns:
        0-d tensor (differentiable where Δ ≠ 0).
    """
    return torch.linalg.vector_norm(gap_vector(a, b))


def mean_pairwise_cosine(x: Tensor) -> Tensor:
    """Mean cosine over ordered pairs i ≠ j: `mean_{i≠j} x̂_i·x̂_j` (the cone effect,
    Liang et al., 2022).

    Computed in O(B·D) memory as `(‖Σ_i x̂_i‖² − Σ_i ‖x̂_i‖²) / (B(B−1))`. 1 when all rows
    point the same way, 0 for orthogonal rows; near 1 means the embeddings sit in a narrow cone.

    Args:
        x: (B, D) embeddings, B ≥ 2.
    Returns:
        0-d tensor (differentiable).
    """
    _check_cloud("x", x, min_rows=2)
    _check_directions("x", x)
    x_hat = l2_normalize(_upcast(x), dim=-1)  # (B, D)
    n = x.shape[0]
    total = x_hat.sum(dim=0)  # (D,)
    return (total.pow(2).sum() - x_hat.pow(2).sum()) / (n * (n - 1))


def effective_rank(x: Tensor) -> Tensor:
    """Effective rank `erank = exp(H(p))`, `p_k = σ_k / Σ_l σ_l` (Roy & Vetterli, 2007).

    σ are the singular values of `x` itself (not centred, not normalised) and
    `H(p) = −Σ_k p_k log p_k` with 0·log 0 = 0. A matrix with r equal non-zero singular values has
    effective rank r; in general 1 ≤ erank ≤ rank(x). The zero matrix gets 0 by convention.

    Args:
        x: (B, D) embeddings (or any matrix).
    Returns:
        0-d tensor in x's dtype (float32 for half inputs).
    """
    _check_cloud("x", x)
    x = _upcast(x)
    sigma = torch.linalg.svdvals(x)  # (min(B, D),)
    total = sigma.sum()
    if float(total.detach()) == 0.0:
        return torch.zeros((), dtype=x.dtype, device=x.device)
    p = sigma / total  # (min(B, D),)
    entropy = -torch.special.xlogy(p, p).sum()
    return entropy.exp()
