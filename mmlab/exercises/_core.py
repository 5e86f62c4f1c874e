"""The exercise object: check a learner's function against the library's reference.

After Kaggle Learn's checkers (`q1.check()`, `q1.hint()`, `q1.solution()`), for code whose
answer must also have the right gradients. `check(fn)` runs `fn` on a fixed list of random
inputs (several sizes, float32 and float64, drawn from a local `torch.Generator`, so the
notebook's random stream is left as it was), compares values and then gradients with the
reference, and prints one short verdict. A wrong value is compared with the values of typical
wrong answers (one direction only, τ missing, no L2 normalisation, ...), computed on the same
input, to name the mistake; nothing is guessed from the learner's source code.

The environment variable `MMLAB_EXERCISES` decides what a check does besides printing (read at
each call): unset or empty, nothing (a learner); `require`, raise AssertionError unless the
answer is right (the instructor edition in CI); `unattempted`, raise AssertionError unless it
is "not attempted yet" (the student edition in CI: no solution survived).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mmlab.exercises._compare import GRAD_FLOW, Result, close_grads, compare, grads_of

NOT_ATTEMPTED = "not attempted yet"
MODE_VARIABLE = "MMLAB_EXERCISES"
MODES = ("require", "unattempted")  # and unset/empty: only print


@dataclass(frozen=True)
class Case:
    """One input: `args` in the signature's order; `grad` names the tensors to differentiate."""

    label: str
    args: dict[str, Any]
    grad: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer: `fn` has the exercise's signature; `diagnosis` explains it."""

    diagnosis: str
    fn: Callable[..., Any]


@dataclass(eq=False)
class Exercise:
    """One checked exercise. Use `check(fn)`, `hint(level)`, `solution()`; paste `stub`.

    Attributes:
        name: the key for `mmlab.exercises.get`.
        notebook: the notebook it belongs to, e.g. "02".
        signature: the function the learner writes, e.g. "info_nce(a, b, temperature) -> ...".
        summary: what it computes, in one line.
        stub: code to paste and fill in: signature, docstring, `raise NotImplementedError`.
        solution_code: a readable reference answer (plain torch, not a library call).
        hints: at least two hints, from a nudge to nearly the answer.
        reference: the library computation the answer is checked against (same signature).
        reference_name: how the success message names the reference.
        output: "tensor" (a float tensor, its shape and dtype as the reference's), "float"
            (a Python number) or "index" (an int64 tensor, compared exactly).
        differentiable: also compare gradients with respect to `Case.grad`.
    """

    name: str
    notebook: str
    signature: str
    summary: str
    stub: str
    solution_code: str
    hints: tuple[str, ...]
    reference: Callable[..., Any]
    reference_name: str
    make_cases: Callable[[torch.Generator], list[Case]]
    mistakes: tuple[Mistake, ...] = ()
    output: str = "tensor"
    differentiable: bool = True
    seed: int = 0
    last_verdict: str = field(default="", repr=False)

    # ------------------------------------------------------------------ learner-facing methods
    def check(self, fn: Callable[..., Any]) -> bool:
        """Run `fn` on several random inputs; print a verdict; True only when it is right.

        Never raises because of `fn`: an exception, a wrong shape or a wrong type is reported.
        The global torch random state is the same after the call as before it. Raises only as
        `MMLAB_EXERCISES` asks (see the module docstring): AssertionError with the verdict
        under `require` unless right, under `unattempted` unless "not attempted yet";
        ValueError for any other value of the variable (checked before `fn` runs).
        """
        mode = exercise_mode()
        with torch.random.fork_rng(devices=[]):
            verdict, ok = self._check(fn)
        self.last_verdict = verdict
        print(verdict)
        if mode == "require" and not ok:
            raise AssertionError(f"{MODE_VARIABLE}=require: exercise {self.name!r} must be "
                                 f"solved here (the instructor edition), but:\n{verdict}")
        if mode == "unattempted" and verdict != self._not_attempted():
            raise AssertionError(f"{MODE_VARIABLE}=unattempted: exercise {self.name!r} must be "
                                 f"{NOT_ATTEMPTED!r} here (the student edition: a solution left in "
                                 f"the stub?), but:\n{verdict}")
        return ok

    def hint(self, level: int = 1) -> None:
        """Print hint number `level` (1 = a nudge; the last one nearly gives the answer)."""
        n = len(self.hints)
        level = min(max(int(level), 1), n)
        more = f" (.hint({level + 1}) says more)" if level < n else " (.solution() shows the code)"
        print(f"Hint {level} of {n} for {self.name}{more}:\n{_wrap(self.hints[level - 1], '  ')}")

    def solution(self) -> None:
        """Print a reference answer to read (also in `solution_code`)."""
        print(f"# One solution for {self.name} ({self.signature}):\n{self.solution_code}")

    @property
    def template(self) -> str:
        """The stub (an alias): the code a learner pastes and fills in."""
        return self.stub

    def __repr__(self) -> str:
        return (f"Exercise {self.name!r} (notebook {self.notebook}): {self.signature}\n"
                f"  {self.summary}\n  .check(fn)  .hint(1) ... .hint({len(self.hints)})  "
                ".solution()  .stub")

    # ------------------------------------------------------------------ the check
    def _check(self, fn: Callable[..., Any]) -> tuple[str, bool]:
        if not callable(fn):
            return self._bad(f"Expected a function, got {type(fn).__name__}: pass the function "
                             "itself, e.g. .check(my_fn), not my_fn(...)."), False
        cases = self.make_cases(torch.Generator().manual_seed(self.seed))
        for i, case in enumerate(cases):
            problem = self._check_case(fn, case, i)
            if problem is not None:
                return problem, False
        return self._good(cases), True

    def _check_case(self, fn: Callable[..., Any], case: Case, index: int) -> str | None:
        expected = self.reference(*_fresh(case.args))
        got = _call(fn, _fresh(case.args))
        if isinstance(got, BaseException):
            return self._raised(got, case)
        result = compare(got, expected, self.output)
        if not result.ok:
            return self._wrong(result, got, expected, case)
        if self.differentiable and case.grad:
            return self._check_grads(fn, case, index)
        return None

    def _check_grads(self, fn: Callable[..., Any], case: Case, index: int) -> str | None:
        cot = torch.Generator().manual_seed(1000 + index)
        leaves, args = _with_grad(case)
        got = _call(fn, args)
        if isinstance(got, BaseException):
            return self._bad(f"On input {case.label}, your function works on plain tensors but "
                             f"raises {_exc(got)} when the inputs require gradients. {GRAD_FLOW}")
        ref_leaves, ref_args = _with_grad(case)
        expected = self.reference(*ref_args.values())
        want = grads_of(expected, ref_leaves, cot)
        have = grads_of(got, leaves, torch.Generator().manual_seed(1000 + index))
        if isinstance(want, str):  # the reference itself has no gradient here: nothing to compare
            return None
        if isinstance(have, str):
            return self._bad(f"On input {case.label}, the value is right but {have} {GRAD_FLOW}")
        for name, want_grad in want.items():
            r = close_grads(have[name], want_grad)
            if not r.ok:
                return self._bad(f"On input {case.label}, the value is right but the gradient "
                                 f"with respect to `{name}` is not: {r.message}. Something "
                                 "between the inputs and the result is detached or treated as a "
                                 "constant (.detach(), .data, torch.no_grad, .item()).")
        return None

    # ------------------------------------------------------------------ verdicts
    def _diagnose(self, got: Any, case: Case) -> str | None:
        for m in self.mistakes:
            try:
                with torch.no_grad():
                    wrong = m.fn(*_fresh(case.args))
            except Exception:  # a mistake that does not apply to this input
                continue
            if compare(got, wrong, self.output, strict_type=False).ok:
                return m.diagnosis
        return None

    def _wrong(self, result: Result, got: Any, expected: Any, case: Case) -> str:
        lines = [f"✗ {self.name}: not right yet.",
                 _wrap(f"On input {case.label}: {result.message}", "  ")]
        diagnosis = self._diagnose(got, case)
        if diagnosis is not None:
            lines.append(_wrap(f"Diagnosis: {diagnosis}", "  "))
        lines.append(f"  More help: .hint(1) ... .hint({len(self.hints)}), .solution().")
        return "\n".join(lines)

    def _raised(self, exc: BaseException, case: Case) -> str:
        if isinstance(exc, NotImplementedError):
            return self._not_attempted()
        return self._bad(f"Your function raised {_exc(exc)} on input {case.label}.")

    def _not_attempted(self) -> str:
        return (f"· {self.name}: {NOT_ATTEMPTED} (your function raises NotImplementedError).\n"
                "  Replace `raise NotImplementedError` with your code, then run the check again.")

    def _bad(self, message: str) -> str:
        return (f"✗ {self.name}: not right yet.\n{_wrap(message, '  ')}\n"
                f"  More help: .hint(1) ... .hint({len(self.hints)}), .solution().")

    def _good(self, cases: list[Case]) -> str:
        tensors = [t for c in cases for v in c.args.values()
                   for t in (v if isinstance(v, list) else [v]) if isinstance(t, Tensor)]
        dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors
                         if t.is_floating_point()})
        what = "values and gradients" if self.differentiable else "values"
        return (f"✓ {self.name}: correct. {len(cases)} random inputs ({' and '.join(dtypes)}): "
                f"the {what} match {self.reference_name}.")


