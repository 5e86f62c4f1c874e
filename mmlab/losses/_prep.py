"""Shared input preparation for the losses: validation, up-casting, L2 normalisation, 1/τ."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mmlab._checks import (check_embeddings, check_finite_if_cheap, check_int, check_same_shape,
                           check_temperature, values_are_cheap)

NORM_EPS = 1e-12
"""ε in â = a / max(‖a‖, ε): a zero vector stays zero instead of becoming NaN."""

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


def prepare(names: Sequence[str], xs: Sequence[Any], normalize: bool) -> list[Tensor]:
    """Validate paired (B, D) embeddings, check them for NaN/Inf (CPU only), upcast, normalise.

    Args:
        names: argument names used in error messages.
        xs: the embeddings, each (B, D).
        normalize: whether to return â = a / max(‖a‖, ε) (ε = `norm_eps(a.dtype)`).
    Returns:
        The prepared tensors, each (B, D), in one common dtype: float32, or float64 if any input is.
    """
    for n, x in zip(names, xs):
        check_embeddings(n, x)
    check_same_shape(names, xs)
    devices = {x.device for x in xs}
    if len(devices) > 1:
        listed = ", ".join(f"`{n}` on {x.device}" for n, x in zip(names, xs))
        raise ValueError(f"{listed}: all embeddings must be on the same device; move them with `.to(device)`.")
    dtype = functools.reduce(torch.promote_types, [compute_dtype(x.dtype) for x in xs])
    out = []
    for n, x in zip(names, xs):
        check_finite_if_cheap(n, x)
        eps = norm_eps(x.dtype)
        x = x.to(dtype)
        out.append(F.normalize(x, dim=-1, eps=eps) if normalize else x)
    return out


def as_scale(temperature: Any, like: Tensor, name: str = "temperature") -> float | Tensor:
    """Return the logit scale 1/τ: a float for a float τ, a 0-d tensor (keeping autograd) for a tensor τ.

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
            raise ValueError(f"`bias` must be a float or a 0-d tensor, got shape {tuple(bias.shape)}.")
        if not bias.is_floating_point():
            raise TypeError(f"`bias` must be a floating tensor, got {bias.dtype}.")
        check_finite_if_cheap("bias", bias)
        return bias.reshape(()).to(device=like.device, dtype=like.dtype)
    if isinstance(bias, bool) or not isinstance(bias, (int, float)):
        raise TypeError(f"`bias` must be a number, got {type(bias).__name__}.")
    if not math.isfinite(bias):
        raise ValueError(f"`bias` must be finite, got {bias}.")
    return float(bias)


def check_chunk_size(chunk_size: Any) -> int | None:
    """None (no chunking) or an int ≥ 1."""
    return None if chunk_size is None else check_int("chunk_size", chunk_size, minimum=1)


def unpack_modalities(embeddings: tuple[Any, ...], minimum: int = 2) -> tuple[list[str], list[str], list[Any]]:
    """Accept `f(x, y, z)` or `f({"image": x, ...})`; return (names for errors, keys for terms, tensors)."""
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
