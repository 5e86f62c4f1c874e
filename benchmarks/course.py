"""Course: wall time of every notebook in tiny mode (`MMLAB_TINY=1`, as `make test-notebooks` runs them).

Each `notebooks/[0-9]*.ipynb` runs in its own subprocess,
`pytest --nbval-lax --nbval-current-env -p no:randomly <notebook>`, offline, with the seed
fixed; the row gives the wall time of that subprocess (kernel start-up included) and whether
it passed. The course promises ≤ 60 s per notebook on a quiet 2-core CPU (hard limit 90 s); the
1-minute load average before each run is recorded, because other work on the machine inflates
the times. Skipped with `--quick` (it is the slowest suite by far).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S, HARD_LIMIT_S = 60.0, 90.0
TIMEOUT_S = 600


def notebooks() -> list[Path]:
    """The course notebooks, in order."""
    return sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def time_notebook(path: Path) -> dict:
    """Run one notebook in tiny mode under nbval and time it.

    Returns:
        {"notebook", "seconds", "passed", "load_1min", "within_60s", "note"}.
    """
    env = {**os.environ, "MMLAB_TINY": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    env.pop("MMLAB_SEED", None)
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:randomly", "-q",
           "-p", "no:cacheprovider", str(path.relative_to(ROOT))]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        passed, note = proc.returncode == 0, ""
        if not passed:
            tail = [ln for ln in proc.stdout.splitlines() if ln.strip()]
            note = tail[-1][:120] if tail else f"exit code {proc.returncode}"
    except subprocess.TimeoutExpired:
        passed, note = False, f"timed out after {TIMEOUT_S} s"
    seconds = time.perf_counter() - t0
    return {"notebook": path.name, "seconds": seconds, "passed": passed, "load_1min": load,
            "within_60s": seconds <= BUDGET_S, "note": note}


def run(quick: bool, device: str) -> list[dict]:
    """Time every notebook in tiny mode (skipped with `quick`).

    Args:
        quick: if True, return one row saying the suite was skipped.
        device: unused (tiny mode runs where `mmlab.get_device()` says; on a GPU machine, the GPU).
    Returns:
        One row per notebook.
    """
    if quick:
        return [{"notebook": "(all)", "note": "skipped with --quick"}]
    rows = []
    for nb in notebooks():
        row = time_notebook(nb)
        print(f"  {row['notebook']}: {row['seconds']:.1f} s, passed={row['passed']} "
              f"(load {row['load_1min']:.1f}) {row['note']}", flush=True)
        rows.append(row)
    return rows
