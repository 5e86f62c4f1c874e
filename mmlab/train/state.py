"""`TrainState`: what the loop and its callbacks share, and the log that defers host reads.

Each step's loss, τ and loss terms are kept as device tensors. They are read by the host in one
batch (one `tolist()`, a single device sync) every `read_every` steps, and whenever someone
asks: `state.history`, `state.loss` and `state.temperature` read what is pending. A callback
that never looks at values therefore costs no sync, and on a GPU the loop runs ahead of the
device. The finite-loss check runs on the values read: it names the first step whose loss was
NaN or ±inf.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mmlab.train.history import History

__all__ = ["TrainState", "StepRecord", "first_non_finite"]


@dataclass
class StepRecord:
    """One step's logged values: tensors until the host reads them, then floats."""

    step: int
    epoch: int
    loss: Any  # 0-d tensor
    terms: dict[str, Any]
    temperature: Any = None  # what TemperatureProbe.read returned, after the clamp
    complete: bool = False  # the step's update and clamp are done (τ is known)
    loss_value: float | None = None  # set when read
    term_values: list[float] = field(default_factory=list)
    tau_read: bool = False
    tau_value: float | None = None


class TrainState:
    """What a callback sees. Set `stop = True` in a callback to end training after this step.

    Attributes:
        model, optimizer, config: the run's module, optimiser and `TrainConfig`.
        step: optimizer steps done (1-based after the first step); epoch: the current epoch;
        batch_in_epoch: batches of this epoch done; shuffle_state: the generator state that
            fixes this epoch's order (None: derive it from (seed, epoch)).
        phase: "start", "forward" (forward and backward of the next step), "step" (a step is
            complete), "end" (after the last step).
        metrics: the last evaluation's dict; lr: the learning rate; stop: set to end training.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: Any,
                 probe: Any = None) -> None:
        self.model, self.optimizer, self.config = model, optimizer, config
        self.lr = config.lr
        self.step = self.epoch = self.batch_in_epoch = 0
        self.shuffle_state: Tensor | None = None
        self.phase = "start"
        self.metrics: dict[str, float] | None = None
        self.stop = False
        self.callbacks: list[Any] = []
        self.probe = probe
        self._history = History()
        self._pending: list[StepRecord] = []
        self.reads = 0  # how many times values were read back from the device
        self.on_read: Any = None  # called with the records just read (fit's FiniteCheck)
        self.started = time.perf_counter()
        self.seconds_before = 0.0  # training time of the sessions before a resume

    # ----- logging (device tensors now, floats later) -----
    def record_loss(self, loss: Tensor, terms: dict[str, Any]) -> None:
        """Log the loss and terms of the step in progress (before its backward)."""
        detached = {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in terms.items()}
        self._pending.append(StepRecord(self.step + 1, self.epoch, loss.detach(), detached))

    def record_temperature(self) -> None:
        """Log τ after the step's update and clamp; the step's record is complete."""
        rec = self._pending[-1]
        rec.temperature = self.probe.read() if self.probe is not None else None
        rec.complete = True

    def read_values(self) -> list[StepRecord]:
        """Read every pending value in one host transfer; return the records whose loss was
        read just now (in step order). Complete records move into the History."""
        todo: list[tuple[StepRecord, str]] = []
        flat: list[Any] = []
        for r in self._pending:
            if r.loss_value is None:
                todo.append((r, "loss"))
                flat += [r.loss, *r.terms.values()]
            if r.complete and not r.tau_read:
                todo.append((r, "tau"))
                flat.append(0.0 if r.temperature is None else r.temperature)
        if flat:
            self.reads += 1
            values = iter(_to_floats(flat))
            for r, what in todo:
                if what == "loss":
                    r.loss_value = next(values)
                    r.term_values = [next(values) for _ in r.terms]
                else:
                    tau = next(values)
                    r.tau_read = True
                    r.tau_value = None if r.temperature is None else self.probe.value(tau)
        h = self._history
        while self._pending and self._pending[0].tau_read:  # read and complete: into History
            r = self._pending.pop(0)
            h.step.append(r.step)
            h.epoch.append(r.epoch)
            h.loss.append(r.loss_value)
            h.temperature.append(r.tau_value)
            h.terms.append(dict(zip(r.terms, r.term_values)))
        fresh = [r for r, what in todo if what == "loss"]
        if self.on_read is not None and fresh:
            self.on_read(self, fresh)
        return fresh

    def elapsed(self) -> float:
        """Seconds of training, summed over resumed sessions."""
        return self.seconds_before + time.perf_counter() - self.started

    @property
    def history(self) -> History:
        """The History up to the last complete step (reads pending values: a sync on a GPU)."""
        if any(r.complete for r in self._pending):
            self.read_values()
        return self._history

    @property
    def history_read(self) -> History:
        """The History of the steps read so far, without reading anything new."""
        return self._history

    @property
    def loss(self) -> float | None:
        """The loss of the last complete step, as a float (reads pending values)."""
        h = self.history
        return h.loss[-1] if h.loss else None

    @property
    def temperature(self) -> float | None:
        """τ after the last complete step, as a float (reads pending values)."""
        h = self.history
        return h.temperature[-1] if h.temperature else None

    def restore(self, history: History) -> None:
        """Start from a resumed run's history (nothing pending)."""
        self._history, self._pending = history, []
        self.seconds_before = history.seconds

    def emit(self, hook: str) -> None:
        """Call `hook` (e.g. "on_eval") on every callback that has it."""
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if callable(fn):
                fn(self)


def _to_floats(values: list[Any]) -> list[float]:
    """Python floats from a list of 0-d tensors and numbers, with one device transfer."""
    tensors = [v for v in values if isinstance(v, Tensor)]
    if not tensors:
        return [float(v) for v in values]
    dtype = torch.float32 if tensors[0].device.type == "mps" else torch.float64  # MPS: no f64
    read = iter(torch.stack([t.reshape(()).to(dtype) for t in tensors]).tolist())
    return [next(read) if isinstance(v, Tensor) else float(v) for v in values]


def first_non_finite(records: list[StepRecord]) -> StepRecord | None:
    """The first record whose loss is NaN or ±inf, or None."""
    return next((r for r in records if r.loss_value is not None
                 and not math.isfinite(r.loss_value)), None)
