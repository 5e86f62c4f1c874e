"""Integrated gradients (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks").

Average the gradient along the straight path from a baseline `x'` to the input `x`:

    IG(x) = (x − x') ⊙ ∫_0^1 ∇f(x' + α(x − x')) dα

and the attributions sum to `f(x) − f(x')` (completeness), up to the error of the quadrature
rule that approximates the integral (trapezoid or Gauss-Legendre; the gap is reported).
Input × gradient (Shrikumar et al. 2016), `(x − x') ⊙ ∇f(x)`, is the one-point version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmlab._checks import check_choice, check_int, check_tensor

IG_METHODS = ("riemann_trapezoid", "gausslegendre")

__all__ = ["IG_METHODS", "IGResult", "integrated_gradients"]


@dataclass
class IGResult:
    """What `integrated_gradients` returns.

    Attributes:
        attributions: same shape as `x`; (x − x') ⊙ mean_α ∇f(x' + α(x − x')).
        completeness_gap: Σ attributions − (f(x) − f(x')); → 0 as `steps` grows (the axiom).
        f_x: f(x).
        f_baseline: f(x').
        steps: number of path points used.
        method: the quadrature rule ("riemann_trapezoid" or "gausslegendre").
        baseline: the baseline x' that was used (same shape as x).
    """

    attributions: Tensor
    completeness_gap: float
    f_x: float
    f_baseline: float
    steps: int
    method: str
    baseline: Tensor = field(repr=False)


def _quadrature(steps: int, method: str, dtype: torch.dtype,
                device: torch.device) -> tuple[Tensor, Tensor]:
    """Nodes α_k in [0, 1] and weights w_k (Σ w_k = 1) so that Σ_k w_k g(α_k) ≈ ∫_0^1 g(α) dα."""
    if method == "riemann_trapezoid":
        alphas = np.linspace(0.0, 1.0, steps + 1)
        weights = np.full(steps + 1, 1.0 / steps)
        weights[0] = weights[-1] = 0.5 / steps
    else:
        nodes, w = np.polynomial.legendre.leggauss(steps)
        alphas, weights = (nodes + 1.0) / 2.0, w / 2.0
    return (torch.as_tensor(alphas, dtype=dtype, device=device),
            torch.as_tensor(weights, dtype=dtype, device=device))


def integrated_gradients(f: Callable[[Tensor], Tensor], x: Tensor, baseline: Tensor | None = None,
                         steps: int = 64, *, batch_size: int | None = None,
                         method: str = "riemann_trapezoid") -> IGResult:
    """Integrated gradients (Sundararajan et al. 2017) for one input.

    IG(x) = (x − x') ⊙ ∫_0^1 ∇f(x' + α(x − x')) dα
          ≈ (x − x') ⊙ Σ_k w_k ∇f(x' + α_k(x − x'))

    with the trapezoid rule on `steps` equal intervals (`steps + 1` points) or `steps`-point
    Gauss-Legendre quadrature (exact for polynomial paths of degree < 2·steps). Completeness
    says Σ IG = f(x) − f(x'); the gap left by the quadrature is reported.

    The path points are evaluated as batches (N, ...) of up to `batch_size` points at a time,
    so `f` must treat the rows of its batch independently (use `model.eval()`: batch norm in
    training mode mixes rows).

    Args:
        f: maps a batch (N, *shape) to (N,) scalars (e.g. a similarity).
        x: one input, shape `shape` or (1, *shape) (a leading 1 is taken as the batch dim).
        baseline: x', same shape as x; zeros when None.
        steps: number of intervals (trapezoid) or nodes (Gauss-Legendre), ≥ 1.
        batch_size: path points per call to f (all at once when None).
        method: "riemann_trapezoid" or "gausslegendre".
    Returns:
        IGResult(attributions (shape of x), completeness_gap, f_x, f_baseline, steps, method,
        baseline).
    """
    if not callable(f):
        raise TypeError(f"`f` must be a callable mapping a batch (N, ...) to (N,) scores, "
                        f"got {type(f).__name__}.")
    check_tensor("x", x)
    check_int("steps", steps)
    check_choice("method", method, IG_METHODS)
    if batch_size is not None:
        check_int("batch_size", batch_size)
    if baseline is None:
        baseline = torch.zeros_like(x)
    check_tensor("baseline", baseline)
    if baseline.shape != x.shape:
        raise ValueError(f"`baseline` must have the shape of `x` {tuple(x.shape)}, "
                         f"got {tuple(baseline.shape)}.")
    batched = x.ndim >= 2 and x.shape[0] == 1
    x0 = (x[0] if batched else x).detach()  # (*shape)
    b0 = (baseline[0] if batched else baseline).detach().to(x0.dtype)  # (*shape)
    delta = x0 - b0  # (*shape)

    alphas, weights = _quadrature(steps, method, x0.dtype, x0.device)  # (K,), (K,)
    K = alphas.numel()
    chunk = K if batch_size is None else batch_size
    expand = (-1,) + (1,) * x0.ndim
    mean_grad = torch.zeros_like(x0)  # (*shape)
    for start in range(0, K, chunk):
        a = alphas[start:start + chunk]  # (n,)
        points = (b0 + a.view(expand) * delta).requires_grad_(True)  # (n, *shape)
        with torch.enable_grad():
            out = f(points)  # (n,)
            _check_scores(out, points.shape[0])
            (grads,) = torch.autograd.grad(out.sum(), points)  # (n, *shape)
        mean_grad += (weights[start:start + chunk].view(expand) * grads.detach()).sum(0)  # (*shape)

    with torch.no_grad():
        ends = f(torch.stack([x0, b0]))  # (2,)
        _check_scores(ends, 2)
    f_x, f_b = float(ends[0]), float(ends[1])
    attributions = delta * mean_grad  # (*shape)
    gap = float(attributions.sum()) - (f_x - f_b)
    if batched:
        attributions = attributions.unsqueeze(0)  # (1, *shape)
    return IGResult(attributions=attributions, completeness_gap=gap, f_x=f_x, f_baseline=f_b,
                    steps=steps, method=method, baseline=baseline.detach())


def _check_scores(out: Any, n: int) -> None:
    if not isinstance(out, Tensor) or out.shape != (n,):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"`f` must map a batch of {n} inputs to a tensor of shape ({n},), "
                         f"got {shape}. "
                         "Reduce each row to one scalar, e.g. `lambda u: embed(u) @ z_j`.")
