"""What `fit` records: `History`.

`History` holds one entry per optimizer step (loss, τ, the loss's named terms) plus the
evaluations, and round-trips through a plain dict for checkpoints (`to_dict` / `from_dict`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["History"]


@dataclass
class History:
    """What `fit` logged: one entry per optimizer step, plus the evaluations.

    Attributes:
        step: global step numbers, 1-based (step k = after the k-th optimizer step).
        epoch: the epoch (0-based) of each step.
        loss: the training loss of each step's batch, as a float.
        temperature: τ at each step (after the clamp), or None if the model has none.
        terms: the loss's named parts per step (e.g. {"a_to_b": ..., "b_to_a": ...}).
        evals: one dict per evaluation: {"step": k, <metric>: value, ...}.
        seconds: wall-clock seconds spent training (summed over resumed sessions; not compared
            by `==`, so two runs with equal logs compare equal).
        batch_size: rows of the first batch (B, for log B: the loss at chance), or None.
    """

    step: list[int] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    temperature: list[float | None] = field(default_factory=list)
    terms: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    seconds: float = field(default=0.0, compare=False)
    batch_size: int | None = None

    def __len__(self) -> int:
        return len(self.step)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (lists, dicts, floats) for checkpoints and JSON."""
        return {"step": list(self.step), "epoch": list(self.epoch), "loss": list(self.loss),
                "temperature": list(self.temperature), "terms": copy.deepcopy(self.terms),
                "evals": copy.deepcopy(self.evals), "seconds": float(self.seconds),
                "batch_size": self.batch_size}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> History:
        """Rebuild a History from `to_dict()` output."""
        if not isinstance(d, Mapping):
            raise TypeError(f"`d` must be a dict from History.to_dict(), got {type(d).__name__}.")
        keys = ("step", "epoch", "loss", "temperature", "terms", "evals")
        missing = [k for k in keys if k not in d]
        if missing:
            raise ValueError(f"`d` is missing History fields {missing}; it has {sorted(d)}.")
        return cls(**{k: copy.deepcopy(list(d[k])) for k in keys},
                   seconds=float(d.get("seconds", 0.0)), batch_size=d.get("batch_size"))

    def as_frame(self, evals: bool = False):
        """A pandas DataFrame: one row per step (columns step, epoch, loss, temperature and one per
        loss term), or, with `evals=True`, one row per evaluation."""
        import pandas as pd

        if evals:
            return pd.DataFrame(self.evals)
        frame = pd.DataFrame({"step": self.step, "epoch": self.epoch, "loss": self.loss,
                              "temperature": [math.nan if t is None else t
                                              for t in self.temperature]})
        terms = pd.DataFrame(self.terms, index=frame.index) if self.terms else None
        return frame if terms is None or terms.empty else pd.concat([frame, terms], axis=1)
