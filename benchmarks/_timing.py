"""Shared timing and peak-memory helpers for the benchmark suites.

Timing: `time_call` runs a function until it has spent `min_time` seconds (at least one run after
one warm-up, at most `max_reps` runs) and reports the median. On CUDA it synchronises before
reading the clock, so queued kernels are counted.

Peak memory, and what it measures:
- CUDA: `torch.cuda.max_memory_allocated()` minus the allocation before the call, i.e. the
  peak of tensor memory the call added (the caching allocator's reserve is not counted).
- CPU: the growth of the process's peak resident set size (Linux `VmHWM`, reset by writing
  "5" to /proc/self/clear_refs) above the resident size just before the call, after returning
  freed heap pages to the system with glibc's `malloc_trim(0)`. This counts everything the
  call touched: tensors, temporaries inside kernels and allocator slack; it is rounded to pages
  and a little noisy below ~1 MiB. Where that interface is missing (macOS, containers that deny
  it), memory is reported as None, never guessed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

MIB = 2.0 ** 20


def sync(device: str) -> None:
    """Wait for queued work on `device` (a no-op on the CPU)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], device: str, *, min_time: float = 1.0, max_reps: int = 10,
              warmup: bool = True) -> tuple[float, int]:
    """Median wall time of `fn()` in seconds, and the number of timed runs.

    Args:
        fn: the work to time (e.g. forward + backward of a loss).
        device: "cpu" or "cuda" (synchronised before each clock read).
        min_time: keep repeating until the timed runs add up to this many seconds.
        max_reps: never more than this many timed runs.
        warmup: run once untimed first (skipped automatically when that single run already took
            longer than `min_time`: it is then used as the one timed run).
    Returns:
        (median seconds, number of runs).
    """
    times: list[float] = []
    if warmup:
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        first = time.perf_counter() - t0
        if first >= min_time:
            return first, 1
    while len(times) < max_reps and (not times or sum(times) < min_time):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:  # pragma: no cover
        return None


_LIBC = _libc()


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def cpu_peak_supported() -> bool:
    """Whether the CPU peak-RSS measurement works on this machine."""
    return _status_kib("VmHWM") is not None and _reset_peak_rss()


def peak_memory_mib(fn: Callable[[], object], device: str) -> float | None:
    """Peak memory that one call `fn()` added, in MiB (see the module docstring), or None.

    Args:
        fn: the work to measure; called exactly once.
        device: "cpu" or "cuda".
    Returns:
        MiB, or None where the platform offers no honest measurement.
    """
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / MIB
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
    if not _reset_peak_rss():
        fn()
        return None
    before = _status_kib("VmRSS")
    fn()
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) / 1024.0


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages and the core count, for the report."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # pragma: no cover
        return "load average unavailable"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min) on {cores} cores"


def rel_diff(x: float, y: float) -> float:
    """|x − y| / max(|y|, tiny)."""
    return abs(x - y) / max(abs(y), 1e-300)


def max_rel_grad_diff(gx: torch.Tensor, gy: torch.Tensor) -> float:
    """max |gx − gy| / max |gy| (a scale-aware gradient comparison)."""
    return float((gx - gy).abs().max() / gy.abs().max().clamp_min(1e-300))


SINGLE_RUN_S = 10.0
"""A first call at least this long is the only run (cold, but such sizes pay little warm-up)."""


def measure(fn: Callable[[], object], device: str, *, min_time: float = 1.0,
            max_reps: int = 5) -> tuple[float, int, float | None]:
    """Peak memory of the first call, then the median time (the first call is the warm-up,
    or the only timed run when it alone took ≥ max(`min_time`, SINGLE_RUN_S), which keeps
    huge sizes affordable).

    Returns:
        (median seconds, number of timed runs, peak MiB or None).
    """
    t0 = time.perf_counter()
    peak = peak_memory_mib(fn, device)
    sync(device)
    first = time.perf_counter() - t0
    if first >= max(min_time, SINGLE_RUN_S):
        return first, 1, peak
    seconds, reps = time_call(fn, device, min_time=min_time, max_reps=max_reps, warmup=False)
    return seconds, reps, peak


INTERLEAVE_MAX_S = 0.25
"""Calls shorter than this are timed interleaved (`interleaved_min`); longer ones with `measure`."""


def interleaved_min(fns: list[Callable[[], object]], device: str, *, rounds: int = 15,
                    round_time: float = 0.05) -> list[float]:
    """Seconds per call of each function: the minimum over `rounds` interleaved rounds.

    Each round runs every function in turn, repeated to fill about `round_time` seconds, so a
    change in machine load hits all of them alike; the minimum over rounds is the time with
    the least interference (the `timeit` convention). Use it to compare implementations of
    the same work; one warm-up call each comes first.

    Returns:
        One time per function, in seconds.
    """
    reps = []
    for fn in fns:
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        reps.append(max(1, int(round_time / max(time.perf_counter() - t0, 1e-6))))
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            sync(device)
            t0 = time.perf_counter()
            for _ in range(reps[i]):
                fn()
            sync(device)
            best[i] = min(best[i], (time.perf_counter() - t0) / reps[i])
    return best