# ---------------------------------------------------------------------- helpers
def exercise_mode() -> str:
    """`MMLAB_EXERCISES`: "" (unset or empty: only print), "require" or "unattempted"."""
    raw = os.environ.get(MODE_VARIABLE, "")
    mode = raw.strip().lower()
    if mode and mode not in MODES:
        raise ValueError(f"{MODE_VARIABLE}={raw!r} is not a mode of exercise checks; use one of "
                         f"{', '.join(repr(m) for m in MODES)}, or leave it unset (only print the "
                         "verdict). 'require': every check must pass (the instructor edition); "
                         "'unattempted': every check must say 'not attempted yet' (the student "
                         "edition).")
    return mode


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_long_words=False, break_on_hyphens=False)


def _exc(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _clone(v: Any) -> Any:
    if isinstance(v, Tensor):
        return v.detach().clone()
    if isinstance(v, list):
        return [_clone(x) for x in v]
    return v


def _fresh(args: dict[str, Any]) -> list[Any]:
    """Copies, so that a function that writes into its inputs cannot change the next call's."""
    return [_clone(v) for v in args.values()]


def _with_grad(case: Case) -> tuple[dict[str, Tensor], dict[str, Any]]:
    args = {k: _clone(v) for k, v in case.args.items()}
    leaves = {}
    for name in case.grad:
        value = args[name]
        if isinstance(value, list):  # a list of tensors (e.g. attention maps): one leaf each
            for j, t in enumerate(value):
                leaves[f"{name}[{j}]"] = t.requires_grad_(True)
        else:
            leaves[name] = value.requires_grad_(True)
    return leaves, args


def _call(fn: Callable[..., Any], args: list[Any] | dict[str, Any]) -> Any:
    """fn(*args), or the exception it raised (never re-raised: the check reports it)."""
    values = list(args.values()) if isinstance(args, dict) else args
    try:
        return fn(*values)
    except (Exception, SystemExit) as exc:  # the learner's code may raise anything (Ctrl-C stops)
        return exc
