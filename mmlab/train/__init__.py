"""Training: the `fit` loop, its config, `History`, callbacks, evaluation and checkpoints.

One loop for every model in the course (Radford et al., 2021, CLIP: a learnable
`logit_scale = log(1/τ)` is clamped to `MAX_LOGIT_SCALE = log(100)` after every optimizer step).
Runs that are interrupted and resumed from a checkpoint give the same history, bit for bit on CPU.

- `loop`: `fit(model, data, steps=...)` → `History` (read this file first: the loop is one page).
- `config`: `TrainConfig`, every setting of a run.
- `state`: `TrainState` (what callbacks see; logged values stay on the device until read).
- `history`: `History` (per-step loss, τ, loss terms, evaluations).
- `callbacks`: `Callback` (the hooks) and `EmbeddingSnapshots`; the built-in callbacks:
  `Evaluator` (evaluate.py), `Checkpointer` (checkpointer.py), `ProgressBar` (progress.py);
  `FiniteCheck` (finite.py) runs on each read of the logs.
- `encode`: `encode_dataset`, the one loop that embeds a dataset in eval mode.
- `evaluate`: `retrieval_eval` (fit's default `eval_fn`: R@1, modality gap, uniformity).
- `checkpoint`: `save_checkpoint`, `load_checkpoint`, `read_checkpoint`, `load_or_train`,
  `CheckpointError` (atomic, SHA-256-checked files loaded with weights_only=True).
- `diagnose`: `diagnose(history, model, data, grad_norms=...)` → findings with a stable `code`
  (loss at log B, τ at its clamp, collapse, a tower not learning), `GradientNorms`, `report`.
- `optim`, `data_order`, `interrupts`: the optimiser and τ clamp, the batch order, Ctrl-C that
  waits for the end of an update.
- `memory`: `peak_memory_bytes(fn, device)`, the peak tensor memory of one call (CPU and CUDA).
"""

from __future__ import annotations

from mmlab.train.callbacks import Callback, EmbeddingSnapshots
from mmlab.train.checkpoint import (CheckpointError, load_checkpoint, load_or_train,
                                    read_checkpoint, save_checkpoint)
from mmlab.train.checkpointer import Checkpointer
from mmlab.train.config import OPTIMIZERS, PRECISIONS, TrainConfig
from mmlab.train.diagnose import CODES, Finding, GradientNorms, diagnose, report
from mmlab.train.encode import encode_dataset
from mmlab.train.evaluate import Evaluator, retrieval_eval
from mmlab.train.finite import FiniteCheck
from mmlab.train.history import History
from mmlab.train.loop import MAX_LOGIT_SCALE, TrainedModelWarning, fit
from mmlab.train.memory import MIB, peak_memory_bytes
from mmlab.train.progress import ProgressBar
from mmlab.train.state import TrainState
from mmlab.utils import move_to

__all__ = ["fit", "TrainConfig", "History", "TrainState", "Callback", "EmbeddingSnapshots",
           "Evaluator", "Checkpointer", "ProgressBar", "FiniteCheck", "TrainedModelWarning",
           "encode_dataset", "retrieval_eval", "diagnose", "Finding", "GradientNorms", "report",
           "CODES", "move_to", "save_checkpoint", "load_checkpoint", "read_checkpoint",
           "load_or_train", "CheckpointError", "MAX_LOGIT_SCALE", "PRECISIONS", "OPTIMIZERS",
           "peak_memory_bytes", "MIB"]
