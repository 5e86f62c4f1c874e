"""Checkpoints that are atomic, verifiable and safe to load (`torch.load(weights_only=True)` only).

A checkpoint is one file written by `torch.save` through `mmlab.utils.atomic_write` (a temporary
file, fsync, then a rename), so a crash or Ctrl-C leaves the old file or the new one, never a
half-written one. It holds only plain containers, primitives and tensors, so loading never runs
pickled code (`weights_only=True`). The payload carries a SHA-256 digest of its own contents:
`torch.save` files have no checksum of their own, and a flipped byte inside a tensor would
otherwise load silently as wrong weights.

Layout (a dict):
    {"format": "mmlab.checkpoint", "version": 1, "sha256": hex digest of "payload",
     "payload": {"model": state_dict, "optimizer": state_dict | None, "step": int,
                 "history": dict | None, "rng": {"torch": uint8 tensor, "cuda": [...]},
                 "extra": plain dict | None}}

Loading reads and verifies everything in memory first (digest, model keys and shapes, optimizer
groups); only then does it touch the model, so a failed load never leaves a half-loaded model.
The load-or-train pattern (`load_or_train`) follows the UvA deep-learning notebooks.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmlab.utils import atomic_write

FORMAT = "mmlab.checkpoint"
VERSION = 1
_PRIMITIVES = (str, int, float, bool, type(None))

__all__ = ["save_checkpoint", "load_checkpoint", "load_or_train", "capture_rng", "restore_rng",
           "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, truncated, not an mmlab checkpoint, or does not fit the model."""


def capture_rng() -> dict[str, Any]:
    """The global torch RNG states as plain tensors (CPU, and every CUDA device if available).

    Returns:
        {"torch": uint8 tensor, "cuda": list of uint8 tensors (empty without CUDA)}.
    """
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": list(cuda)}


def restore_rng(state: Mapping[str, Any]) -> None:
    """Restore the global torch RNG states saved by `capture_rng`.

    Args:
        state: the dict returned by `capture_rng` (e.g. `load_checkpoint(...)["rng"]`).
    """
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _check_plain(obj: Any, where: str) -> None:
    """Raise TypeError if `obj` holds anything `torch.load(weights_only=True)` would refuse."""
    if isinstance(obj, Tensor) or isinstance(obj, _PRIMITIVES):
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"`{where}` has a key {k!r} of type {type(k).__name__}; "
                                "checkpoint keys must be str or int.")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"`{where}` is a {type(obj).__name__}; a checkpoint holds only tensors, dicts, "
                    "lists, tuples, str, int, float, bool and None (so it loads with "
                    "weights_only=True). Convert it first, e.g. `history.to_dict()` or `float(x)`.")


def _digest(obj: Any) -> str:
    """SHA-256 over a plain object: structure, primitive values and every tensor's bytes."""
    h = hashlib.sha256()

    def visit(x: Any) -> None:
        if isinstance(x, Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, Mapping):
            h.update(b"{")
            for k in sorted(x, key=repr):
                h.update(repr(k).encode())
                visit(x[k])
            h.update(b"}")
        elif isinstance(x, (list, tuple)):
            h.update(b"(" if isinstance(x, tuple) else b"[")
            for v in x:
                visit(v)
            h.update(b"]")
        elif isinstance(x, float) and math.isnan(x):
            h.update(b"nan")
        else:
            h.update(f"{type(x).__name__}:{x!r}".encode())

    visit(obj)
    return h.hexdigest()


