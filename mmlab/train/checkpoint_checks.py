"""Does a checkpoint fit? Every check that runs before a load touches anything.

A load reads the file, verifies its digest, then asks the questions below of the payload; only
when all are answered yes does it copy anything into the model, the optimizer or the RNGs. So a
payload that does not fit raises a `CheckpointError` and changes nothing (`tests/test_checkpoint.py`
compares the state before and after).
- the model: the same keys and shapes (`check_model_state`);
- the optimizer: the same parameter groups, and per-parameter buffers (Adam's moments, SGD's
  momentum, …) shaped like their parameters (`check_optimizer_state`);
- the RNG states that a resumed `fit` restores: states that torch's generators accept
  (`check_rng_state`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["CheckpointError", "check_model_state", "check_optimizer_state", "check_rng_state"]

PER_PARAMETER_BUFFERS = frozenset({"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "exp_inf",
                                   "momentum_buffer", "square_avg", "grad_avg", "acc_delta", "sum",
                                   "ax", "prev", "step_size"})
"""Optimizer state entries of torch.optim's optimizers that have their parameter's shape."""


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, truncated, not an mmlab checkpoint, or does not fit."""


def check_model_state(path: Path, model: nn.Module, state: Mapping[str, Any],
                      strict: bool) -> None:
    """Same keys (when `strict`) and same shapes as `model.state_dict()`, or a CheckpointError."""
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


def check_optimizer_state(path: Path, optimizer: torch.optim.Optimizer, state: Any) -> None:
    """The same parameter groups as `optimizer`, and each per-parameter buffer shaped like its
    parameter (a buffer of another shape would load, then fail at the first `step()`)."""
    if state is None:
        raise CheckpointError(f"Checkpoint '{path}' holds no optimizer state; pass optimizer=None.")
    groups = state.get("param_groups") if isinstance(state, Mapping) else None
    if not isinstance(groups, list) or not isinstance(state.get("state"), Mapping):
        raise CheckpointError(f"Checkpoint '{path}': the optimizer state is not an optimizer "
                              "state_dict. The model was not changed.")
    own = [len(g["params"]) for g in optimizer.param_groups]
    saved = [len(g.get("params", ())) if isinstance(g, Mapping) else -1 for g in groups]
    if own != saved:
        raise CheckpointError(f"Checkpoint '{path}': optimizer parameter groups have sizes "
                              f"{saved}, the given optimizer has {own}. Build the optimizer over "
                              "the same parameters as when it was saved. The model was not "
                              "changed.")
    problems = []
    for own_group, saved_group in zip(optimizer.param_groups, groups):
        for param, pid in zip(own_group["params"], saved_group["params"]):
            buffers = state["state"].get(pid, {})
            if not isinstance(buffers, Mapping):
                problems.append(f"parameter {pid}: a {type(buffers).__name__}, not a dict")
                continue
            for name in sorted(PER_PARAMETER_BUFFERS & set(buffers)):
                buf = buffers[name]
                if not isinstance(buf, Tensor) or buf.shape != param.shape:
                    got = tuple(buf.shape) if isinstance(buf, Tensor) else type(buf).__name__
                    problems.append(f"parameter {pid} '{name}': {got}, "
                                    f"the parameter is {tuple(param.shape)}")
    if problems:
        raise CheckpointError(f"Checkpoint '{path}': the optimizer state does not fit its "
                              "parameters (" + "; ".join(problems[:5]) + "). Nothing was loaded.")


def check_rng_state(path: Path, rng: Any, shuffle_state: Any = None) -> None:
    """`rng` (from `capture_rng`) and `shuffle_state` (a CPU generator's state, or None) are
    states torch's generators accept; tried on throwaway generators, never on the global ones."""
    problems = []
    states = [("rng['torch']", rng.get("torch") if isinstance(rng, Mapping) else None)]
    if shuffle_state is not None:
        states.append(("shuffle_state", shuffle_state))
    for name, s in states:
        try:
            torch.Generator().set_state(s)
        except (TypeError, RuntimeError, ValueError) as err:
            problems.append(f"{name}: {str(err).splitlines()[0]}")
    cuda = rng.get("cuda", []) if isinstance(rng, Mapping) else []
    if not isinstance(cuda, (list, tuple)) or not all(
            isinstance(s, Tensor) and s.dtype == torch.uint8 for s in cuda):
        problems.append("rng['cuda'] is not a list of uint8 tensors")
    if problems:
        raise CheckpointError(f"'{path}' has a damaged training state ("
                              + "; ".join(problems) + "); nothing was loaded. Pass resume=False "
                              "to start over.")
