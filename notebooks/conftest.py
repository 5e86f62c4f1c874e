"""Print how long each notebook took under nbval (per-notebook wall time of its cells).

The course promises tiny mode runs each notebook in about 90 s on 2 CPU cores; this summary
makes that visible in CI. It reports, it never fails a run: timings are not tests.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

TINY_BUDGET_S = 90.0
_times: dict[str, float] = defaultdict(float)
_first_seen: dict[str, float] = {}
_last_seen: dict[str, float] = {}

os.environ.setdefault("MMLAB_TINY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Name the notebook for `mmlab.claims`' log: its kernel starts with this environment."""
    os.environ["MMLAB_NOTEBOOK"] = Path(str(item.fspath)).stem


def pytest_runtest_logreport(report):
    if report.when != "call":
        return
    nb = report.nodeid.split("::")[0]
    _times[nb] += report.duration
    now = time.perf_counter()
    _first_seen.setdefault(nb, now - report.duration)
    _last_seen[nb] = now


def pytest_terminal_summary(terminalreporter):
    if not _times:
        return
    tr = terminalreporter
    tr.section("notebook wall times (tiny mode budget: 90 s each)")
    total = 0.0
    for nb in sorted(_times):
        wall = _last_seen[nb] - _first_seen[nb]
        total += wall
        flag = "  <-- over budget" if wall > TINY_BUDGET_S else ""
        tr.write_line(f"{wall:7.1f} s  {nb}{flag}")
    tr.write_line(f"{total:7.1f} s  all notebooks")
