"""Small utilities: devices (pick one, move a batch, find a model's), seeding, the tiny-mode flag
and atomic file writes."""

from __future__ import annotations

import itertools
import os
import random
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

TINY_ENV = "MMLAB_TINY"


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the best available device: cuda, then mps, then cpu (like d2l's `try_gpu`).

    Args:
        prefer: "auto"/None for the automatic choice, or a device string such as "cpu" or "cuda:1"
            (or a `torch.device`).
    Returns:
        A `torch.device`.
    Raises:
        ValueError naming `device`: a string torch does not know as a device (e.g. "tpu"), or
            "cuda"/"mps" on a machine without it.
    """
    if prefer not in (None, "auto"):
        valid = "'auto', 'cpu', 'cuda', 'cuda:<index>', 'mps' or a torch.device"
        if isinstance(prefer, bool) or not isinstance(prefer, (str, int, torch.device)):
            raise TypeError(f"`device` must be one of {valid}; got {type(prefer).__name__} "
                            f"({prefer!r}).")
        try:
            dev = torch.device(prefer)
        except (RuntimeError, ValueError, TypeError):
            raise ValueError(f"`device` {prefer!r} is not a device torch knows; "
                             f"valid forms: {valid}.") from None
        if dev.type == "mps":
            mps = getattr(torch.backends, "mps", None)
            if mps is None or not mps.is_available():
                raise ValueError(f"`device` is {prefer!r} but MPS (Apple GPU) is not available on "
                                 "this machine; use device='auto' or 'cpu'.")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"`device` is {prefer!r} but CUDA is not available on this machine; "
                             "use device='auto' or 'cpu'.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def move_to(batch: Any, device: torch.device | str) -> Any:
    """Move every tensor inside a batch (dicts, nested dicts, lists, tuples) to `device`.

    Strings and other objects are returned untouched (`"text"` stays a `list[str]`).

    Args:
        batch: a batch dict or any nesting of containers and tensors.
        device: the target device.
    Returns:
        The same structure with tensors on `device`.
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device) for k, v in batch.items()}
    containers = (torch.Tensor, Mapping, list, tuple)
    if isinstance(batch, (list, tuple)) and any(isinstance(v, containers) for v in batch):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def model_device(model: torch.nn.Module,
                 default: torch.device | None = torch.device("cpu")) -> torch.device | None:
    """The device of a module's first parameter or buffer (`default` for a module with none)."""
    p = next(itertools.chain(model.parameters(), model.buffers()), None)
    return p.device if p is not None else default


def is_dataset(data: Any) -> bool:
    """A `mmlab.data.MultimodalDataset` (or anything with its `.to` / `.batches` interface)."""
    return callable(getattr(data, "batches", None)) and callable(getattr(data, "to", None))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a torch.Generator seeded the same."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int, got {type(seed).__name__}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def is_tiny() -> bool:
    """True when the environment variable MMLAB_TINY is set to 1/true/yes (set by `make test`)."""
    return os.environ.get(TINY_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def tiny_or_full(tiny, full):
    """Return `tiny` in tiny mode and `full` otherwise: `steps = tiny_or_full(50, 2000)`."""
    return tiny if is_tiny() else full


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a file atomically: `write(tmp_path)` then rename over `path`.

    A crash or interrupt leaves either the old file or the new one, never a half-written file.
    The file gets the permissions a plain `open(path, "w")` would give (0o666 less the umask;
    `mkstemp` alone would make it private to the user).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        write(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path
