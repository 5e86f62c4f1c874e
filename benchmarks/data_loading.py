"""Data loading benchmark: how long a learner waits for `mmlab.data.load(...)`.

Each case runs in a fresh Python process, so the first call pays what a notebook's first cell
pays: reading and verifying the shipped files (sha256), decoding, resampling (FSDD: the FLAC
files the split pairs, 8 → 16 kHz in one batched call) and building the dataset. A second call in the same
process shows the cached cost. Reported as wall and CPU seconds (CPU counts every thread);
imports are excluded. Run through the benchmark runner, or `python benchmarks/data_loading.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES: tuple[tuple[str, dict], ...] = (
    ("shapes", {}),
    ("digits", {}),  # real speech (FSDD), the default
    ("digits", {"speech": "synthetic"}),
    ("digits", {"audio": False}),
)

_CHILD = r"""
import json, sys, time
import mmlab.data as D
name, options = sys.argv[1], json.loads(sys.argv[2])
out = {}
for call in ("first", "second"):
    wall, cpu = time.perf_counter(), time.process_time()
    ds = D.load(name, "train", **options)
    out[call] = (time.perf_counter() - wall, time.process_time() - cpu, len(ds))
print(json.dumps(out))
"""


def _measure(name: str, options: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, name, json.dumps(options)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool, device: str = "cpu") -> list[dict]:
    """Time each case's first and second `load` in a fresh process (the runner's interface).

    Args:
        quick: the same cases (loading is the thing measured; there is no smaller size).
        device: ignored: datasets are built on the CPU and moved later.
    Returns:
        One dict per case and call: "dataset", "options", "call", "samples", "wall_s", "cpu_s".
    """
    rows = []
    for name, options in CASES:
        result = _measure(name, options)
        for call, (wall, cpu, n) in result.items():
            rows.append({"dataset": name, "options": ", ".join(f"{k}={v}" for k, v in options.items()) or "default",
                         "call": call, "samples": n, "wall_s": wall, "cpu_s": cpu})
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(f"{row['dataset']:<7} {row['options']:<18} {row['call']:<7} {row['samples']:>5} samples "
              f"{row['wall_s']:6.2f} s wall {row['cpu_s']:6.2f} s CPU")
