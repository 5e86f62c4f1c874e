"""Validation at the public boundary: one place for clear, consistent error messages.

Every public function in mmlab calls these before touching its inputs, so a learner gets
"`a` must be a 2-D tensor of shape (B, D), got shape (32,)" instead of a torch traceback.
The checks look at shapes and dtypes only, except `check_finite`, which reads values and
therefore synchronises with the device; callers use it only where that is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _shape(x: Any) -> str:
    return str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__


def check_tensor(name: str, x: Any, *, ndim: int | None = None, float_dtype: bool = True,
                 nonempty: bool = True, what: str = "") -> Tensor:
    """Check that `x` is a tensor of rank `ndim` with a floating dtype and at least one row."""
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor{what and ' ' + what}, "
                        f"got {type(x).__name__}.")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"`{name}` must be a {ndim}-D tensor{what and ' ' + what}, "
                         f"got shape {tuple(x.shape)} ({x.ndim}-D).")
    if float_dtype and x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"`{name}` must have a floating dtype "
                        "(float16, bfloat16, float32 or float64), "
                        f"got {x.dtype}. Convert it with `{name}.float()`.")
    if nonempty and (x.ndim == 0 or x.shape[0] == 0 or x.numel() == 0):
        raise ValueError(f"`{name}` is empty (shape {tuple(x.shape)}); pass at least one sample.")
    return x


def check_embeddings(name: str, x: Any) -> Tensor:
    """Check a batch of embeddings: a non-empty float tensor of shape (B, D)."""
    return check_tensor(name, x, ndim=2, what="of shape (B, D)")


def check_same_shape(names: Iterable[str], xs: Iterable[Tensor], *,
                     dims: str = "batch size and width") -> None:
    """Check that every embedding batch has the same (B, D)."""
    names, xs = list(names), list(xs)
    shapes = [tuple(x.shape) for x in xs]
    if len(set(shapes)) > 1:
        listed = ", ".join(f"`{n}` {s}" for n, s in zip(names, shapes))
        raise ValueError(f"{listed} must have the same {dims} (B, D); "
                         "paired rows are matched by position.")


def check_paired(names: Iterable[str], xs: Iterable[Any]) -> list[Tensor]:
    """Check several (B, D) embedding batches that are paired row by row."""
    names, xs = list(names), list(xs)
    for n, x in zip(names, xs):
        check_embeddings(n, x)
    check_same_shape(names, xs)
    return xs


def check_class_ids(name: str, labels: Any, n: int, of: str, *, n_classes: int | None = None,
                    classes_in: str = "") -> Tensor:
    """Check a 1-D integer tensor of class ids with one label per row of the tensor named `of`;
    with `n_classes`, also that every id is in [0, n_classes) (`classes_in` names what they
    index)."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of integer class ids, "
                        f"got {type(labels).__name__}.")
    if labels.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D tensor of shape ({n},), "
                         f"got shape {tuple(labels.shape)}.")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"`{name}` must have an integer dtype (class ids), got {labels.dtype}. "
                        f"Convert it with `{name}.long()`.")
    if labels.shape[0] != n:
        raise ValueError(f"`{name}` has {labels.shape[0]} labels but `{of}` has {n} rows; "
                         "pass one label per row.")
    if n_classes is not None and labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"`{name}` must hold class ids in [0, {n_classes}) "
                             f"to index the {classes_in}; "
                             f"got values in [{lo}, {hi}].")
    return labels


def check_positive(name: str, value: Any, *, hint: str = "") -> float:
    """Check a strictly positive, finite number (a temperature, a rate, a size)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"`{name}` must be a single number, "
                             f"got a tensor of shape {tuple(value.shape)}.")
        value = float(value.detach())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}.")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value}.{hint and ' ' + hint}")
    return float(value)


def check_temperature(value: Any, name: str = "temperature") -> float:
    """Check τ > 0 (τ = 0 would divide by zero; τ < 0 would reward negatives)."""
    return check_positive(name, value, hint="Typical values are 0.01 to 1 (CLIP starts at 0.07).")


def check_probability(name: str, value: Any, *, inclusive: bool = True) -> float:
    """Check 0 ≤ value ≤ 1 (or 0 ≤ value < 1 when `inclusive=False`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number in [0, 1], got {type(value).__name__}.")
    ok = 0 <= value <= 1 if inclusive else 0 <= value < 1
    if not ok:
        raise ValueError(f"`{name}` must be in [0, 1{']' if inclusive else ')'}, got {value}.")
    return float(value)


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Check an integer ≥ `minimum` (a batch size, k, a number of steps)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__} ({value!r}).")
    if value < minimum:
        raise ValueError(f"`{name}` must be ≥ {minimum}, got {value}.")
    return value


def check_choice(name: str, value: Any, options: Iterable[Any]) -> Any:
    """Check that an option string is one of the known ones."""
    options = list(options)
    if value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise ValueError(f"`{name}` must be one of {listed}; got {value!r}.")
    return value


def check_finite(name: str, x: Tensor) -> Tensor:
    """Check that a tensor holds no NaN or Inf (reads values: synchronises with the device).

    Fast path: one reduction. A NaN or Inf anywhere makes the sum non-finite, and a sum of
    finite values is non-finite only if it overflows, so the exact element-wise scan runs only
    then (half precision is summed in float32, where 65,504 is no limit).
    """
    d = x.detach()
    total = d.sum(dtype=torch.float32) if d.dtype in (torch.float16, torch.bfloat16) else d.sum()
    if bool(torch.isfinite(total)):
        return x
    if not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(f"`{name}` (shape {tuple(x.shape)}) contains "
                         f"{n_nan} NaN and {n_inf} Inf values; "
                         "check the inputs, the learning rate and the temperature.")
    return x


def values_are_cheap(x: Tensor) -> bool:
    """Whether checking `x`'s values costs no device sync and no graph break: a CPU tensor,
    outside `torch.compile` tracing (where reading a value would split the graph)."""
    return x.device.type == "cpu" and not torch.compiler.is_compiling()


def check_finite_if_cheap(name: str, x: Tensor) -> Tensor:
    """NaN/Inf check only where `values_are_cheap(x)` (never a GPU sync, never a graph break)."""
    if values_are_cheap(x):
        check_finite(name, x)
    return x


def check_modalities(name: str, d: Any, *,
                     required: Iterable[str] | None = None) -> Mapping[str, Any]:
    """Check a dict of modalities, e.g. `{"image": ..., "audio": ...}`."""
    if not isinstance(d, Mapping):
        raise TypeError(f"`{name}` must be a dict of modality name → tensor, "
                        f"got {type(d).__name__}.")
    if required is not None:
        missing = [m for m in required if m not in d]
        if missing:
            raise ValueError(f"`{name}` is missing modalities {missing}; it has {sorted(d)}.")
    return d
