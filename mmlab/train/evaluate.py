"""Evaluation helpers for `fit`: `move_to` (batches onto a device) and `retrieval_eval`.

`retrieval_eval` is `fit`'s default `eval_fn`: it embeds the evaluation set with `model.encode`
and reports cross-modal R@1 (Radford et al., 2021, CLIP), the modality gap (Liang et al., 2022,
"Mind the Gap") and the uniformity of each modality (Wang & Isola, 2020).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["move_to", "retrieval_eval"]


def move_to(batch: Any, device: torch.device | str) -> Any:
    """Move every tensor inside a batch (dicts, nested dicts, lists, tuples) to `device`.

    Strings and other objects are returned untouched (`"text"` stays a `list[str]`).

    Args:
        batch: a batch dict or any nesting of containers and tensors.
        device: the target device.
    Returns:
        The same structure with tensors on `device`.
    """
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and any(isinstance(v, (Tensor, Mapping, list, tuple)) for v in batch):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def _model_device(model: nn.Module) -> torch.device:
    p = next(itertools.chain(model.parameters(), model.buffers()), None)
    return p.device if p is not None else torch.device("cpu")


def _is_dataset(data: Any) -> bool:
    """A `mmlab.data.MultimodalDataset` (or anything with its `.to` / `.batches` interface)."""
    return callable(getattr(data, "batches", None)) and callable(getattr(data, "to", None))


def retrieval_eval(model: nn.Module, data: Any, *, batch_size: int = 256) -> dict[str, float]:
    """Default `eval_fn`: embed the whole eval set with `model.encode` and score it.

    For every pair of modalities (m1, m2): R@1 in both directions (with MRR and median rank, from
    `mmlab.metrics.retrieval_report`) and the modality gap (Liang et al., 2022); for every modality
    the uniformity (Wang & Isola, 2020). The model is put in eval mode and restored afterwards.

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
    if _is_dataset(data):
        batches: Iterable[Any] = data.batches(batch_size, shuffle=False)
    elif isinstance(data, Mapping):
        batches = [data]
    else:
        batches = data
    device, was_training = _model_device(model), model.training
    parts: dict[str, list[Tensor]] = {}
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                for m, z in model.encode(move_to(batch, device)).items():
                    parts.setdefault(m, []).append(z.float())
    finally:
        model.train(was_training)
    emb = {m: torch.cat(zs) for m, zs in parts.items()}  # each (N, D)
    report: dict[str, float] = {}
    for m1, m2 in itertools.combinations(emb, 2):
        report.update(retrieval_report(emb[m1], emb[m2], ks=(1,), names=(m1, m2)))
        report[f"gap {m1}-{m2}"] = float(modality_gap(emb[m1], emb[m2]))
    for m, z in emb.items():
        report[f"uniformity {m}"] = float(uniformity(z))
    return report

