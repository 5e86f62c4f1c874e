"""Compare a learner's result with the reference: type, shape, dtype, values, gradients.

Every check returns a message instead of raising, so that `Exercise.check` can report it.
Tolerances follow the dtype: float32 answers may differ from the reference in the last bits
(another order of operations), float64 answers only in the last few.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

GRAD_FLOW = ("Gradients must flow from your result back to the inputs: use torch operations "
             "only, with no .item(), float(), .tolist(), .numpy(), .detach(), .data or "
             "torch.no_grad() on the way.")

TOLERANCE = {torch.float32: (1e-4, 1e-5), torch.float64: (1e-7, 1e-10)}
"""dtype → (rtol, atol) for values; gradients use atol × max(1, largest reference entry)."""


@dataclass(frozen=True)
class Result:
    ok: bool
    message: str = ""


def _type_name(x: Any) -> str:
    if isinstance(x, Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {str(x.dtype).removeprefix('torch.')}"
    return f"a {type(x).__module__ + '.' if type(x).__module__ not in ('builtins',) else ''}" \
           f"{type(x).__name__}"


def _shape_text(shape: torch.Size) -> str:
    if len(shape) == 0:
        return "shape () (a 0-d tensor: one number, e.g. from .mean() or .sum(), not shape (1,))"
    return f"shape {tuple(shape)}"


def describe_difference(got: Tensor, expected: Tensor) -> str:
    """'expected 1.2345, got 2.3456' or the largest difference and where it is."""
    g, e = got.detach().double(), expected.detach().double()
    if e.ndim == 0:
        return f"expected {float(e):.8g}, got {float(g):.8g}"
    diff = (g - e).abs().nan_to_num(nan=float("inf"))
    flat = int(diff.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), e.shape))
    return (f"largest difference {float(diff.flatten()[flat]):.3g} at index {index}: "
            f"expected {float(e[index]):.6g}, got {float(g[index]):.6g}")


def _close(got: Tensor, expected: Tensor, dtype: torch.dtype) -> bool:
    rtol, atol = TOLERANCE.get(dtype, TOLERANCE[torch.float32])
    return bool(torch.allclose(got.detach().double(), expected.detach().double(), rtol=rtol,
                               atol=atol))


def _compare_tensor(got: Any, expected: Tensor, strict_type: bool) -> Result:
    if not isinstance(got, Tensor):
        if isinstance(got, numbers.Number):
            return Result(False, f"your function returns a Python {type(got).__name__}; expected a "
                                 f"tensor of {_shape_text(expected.shape)}. Return the tensor "
                                 "itself (no .item() or float()), so that gradients can flow.")
        return Result(False, f"your function returns {_type_name(got)}; expected a tensor of "
                             f"{_shape_text(expected.shape)}.")
    if not got.is_floating_point():
        return Result(False, f"your function returns {_type_name(got)}; expected a floating "
                             "tensor (float32 or float64, like the inputs).")
    if got.shape != expected.shape:
        return Result(False, f"your function returns shape {tuple(got.shape)}; expected "
                             f"{_shape_text(expected.shape)}.")
    if strict_type and got.dtype != expected.dtype:
        return Result(False, f"your function returns dtype {str(got.dtype).removeprefix('torch.')}"
                             f"; expected {str(expected.dtype).removeprefix('torch.')}, the "
                             "dtype of the inputs (no .float() or .double() conversions).")
    if not _close(got, expected, expected.dtype):
        return Result(False, describe_difference(got, expected) + ".")
    return Result(True)


def _compare_float(got: Any, expected: float, strict_type: bool) -> Result:
    if isinstance(got, Tensor) and not strict_type and got.numel() == 1:
        got = float(got)
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        return Result(False, f"your function returns {_type_name(got)}; expected a Python float "
                             "(convert a 0-d tensor with float(x) or x.item()).")
    if not abs(float(got) - expected) <= 1e-6:
        return Result(False, f"expected {expected:.6g}, got {float(got):.6g}.")
    return Result(True)


def _compare_index(got: Any, expected: Tensor, strict_type: bool) -> Result:
    if not isinstance(got, Tensor):
        return Result(False, f"your function returns {_type_name(got)}; expected an int64 tensor "
                             f"of shape {tuple(expected.shape)}.")
    if got.is_floating_point() or got.dtype == torch.bool or got.is_complex():
        return Result(False, f"your function returns {_type_name(got)}; expected integer class "
                             "ids (int64), e.g. from .argmax(dim=...).")
    if got.shape != expected.shape:
        return Result(False, f"your function returns shape {tuple(got.shape)}; expected shape "
                             f"{tuple(expected.shape)} (one id per row).")
    wrong = (got.long().cpu() != expected.long().cpu()).nonzero().flatten()
    if wrong.numel():
        i = int(wrong[0])
        return Result(False, f"{wrong.numel()} of {expected.numel()} ids differ; the first at "
                             f"row {i}: expected {int(expected[i])}, got {int(got[i])}.")
    return Result(True)


def compare(got: Any, expected: Any, output: str, *, strict_type: bool = True) -> Result:
    """Is `got` the reference's `expected`? `output`: "tensor", "float" or "index".

    `strict_type=False` (matching a typical mistake) ignores the dtype and accepts a 0-d
    tensor for a float.
    """
    if output == "float":
        return _compare_float(got, float(expected), strict_type)
    if output == "index":
        return _compare_index(got, expected, strict_type)
    return _compare_tensor(got, expected, strict_type)


def grads_of(out: Any, leaves: dict[str, Tensor],
             generator: torch.Generator) -> dict[str, Tensor | None] | str:
    """Gradients of Σ (out ⊙ r) for a fixed random r (a vector–Jacobian product), per leaf.

    Returns a message instead when no gradient can flow through `out`.
    """
    if not isinstance(out, Tensor):
        return "the result is not a tensor, so no gradient can flow back to the inputs."
    if not out.requires_grad:
        return "no gradient flows back to the inputs (the result is detached from them)."
    r = torch.randn(out.shape, generator=generator, dtype=torch.float64).to(out.dtype)
    try:
        grads = torch.autograd.grad((out * r).sum(), list(leaves.values()), allow_unused=True)
    except Exception as exc:  # an in-place edit of a saved tensor, for example
        return f"the backward pass fails ({type(exc).__name__}: {str(exc).strip()[:160]})."
    return dict(zip(leaves, grads))


def close_grads(got: Tensor | None, expected: Tensor | None) -> Result:
    """Compare one gradient (None means no gradient reached the input: zero)."""
    if expected is None and got is None:
        return Result(True)
    if got is None:
        if bool((expected == 0).all()):
            return Result(True)
        return Result(False, "no gradient reaches it")
    if expected is None:
        expected = torch.zeros_like(got)
    rtol, atol = TOLERANCE.get(expected.dtype, TOLERANCE[torch.float32])
    scale = max(1.0, float(expected.detach().abs().max()))
    if got.shape != expected.shape or not torch.allclose(
            got.double(), expected.double(), rtol=rtol, atol=atol * scale):
        return Result(False, describe_difference(got, expected))
    return Result(True)
