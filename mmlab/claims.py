"""How a lesson states and checks a claim.

A lesson in this course is a claim that an experiment could refute: "training moves the
image–text gap towards zero", "Symile beats pairwise CLIP on XOR by 0.5". `claim` states it
as a comparison of one measured number with a threshold,

    claim("trained R@1 minus untrained R@1", value=gain, op=">", threshold=0.2)

prints a one-line verdict for the learner (statement, measured value, threshold and margin)
and raises an `AssertionError` naming the statement and the value when the data disagree.

The margin is how far the value sits on the passing side of the threshold,

    margin = value − threshold   for ">" and ">=",
    margin = threshold − value   for "<" and "<=",

so a negative margin is a failed claim, and the smallest margin over seeds says how much room a
threshold leaves (CLAIMS.md lists it for every claim; `make claims` writes that file).

Two kinds of claim:
- `kind="learned"` (the default): what training or an experiment produces. It would fail if the
  lesson were wrong, and it should compare with a control, a baseline or a theory value.
- `kind="fact"`: identities and sanity checks (an autograd gradient equals its closed form, a
  mutual information is exactly 3 bits). True by construction; worth checking, not a lesson.

With the environment variable `MMLAB_CLAIMS_LOG=path` set, each claim also appends one JSON line
to that file: notebook, statement, kind, value, op, threshold, margin, passed, seed (from
`MMLAB_SEED`) and mode ("tiny" or "full", from `MMLAB_TINY`). The notebook is named by
`MMLAB_NOTEBOOK` (the course's test runner sets it per notebook), else by the kernel's session.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmlab.utils import is_tiny

__all__ = ["Claim", "claim", "OPS", "KINDS", "LOG_ENV"]

OPS = (">", ">=", "<", "<=")
KINDS = ("learned", "fact")
LOG_ENV = "MMLAB_CLAIMS_LOG"


@dataclass(frozen=True)
class Claim:
    """One checked claim: what was stated, what was measured, and by how much it held."""

    statement: str
    value: float
    op: str
    threshold: float
    kind: str
    margin: float     # value − threshold (">", ">=") or threshold − value ("<", "<=")
    passed: bool

    def verdict(self) -> str:
        """The one-line verdict shown to the learner."""
        mark = "✓" if self.passed else "✗"
        tag = "" if self.kind == "learned" else " [fact]"
        return (f"{mark} {self.statement}{tag}: measured {_fmt(self.value)} {self.op} "
                f"{_fmt(self.threshold)} (margin {_fmt(self.margin, sign=True)})")

    def _ipython_display_(self) -> None:
        # `claim(...)` as a cell's last line: show the verdict once
        pass


def claim(statement: str, value: Any, op: str, threshold: Any, *, kind: str = "learned") -> Claim:
    """State a claim as `value op threshold`, show the verdict, and fail loudly if it does not hold.

    Args:
        statement: what the claim says, in words a learner reads ("R@1 of the trained model
            minus R@1 of the untrained one").
        value: the measured number: a Python or NumPy number, or a one-element tensor.
        op: the comparison, one of ">", ">=", "<", "<=".
        threshold: the number the value is compared with.
        kind: "learned" for what an experiment produces, "fact" for identities and sanity checks.
    Returns:
        The `Claim` record (also appended to `$MMLAB_CLAIMS_LOG` when that is set).
    Raises:
        AssertionError: the claim does not hold (a NaN value never holds); the message holds the
            statement and the measured value.
        TypeError, ValueError: the arguments are not of the forms above.
    """
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError(f"`statement` must be a non-empty string saying what is claimed, "
                         f"got {statement!r}.")
    if op not in OPS:
        raise ValueError(f"`op` must be one of {OPS}, got {op!r}.")
    if kind not in KINDS:
        raise ValueError(f"`kind` must be 'learned' (an experiment's result) or 'fact' "
                         f"(an identity or sanity check), got {kind!r}.")
    v, t = _number("value", value), _number("threshold", threshold)
    if math.isnan(t):
        raise ValueError("`threshold` is NaN; a claim needs a number to compare with.")
    margin = v - t if op in (">", ">=") else t - v
    passed = {">": v > t, ">=": v >= t, "<": v < t, "<=": v <= t}[op]
    record = Claim(statement.strip(), v, op, t, kind, margin, bool(passed))
    print(record.verdict())
    _log(record)
    if not record.passed:
        raise AssertionError(f"Claim failed: {record.statement}: measured {v!r}, "
                             f"which is not {op} {t!r} (margin {margin:+.4g}).")
    return record


def _number(name: str, x: Any) -> float:
    """A float from a Python/NumPy number or a one-element tensor (read on the host, once)."""
    if isinstance(x, bool) or type(x).__name__ == "bool_":
        raise TypeError(f"`{name}` must be a number, got the bool {x!r}; claim a measured quantity "
                        "(for a yes/no check use a bare assert).")
    if hasattr(x, "numel") and hasattr(x, "item"):  # a torch tensor
        if x.numel() != 1:
            raise ValueError(f"`{name}` must be one number, got a tensor of shape "
                             f"{tuple(x.shape)}; reduce it first (e.g. `.mean()`).")
        x = x.item()
    if not isinstance(x, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {type(x).__name__}.")
    return float(x)


def _fmt(x: float, *, sign: bool = False) -> str:
    return f"{x:+.4g}" if sign else f"{x:.4g}"


def _notebook() -> str:
    name = os.environ.get("MMLAB_NOTEBOOK")
    if name:
        return name
    try:  # JupyterLab sets __session__ to the notebook's path in the kernel's namespace
        from IPython import get_ipython
        ip = get_ipython()
        session = ip.user_ns.get("__session__") if ip is not None else None
    except ImportError:
        session = None
    return Path(session).stem if session else "unknown"


def _log(record: Claim) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    row = {"notebook": _notebook(), **asdict(record),
           "seed": int(os.environ.get("MMLAB_SEED", 0)), "mode": "tiny" if is_tiny() else "full"}
    # one write per line: appends from one process stay whole
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
