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
groups and buffer shapes, the history, the types of step and extra: `checkpoint_checks.py`); only
then does it touch the model, so a failed load never changes a model or an optimizer. The
load-or-train pattern (`load_or_train`) follows the UvA deep-learning notebooks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmlab.train.checkpoint_checks import (CheckpointError, check_model_state,
                                           check_optimizer_state)
from mmlab.train.digest import FORMAT, VERSION, check_plain, digest
from mmlab.train.history import History
from mmlab.utils import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "load_or_train", "capture_rng",
           "restore_rng", "CheckpointError"]


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


def _history_of(obj: Any, where: str) -> History:
    """`obj` as a History (a History, or a dict from `History.to_dict()`), or a ValueError."""
    if isinstance(obj, History):
        return obj
    try:
        return History.from_dict(obj)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} must be a mmlab.train.History or a dict from "
                         f"History.to_dict(): {err}") from None


def _cpu_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.detach().cpu() if isinstance(v, Tensor) else v) for k, v in state.items()}


def save_checkpoint(path: str | os.PathLike, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, *, step: int = 0,
                    history: Any = None, extra: Mapping[str, Any] | None = None,
                    rng: Mapping[str, Any] | None = None) -> Path:
    """Save model (and optimizer, history, RNG states) atomically to `path`.

    Args:
        path: the file to write; parent folders are created.
        model: the module whose `state_dict()` is saved (tensors copied to the CPU).
        optimizer: optional optimizer whose `state_dict()` is saved.
        step: the number of completed optimisation steps.
        history: a `mmlab.train.History` (stored as `to_dict()`), a dict from `to_dict()`, or None
            (a dict that is not a History is refused here, not when loading).
        extra: optional plain dict (tensors, containers, primitives) saved alongside.
        rng: RNG states to store (default: `capture_rng()` now).
    Returns:
        The path written.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"`optimizer` must be a torch.optim.Optimizer or None, "
                        f"got {type(optimizer).__name__}.")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"`step` must be an int ≥ 0, got {step!r}.")
    if extra is not None and not isinstance(extra, Mapping):
        raise TypeError(f"`extra` must be a dict or None, got {type(extra).__name__}.")
    if history is not None:
        history = _history_of(history, "`history`").to_dict()
    payload = {
        "model": _cpu_state(model.state_dict()),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "history": history,
        "rng": dict(rng) if rng is not None else capture_rng(),
        "extra": dict(extra) if extra is not None else None,
    }
    for key in ("history", "extra", "optimizer", "rng"):
        check_plain(payload[key], key)
    blob = {"format": FORMAT, "version": VERSION, "sha256": digest(payload), "payload": payload}
    return atomic_write(path, lambda tmp: torch.save(blob, tmp))


def _corrupt(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"Checkpoint file '{path}' is corrupt or truncated ({why}). Nothing was loaded. "
        f"Delete it (`os.remove({str(path)!r})`) and retrain, or point to another checkpoint.")


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and verify a checkpoint file without touching any model.

    Args:
        path: the checkpoint file.
    Returns:
        The payload: "model" and "optimizer" state dicts, "step" (int), "history" (a `History`
        or None), "extra" (dict or None) and "rng" (for `restore_rng`).
    Raises:
        FileNotFoundError: no file at `path`.
        PermissionError: the file exists but cannot be read (it is not called corrupt).
        CheckpointError: corrupt or truncated, not an mmlab checkpoint, or fields of wrong types.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at '{path}'. Train first, or use `load_or_train`.")
    if not path.is_file():
        raise ValueError(f"Checkpoint path '{path}' is not a file.")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as err:  # permission denied, I/O error: the file may well be fine
        raise PermissionError(
            f"Checkpoint '{path}' exists but cannot be read ({err.strerror or err}). Nothing was "
            "loaded. This says nothing about the file's contents: do not delete it; fix its "
            f"permissions (e.g. `chmod u+r {str(path)!r}`) or run as its owner.") from err
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, flipped bytes in the pickle, foreign objects
        first = str(err).splitlines()[0][:200] if str(err) else ""
        raise _corrupt(path, f"{type(err).__name__}: {first}") from err
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or "payload" not in blob:
        raise CheckpointError(f"'{path}' is not an mmlab checkpoint (no format tag '{FORMAT}'); "
                              "save it with `mmlab.train.save_checkpoint`.")
    if blob.get("version") != VERSION:
        raise CheckpointError(f"'{path}' has checkpoint version {blob.get('version')!r}; this "
                              f"mmlab reads version {VERSION}. Retrain or convert it.")
    payload = blob["payload"]
    if not isinstance(payload, dict) or digest(payload) != blob.get("sha256"):
        raise _corrupt(path, "the SHA-256 digest of its contents does not match")
    return _checked_payload(path, payload)


def _checked_payload(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload's fields, type-checked, with the history as a `History`."""
    step, extra, history = payload.get("step"), payload.get("extra"), payload.get("history")
    problems = []
    if not isinstance(payload.get("model"), Mapping):
        problems.append("'model' is not a state dict")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        problems.append(f"'step' is {step!r}, not an int ≥ 0")
    if extra is not None and not isinstance(extra, Mapping):
        problems.append(f"'extra' is a {type(extra).__name__}, not a dict")
    if history is not None:
        try:
            history = _history_of(history, "'history'")
        except ValueError as err:
            problems.append(str(err))
    if problems:
        raise CheckpointError(f"Checkpoint '{path}' cannot be used: " + "; ".join(problems)
                              + ". Nothing was loaded.")
    return {**payload, "history": history}


def apply_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any], model: nn.Module,
                     optimizer: torch.optim.Optimizer | None = None, *,
                     strict: bool = True) -> None:
    """Copy a payload from `read_checkpoint` into `model` (and `optimizer`): everything is
    checked first, so a payload that does not fit changes nothing."""
    path = Path(path)
    check_model_state(path, model, payload["model"], strict)
    if optimizer is not None:
        check_optimizer_state(path, optimizer, payload.get("optimizer"))
    model.load_state_dict(payload["model"], strict=strict)
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])


def load_checkpoint(path: str | os.PathLike, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, *,
                    strict: bool = True) -> dict[str, Any]:
    """Load a checkpoint saved by `save_checkpoint` into `model` (and `optimizer`).

    The file is read with `torch.load(weights_only=True)`, its digest verified, its fields
    type-checked (the history rebuilt) and the model keys, shapes and optimizer groups checked,
    all before anything is copied into the model: a failed load changes nothing.

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
        PermissionError: the file cannot be read (permissions): not a sign of corruption.
        CheckpointError (a ValueError): corrupt/truncated file, not an mmlab checkpoint, fields of
            the wrong type, or keys/shapes that do not fit the model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    payload = read_checkpoint(path)
    apply_checkpoint(path, payload, model, optimizer, strict=strict)
    return {"step": payload["step"], "history": payload["history"], "extra": payload.get("extra"),
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
        raise TypeError("`train_fn` must be callable (e.g. `lambda: fit(model, data, steps=100)`), "
                        f"got {type(train_fn).__name__}.")
    path = Path(path)
    if path.exists():
        return load_checkpoint(path, model)["history"]
    result = train_fn()
    history = result if isinstance(result, History) else None
    step = history.step[-1] if history is not None and history.step else 0
    save_checkpoint(path, model, step=step, history=history)
    return result
