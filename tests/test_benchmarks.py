"""The benchmarks stay runnable and honest: peers agree with mmlab in float64, the runner's
interface and report writer work, and the memory probe measures what it claims. No timing is
asserted anywhere (timings are not tests)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import __main__ as runner
from benchmarks import _timing
from benchmarks.symile_negatives import crossover

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", runner.SUITES)
def test_every_suite_follows_the_runner_interface(name):
    mod = importlib.import_module(f"benchmarks.{name}")
    params = inspect.signature(mod.run).parameters
    assert list(params)[:2] == ["quick", "device"], f"benchmarks.{name}.run has parameters {list(params)}"
    assert mod.__doc__ and mod.__doc__.strip().splitlines()[0], f"benchmarks.{name} needs a docstring title"


def test_peers_agree_with_mmlab_in_float64():
    pytest.importorskip("open_clip")
    pytest.importorskip("pytorch_metric_learning")
    pytest.importorskip("symile")
    from benchmarks.losses import AGREE_RTOL, check_agreement

    rows = check_agreement(n=24)
    assert len(rows) == 6, rows
    for r in rows:
        assert r["ok"] is True, f"{r['loss']} vs {r['peer']}: {r}"
        assert r["rel_diff"] <= AGREE_RTOL
        # the peers really computed something comparable (PML returns 0 when misused)
        assert r["peer_value"] > 1.0 and abs(r["peer_value"] - r["mmlab"]) <= AGREE_RTOL * r["mmlab"]


def test_agreement_check_can_fail():
    """A check that cannot fail is a defect: a wrong temperature in a peer must be flagged."""
    pytest.importorskip("open_clip")
    import torch.nn.functional as F
    from open_clip.loss import ClipLoss

    from benchmarks import losses

    good = losses.implementations()
    bad = [i if i.name != "open_clip ClipLoss" else losses.Impl(
        i.family, i.name, lambda a, b: ClipLoss()(F.normalize(a, dim=-1), F.normalize(b, dim=-1), 1 / 0.08))
        for i in good]
    orig = losses.implementations
    losses.implementations = lambda: bad
    try:
        rows = losses.check_agreement(n=16)
    finally:
        losses.implementations = orig
    row = next(r for r in rows if r["peer"] == "open_clip ClipLoss")
    assert row["ok"] is False and row["rel_diff"] > 1e-3


def test_report_keeps_the_hand_written_part(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    runner.write_report(path, "first run\n")
    assert path.read_text().endswith(runner.MARKER + "\n\nfirst run\n")
    analysis = "# Benchmarks\n\n## Analysis\nmmlab is fast.\n\n"
    path.write_text(analysis + path.read_text().split("# Benchmarks\n\n", 1)[1])
    runner.write_report(path, "second run\n")
    text = path.read_text()
    assert text == analysis + runner.MARKER + "\n\nsecond run\n"


def test_crossover_is_the_start_of_the_final_run_where_n_wins():
    rows = [{"M": 3, "B": b, "n_ms": n, "n_squared_ms": sq}
            for b, n, sq in [(4, 2.0, 1.0), (8, 1.0, 2.0), (16, 3.0, 2.0), (32, 1.0, 5.0), (64, 1.0, 9.0)]]
    assert crossover(rows, 3) == 32
    assert crossover(rows, 2) is None
    rows[-1]["n_ms"] = 10.0  # n no longer wins at the largest B: no crossover
    assert crossover(rows, 3) is None


@pytest.mark.skipif(not _timing.cpu_peak_supported(), reason="no /proc peak-RSS reset on this platform")
def test_cpu_peak_memory_sees_a_known_allocation():
    def allocate(mib: int) -> None:
        x = torch.ones(mib * 2**20 // 4)  # touched, so resident
        del x

    big = _timing.peak_memory_mib(lambda: allocate(96), "cpu")
    small = _timing.peak_memory_mib(lambda: None, "cpu")
    assert big is not None and 90 <= big <= 140, big
    assert small is not None and small < 16, small


@pytest.mark.slow
def test_quick_losses_benchmark_runs():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--no-write", "--only", "losses"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DISAGREES" not in proc.stdout, proc.stdout
    peers = ("open_clip", "pytorch_metric_learning", "symile")
    if all(importlib.util.find_spec(m) is not None for m in peers):
        assert proc.stdout.count(" agrees:") == 6, proc.stdout
    else:  # `make test` without `make bench-deps`: peer rows say so instead of crashing
        assert "not installed" in proc.stdout, proc.stdout
    assert "| fwd+bwd | info_nce | mmlab | 64 |" in proc.stdout


def test_quick_floor_benchmark_reports_matmul_times():
    """Each loss's time is reported in units of one matmul of the same shapes, against its floor."""
    from benchmarks import losses_floor

    rows = losses_floor.run(True, "cpu")
    for family, floor in (("info_nce", 3), ("siglip", 3), ("symile", 3 * losses_floor.SYMILE_M)):
        mine = [r for r in rows if r["loss"] == family and r["impl"].startswith("mmlab default")]
        assert [r["B"] for r in mine] == list(losses_floor.QUICK_SIZES)
        for r in mine:
            assert r["floor"] == floor and r["matmul_ms"] > 0
            assert r["matmul_times"] == pytest.approx(r["ms"] / r["matmul_ms"])
            assert r["ratio_to_floor"] == pytest.approx(r["matmul_times"] / floor)
            assert "(full)" in r["impl"]  # quick sizes are below the switch: the full path
