"""Shared input preparation for the losses: validation, up-casting, L2 normalisation, 1/τ.

Every loss (and `mmlab.distributed`) prepares its inputs here, so all of them treat half
precision, zero rows, huge rows and tensor temperatures the same way:
- float16/bfloat16 embeddings are computed in float32 (`compute_dtype`), and `in_float32` turns
  `torch.autocast` off inside a loss, so its logits and softmax are float32 under autocast too;
- `normalize_rows` is `F.normalize`, except for rows whose squared norm would overflow.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

from mmlab._checks import (check_embeddings, check_finite_if_cheap, check_int, check_same_shape,
                           check_temperature, values_are_cheap)
from mmlab._norm import NORM_EPS, l2_normalize, needs_rescale, overflow_limit

HALF_NORM_EPS = 2.0 ** -8
"""ε for float16 inputs. At a zero vector ∂â/∂a = I/ε; with ε = 1e-12 the gradient (computed in
float32) overflows to Inf when it is cast back to float16 (max 65504). With ε = 2⁻⁸ it is at most
256·‖∂L/∂â‖, finite for τ ≥ 0.01 (the clamp). Only float16 vectors with ‖a‖ < 2⁻⁸ ≈ 0.004
(degenerate embeddings) are affected; bfloat16 has float32's range and keeps NORM_EPS."""

_HALF = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a loss computes in: float32 for float16/bfloat16, else `dtype` itself."""
    return torch.float32 if dtype in _HALF else dtype


def norm_eps(dtype: torch.dtype) -> float:
    """ε for L2-normalising an input of `dtype`: HALF_NORM_EPS for float16, else NORM_EPS."""
    return HALF_NORM_EPS if dtype == torch.float16 else NORM_EPS


def upcast(x: Tensor) -> Tensor:
    """float16/bfloat16 → float32 (losses are computed in at least float32); others unchanged."""
    return x.float() if x.dtype in _HALF else x


def normalize_rows(x: Tensor, eps: float) -> Tensor:
    """x̂ = x / max(‖x‖, ε) row by row, also for rows whose squared norm overflows or underflows.

    `F.normalize` squares: a float32 row with ‖x‖ > ~1.8e19 gets ‖x‖ = Inf and becomes a zero
    vector (and a loss over it silently returns log B); a row with every entry below ε = 1e-12
    is divided by ε and comes out near zero. `mmlab._norm.l2_normalize` first scales such rows by
    a power of two. On the CPU we look first and call it only if some row needs it, so every
    other input takes exactly the `F.normalize` graph (bit-identical values and gradients);
    elsewhere (no host read) it always runs: the same values, more autograd nodes.

    Args:
        x: (B, D) embeddings.
        eps: ε > 0, the smallest norm divided by.
    Returns:
        (B, D) unit rows (zero rows stay zero).
    """
    if x.numel() == 0 or (values_are_cheap(x) and not bool(
            needs_rescale(x.detach().abs().amax(dim=-1), overflow_limit(x)).any())):
        return F.normalize(x, dim=-1, eps=eps)  # nothing to rescale: the plain graph
    return l2_normalize(x, dim=-1, eps=eps)


LossFn = TypeVar("LossFn", bound=Callable[..., Any])
_AUTOCAST_DEVICES = ("cpu", "cuda", "mps", "xpu")


def in_float32(fn: LossFn) -> LossFn:
    """Run the loss `fn` with `torch.autocast` turned off (only where it is on).

    Under autocast a matmul runs in float16/bfloat16 even for float32 inputs. For a loss that
    means logits S/τ rounded to 3 significant digits (steps of 2 to 8 at τ = 1e-4 in float16),
    and SigLIP's loss can overflow to Inf. With autocast off, the inputs are upcast by `prepare`
    and the logits, softmax and gradients are float32. Without autocast `fn` is called as is.
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        on = [d for d in _AUTOCAST_DEVICES
              if torch.amp.is_autocast_available(d) and torch.is_autocast_enabled(d)]
        if not on:
            return fn(*args, **kwargs)
        with contextlib.ExitStack() as stack:
            for device in on:
                stack.enter_context(torch.autocast(device_type=device, enabled=False))
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def prepare(names: Sequence[str], xs: Sequence[Any], normalize: bool) -> list[Tensor]:
    """Validate paired (B, D) embeddings, check them for NaN/Inf (CPU only), upcast, normalise.

    Args:
        names: argument names used in error messages.
        xs: the embeddings, each (B, D).
        normalize: whether to return â = a / max(‖a‖, ε) (ε = `norm_eps(a.dtype)`).
    Returns:
        The prepared tensors, each (B, D), in one common dtype: float32, or float64 if any
        input is.
    """
    for n, x in zip(names, xs):
        check_embeddings(n, x)
    check_same_shape(names, xs)
    devices = {x.device for x in xs}
    if len(devices) > 1:
        listed = ", ".join(f"`{n}` on {x.device}" for n, x in zip(names, xs))
        raise ValueError(f"{listed}: all embeddings must be on the same device; "
                         "move them with `.to(device)`.")
    dtype = functools.reduce(torch.promote_types, [compute_dtype(x.dtype) for x in xs])
    out = []
    for n, x in zip(names, xs):
        check_finite_if_cheap(n, x)
        eps = norm_eps(x.dtype)
        x = x.to(dtype)
        out.append(normalize_rows(x, eps) if normalize else x)
    return out


