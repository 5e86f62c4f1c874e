"""L2 normalisation that never overflows: x̂ = x / max(‖x‖, ε) for any finite x.

`F.normalize` computes ‖x‖ = sqrt(Σ x_d²), and Σ x_d² overflows to Inf once ‖x‖ exceeds about
1.8e19 in float32 (√ of the largest float32, 3.4e38); x / Inf is then a zero vector, and a loss
over such rows silently returns log B. Here a row whose largest entry could overflow the sum,
max_d |x_d| > T = ½·sqrt(float max / D), is first divided by a power of two,
s = 2^(⌈log₂ max_d |x_d|⌉ − 1), which brings that entry into (1, 2]:

    x̂ = F.normalize(x / s),   s = 1 for every other row.

Every other row goes through `F.normalize` unchanged, so values and gradients are bit-for-bit
the same as before wherever `F.normalize` did not overflow; a huge row keeps its direction
(x / s points the same way, and its norm is far above ε). Used by the metrics, projection heads,
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
    limit = overflow_limit(x, dim)  # T: above it, Σ x_d² may overflow
    peak = x.detach().abs().amax(dim=dim, keepdim=True)  # (B, 1): the row's largest |x_d|
    exponent = torch.ceil(torch.log2(peak.clamp(min=limit))) - 1  # (B, 1), finite
    s = torch.where(peak > limit, torch.exp2(exponent), torch.ones_like(peak))  # (B, 1): 1 or 2^e
    return F.normalize(x / s, dim=dim, eps=eps)
