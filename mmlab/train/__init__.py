"""Training: the `fit` loop, its `History`, callbacks, evaluation and checkpoints.

One loop for every model in the course (Radford et al., 2021, CLIP: a learnable
`logit_scale = log(1/τ)` is clamped to `MAX_LOGIT_SCALE = log(100)` after every optimizer step).
Runs that are interrupted and resumed from a checkpoint give the same history, bit for bit on CPU.

- `loop`: `fit(model, data, steps=...)` → `History`.
- `history`: `History` (per-step loss, τ, loss terms, evaluations) and `TrainState` (what callbacks see).
- `callbacks`: `Callback` (on_start / on_step / on_eval / on_end), `LivePlot` (loss and τ while
  training), `EmbeddingSnapshots` (embeddings of a fixed batch and the modality gap every k steps).
- `diagnose`: `diagnose(history, model, data, grad_norms=...)` → findings with a stable `code`
  (loss at log B, τ at its clamp, collapse, a tower not learning), `GradientNorms` (the per-tower
  gradient log it reads) and `report`; `fit(..., diagnose=True)` prints them at the end.
- `evaluate`: `retrieval_eval` (fit's default `eval_fn`: R@1, modality gap, uniformity) and `move_to`.
- `memory`: `peak_memory_bytes(fn, device)`, the peak tensor memory of one call (CPU and CUDA).
- re-exported from `mmlab.checkpoint`: `save_checkpoint`, `load_checkpoint`, `load_or_train`,
  `CheckpointError`.
"""

from __future__ import annotations

from mmlab.checkpoint import CheckpointError, load_checkpoint, load_or_train, save_checkpoint
from mmlab.train.callbacks import Callback, EmbeddingSnapshots, LivePlot
from mmlab.train.diagnose import CODES, Finding, GradientNorms, diagnose, report
from mmlab.train.evaluate import move_to, retrieval_eval
from mmlab.train.history import History, TrainState
from mmlab.train.loop import MAX_LOGIT_SCALE, OPTIMIZERS, PRECISIONS, fit
from mmlab.train.memory import MIB, peak_memory_bytes

__all__ = ["fit", "History", "Callback", "TrainState", "LivePlot", "EmbeddingSnapshots", "retrieval_eval",
           "diagnose", "Finding", "GradientNorms", "report", "CODES", "move_to", "save_checkpoint", "load_checkpoint", "load_or_train", "CheckpointError",
           "MAX_LOGIT_SCALE", "PRECISIONS", "OPTIMIZERS", "peak_memory_bytes", "MIB"]
