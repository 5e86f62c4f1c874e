"""L2 normalisation that never overflows: x̂ = x / max(‖x‖, ε) for any finite x.

`F.normalize` computes ‖x‖ = sqrt(Σ x_d²), and Σ x_d² overflows to Inf once ‖x‖ exceeds about
1.8e19 in float32 (√ of the largest float32, 3.4e38); x / Inf is then a zero vector, and a loss
over such rows silently returns log B. Here each row is first divided by s = 2^(⌈log₂ max_d |x_d|⌉ − 1),
a power of two (its exponent kept within the dtype's normal range), so the row's largest entry
lies in (1, 2] and its squared norm is at most 4D:

    y = x / s,   x̂ = y / max(‖y‖, ε / s)          (= x / max(‖x‖, ε) in exact arithmetic)

Dividing by a power of two is exact in floating point (away from subnormals), so wherever
`F.normalize` does not overflow the result and its gradient are bit-for-bit the same; ε keeps its
meaning on the original scale (a zero row stays zero, with gradient I/ε).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NORM_EPS = 1e-12
"""Default ε: a zero vector stays zero instead of becoming NaN."""


def l2_normalize(x: Tensor, dim: int = -1, eps: float = NORM_EPS) -> Tensor:
    """x / max(‖x‖₂, ε) along `dim`, finite for every finite x (see the module docstring).

    Args:
        x: a float tensor, e.g. (B, D) embeddings.
        dim: the dimension to normalise.
        eps: ε > 0, the smallest norm divided by.
    Returns:
        A tensor of x's shape and dtype; differentiable.
    """
    info = torch.finfo(x.dtype)
    lo, hi = math.log2(info.tiny), math.floor(math.log2(info.max))  # normal exponents: -126, 127 in float32
    peak = x.detach().abs().amax(dim=dim, keepdim=True)  # (B, 1): the row's largest |x_d|
    exponent = (torch.ceil(torch.log2(peak)) - 1).clamp(lo, hi)  # (B, 1); -inf (a zero row) → lo
    s = torch.exp2(exponent)  # (B, 1), a power of two
    y = x / s  # exact: s is a power of two
    return y / torch.maximum(y.norm(p=2, dim=dim, keepdim=True), eps / s)
