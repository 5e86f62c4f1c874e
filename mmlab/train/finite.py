"""`FiniteCheck`: stop at the first NaN/Inf loss, name its step, keep the last good weights.

It runs on every read of the logged values (`TrainState.read_values`). Read every step (the
default on the CPU), the check sees step k's loss before step k's backward pass, so the model
still holds the weights of the last finite step. Read every n steps (the default on a GPU, where
each read is a device sync), up to n − 1 updates may already have used non-finite gradients:
the check then keeps a copy of the weights and optimizer state at the start and at each
scheduled read whose losses were all finite, and puts them back before raising. (When the first
non-finite loss is the step just read, no update has used it yet: the weights stay as they are.)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from torch import nn

from mmlab.train.state import StepRecord, TrainState, first_non_finite

__all__ = ["FiniteCheck"]


class FiniteCheck:
    """Raise FloatingPointError naming the first step whose loss is NaN or ±inf.

    Args:
        modules: the model (and fit's loss module), whose weights are kept and put back.
        read_every: steps between scheduled reads; above 1, a copy of the last good weights is
            kept at each scheduled read.
    """

    def __init__(self, modules: Sequence[nn.Module], read_every: int) -> None:
        self.modules, self.read_every = list(modules), read_every
        self.keep_copies = read_every > 1
        self._good: tuple[int, list[dict[str, Any]], dict[str, Any]] | None = None

    def remember(self, state: TrainState) -> None:
        """Keep the current weights and optimizer state as the last good ones (on their device)."""
        if self.keep_copies:
            weights = [{k: v.detach().clone() for k, v in m.state_dict().items()}
                       for m in self.modules]
            self._good = (state.step, weights, copy.deepcopy(state.optimizer.state_dict()))

    def __call__(self, state: TrainState, fresh: list[StepRecord]) -> None:
        bad = first_non_finite(fresh)
        if bad is None:
            return
        kept = f"the weights after step {state.step}, the last finite step"
        if self.keep_copies and bad.step <= state.step:  # updates with non-finite gradients ran
            step, weights, opt_state = self._good or (0, None, None)
            if weights is not None:
                for m, w in zip(self.modules, weights):
                    m.load_state_dict(w)
                state.optimizer.load_state_dict(opt_state)
            kept = (f"the weights after step {step}, the last good copy kept (values are read "
                    f"every {self.read_every} steps on this device; read_every=1 "
                    "stops at the exact step)") if weights is not None else \
                "weights that may already be non-finite (no good copy was kept)"
        raise FloatingPointError(
            f"The loss is {bad.loss_value} at step {bad.step} (epoch {bad.epoch}) with temperature "
            f"τ = {_tau(state)} and lr = {state.lr:g}. Likely causes: τ too small (logits "
            "overflow; clamp or raise τ), lr too high (lower it, or set clip_grad_norm=1.0), or "
            f"NaN in the inputs. The model holds {kept}.")


def _tau(state: TrainState) -> str:
    probe = state.probe
    raw = probe.read() if probe is not None else None
    return "unknown" if raw is None else f"{probe.value(float(raw)):.4g}"
