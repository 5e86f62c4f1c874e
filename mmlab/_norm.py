"""L2 normalisation that never overflows or underflows: x̂ = x / ‖x‖ for any finite x ≠ 0.

`F.normalize` computes ‖x‖ = sqrt(Σ x_d²), and Σ x_d² overflows to Inf once ‖x‖ exceeds about
1.8e19 in float32 (√ of the largest float32, 3.4e38); x / Inf is then a zero vector, and a loss
over such rows silently returns log B. Here a row whose largest entry could overflow the sum,
max_d |x_d| > T = ½·sqrt(float max / D), is first divided by a power of two,
s = 2^(⌈log₂ max_d |x_d|⌉ − 1), which brings that entry into (1, 2]:

    x̂ = F.normalize(x / s),   s = 1 for every other row.

The other way round, a row whose largest entry is below ε = `NORM_EPS` (1e-12, e.g. float32
entries of 1e-20, whose squares underflow) would be divided by ε instead of its norm and come
out near zero; it is multiplied up by the same kind of power of two (only a zero row stays zero).
Every other row goes through `F.normalize` unchanged, so values and gradients are bit-for-bit
the same as `F.normalize`'s wherever every entry of a row is ≥ ε or the row is zero; a huge or
tiny row keeps its direction (x / s points the same way, and its norm is in [1, 2√D]). The
scale is applied as two factors 2^(−e₁)·2^(−e₂) with e₁ + e₂ = e, each representable even where
2^e is not (a subnormal row needs e ≈ −150). Used by the metrics, projection heads,
text tower, attribution and plots. The losses (`mmlab.losses._prep.normalize_rows`) call it only
for inputs that need it: on the CPU they check first and otherwise call `F.normalize` directly,
because even a division by 1 adds an autograd node, which reorders the gradient sums of models
with three or more modalities in the last bits (and the course's claims were measured without).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

NORM_EPS = 1e-12
"""Default ε: a zero vector stays zero instead of becoming NaN."""


def overflow_limit(x: Tensor, dim: int = -1) -> float:
    """T = ½·sqrt(float max / D): a row with every |x_d| ≤ T has Σ x_d² ≤ float max / 4."""
    return 0.5 * math.sqrt(torch.finfo(x.dtype).max / max(x.shape[dim], 1))


def l2_normalize(x: Tensor, dim: int = -1, eps: float = NORM_EPS) -> Tensor:
    """x / max(‖x‖₂, ε) along `dim`, finite for every finite x (see the module docstring).

    Args:
        x: a float tensor, e.g. (B, D) embeddings.
        dim: the dimension to normalise.
        eps: ε > 0, the smallest norm divided by.
    Returns:
        A tensor of x's shape and dtype; differentiable.
    """
    peak = x.detach().abs().amax(dim=dim, keepdim=True)  # (B, 1): the row's largest |x_d|
    rescale = needs_rescale(peak, overflow_limit(x, dim))  # (B, 1) bool
    e = torch.where(rescale, torch.ceil(torch.log2(peak.where(rescale, 1))) - 1, 0)  # (B, 1)
    e1 = torch.trunc(e / 2)  # e = e1 + e2, |e1|, |e2| ≤ 75 in float32
    return F.normalize(x * torch.exp2(-e1) * torch.exp2(e1 - e), dim=dim, eps=eps)


def needs_rescale(peak: Tensor, limit: float) -> Tensor:
    """Rows whose largest |x_d| (`peak`) is above the overflow `limit` or in (0, NORM_EPS)."""
    return (peak > limit) | ((peak > 0) & (peak < NORM_EPS))
