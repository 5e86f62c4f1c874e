"""`encode_dataset`: the one loop that embeds a dataset in eval mode (used by evaluation,
`EmbeddingSnapshots` and `mmlab.viz`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab.utils import model_device, move_to

__all__ = ["encode_dataset"]


def encode_dataset(model: nn.Module, data: Any, batch_size: int = 256, *,
                   normalize: bool = False, cpu: bool = False) -> dict[str, Tensor]:
    """Embed every row of `data` with `model.encode`, in eval mode, without gradients.

    The model's train/eval mode is restored afterwards, even on an error.

    Args:
        model: anything with `encode(batch) -> dict[str, (B, D) Tensor]` (a ContrastiveModel);
            an nn.Module is put in eval mode and its device receives the batches.
        data: a dataset (`len` and `batch(idx)`, e.g. a MultimodalDataset: read in order,
            `batch_size` rows at a time), one batch dict, or an iterable of batch dicts.
        batch_size: rows per forward pass for a dataset.
        normalize: L2-normalise each row (â = a / ‖a‖) after the cast to float32.
        cpu: move the embeddings to the CPU.
    Returns:
        modality → float32 (N, D), rows in the order of `data`.
    """
    if not callable(getattr(model, "encode", None)):
        raise TypeError(f"encode_dataset needs `model.encode(batch) -> dict[str, Tensor]`; "
                        f"{type(model).__name__} has no `encode`.")
    if callable(getattr(data, "batch", None)) and hasattr(data, "__len__"):  # a dataset
        n = len(data)
        batches: Iterable[Any] = (data.batch(torch.arange(s, min(s + batch_size, n)))
                                  for s in range(0, n, batch_size))
    elif isinstance(data, Mapping):
        batches = [data]
    else:
        batches = data
    is_module = isinstance(model, nn.Module)
    device = model_device(model) if is_module else torch.device("cpu")
    was_training = model.training if is_module else False
    parts: dict[str, list[Tensor]] = {}
    if is_module:
        model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                for m, z in model.encode(move_to(batch, device)).items():
                    z = F.normalize(z.float(), dim=-1) if normalize else z.float()  # (B, D)
                    parts.setdefault(m, []).append(z.cpu() if cpu else z)
    finally:
        if is_module:
            model.train(was_training)
    return {m: torch.cat(zs) for m, zs in parts.items()}  # each (N, D)
