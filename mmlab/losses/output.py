"""The value every contrastive loss returns, and the clamp on learnable temperatures.

A loss returns a `LossOutput` (Radford et al. 2021 style CLIP code returns only a scalar; we
also return the logits and per-direction parts so that notebooks can plot without recomputing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import Tensor

MAX_LOGIT_SCALE: float = math.log(100)
"""Upper bound on `logit_scale = log(1/τ)`, i.e. τ ≥ 0.01 (CLIP, Radford et al. 2021)."""

MIN_LOGIT_SCALE: float = -math.log(100)
"""Lower bound on `logit_scale`, i.e. τ ≤ 100: logits S/τ are then within ±0.01, the softmax is
uniform to 1 %, and τ stays a finite float (a `logit_scale` of −800 would make exp(−logit_scale)
overflow)."""


@dataclass
class LossOutput:
    """What a contrastive loss returns.

    Attributes:
        loss: scalar tensor (float32 for half-precision inputs, else the input dtype).
        logits: the scaled similarity matrix the loss used, e.g. `S/τ` of shape (B, B), or
            None when it was never materialised (chunked losses, several modality pairs).
        terms: named scalar parts of the loss, e.g. `{"a→b": ..., "b→a": ...}`.
    """

    loss: Tensor
    logits: Tensor | None = None
    terms: dict[str, Tensor] = field(default_factory=dict)
