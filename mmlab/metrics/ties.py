"""Ranks with ties, in expectation over a uniformly random order of the tied items.

For one query, let h items score strictly above its best true match, and let the g = m + n items
tied with that match (m true matches, n others) be put in a random order. The rank is h + U, with
U the place of the first true match among the tied items:

    P(U > u) = C(g − u, m) / C(g, m)           for 0 ≤ u ≤ n   (0 for u > n)
    P(rank ≤ k) = 1 − P(U > k − h)             R@k of that query
    E[1 / rank] = Σ_{u=1}^{n+1} P(U = u) / (h + u)
    E[rank] = h + (g + 1) / (m + 1)

(McSherry & Najork, 2008, "Computing Information Retrieval Performance Measures Efficiently in the
Presence of Tied Scores"). `mmlab.metrics.retrieval` counts h, m, n per query and averages these.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["Ties", "ties_of_block", "cat_ties", "recall_in_expectation",
           "reciprocal_in_expectation", "expected_rank"]


class Ties(NamedTuple):
    """Per query: h items strictly above the best true match, n others and m matches tied with
    it."""

    h: Tensor  # (B_q,) int64
    n: Tensor  # (B_q,) int64
    m: Tensor  # (B_q,) int64, ≥ 1


def cat_ties(parts: list[Ties]) -> Ties:
    return Ties(*(torch.cat([getattr(p, f) for p in parts]).cpu() for f in Ties._fields))


def ties_of_block(sim: Tensor, row_offset: int, labels: tuple[Tensor, Tensor] | None,
                   tol: float = 0.0) -> Ties:
    """Tie counts for a block of rows `sim` (n, B_g) whose first row is query `row_offset`.

    Scores within `tol` of the best match count as tied with it (0: exact equality)."""
    n_rows = sim.shape[0]
    rows = torch.arange(n_rows, device=sim.device)
    if labels is None:
        best = sim[rows, rows + row_offset]  # (n,) score of the paired item
        tied = ((sim - best[:, None]).abs() <= tol).sum(dim=1)  # (n,) includes the match itself
        m = torch.ones_like(tied)
    else:
        lab_q, lab_g = labels[0].to(sim.device), labels[1].to(sim.device)
        match = lab_q[:, None] == lab_g[None, :]  # (n, B_g); each row has a match (checked)
        best = sim.masked_fill(~match, float("-inf")).amax(dim=1)  # (n,) best-scoring true match
        at_best = (sim - best[:, None]).abs() <= tol  # (n, B_g)
        tied, m = at_best.sum(dim=1), (at_best & match).sum(dim=1)  # (n,), (n,)
    h = (sim > best[:, None] + tol).sum(dim=1)  # (n,) items strictly above the best match
    return Ties(h, tied - m, m)


def _log_p_after(t: Ties, u: Tensor) -> Tensor:
    """log P(U > u) = log C(g − u, m) − log C(g, m), for 0 ≤ u ≤ n (broadcasts over u)."""
    g, n = (t.n + t.m).double(), t.n.double()
    return (torch.lgamma(g - u + 1) - torch.lgamma(n - u + 1)
            - torch.lgamma(g + 1) + torch.lgamma(n + 1))


def recall_in_expectation(t: Ties, k: int) -> Tensor:
    """(B_q,) float64: P(rank ≤ k) = P(U ≤ k − h)."""
    u = (k - t.h).double()  # (B_q,) tied positions that still fit in the top k
    inside = (u >= 0) & (u <= t.n)
    p = torch.where(u > t.n, 1.0, 0.0).double()
    p[inside] = 1 - _log_p_after(Ties(*(f[inside] for f in t)), u[inside]).exp()
    return p


def reciprocal_in_expectation(t: Ties, max_elements: int = 1 << 22) -> Tensor:
    """(B_q,) float64: E[1 / (h + U)] = Σ_{u=1}^{n+1} P(U = u) / (h + u)."""
    out = (t.h + 1).double().reciprocal()  # exact where nothing is tied (n = 0)
    tied = (t.n > 0).nonzero().flatten()
    if len(tied):
        width = int(t.n[tied].max()) + 1  # u − 1 = 0 .. n
        step = max(1, max_elements // width)
        u = torch.arange(width, dtype=torch.float64)  # (W,) u − 1
        for start in range(0, len(tied), step):  # rows × width stays ≤ max_elements
            idx = tied[start:start + step]
            block = Ties(*(f[idx, None] for f in t))  # (r, 1) each
            ok = u <= block.n  # (r, W)
            p_gt_prev = torch.where(ok, _log_p_after(block, u).exp(), 0.0)  # P(U > u−1)
            p_gt = torch.where(u + 1 <= block.n, _log_p_after(block, u + 1).exp(), 0.0)  # P(U > u)
            out[idx] = ((p_gt_prev - p_gt) / (block.h + u + 1)).sum(dim=1)
    return out


def expected_rank(t: Ties) -> Tensor:
    """(B_q,) float64: E[h + U] = h + (g + 1) / (m + 1)."""
    return t.h.double() + (t.n + t.m + 1).double() / (t.m + 1).double()
