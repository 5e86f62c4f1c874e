"""The value every contrastive loss returns, the names of its parts, and the temperature bounds.

A loss returns a `LossOutput` (Radford et al. 2021 style CLIP code returns only a scalar; we
also return the logits and the loss's parts so that notebooks can plot without recomputing).

Term keys: one vocabulary for every loss, in ASCII (they type, print and log anywhere).
- `"a_to_b"`, `"b_to_a"`: the two directions of a symmetric loss (`info_nce`, `block_info_nce`,
  `debiased_info_nce`, `hard_negative_info_nce`, `queue_clip_loss` / `QueueClipLoss`,
  `distributed_info_nce`). `queue_info_nce`, one direction only, has `"q_to_k"`.
- `"pos"`, `"neg"`: the positive and the negative part of `siglip`, `clip_lite` and
  `distributed_siglip` (pos + neg = loss).
- Modality names joined with `-`: one term per pair in `pairwise_info_nce` (`"0-1"` for
  positional inputs, `"image-text"` for a dict) and in `ContrastiveModel` (`"image-text"`,
  `"image-audio-text"` for a multi-way loss); one per anchor modality in `symile` (`"0"`,
  `"image"`).
- `supcon` has none (`{}`): its loss is one average, with no named parts.
Terms are parts of the loss only, never counts or diagnostics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import Tensor

DEFAULT_TEMPERATURE: float = 0.07
"""τ at which CLIP starts (Radford et al. 2021): the default of every InfoNCE-family loss."""

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
        terms: named scalar parts of the loss, e.g. `{"a_to_b": ..., "b_to_a": ...}` (the
            vocabulary is in this module's docstring).
    """

    loss: Tensor
    logits: Tensor | None = None
    terms: dict[str, Tensor] = field(default_factory=dict)
