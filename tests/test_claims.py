"""mmlab.claims: verdicts, failures, margins, the JSON log and bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmlab.claims import claim

CASES = [  # op, value, threshold, passes, margin
    (">", 0.7, 0.5, True, 0.2),
    (">", 0.5, 0.5, False, 0.0),
    (">=", 0.5, 0.5, True, 0.0),
    (">=", 0.4, 0.5, False, -0.1),
    ("<", 0.1, 0.3, True, 0.2),
    ("<", 0.3, 0.3, False, 0.0),
    ("<=", 0.3, 0.3, True, 0.0),
    ("<=", 0.45, 0.3, False, -0.15),
]


@pytest.mark.parametrize("op, value, threshold, passes, margin", CASES)
def test_comparison_and_margin(op, value, threshold, passes, margin, capsys):
    if passes:
        c = claim("the statement", value, op, threshold)
        assert c.passed and c.margin == pytest.approx(margin)
        assert capsys.readouterr().out.startswith("✓ the statement: measured")
    else:
        with pytest.raises(AssertionError) as err:
            claim("the statement", value, op, threshold)
        assert "the statement" in str(err.value) and repr(float(value)) in str(err.value)
        assert capsys.readouterr().out.startswith("✗ the statement")


def test_verdict_line_shows_value_threshold_and_margin(capsys):
    claim("R@1 gain over the untrained model", torch.tensor(0.734), ">", 0.5)
    out = capsys.readouterr().out.strip()
    assert out == "✓ R@1 gain over the untrained model: measured 0.734 > 0.5 (margin +0.234)"
    claim("an identity", np.float64(1e-12), "<", 1e-9, kind="fact")
    assert "[fact]" in capsys.readouterr().out


def test_nan_never_holds():
    for op in (">", ">=", "<", "<="):
        with pytest.raises(AssertionError, match="nan"):
            claim("a NaN measurement", float("nan"), op, 0.0)


def test_log_appends_one_json_line_per_claim(tmp_path, monkeypatch):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("MMLAB_CLAIMS_LOG", str(log))
    monkeypatch.setenv("MMLAB_SEED", "3")
    monkeypatch.setenv("MMLAB_TINY", "1")
    monkeypatch.setenv("MMLAB_NOTEBOOK", "03_temperature")
    claim("first", 2, ">", 1)
    with pytest.raises(AssertionError):
        claim("second", 0.2, ">=", 0.25, kind="learned")
    claim("third", 0.0, "<=", 0.0, kind="fact")
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [r["statement"] for r in rows] == ["first", "second", "third"]
    assert rows[1] == {"notebook": "03_temperature", "statement": "second", "value": 0.2, "op": ">=",
                       "threshold": 0.25, "kind": "learned", "margin": pytest.approx(-0.05),
                       "passed": False, "seed": 3, "mode": "tiny"}
    assert rows[2]["kind"] == "fact" and rows[2]["passed"] is True


def test_no_log_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("MMLAB_CLAIMS_LOG", raising=False)
    monkeypatch.chdir(tmp_path)
    claim("quiet", 1.0, ">", 0.0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, kwargs, exc, words", [
    (("", 1.0, ">", 0.0), {}, ValueError, "statement"),
    (("s", 1.0, "=>", 0.0), {}, ValueError, "`op`"),
    (("s", 1.0, ">", 0.0), {"kind": "lesson"}, ValueError, "`kind`"),
    (("s", True, ">", 0.0), {}, TypeError, "bool"),
    (("s", "0.5", ">", 0.0), {}, TypeError, "`value`"),
    (("s", torch.ones(3), ">", 0.0), {}, ValueError, "shape (3,)"),
    (("s", 1.0, ">", float("nan")), {}, ValueError, "`threshold`"),
    (("s", 1.0, ">", None), {}, TypeError, "`threshold`"),
])
def test_bad_arguments_are_named(args, kwargs, exc, words):
    with pytest.raises(exc, match=None) as err:
        claim(*args, **kwargs)
    assert words in str(err.value)
