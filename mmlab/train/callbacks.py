"""Callbacks for `fit`: the `Callback` base class and `EmbeddingSnapshots`.

A callback is any object with some of the hooks below; `fit` calls them with its `TrainState`.
The built-in ones live next to what they do: `Evaluator` (evaluate.py), `Checkpointer`
(checkpointer.py), `ProgressBar` (progress.py); `mmlab.viz.LivePlot` draws while training.
`EmbeddingSnapshots` encodes one fixed batch every few steps and keeps the embeddings and the
modality gap ‖mean(â) − mean(b̂)‖ (Liang et al., 2022, "Mind the Gap"), so a notebook can animate
the shared space during training (`mmlab.viz.trajectory_figure(snaps.embeddings, snaps.steps)`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mmlab import _checks
from mmlab.train.encode import encode_dataset
from mmlab.train.state import TrainState
from mmlab.utils import is_dataset, model_device, move_to

__all__ = ["Callback", "EmbeddingSnapshots", "HOOKS"]

HOOKS = ("on_start", "on_step_start", "on_step", "on_eval", "on_end", "on_interrupt")


class Callback:
    """Base class for `fit` callbacks; override any of the hooks.

    - `on_start`: once, before the first step of a `fit` call (at `state.step` = 0, or the step
      a run resumes from);
    - `on_step_start`: before each step's forward pass;
    - `on_step`: after every optimizer step (the step is complete: `state.step` counts it);
    - `on_eval`: after every evaluation (`state.metrics`);
    - `on_end`: when training stops;
    - `on_interrupt`: on Ctrl-C, before `fit` re-raises it (`state.phase` says where it came).
    Reading `state.history`, `state.loss` or `state.temperature` reads the pending values from
    the device (a sync on a GPU); a callback that does not look at values costs none.
    """

    def on_start(self, state: TrainState) -> None:  # noqa: D102
        pass

    def on_step_start(self, state: TrainState) -> None:  # noqa: D102
        pass

    def on_step(self, state: TrainState) -> None:  # noqa: D102
        pass

    def on_eval(self, state: TrainState) -> None:  # noqa: D102
        pass

    def on_end(self, state: TrainState) -> None:  # noqa: D102
        pass

    def on_interrupt(self, state: TrainState) -> None:  # noqa: D102
        pass


def _as_batch(batch: Any) -> Mapping[str, Any]:
    """A batch dict, or every row of a dataset (anything with `.batch(idx)` and `len`) as one."""
    if isinstance(batch, Mapping):
        return batch
    if is_dataset(batch) and callable(getattr(batch, "batch", None)):
        return batch.batch(torch.arange(len(batch)))
    raise TypeError(f"`batch` must be a batch dict (modality → tensor) or a MultimodalDataset, "
                    f"got {type(batch).__name__}.")


class EmbeddingSnapshots(Callback):
    """Encode one fixed batch at the start and every `every` steps; keep embeddings and the gap.

    At each snapshot the model is put in eval mode, `model.encode(batch)` runs under `no_grad`
    (and under `torch.random.fork_rng`, so the training RNG stream is untouched), and the model's
    previous train/eval mode is restored. The snapshot keeps, per modality, the first `n_view`
    rows as CPU float32 `(n_view, D)` tensors, and the modality gap of `pair = (m1, m2)` computed on
    *all* rows of the batch (Liang et al., 2022):

        gap = ‖ (1/B) Σ_i ẑ^{m1}_i − (1/B) Σ_j ẑ^{m2}_j ‖   (`mmlab.metrics.modality_gap`).

    Snapshots are taken in `on_start` (step 0 of a fresh run, when `at_start=True`) and in
    `on_step` whenever `step % every == 0`; call `record(model, step)` to take one by hand.

    Attributes:
        steps: the training step of each snapshot (0 = before the first update).
        embeddings: one dict modality → `(n_view, D)` CPU float32 tensor per snapshot, ready for
            `mmlab.viz.trajectory_figure(snaps.embeddings, snaps.steps)`.
        gaps: the modality gap of `pair` at each snapshot (NaN when the model returns fewer
            than two modalities and no `pair` was given).
        pair: the two modalities of the gap (set from the first snapshot when not given).

    Args:
        batch: a batch dict (e.g. `val.batch(torch.arange(len(val)))`) or a dataset (all rows);
            it is moved to the model's device at each snapshot.
        every: steps between snapshots, an int ≥ 1.
        n_view: keep only the first `n_view` rows of each embedding (None: all rows).
        pair: the modalities of the gap; None takes the first two that `model.encode` returns.
        at_start: take a snapshot in `on_start`, before the first optimizer step.
    """

    def __init__(self, batch: Any, every: int, *, n_view: int | None = None,
                 pair: tuple[str, str] | None = None, at_start: bool = True) -> None:
        self.batch = _as_batch(batch)
        self.every = _checks.check_int("every", every)
        self.n_view = None if n_view is None else _checks.check_int("n_view", n_view)
        if pair is not None and (not isinstance(pair, (tuple, list)) or len(pair) != 2
                                 or not all(isinstance(m, str) for m in pair)
                                 or pair[0] == pair[1]):
            raise ValueError("`pair` must be two different modality names, e.g. ('image', 'text'); "
                             f"got {pair!r}.")
        self.pair: tuple[str, str] | None = None if pair is None else (pair[0], pair[1])
        self.at_start = bool(at_start)
        self.steps: list[int] = []
        self.embeddings: list[dict[str, Tensor]] = []
        self.gaps: list[float] = []
        self._moved: tuple[torch.device, Mapping[str, Any]] | None = None

    def _batch_on(self, device: torch.device) -> Mapping[str, Any]:
        if self._moved is None or self._moved[0] != device:
            self._moved = (device, move_to(self.batch, device))
        return self._moved[1]

    def record(self, model: nn.Module, step: int) -> None:
        """Take one snapshot of `model` and label it with `step`.

        Args:
            model: a module with `encode(batch) -> dict[str, Tensor]` of (B, D) embeddings.
            step: the training step to label it with, an int ≥ 0.
        """
        from mmlab.metrics import modality_gap

        if not callable(getattr(model, "encode", None)):
            raise TypeError(f"EmbeddingSnapshots needs `model.encode(batch) -> dict[str, Tensor]`; "
                            f"{type(model).__name__} has no `encode`.")
        _checks.check_int("step", step, minimum=0)
        device = model_device(model)
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            z = encode_dataset(model, self._batch_on(device), cpu=True)  # each (B, D)
        if self.pair is None and len(z) >= 2:
            first, second = list(z)[:2]
            self.pair = (first, second)
        if self.pair is not None:
            missing = [m for m in self.pair if m not in z]
            if missing:
                raise ValueError(f"`pair` {self.pair} names modalities {missing} that model.encode "
                                 f"did not return; it returned {sorted(z)}.")
            gap = float(modality_gap(z[self.pair[0]], z[self.pair[1]]))
        else:
            gap = math.nan
        self.steps.append(int(step))
        self.embeddings.append({m: (x if self.n_view is None else x[: self.n_view].clone())
                                for m, x in z.items()})
        self.gaps.append(gap)

    def on_start(self, state: TrainState) -> None:  # noqa: D102
        if self.at_start and (not self.steps or self.steps[-1] != state.step):
            self.record(state.model, state.step)

    def on_step(self, state: TrainState) -> None:  # noqa: D102
        if state.step % self.every == 0:
            self.record(state.model, state.step)
