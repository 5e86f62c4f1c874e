"""`MultimodalDataset`: paired modalities held as whole tensors, and the batch format.

A dataset is a dict of modalities (tensors with the sample on dim 0, or a list of strings
for text) plus labels, ground-truth factors and an optional `present` mask. Batches are made by
pure tensor indexing, so a small dataset can sit on the GPU (`ds.to(device)`) and a batch costs
one `index_select` per tensor. See docs/DESIGN.md, "The batch format".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mmlab._checks import check_int, check_modalities

PER_SAMPLE_META = ("extras", "sample")
PER_SAMPLE_LISTS = ("ids", "sources")
"""Top-level meta keys holding one entry per sample in a list (sliced by `subset`)."""


def _index_list(items: list[str], idx: Tensor) -> list[str]:
    return [items[i] for i in idx.tolist()]


def _as_index(name: str, idx: Any, n: int) -> Tensor:
    if isinstance(idx, range) or (isinstance(idx, Sequence) and not isinstance(idx, str)):
        idx = torch.as_tensor(list(idx), dtype=torch.int64)
    if not isinstance(idx, Tensor):
        raise TypeError(f"`{name}` must be a 1-D LongTensor (or a list of ints), "
                        f"got {type(idx).__name__}.")
    if idx.dtype == torch.bool:
        if idx.shape != (n,):
            raise ValueError(f"`{name}` is a boolean mask of shape {tuple(idx.shape)}; "
                             f"expected ({n},).")
        idx = idx.nonzero().squeeze(1)
    if idx.ndim != 1 or idx.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"`{name}` must be a 1-D integer tensor, got shape {tuple(idx.shape)} "
                         f"and dtype {idx.dtype}.")
    if idx.numel() and idx.device.type == "cpu" and (int(idx.min()) < -n or int(idx.max()) >= n):
        raise ValueError(f"`{name}` has values in [{int(idx.min())}, {int(idx.max())}], "
                         f"outside the dataset's {n} samples (valid: 0..{n - 1}).")
    return idx.long() % n if idx.numel() else idx.long()


class MultimodalDataset:
    """Paired samples of several modalities, held as whole tensors.

    Args:
        modalities: `{name: tensor (N, ...) or list[str] of length N}`, e.g. image (N, 3, H, W),
            audio (N, T), text list[str].
        label: int64 `(N,)` class ids, or None.
        factors: `{name: int64 (N,)}` ground-truth factors, or None.
        present: `{modality: bool (N,)}` masks; a missing key means "all present".
        classes: class names, `classes[label]`.
        meta: anything else (voice names, templates, ...). Four keys are per-sample and are
            sliced by `subset`: `meta["extras"]`, a dict of tensors (N, ...) that every batch
            also returns under their own key (e.g. shapes' `"bbox"`); `meta["sample"]`, a
            dict of tensors (N, ...) or lists of length N kept for inspection (voice ids, word
            ids, speed factors, `from_folder`'s pair ids); `meta["ids"]`, a list of N sample ids
            (`from_folder`); and `meta["sources"]`, a list of N source file names (`digits` with
            real speech). Their lengths must be N.
    """

    def __init__(self, modalities: Mapping[str, Tensor | list[str]], label: Tensor | None = None,
                 factors: Mapping[str, Tensor] | None = None,
                 present: Mapping[str, Tensor] | None = None,
                 classes: Sequence[str] | None = None,
                 meta: Mapping[str, Any] | None = None) -> None:
        check_modalities("modalities", modalities)
        if not modalities:
            raise ValueError("`modalities` is empty; pass at least one, e.g. {'image': images}.")
        sizes = {k: (len(v) if isinstance(v, list)
                     else (v.shape[0] if isinstance(v, Tensor) and v.ndim else None))
                 for k, v in modalities.items()}
        for k, v in modalities.items():
            if (not (isinstance(v, Tensor) and v.ndim >= 1)
                    and not (isinstance(v, list) and all(isinstance(s, str) for s in v))):
                raise TypeError(f"`modalities[{k!r}]` must be a tensor with samples on dim 0 "
                                f"or a list of str, got {type(v).__name__}.")
        n = next(iter(sizes.values()))
        self.modalities_data: dict[str, Tensor | list[str]] = dict(modalities)
        self.label = label
        self.factors: dict[str, Tensor] = dict(factors or {})
        self.present: dict[str, Tensor] = dict(present or {})
        self.meta: dict[str, Any] = dict(meta or {})
        self.classes: list[str] = list(classes) if classes is not None else []
        per_sample = {f"modalities[{k!r}]": s for k, s in sizes.items()}
        if label is not None:
            per_sample["label"] = label.shape[0] if label.ndim == 1 else -1
            if label.dtype != torch.int64:
                raise TypeError(f"`label` must be int64 (N,), got dtype {label.dtype}; "
                                f"use `label.long()`.")
        for k, v in self.factors.items():
            per_sample[f"factors[{k!r}]"] = (v.shape[0] if isinstance(v, Tensor) and v.ndim == 1
                                             else -1)
        for k, v in self.present.items():
            if k not in modalities:
                raise ValueError(f"`present[{k!r}]` names no modality; "
                                 f"modalities are {list(modalities)}.")
            if not isinstance(v, Tensor) or v.dtype != torch.bool:
                raise TypeError(f"`present[{k!r}]` must be a bool tensor (N,).")
            per_sample[f"present[{k!r}]"] = v.shape[0] if v.ndim == 1 else -1
        for group in PER_SAMPLE_META:
            for k, v in self.meta.get(group, {}).items():
                if group == "sample" and isinstance(v, list):
                    per_sample[f"meta[{group!r}][{k!r}]"] = len(v)
                else:
                    per_sample[f"meta[{group!r}][{k!r}]"] = (
                        v.shape[0] if isinstance(v, Tensor) and v.ndim else -1)
        for k in PER_SAMPLE_LISTS:
            if k in self.meta:
                v = self.meta[k]
                per_sample[f"meta[{k!r}]"] = len(v) if isinstance(v, list) else -1
        bad = {k: s for k, s in per_sample.items() if s != n}
        if bad:
            listed = ", ".join(f"{k}: {s}" for k, s in per_sample.items())
            raise ValueError(f"All per-sample fields must have the same number of rows N "
                             f"(1-D for label, factors and present); got {listed}.")
        self._n = n

    # ---- basic properties -------------------------------------------------------------
    @property
    def extras(self) -> dict[str, Tensor]:
        """Per-sample tensors returned in each batch under their own key (e.g. "bbox")."""
        return self.meta.get("extras", {})

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modality keys, e.g. ("image", "audio", "text")."""
        return tuple(self.modalities_data)

    @property
    def num_classes(self) -> int:
        """len(classes), or max(label) + 1 when no names were given, or 0 without labels."""
        if self.classes:
            return len(self.classes)
        return int(self.label.max()) + 1 if self.label is not None and self.label.numel() else 0

    @property
    def device(self) -> torch.device:
        """The device of the first tensor modality (cpu for text-only data)."""
        for v in self.modalities_data.values():
            if isinstance(v, Tensor):
                return v.device
        return torch.device("cpu")

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        mods = ", ".join(
            f"{k}: {tuple(v.shape) if isinstance(v, Tensor) else f'list[str] ({len(v)})'}"
            for k, v in self.modalities_data.items())
        return (f"MultimodalDataset(N={self._n}, {mods}, num_classes={self.num_classes}, "
                f"factors={list(self.factors)}, device={self.device})")

    # ---- indexing ---------------------------------------------------------------------
    def __getitem__(self, i: int) -> dict[str, Any]:
        """One sample: tensors without the batch dim, text a str, "index" a 0-d int64 tensor."""
        if isinstance(i, Tensor) and i.numel() == 1:
            i = int(i)
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"index must be an int, got {type(i).__name__}; "
                            f"use `ds.batch(idx)` for many.")
        if not -self._n <= i < self._n:
            raise IndexError(f"index {i} is out of range for a dataset of {self._n} samples.")
        i %= self._n
        out: dict[str, Any] = {k: (v[i] if isinstance(v, list) else v[i])
                               for k, v in self.modalities_data.items()}
        if self.label is not None:
            out["label"] = self.label[i]
        out["factors"] = {k: v[i] for k, v in self.factors.items()}
        if self.present:
            out["present"] = {k: v[i] for k, v in self.present.items()}
        for k, v in self.extras.items():
            out[k] = v[i]
        out["index"] = torch.tensor(i, dtype=torch.int64, device=self.device)
        return out

    def batch(self, idx: Tensor | Sequence[int]) -> dict[str, Any]:
        """A batch dict from an index tensor (B,): `index_select` per tensor, list indexing
        for text.

        Args:
            idx: int64 `(B,)` sample indices (or a list of ints, or a bool mask (N,)).
        Returns:
            The batch format of docs/DESIGN.md, including "index".
        """
        idx = _as_index("idx", idx, self._n)
        dev = self.device
        idx_dev = idx.to(dev)
        idx_cpu = idx.cpu()
        out: dict[str, Any] = {}
        for k, v in self.modalities_data.items():
            out[k] = (_index_list(v, idx_cpu) if isinstance(v, list)
                      else v.index_select(0, idx_dev.to(v.device)))
        if self.label is not None:
            out["label"] = self.label.index_select(0, idx_dev.to(self.label.device))
        out["factors"] = {k: v.index_select(0, idx_dev.to(v.device))
                          for k, v in self.factors.items()}
        if self.present:
            out["present"] = {k: v.index_select(0, idx_dev.to(v.device))
                              for k, v in self.present.items()}
        for k, v in self.extras.items():
            out[k] = v.index_select(0, idx_dev.to(v.device))
        out["index"] = idx_dev
        return out

    def batches(self, batch_size: int, shuffle: bool = True,
                generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[dict[str, Any]]:
        """Iterate over the dataset in batches (one pass).

        Args:
            batch_size: samples per batch B.
            shuffle: draw a random permutation (with `generator`, a CPU torch.Generator) first.
            generator: for reproducible shuffling.
            drop_last: skip a final batch smaller than `batch_size`.
        Yields:
            batch dicts (see `batch`).
        """
        check_int("batch_size", batch_size)
        order = torch.randperm(self._n, generator=generator) if shuffle else torch.arange(self._n)
        for s in range(0, self._n, batch_size):
            idx = order[s:s + batch_size]
            if drop_last and len(idx) < batch_size:
                break
            yield self.batch(idx)

    def subset(self, idx: Tensor | Sequence[int]) -> MultimodalDataset:
        """A new dataset holding only the rows `idx` (per-sample meta is sliced too: tensors and
        lists in `meta["extras"]` / `meta["sample"]`, and `meta["ids"]`)."""
        idx = _as_index("idx", idx, self._n)
        return self._map(lambda v: v.index_select(0, idx.to(v.device)),
                         lambda v: _index_list(v, idx.cpu()))

    def to(self, device: torch.device | str) -> MultimodalDataset:
        """A copy with every tensor on `device` (text stays a list of str)."""
        device = torch.device(device)
        return self._map(lambda v: v.to(device), lambda v: list(v), all_tensors=True)

    def _map(self, fn, fn_list, all_tensors: bool = False) -> MultimodalDataset:
        def apply(v: Any, per_sample: bool) -> Any:
            if isinstance(v, Tensor):
                return fn(v) if per_sample or all_tensors else v
            if isinstance(v, list) and per_sample:
                return fn_list(v)
            if isinstance(v, dict):
                return {k: apply(x, per_sample) for k, x in v.items()}
            return v

        meta = {k: apply(v, k in PER_SAMPLE_META or k in PER_SAMPLE_LISTS)
                for k, v in self.meta.items()}
        mods = {k: fn_list(v) if isinstance(v, list) else fn(v)
                for k, v in self.modalities_data.items()}
        return MultimodalDataset(mods, label=None if self.label is None else fn(self.label),
                                 factors={k: fn(v) for k, v in self.factors.items()},
                                 present={k: fn(v) for k, v in self.present.items()},
                                 classes=self.classes, meta=meta)


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack a list of samples (from `ds[i]`) into a batch: tensors stacked, strings listed.

    Use as `DataLoader(ds, batch_size=B, collate_fn=mmlab.data.collate)`.
    """
    if not samples:
        raise ValueError("`samples` is empty; collate needs at least one sample.")

    def merge(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, Tensor):
            return torch.stack(values)
        if isinstance(first, str):
            return list(values)
        if isinstance(first, Mapping):
            return {k: merge([v[k] for v in values]) for k in first}
        return list(values)

    return {k: merge([s[k] for s in samples]) for k in samples[0]}
