"""The optimiser, the temperature clamp and how `fit` reads τ, without a host read per step.

Weight decay applies to weight matrices only: biases, norms and `logit_scale` are not decayed,
as in CLIP (Radford et al., 2021). After every optimiser step a learnable `logit_scale = log(1/τ)`
is clamped to [MIN_LOGIT_SCALE, MAX_LOGIT_SCALE] = [−log 100, log 100] (0.01 ≤ τ ≤ 100): modules
that define `clamp_()` clamp themselves, any other parameter named `logit_scale` is clamped here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmlab.losses import MAX_LOGIT_SCALE, MIN_LOGIT_SCALE

__all__ = ["make_optimizer", "clamp_actions", "TemperatureProbe", "SGD_MOMENTUM"]

SGD_MOMENTUM = 0.9


def make_optimizer(name: str, modules: Sequence[nn.Module], lr: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, Adam or SGD over the trainable parameters of `modules` (each parameter once)."""
    decay, no_decay, seen = [], [], set()
    for root in modules:
        for p in root.parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (decay if p.ndim >= 2 else no_decay).append(p)  # logit_scale is 0-d: not decayed
    if not seen:
        raise ValueError("`model` has no trainable parameters (requires_grad=True); "
                         "nothing to fit.")
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=SGD_MOMENTUM)


def clamp_actions(modules: Sequence[nn.Module]) -> list[Callable[[], Any]]:
    """What to run after each optimiser step: `m.clamp_()` for modules that define it; a clamp to
    [MIN_LOGIT_SCALE, MAX_LOGIT_SCALE] for any other trainable parameter named `logit_scale`."""
    actions: list[Callable[[], Any]] = []
    seen: set[int] = set()
    for root in modules:
        for m in root.modules():
            if id(m) in seen:
                continue
            seen.add(id(m))
            if callable(getattr(m, "clamp_", None)):
                actions.append(m.clamp_)
                continue
            p = m._parameters.get("logit_scale")
            if p is not None and p.requires_grad:
                actions.append(lambda p=p: p.data.clamp_(min=MIN_LOGIT_SCALE, max=MAX_LOGIT_SCALE))
    return actions


class TemperatureProbe:
    """Reads τ each step as a device tensor (no host read); `value(...)` turns it into a float.

    τ comes from the first `logit_scale` found on `objs` (the model, its `loss`, fit's loss
    module): τ = exp(−clamp(logit_scale)), computed when the logs are read, exactly as
    `LearnableTemperature.temperature` does. Otherwise from a `temperature` attribute (a tensor
    or a number); otherwise there is none and the history logs None.
    """

    def __init__(self, objs: Sequence[Any]) -> None:
        objs = [o for o in objs if o is not None]
        self.logit_scale = next((o.logit_scale for o in objs
                                 if isinstance(getattr(o, "logit_scale", None), Tensor)
                                 and o.logit_scale.numel() == 1), None)
        self.objs = objs

    def read(self) -> Tensor | float | None:
        """This step's τ: a detached copy of `logit_scale` (a device tensor), a number, or None."""
        if self.logit_scale is not None:
            return self.logit_scale.detach().clone()
        for obj in self.objs:
            t = getattr(obj, "temperature", None)
            if isinstance(t, Tensor):
                return t.detach().float().clone()
            if isinstance(t, (int, float)) and not isinstance(t, bool):
                return float(t)
        return None

    def value(self, raw: Any) -> float | None:
        """τ as a float from what `read` returned (and the host has read)."""
        if raw is None:
            return None
        if self.logit_scale is not None:
            return math.exp(-min(max(float(raw), MIN_LOGIT_SCALE), MAX_LOGIT_SCALE))
        return float(raw)
