"""A learnable temperature, stored as `logit_scale = log(1/τ)` and clamped to 0.01 ≤ τ ≤ 100.

CLIP (Radford et al. 2021) learns τ through `logit_scale`, initialised to log(1/0.07) and
clamped to ≤ log 100 so that τ never drops below 0.01. The clamp happens twice: in `scale()`, on
the value each forward pass uses (so the loss never sees τ < 0.01), and in `clamp_()`, on the
stored parameter, which `mmlab.train.fit` calls after every optimiser step (so the parameter
does not drift past the bound where its gradient is zero). Logs show τ, not `logit_scale`. The
lower bound `MIN_LOGIT_SCALE = −log 100` (τ ≤ 100) is ours: it keeps τ finite when a run
diverges (exp(−logit_scale) overflows a float once logit_scale < −709).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mmlab._checks import check_temperature
from mmlab.losses.output import DEFAULT_TEMPERATURE, MAX_LOGIT_SCALE, MIN_LOGIT_SCALE


class LearnableTemperature(nn.Module):
    """Base class of the loss modules: holds `logit_scale = log(1/τ)`.

    Args:
        init_temperature: τ at initialisation (> 0).
        learnable: whether `logit_scale` is trained.
    """

    def __init__(self, init_temperature: float = DEFAULT_TEMPERATURE,
                 learnable: bool = True) -> None:
        super().__init__()
        init_temperature = check_temperature(init_temperature, "init_temperature")
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)),
                                        requires_grad=bool(learnable))

    def scale(self) -> Tensor:
        """1/τ = exp(logit_scale clamped to [MIN_LOGIT_SCALE, MAX_LOGIT_SCALE]), a 0-d tensor
        (autograd kept; no host read)."""
        return self.logit_scale.clamp(min=MIN_LOGIT_SCALE, max=MAX_LOGIT_SCALE).exp()

    @property
    def temperature(self) -> float:
        """τ = exp(−logit_scale) actually used (after the clamp), as a Python float.

        Reads the parameter (a device sync on a GPU). Clamped before `math.exp`, so it is finite
        for any stored `logit_scale` (±Inf included; NaN stays NaN)."""
        logit_scale = float(self.logit_scale.detach())
        return math.exp(-min(max(logit_scale, MIN_LOGIT_SCALE), MAX_LOGIT_SCALE))

    @torch.no_grad()
    def clamp_(self) -> LearnableTemperature:
        """Clamp the stored `logit_scale` to [MIN_LOGIT_SCALE, MAX_LOGIT_SCALE] in place (call it
        after `optimizer.step()`)."""
        self.logit_scale.clamp_(min=MIN_LOGIT_SCALE, max=MAX_LOGIT_SCALE)
        return self
