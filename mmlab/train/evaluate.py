"""Evaluation: `retrieval_eval` (fit's default `eval_fn`) and the `Evaluator` callback that runs
an `eval_fn` during training.

`retrieval_eval` embeds the evaluation set with `model.encode` and reports cross-modal R@1
(Radford et al., 2021, CLIP), the modality gap (Liang et al., 2022, "Mind the Gap") and the
uniformity of each modality (Wang & Isola, 2020).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from mmlab.train.callbacks import Callback
from mmlab.train.encode import encode_dataset
from mmlab.train.state import TrainState
from mmlab.utils import model_device

__all__ = ["retrieval_eval", "Evaluator"]


def retrieval_eval(model: nn.Module, data: Any, *, batch_size: int = 256) -> dict[str, float]:
    """Default `eval_fn`: embed the whole eval set with `model.encode` and score it.

    For every pair of modalities (m1, m2): R@1 in both directions (with MRR and median rank, from
    `mmlab.metrics.retrieval_report`) and the modality gap (Liang et al., 2022); for every modality
    the uniformity (Wang & Isola, 2020).

    Args:
        model: a module with `encode(batch) -> dict[str, Tensor]` of (B, D) embeddings.
        data: a MultimodalDataset, one batch dict, or an iterable of batch dicts.
        batch_size: rows per forward pass when `data` is a dataset.
    Returns:
        A flat dict of floats, e.g. {"image→text R@1": 0.8, ..., "gap image-text": 0.3,
        "uniformity image": -2.1}.
    """
    from mmlab.metrics import modality_gap, retrieval_report, uniformity

    if not callable(getattr(model, "encode", None)):
        raise TypeError(f"retrieval_eval needs `model.encode(batch) -> dict[str, Tensor]`; "
                        f"{type(model).__name__} has no `encode`. Pass your own `eval_fn`.")
    if data is None:
        raise ValueError("`eval_data` is None; pass the evaluation dataset.")
    emb = encode_dataset(model, data, batch_size)
    report: dict[str, float] = {}
    for m1, m2 in itertools.combinations(emb, 2):
        report.update(retrieval_report(emb[m1], emb[m2], ks=(1,), names=(m1, m2)))
        report[f"gap {m1}-{m2}"] = float(modality_gap(emb[m1], emb[m2]))
    for m, z in emb.items():
        report[f"uniformity {m}"] = float(uniformity(z))
    return report


class Evaluator(Callback):
    """Run `eval_fn(model, eval_data)` every `every` steps and once at the end.

    Each result goes into `history.evals` as {"step": k, <metric>: value, ...}, then every
    callback's `on_eval` runs. The evaluation runs under `torch.random.fork_rng`, so it never
    changes the training RNG stream, and under the run's autocast. A run resumed after an
    interrupt inside an evaluation runs that evaluation first, so its history matches an
    uninterrupted run.
    """

    def __init__(self, eval_fn: Callable[[nn.Module, Any], Mapping[str, float]], eval_data: Any,
                 every: int | None, autocast: Callable[[], Any] = contextlib.nullcontext) -> None:
        self.eval_fn, self.eval_data, self.every, self.autocast = (
            eval_fn, eval_data, every, autocast)

    def _done(self, state: TrainState) -> bool:
        evals = state.history.evals
        return bool(evals) and evals[-1]["step"] == state.step

    def evaluate(self, state: TrainState) -> None:
        """Evaluate now, log the result and call every callback's `on_eval`."""
        history = state.history  # reads pending values first: the eval comes after its step
        device = model_device(state.model)
        devices = [device.index or 0] if device.type == "cuda" else []
        was_training = state.model.training
        with torch.random.fork_rng(devices=devices), self.autocast():
            metrics = self.eval_fn(state.model, self.eval_data)
        state.model.train(was_training)
        if not isinstance(metrics, Mapping):
            raise TypeError("`eval_fn` must return a dict of floats, got "
                            f"{type(metrics).__name__}.")
        history.evals.append({"step": state.step, **{k: float(v) for k, v in metrics.items()}})
        state.metrics = dict(history.evals[-1])
        state.emit("on_eval")

    def on_start(self, state: TrainState) -> None:  # noqa: D102
        due = self.every is not None and state.step > 0 and state.step % self.every == 0
        if due and not self._done(state):  # resumed from an interrupt inside this evaluation
            self.evaluate(state)

    def on_step(self, state: TrainState) -> None:  # noqa: D102
        if self.every is not None and state.step % self.every == 0:
            self.evaluate(state)

    def on_end(self, state: TrainState) -> None:  # noqa: D102
        if not self._done(state):
            self.evaluate(state)
