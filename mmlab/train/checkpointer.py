"""`Checkpointer`: resume, periodic saves, the final save and the Ctrl-C protocol of `fit`.

A checkpoint of a `fit` run holds, besides the weights and the optimizer, everything that
decides what comes next: the step, the epoch, the batches of this epoch already done, the
epoch's shuffle state, the RNG states and the loss module's state. So a run that is
interrupted and resumed gives the same history and weights, bit for bit on CPU, as one that
never stopped (`tests/test_interrupts.py` interrupts every phase of a step):
- Ctrl-C in a forward or backward pass: the step had not changed any weight; the checkpoint
  holds the state before it, with the RNG as it was before its forward pass.
- Ctrl-C in the optimizer update: `fit` holds it until the update, the clamp and the step's
  bookkeeping are done (`held_interrupts`), so there is never a half-updated model.
- Ctrl-C after a step (in an evaluation, a callback, a save, the final evaluation): the
  checkpoint holds that step; an evaluation cut short runs again on resume.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from mmlab.train.callbacks import Callback
from mmlab.train.checkpoint import (CheckpointError, apply_checkpoint, capture_rng,
                                    read_checkpoint, restore_rng, save_checkpoint)
from mmlab.train.checkpoint_checks import check_rng_state
from mmlab.train.state import TrainState

__all__ = ["Checkpointer"]


class Checkpointer(Callback):
    """Save `fit`'s state to `path` every `every` steps, at the end and on Ctrl-C; resume from it.

    Args:
        path: the checkpoint file.
        every: steps between saves (None: only at the end and on Ctrl-C).
        resume: continue from `path` when it exists (a finished run returns at once).
        run_key: what fixes the data order (seed, batch size, drop_last); a resume with another
            key warns that the run will not match the original.
        loss_module: fit's separate loss module, whose state is saved too, or None.
    """

    def __init__(self, path: str | Path, every: int | None, resume: bool,
                 run_key: dict[str, Any], loss_module: nn.Module | None = None) -> None:
        self.path, self.every, self.resume = Path(path), every, resume
        self.run_key, self.loss_module = run_key, loss_module
        self.start_step = 0
        self.resumed = False
        self._rng_before: dict[str, Any] | None = None
        self._saved: tuple[int, int] | None = None  # (step, evaluations) of the last save

    # ----- resume -----
    def restore(self, state: TrainState) -> bool:
        """Resume from `path` if asked and it exists: fit calls this before any `on_start`.
        Everything is checked before the model, optimizer or loss module is touched.
        Returns whether the run resumed."""
        if not (self.resume and self.path.exists()):
            return False
        payload = read_checkpoint(self.path)  # verified; nothing touched yet
        fit_state = self._fit_state(payload)
        if self.loss_module is not None and fit_state["loss_state"] is not None:
            self._check_loss_state(fit_state["loss_state"])
        apply_checkpoint(self.path, payload, state.model, state.optimizer)
        if self.loss_module is not None and fit_state["loss_state"] is not None:
            self.loss_module.load_state_dict(fit_state["loss_state"])
        if fit_state["config"] != self.run_key:
            warnings.warn(f"Resuming '{self.path}' saved with {fit_state['config']} but called "
                          f"with {self.run_key}: the data order differs from the original run, "
                          "so the resumed run will not match it exactly.", stacklevel=2)
        state.restore(payload["history"])
        state.step, state.epoch = payload["step"], fit_state["epoch"]
        state.batch_in_epoch = fit_state["batch_in_epoch"]
        state.shuffle_state = fit_state["shuffle_state"]
        restore_rng(payload["rng"])
        self.start_step, self.resumed = state.step, True
        return True

    def _fit_state(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The training state inside a checkpoint, checked before anything is loaded."""
        fit_state = (payload.get("extra") or {}).get("fit")
        if fit_state is None:
            raise CheckpointError(f"'{self.path}' has no training state (saved outside fit); "
                                  "nothing was loaded. Pass resume=False to start over, or load "
                                  "it with load_checkpoint.")
        expected = {"epoch": int, "batch_in_epoch": int, "config": Mapping,
                    "shuffle_state": (Tensor, type(None)), "loss_state": (Mapping, type(None))}
        bad = [k for k, kind in expected.items()
               if not isinstance(fit_state.get(k), kind) or isinstance(fit_state.get(k), bool)]
        if bad or payload.get("rng") is None or payload["history"] is None:
            raise CheckpointError(f"'{self.path}' has a damaged training state ({bad or 'rng'}); "
                                  "nothing was loaded. Pass resume=False to start over.")
        check_rng_state(self.path, payload["rng"], fit_state["shuffle_state"])
        return dict(fit_state)

    def _check_loss_state(self, state: Mapping[str, Any]) -> None:
        own = self.loss_module.state_dict()
        if set(own) != set(state) or any(isinstance(state[k], Tensor)
                                         and state[k].shape != v.shape for k, v in own.items()):
            raise CheckpointError(f"'{self.path}': the saved loss state {sorted(state)} does not "
                                  f"fit this loss ({sorted(own)}); nothing was loaded.")

    # ----- saving -----
    def save(self, state: TrainState, rng: dict[str, Any] | None = None) -> None:
        """Write the state of the last complete step (with `rng`, default: the RNG now)."""
        history = state.history
        history.seconds = state.elapsed()
        extra = {"fit": {"epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch,
                         "shuffle_state": state.shuffle_state, "config": self.run_key,
                         "loss_state": None if self.loss_module is None
                         else self.loss_module.state_dict()}}
        save_checkpoint(self.path, state.model, state.optimizer, step=state.step,
                        history=history, extra=extra, rng=rng)
        self._saved = (state.step, len(history.evals))

    def on_step_start(self, state: TrainState) -> None:  # noqa: D102
        self._rng_before = capture_rng()  # the RNG a resumed run needs to redo this step

    def on_step(self, state: TrainState) -> None:  # noqa: D102
        if self.every is not None and state.step % self.every == 0:
            self.save(state)

    def on_end(self, state: TrainState) -> None:  # noqa: D102
        if self._saved == (state.step, len(state.history.evals)):
            return  # a periodic save of this very step, and no evaluation since
        if state.step != self.start_step or not self.path.exists():
            self.save(state)

    def on_interrupt(self, state: TrainState) -> None:  # noqa: D102
        if state.phase == "start":  # resuming or not begun: the file on disk is what it was
            return
        self.save(state, self._rng_before if state.phase == "forward" else None)

