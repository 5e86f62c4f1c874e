"""`MMLAB_EXERCISES`: what `Exercise.check` does besides printing its verdict.

unset/empty: return the bool (a learner); `require`: raise unless right (the instructor edition
in CI); `unattempted`: raise unless "not attempted yet" (the student edition in CI); anything
else: a ValueError naming the variable and the valid values, before the learner's code runs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mmlab.exercises as ex

Q = "alignment"


def right(a, b):  # written here, independently of the library: mean ‖â_i − b̂_i‖²
    return (F.normalize(a, dim=1) - F.normalize(b, dim=1)).pow(2).sum(dim=1).mean()


def wrong(a, b):  # no L2 normalisation
    return (a - b).pow(2).sum(dim=1).mean()


def stub(a, b):
    raise NotImplementedError  # your code here


def crashes(a, b):
    raise RuntimeError("boom")


def _run(monkeypatch, capsys, mode, fn):
    if mode is None:
        monkeypatch.delenv("MMLAB_EXERCISES", raising=False)
    else:
        monkeypatch.setenv("MMLAB_EXERCISES", mode)
    try:
        return ex.get(Q).check(fn), None, capsys.readouterr().out
    except (AssertionError, ValueError) as exc:
        return None, exc, capsys.readouterr().out


@pytest.mark.parametrize("mode", [None, "", "  "])
def test_unset_or_empty_only_prints_and_returns_the_bool(monkeypatch, capsys, mode):
    for fn, expected, word in [(right, True, "correct"), (wrong, False, "not right yet"),
                               (stub, False, "not attempted yet"), (crashes, False, "boom")]:
        ok, exc, out = _run(monkeypatch, capsys, mode, fn)
        assert exc is None and ok is expected and word in out


@pytest.mark.parametrize("mode", ["require", "REQUIRE", " require "])
def test_require_raises_unless_right(monkeypatch, capsys, mode):
    ok, exc, out = _run(monkeypatch, capsys, mode, right)
    assert exc is None and ok is True and "correct" in out
    for fn, word in [(wrong, "not right yet"), (stub, "not attempted yet"), (crashes, "boom")]:
        ok, exc, out = _run(monkeypatch, capsys, mode, fn)
        assert isinstance(exc, AssertionError), fn
        message = str(exc)
        # the verdict is printed first, and carried by the error
        assert word in out and word in message and "MMLAB_EXERCISES=require" in message
        assert repr(Q) in message and ex.get(Q).last_verdict in message


def test_unattempted_raises_unless_not_attempted(monkeypatch, capsys):
    ok, exc, out = _run(monkeypatch, capsys, "unattempted", stub)
    assert exc is None and ok is False and "not attempted yet" in out
    for fn, word in [(right, "correct"), (wrong, "not right yet"), (crashes, "boom")]:
        ok, exc, out = _run(monkeypatch, capsys, "unattempted", fn)
        assert isinstance(exc, AssertionError), fn
        message = str(exc)
        assert word in out and word in message and "MMLAB_EXERCISES=unattempted" in message
        assert "'not attempted yet'" in message


@pytest.mark.parametrize("value", ["1", "true", "required", "student"])
def test_other_values_are_a_clear_error_before_the_function_runs(monkeypatch, capsys, value):
    calls = []

    def counting(a, b):
        calls.append(1)
        return right(a, b)

    ok, exc, out = _run(monkeypatch, capsys, value, counting)
    assert isinstance(exc, ValueError) and not calls and out == ""
    message = str(exc)
    assert "MMLAB_EXERCISES" in message and repr(value) in message
    assert "'require'" in message and "'unattempted'" in message and "unset" in message


def test_modes_leave_the_global_random_state_alone(monkeypatch, capsys):
    torch.manual_seed(3)
    before = torch.get_rng_state()
    _run(monkeypatch, capsys, "require", wrong)
    _run(monkeypatch, capsys, "unattempted", stub)
    assert torch.equal(torch.get_rng_state(), before)
