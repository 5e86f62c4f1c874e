"""`TrainConfig`: every setting of a `fit` run in one dataclass (as nanoGPT's `GPTConfig`).

`fit(model, data, TrainConfig(steps=500, lr=2e-3))` and `fit(model, data, steps=500, lr=2e-3)`
are the same call: keyword options build (or override) the config. Checking the values happens
once, here, when the config is made.
"""

from __future__ import annotations

import math

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmlab import _checks

__all__ = ["TrainConfig", "PRECISIONS", "OPTIMIZERS", "READ_EVERY_ACCELERATOR"]

PRECISIONS = ("auto", "fp32", "bf16")
OPTIMIZERS = ("adamw", "adam", "sgd")
READ_EVERY_ACCELERATOR = 25  # steps between host reads of the logged values on a GPU


@dataclass
class TrainConfig:
    """The settings of one `fit` run.

    Attributes:
        steps: number of optimizer steps (epochs repeat as needed); give exactly one of
            steps/epochs.
        epochs: number of passes over the data.
        batch_size: rows per batch for datasets (capped at the dataset size); ignored for
            iterables such as a DataLoader.
        lr: learning rate (constant).
        weight_decay: decoupled weight decay on weight matrices (not biases, norms, logit_scale).
        optimizer: "adamw", "adam" or "sgd" (momentum `SGD_MOMENTUM`).
        precision: "auto" (bf16 autocast on CUDA, fp32 elsewhere), "fp32" or "bf16".
        device: "auto" (`mmlab.get_device()`), a device string or a `torch.device`.
        seed: seeds torch at the start and fixes the data order of every epoch.
        clip_grad_norm: clip the total gradient norm to this value (None: no clipping).
        drop_last: drop a ragged last batch of each epoch (datasets only; contrastive losses are
            noisy on tiny batches).
        eval_every: steps between evaluations (needs `eval_data`); there is always one at the end.
        checkpoint: file to save to (every `checkpoint_every` steps, at the end and on Ctrl-C) and
            to resume from.
        checkpoint_every: steps between checkpoints.
        resume: if `checkpoint` exists, continue from it (a finished run returns at once).
        progress: show a tqdm progress bar with the loss and τ.
        check_finite: stop with FloatingPointError on a NaN/Inf loss, naming its step.
        read_every: steps between host reads of the logged loss, τ and terms (and the finite
            check). None: every step on the CPU, where a read costs nothing, and every
            `READ_EVERY_ACCELERATOR` steps on a GPU, so the loop runs ahead of the device.
        diagnose: log each tower's gradient norm and print `mmlab.train.diagnose`'s findings at
            the end (loss at log B, τ at its clamp, collapse, a tower not learning).
    """

    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    precision: str = "auto"
    device: Any = "auto"
    seed: int = 0
    clip_grad_norm: float | None = None
    drop_last: bool = True
    eval_every: int | None = None
    checkpoint: str | Path | None = None
    checkpoint_every: int | None = None
    resume: bool = True
    progress: bool = True
    check_finite: bool = True
    read_every: int | None = None
    diagnose: bool = False

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("Pass exactly one of `epochs` and `steps` (got "
                             f"epochs={self.epochs!r}, steps={self.steps!r}); e.g. "
                             "fit(model, data, steps=500).")
        for name in ("epochs", "steps", "eval_every", "checkpoint_every", "read_every"):
            if getattr(self, name) is not None:
                _checks.check_int(name, getattr(self, name))
        _checks.check_int("batch_size", self.batch_size)
        _checks.check_positive("lr", self.lr, hint="Typical Adam learning rates are 1e-4 to 1e-2.")
        wd = self.weight_decay
        if isinstance(wd, bool) or not isinstance(wd, (int, float)) or not 0 <= wd < math.inf:
            raise ValueError(f"`weight_decay` must be a finite number ≥ 0, got {wd!r}.")
        _checks.check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _checks.check_choice("precision", self.precision, PRECISIONS)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"`seed` must be an int, got {type(self.seed).__name__}.")
        if self.clip_grad_norm is not None:
            _checks.check_positive("clip_grad_norm", self.clip_grad_norm)
        if self.checkpoint_every is not None and self.checkpoint is None:
            raise ValueError("`checkpoint_every` is set but `checkpoint` is None; "
                             "pass checkpoint='run.pt'.")
        for name in ("drop_last", "resume", "progress", "check_finite", "diagnose"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"`{name}` must be True or False, got {getattr(self, name)!r}.")

    @classmethod
    def merge(cls, config: TrainConfig | None, options: dict[str, Any]) -> TrainConfig:
        """`config` with `options` (field name → value) replacing its fields."""
        if config is not None and not isinstance(config, TrainConfig):
            raise TypeError(f"`config` must be a TrainConfig or None, got {type(config).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"fit() got unknown options {unknown}; TrainConfig fields are "
                            f"{sorted(names)}.")
        if config is None:
            return cls(**options)
        if "epochs" in options and "steps" not in options:
            options = {**options, "steps": None}
        if "steps" in options and "epochs" not in options:
            options = {**options, "epochs": None}
        return dataclasses.replace(config, **options)
