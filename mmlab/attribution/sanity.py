"""Sanity checks for saliency maps: model randomisation and rank correlation.

Adebayo et al. 2018 ("Sanity Checks for Saliency Maps"): an explanation method that gives
(nearly) the same map for a trained model and for the same architecture with random weights
explains the input, not the model. `randomize_weights` builds the random model; Spearman rank
correlation (`rank_correlation`, as in the paper) compares two maps.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from mmlab._checks import check_finite, check_tensor

__all__ = ["randomize_weights", "rank_correlation"]


def randomize_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy of `model` with every parameter re-initialised (Adebayo et al. 2018).

    The model-randomisation sanity check: an explanation method that returns (nearly) the same
    map for a trained and for a random model explains the input, not the model. Modules with
    `reset_parameters` (Linear, Conv, LayerNorm, Embedding, …) use it; parameters owned by other
    modules (CLS tokens, position embeddings, …) are drawn from N(0, 0.02²). Buffers (e.g. a
    mel filterbank) are kept. The global random state is left untouched.

    Args:
        model: any nn.Module (it is not modified).
        seed: seed of the new weights.
    Returns:
        The re-initialised copy.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be an nn.Module, got {type(model).__name__}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int, got {type(seed).__name__}.")
    clone = copy.deepcopy(model)
    devices = sorted({p.device.index or 0 for p in clone.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for module in clone.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                continue
            for p in module.parameters(recurse=False):
                p.normal_(0.0, 0.02)
    return clone


def _average_ranks(v: Tensor) -> Tensor:
    """Ranks 1..n, ties sharing their average rank."""
    order = torch.argsort(v, stable=True)
    sorted_v = v[order]
    n = v.numel()
    ranks_sorted = torch.arange(1, n + 1, dtype=torch.float64)
    new_group = torch.ones(n, dtype=torch.bool)
    new_group[1:] = sorted_v[1:] != sorted_v[:-1]
    group = torch.cumsum(new_group.long(), 0) - 1  # (n,) group id of each sorted element
    n_groups = int(group[-1]) + 1
    sums = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, group, ranks_sorted)
    counts = torch.zeros(n_groups, dtype=torch.float64).index_add_(
        0, group, torch.ones(n, dtype=torch.float64))
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[order] = (sums / counts)[group]
    return ranks


def rank_correlation(x: Tensor, y: Tensor) -> float:
    """Spearman rank correlation ρ of two maps (flattened): the Pearson correlation of the ranks.

    Used to compare attributions (trained vs. randomised model; method vs. method). Ties get
    their average rank.

    Args:
        x: any shape. y: same number of elements as x. Neither may hold NaN/Inf (a ValueError).
    Returns:
        ρ in [-1, 1]; NaN when one of the maps is constant.
    """
    check_tensor("x", x)
    check_tensor("y", y)
    if x.numel() != y.numel() or x.numel() < 2:
        raise ValueError(f"`x` and `y` must have the same number (≥ 2) of elements, got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}.")
    x64 = check_finite("x", x.detach().flatten().cpu().to(torch.float64))  # (n,)
    y64 = check_finite("y", y.detach().flatten().cpu().to(torch.float64))  # (n,)
    rx = _average_ranks(x64)
    ry = _average_ranks(y64)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float(rx.norm() * ry.norm())
    return float("nan") if denom == 0.0 else float((rx * ry).sum()) / denom
