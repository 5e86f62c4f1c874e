"""Run the benchmarks: `python -m benchmarks [--quick] [--device cpu|cuda] [--no-write]`.

Each suite is a module in this folder with `run(quick: bool, device: str) -> list[dict]`; the rows
are printed as tables and written to BENCHMARKS.md together with the machine, torch version and
date. `--quick` uses tiny sizes and is what CI runs, so the benchmarks never rot; its numbers
are not meant to be read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import platform
import sys
import time
from pathlib import Path

import torch

SUITES = ("losses", "chunked", "symile_negatives", "interactivity", "training")
ROOT = Path(__file__).resolve().parents[1]


def machine_line(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        import os
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        import os
        cores = os.cpu_count()
    gpu = f", GPU: {torch.cuda.get_device_name()}" if device == "cuda" else ""
    return (f"{platform.system()} {cpu}, {cores} CPU cores{gpu}; torch {torch.__version__}; "
            f"Python {platform.python_version()}; {dt.date.today().isoformat()}")


def table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)\n"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test; CI runs this)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--only", nargs="*", choices=SUITES, help="run only these suites")
    ap.add_argument("--no-write", action="store_true", help="print only; do not write BENCHMARKS.md")
    ap.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda was asked for but CUDA is not available")

    sections = [f"Machine: {machine_line(args.device)}\n"]
    print(sections[0], flush=True)
    for name in args.only or SUITES:
        try:
            mod = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"benchmarks.{name}":
                raise
            continue
        t0 = time.perf_counter()
        rows = mod.run(quick=args.quick, device=args.device)
        title = (mod.__doc__ or name).strip().splitlines()[0]
        text = f"## {title}\n\n{table(rows)}"
        print(text + f"({time.perf_counter() - t0:.1f} s)\n", flush=True)
        sections.append(text)
    if not args.no_write:
        header = "# Benchmarks\n\nWritten by `python -m benchmarks" + (" --quick" if args.quick else "") + \
            f" --device {args.device}`.\n\n"
        Path(args.output).write_text(header + "\n".join(sections))
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
