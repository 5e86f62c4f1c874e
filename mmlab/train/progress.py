"""`ProgressBar`: a tqdm bar for `fit`, with the loss and τ as of the last read of the logs."""

from __future__ import annotations

from typing import Any

from mmlab.train.callbacks import Callback
from mmlab.train.state import TrainState

__all__ = ["ProgressBar"]


class ProgressBar(Callback):
    """One tick per step; the loss and τ shown are those of the last values read from the
    device (every `read_every` steps), so the bar never forces a device sync.

    Args:
        total: the number of steps of the run, or None when unknown (an iterable without len).
    """

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.bar: Any = None
        self._reads = -1

    def on_start(self, state: TrainState) -> None:  # noqa: D102
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, initial=state.step, desc="fit", unit="step",
                        dynamic_ncols=True)

    def on_step(self, state: TrainState) -> None:  # noqa: D102
        self.bar.update(1)
        history = state.history_read
        if state.reads != self._reads and history.loss:
            self._reads = state.reads
            tau = history.temperature[-1]
            self.bar.set_postfix(loss=f"{history.loss[-1]:.4f}",
                                 τ="–" if tau is None else f"{tau:.4f}", refresh=False)

    def close(self) -> None:
        """Close the bar (idempotent)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_end(self, state: TrainState) -> None:  # noqa: D102
        self.close()

    def on_interrupt(self, state: TrainState) -> None:  # noqa: D102
        self.close()