def _cpu_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.detach().cpu() if isinstance(v, Tensor) else v) for k, v in state.items()}


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    *, step: int = 0, history: Any = None, extra: Mapping[str, Any] | None = None,
                    rng: Mapping[str, Any] | None = None) -> Path:
    """Save model (and optimizer, history, RNG states) atomically to `path`.

    Args:
        path: the file to write; parent folders are created.
        model: the module whose `state_dict()` is saved (tensors copied to the CPU).
        optimizer: optional optimizer whose `state_dict()` is saved.
        step: the number of completed optimisation steps.
        history: a `mmlab.train.History` (stored as `to_dict()`) or a plain dict, or None.
        extra: optional plain dict (tensors, containers, primitives) saved alongside.
        rng: RNG states to store (default: `capture_rng()` now).
    Returns:
        The path written.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"`optimizer` must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}.")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"`step` must be an int ≥ 0, got {step!r}.")
    if history is not None and hasattr(history, "to_dict"):
        history = history.to_dict()
    payload = {
        "model": _cpu_state(model.state_dict()),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "history": history,
        "rng": dict(rng) if rng is not None else capture_rng(),
        "extra": dict(extra) if extra is not None else None,
    }
    for key in ("history", "extra", "optimizer", "rng"):
        _check_plain(payload[key], key)
    blob = {"format": FORMAT, "version": VERSION, "sha256": _digest(payload), "payload": payload}
    return atomic_write(path, lambda tmp: torch.save(blob, tmp))


def _corrupt(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"Checkpoint file '{path}' is corrupt or truncated ({why}). Nothing was loaded. "
        f"Delete it (`os.remove({str(path)!r})`) and retrain, or point to another checkpoint.")


def _read(path: Path) -> dict[str, Any]:
    """Read and verify a checkpoint file; return its payload. Touches no model."""
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at '{path}'. Train first, or use `load_or_train`.")
    if not path.is_file():
        raise ValueError(f"Checkpoint path '{path}' is not a file.")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, flipped bytes in the pickle, foreign objects
        raise _corrupt(path, f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}") from err
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or "payload" not in blob:
        raise CheckpointError(f"'{path}' is not an mmlab checkpoint (no format tag '{FORMAT}'); "
                              "save it with `mmlab.train.save_checkpoint`.")
    if blob.get("version") != VERSION:
        raise CheckpointError(f"'{path}' has checkpoint version {blob.get('version')!r}; this mmlab "
                              f"reads version {VERSION}. Retrain or convert it.")
    payload = blob["payload"]
    if not isinstance(payload, dict) or _digest(payload) != blob.get("sha256"):
        raise _corrupt(path, "the SHA-256 digest of its contents does not match")
    return payload


def _check_model_state(path: Path, model: nn.Module, state: Mapping[str, Any], strict: bool) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state))
              if isinstance(state[k], Tensor) and state[k].shape != own[k].shape]
    problems = []
    if strict and missing:
        problems.append(f"missing keys (in the model, not in the checkpoint): {missing}")
    if strict and unexpected:
        problems.append(f"unexpected keys (in the checkpoint, not in the model): {unexpected}")
    if shapes:
        problems.append("shape mismatches: " + "; ".join(shapes))
    if problems:
        raise CheckpointError(f"Checkpoint '{path}' does not fit this {type(model).__name__}: "
                              + " | ".join(problems) + ". The model was not changed. Build the "
                              "model with the same configuration as when it was saved (or pass "
                              "strict=False to skip missing/unexpected keys).")


def _check_optimizer_state(path: Path, optimizer: torch.optim.Optimizer, state: Any) -> None:
    if state is None:
        raise CheckpointError(f"Checkpoint '{path}' holds no optimizer state; pass optimizer=None.")
    own = [len(g["params"]) for g in optimizer.param_groups]
    saved = [len(g["params"]) for g in state.get("param_groups", [])]
    if own != saved:
        raise CheckpointError(f"Checkpoint '{path}': optimizer parameter groups have sizes {saved}, "
                              f"the given optimizer has {own}. Build the optimizer over the same "
                              "parameters as when it was saved. The model was not changed.")


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    *, strict: bool = True) -> dict[str, Any]:
    """Load a checkpoint saved by `save_checkpoint` into `model` (and `optimizer`).

    The file is read with `torch.load(weights_only=True)`, its digest verified, and the model keys,
    shapes and optimizer groups checked, all before anything is copied into the model.

    Args:
        path: the checkpoint file.
        model: the module to load into (any device; tensors are copied to its parameters' device).
        optimizer: optional optimizer to restore.
        strict: if True, missing or unexpected keys are an error; shape mismatches always are.
    Returns:
        dict with "step" (int), "history" (`mmlab.train.History` or None), "extra" (dict or None)
        and "rng" (for `restore_rng`).
    Raises:
        FileNotFoundError: no file at `path`.
        CheckpointError (a ValueError): corrupt/truncated file, not an mmlab checkpoint, or
            keys/shapes that do not fit the model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    path = Path(path)
    payload = _read(path)
    _check_model_state(path, model, payload["model"], strict)
    if optimizer is not None:
        _check_optimizer_state(path, optimizer, payload.get("optimizer"))
    model.load_state_dict(payload["model"], strict=strict)
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    history = payload.get("history")
    if history is not None:
        from mmlab.train import History
        history = History.from_dict(history)
    return {"step": payload["step"], "history": history, "extra": payload.get("extra"),
            "rng": payload.get("rng")}


def load_or_train(path: str | os.PathLike, train_fn: Callable[[], Any], model: nn.Module) -> Any:
    """Load `model` from `path` if the file exists; otherwise run `train_fn()` and save.

    The notebook pattern: the first run trains and caches, every rerun loads in a second.

    Args:
        path: the checkpoint file.
        train_fn: called with no arguments to train `model` in place; may return a `History`.
        model: the module to load into or to save after training.
    Returns:
        The history: loaded from the checkpoint, or what `train_fn()` returned.
    """
    if not callable(train_fn):
        raise TypeError(f"`train_fn` must be callable (e.g. `lambda: fit(model, data, steps=100)`), "
                        f"got {type(train_fn).__name__}.")
    path = Path(path)
    if path.exists():
        return load_checkpoint(path, model)["history"]
    result = train_fn()
    history = result if result is not None and hasattr(result, "to_dict") else None
    step = history.step[-1] if history is not None and history.step else 0
    save_checkpoint(path, model, step=step, history=history)
    return result