def as_scale(temperature: Any, like: Tensor, name: str = "temperature") -> float | Tensor:
    """The logit scale 1/τ: a float for a float τ, a 0-d tensor (autograd kept) for a tensor τ.

    Tensor temperatures are value-checked only on the CPU, so a GPU training loop never syncs.
    """
    if isinstance(temperature, Tensor):
        if temperature.numel() != 1:
            raise ValueError(f"`{name}` must be a float or a 0-d tensor, got a tensor of shape "
                             f"{tuple(temperature.shape)}.")
        if not temperature.is_floating_point():
            raise TypeError(f"`{name}` must be a floating tensor, got {temperature.dtype}.")
        if values_are_cheap(temperature):
            check_temperature(temperature, name)
        return 1.0 / temperature.reshape(()).to(device=like.device, dtype=like.dtype)
    return 1.0 / check_temperature(temperature, name)


def as_tensor_scalar(value: float | Tensor, like: Tensor) -> Tensor:
    """A float or 0-d tensor as a 0-d tensor on `like`'s device and dtype (autograd kept)."""
    if isinstance(value, Tensor):
        return value.reshape(()).to(device=like.device, dtype=like.dtype)
    return torch.tensor(value, device=like.device, dtype=like.dtype)


def as_bias(bias: Any, like: Tensor) -> float | Tensor:
    """Check a SigLIP bias (a finite float or a 0-d float tensor)."""
    if isinstance(bias, Tensor):
        if bias.numel() != 1:
            raise ValueError(f"`bias` must be a float or a 0-d tensor, "
                             f"got shape {tuple(bias.shape)}.")
        if not bias.is_floating_point():
            raise TypeError(f"`bias` must be a floating tensor, got {bias.dtype}.")
        check_finite_if_cheap("bias", bias)
        return bias.reshape(()).to(device=like.device, dtype=like.dtype)
    if isinstance(bias, bool) or not isinstance(bias, (int, float)):
        raise TypeError(f"`bias` must be a number, got {type(bias).__name__}.")
    if not math.isfinite(bias):
        raise ValueError(f"`bias` must be finite, got {bias}.")
    return float(bias)


def unpack_modalities(embeddings: tuple[Any, ...],
                      minimum: int = 2) -> tuple[list[str], list[str], list[Any]]:
    """Accept `f(x, y, z)` or `f({"image": x, ...})`.

    Returns:
        (names for error messages, keys for terms, the tensors).
    """
    if len(embeddings) == 1 and isinstance(embeddings[0], Mapping):
        keys = [str(k) for k in embeddings[0]]
        names = [f"embeddings[{k!r}]" for k in embeddings[0]]
        xs = list(embeddings[0].values())
    else:
        keys = [str(m) for m in range(len(embeddings))]
        names = [f"embeddings[{m}]" for m in range(len(embeddings))]
        xs = list(embeddings)
    if len(xs) < minimum:
        raise ValueError(f"need at least {minimum} modalities (M ≥ {minimum}), got M = {len(xs)}; "
                         "pass one (B, D) tensor per modality.")
    return names, keys, xs
