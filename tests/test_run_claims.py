"""scripts/run_claims.py: the CLAIMS.md table and its checks, from synthetic claim logs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mmlab.claims import claim

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "run_claims.py"


@pytest.fixture(scope="module")
def rc():
    spec = importlib.util.spec_from_file_location("run_claims", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_logs(tmp_path: Path, monkeypatch, values: dict[int, list[float]], notebook="01_x") -> dict[int, Path]:
    """One log per seed, written by mmlab.claims itself: three learned claims and one fact."""
    logs = {}
    for seed, (v1, v2, v3) in values.items():
        logs[seed] = tmp_path / f"seed{seed}.jsonl"
        monkeypatch.setenv("MMLAB_CLAIMS_LOG", str(logs[seed]))
        monkeypatch.setenv("MMLAB_SEED", str(seed))
        monkeypatch.setenv("MMLAB_NOTEBOOK", notebook)
        for statement, v, op, t in (("gain over control", v1, ">", 0.1), ("gap | change", v2, "<", -0.2),
                                    ("third", v3, ">=", 1.0)):
            try:
                claim(statement, v, op, t)
            except AssertionError:
                pass
        claim("an identity", 0.0, "<", 1e-9, kind="fact")
    return logs


def test_table_rows_values_and_smallest_margin(rc, tmp_path, monkeypatch):
    logs = make_logs(tmp_path, monkeypatch, {0: [0.5, -0.4, 2.0], 1: [0.3, -0.5, 1.5]})
    rows = rc.read_logs(logs)
    out = tmp_path / "CLAIMS.md"
    rc.write_table(rows, [0, 1], out)
    text = out.read_text(encoding="utf-8")
    assert "| 01_x | gain over control | learned | > 0.1 | 0.5 | 0.3 | 0.2 |" in text
    assert "| 01_x | gap \\| change | learned | < -0.2 | -0.4 | -0.5 | 0.2 |" in text
    assert "| 01_x | 3 | 1 | 0 |" in text  # learned, facts, failures
    assert rc.problems(rows, [0, 1], out) == []


def test_failures_missing_seeds_and_stale_table_are_reported(rc, tmp_path, monkeypatch):
    logs = make_logs(tmp_path, monkeypatch, {0: [0.5, -0.4, 2.0], 1: [0.05, -0.5, 1.5]})
    rows = rc.read_logs(logs)
    table = tmp_path / "CLAIMS.md"
    rc.write_table(rows, [0, 1], table)
    found = rc.problems(rows, [0, 1, 2], table)
    assert any("'gain over control' failed with seed 1: 0.05" in p for p in found)
    assert any("not reached with seed 2" in p for p in found)
    table.write_text(table.read_text(encoding="utf-8").replace("> 0.1", "> 0.05"), encoding="utf-8")
    assert any("stale" in p and "gain over control" in p for p in rc.problems(rows, [0, 1], table))
    assert "✗" in (rc.write_table(rows, [0, 1], table) or table.read_text(encoding="utf-8"))


def test_a_lesson_needs_three_learned_claims(rc, tmp_path, monkeypatch):
    log = tmp_path / "seed0.jsonl"
    monkeypatch.setenv("MMLAB_CLAIMS_LOG", str(log))
    for nb in ("00_tour", "05_y"):
        monkeypatch.setenv("MMLAB_NOTEBOOK", nb)
        claim("one learned", 1.0, ">", 0.0)
        claim("a fact", 1.0, ">", 0.0, kind="fact")
    found = rc.problems(rc.read_logs({0: log}), [0], None)
    assert found == ["05_y: makes 1 learned claims; each lesson needs at least 3"]  # 00 is exempt
    assert json.loads(log.read_text(encoding="utf-8").splitlines()[0])["notebook"] == "00_tour"
