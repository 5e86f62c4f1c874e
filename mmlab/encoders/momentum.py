"""A momentum (key) encoder: an exponential moving average of a tower's weights
(He et al. 2020, "Momentum Contrast for Unsupervised Visual Representation Learning", MoCo).

The key encoder θ_k is a copy of the trained (query) encoder θ_q that is never trained by
gradients; after every optimiser step it follows θ_q slowly,

    θ_k ← m θ_k + (1 − m) θ_q,      0 ≤ m < 1   (MoCo: m = 0.999),

so keys computed a few steps apart come from nearly the same function and stay comparable
inside a queue of negatives (`mmlab.losses.MemoryQueue`). m = 0 copies θ_q (a queue of plain
stale keys); m → 1 freezes the copy. Buffers (e.g. batch-norm statistics) are copied, not
averaged. About 1/(1 − m) steps of history contribute to θ_k.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from mmlab._checks import check_probability


@torch.no_grad()
def ema_update_(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """In place: every parameter p_k of `target` ← m p_k + (1 − m) p_q (p_q of `source`);
    buffers are copied. Both modules must have the same parameter names and shapes."""
    m = check_probability("momentum", momentum)
    params_k, params_q = dict(target.named_parameters()), dict(source.named_parameters())
    if params_k.keys() != params_q.keys():
        raise ValueError("`target` and `source` must have the same parameters; build the target "
                         "with `MomentumEncoder(source)` or `copy.deepcopy(source)`.")
    for name, p_k in params_k.items():
        p_k.mul_(m).add_(params_q[name].detach().to(p_k.dtype), alpha=1 - m)
    for (_, b_k), (_, b_q) in zip(target.named_buffers(), source.named_buffers()):
        b_k.copy_(b_q)


class MomentumEncoder(nn.Module):
    """A frozen EMA copy of `encoder` (MoCo's key encoder); call `update(encoder)` after each step.

    `forward` runs the copy under `torch.no_grad()` (keys get no gradient, as in MoCo) and in
    the same train/eval mode as the copy. The copy is built at construction (θ_k = θ_q).

    Args:
        encoder: the query tower (any nn.Module), copied with `copy.deepcopy`.
        momentum: m ∈ [0, 1]; MoCo uses 0.999 for long runs, short runs need a smaller m.
    """

    def __init__(self, encoder: nn.Module, momentum: float = 0.999) -> None:
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"`encoder` must be an nn.Module, got {type(encoder).__name__}.")
        self.momentum = check_probability("momentum", momentum)
        self.encoder = copy.deepcopy(encoder).requires_grad_(False)

    @torch.no_grad()
    def update(self, encoder: nn.Module) -> None:
        """θ_k ← m θ_k + (1 − m) θ_q, θ_q the parameters of `encoder` (the query tower)."""
        ema_update_(self.encoder, encoder, self.momentum)

    @torch.no_grad()
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.encoder(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"momentum={self.momentum:g}"
