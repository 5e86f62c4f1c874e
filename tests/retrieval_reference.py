"""Independent references for retrieval with ties: exact enumeration and a Monte Carlo.

`rank_distribution` lists, for each query, every rank the true match can take when the items
tied with the best match are put in a random order, with its probability. It enumerates which
places of the tie group the true matches occupy (every subset is equally likely under a uniform
random order), so it shares nothing with the closed forms in `mmlab.metrics.retrieval`.
"""

from __future__ import annotations

import itertools
import math
import statistics

import torch


def _matches(row_len: int, i: int, labels_q, labels_g) -> list[bool]:
    if labels_q is None:
        return [j == i for j in range(row_len)]
    return [int(labels_g[j]) == int(labels_q[i]) for j in range(row_len)]


def rank_distribution(sim: torch.Tensor, labels_q=None, labels_g=None) -> list[list[tuple[int, float]]]:
    """Per query: [(rank, probability), ...] over uniformly random orders of tied items."""
    out = []
    for i, row in enumerate(sim.tolist()):
        match = _matches(len(row), i, labels_q, labels_g)
        best = max(s for s, m in zip(row, match) if m)
        above = sum(1 for s in row if s > best)
        group = [m for s, m in zip(row, match) if s == best]  # the tied items, matches marked
        g, m = len(group), sum(group)
        subsets = list(itertools.combinations(range(g), m))  # places the matches occupy, equally likely
        counts: dict[int, int] = {}
        for places in subsets:
            rank = above + 1 + min(places)
            counts[rank] = counts.get(rank, 0) + 1
        out.append([(r, c / len(subsets)) for r, c in sorted(counts.items())])
    return out


def expected_metrics(sim: torch.Tensor, ks, labels_q=None, labels_g=None) -> dict[str, float]:
    """R@k, MRR and the median of the expected ranks, from the enumerated distribution."""
    dist = rank_distribution(sim, labels_q, labels_g)
    n = len(dist)
    out = {f"R@{k}": sum(p for d in dist for r, p in d if r <= k) / n for k in ks}
    out["MRR"] = sum(p / r for d in dist for r, p in d) / n
    out["median rank"] = statistics.median(sum(p * r for r, p in d) for d in dist)
    return out


def monte_carlo_metrics(sim: torch.Tensor, ks, trials: int, seed: int,
                        labels_q=None, labels_g=None) -> dict[str, float]:
    """R@k and MRR by breaking ties at random: shuffle the gallery, then a stable sort by score."""
    gen = torch.Generator().manual_seed(seed)
    bq, bg = sim.shape
    match = torch.tensor([_matches(bg, i, labels_q, labels_g) for i in range(bq)])  # (bq, bg)
    hits = {k: 0.0 for k in ks}
    rr = 0.0
    for _ in range(trials):
        perm = torch.randperm(bg, generator=gen)
        order = torch.sort(sim[:, perm], dim=1, descending=True, stable=True).indices  # (bq, bg)
        first = match[:, perm].gather(1, order).int().argmax(dim=1) + 1  # (bq,) rank of first match
        for k in ks:
            hits[k] += float((first <= k).double().mean())
        rr += float(first.double().reciprocal().mean())
    out = {f"R@{k}": hits[k] / trials for k in ks}
    out["MRR"] = rr / trials
    return out


def harmonic(n: int) -> float:
    return math.fsum(1.0 / i for i in range(1, n + 1))
