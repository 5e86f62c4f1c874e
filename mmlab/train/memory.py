"""Peak tensor memory of one call, measured the same way on a CPU and on a GPU.

The quantity is the peak, during `fn()`, of the bytes held by PyTorch tensors, minus the bytes
held when the call started:

    peak = max_t ( Σ allocations up to t − Σ frees up to t ),

so a call that allocates 4 MB, frees it and then allocates 1 MB has a peak of 4 MB. It counts
every tensor the call creates, including the temporaries inside an autograd backward pass (the
(B, B) softmax of a loss, say), and nothing else: not the allocator's cached-but-free blocks, not
the scratch buffers that BLAS/oneDNN kernels allocate outside PyTorch, not Python objects.

- CUDA: `torch.cuda.max_memory_allocated()` minus `torch.cuda.memory_allocated()` before the
  call (after `reset_peak_memory_stats()`), exactly the definition above. cuBLAS's workspace, a
  fixed scratch buffer PyTorch allocates through its own allocator at the first matrix product
  on a handle and stream and then keeps (32 MiB on an H200), is created first, for the forward
  and for the backward's thread, so it is not counted: like BLAS scratch on the CPU, it is not
  the call's memory. (Uncounted, it went into the first measurement of a process: on an H200 it
  bent notebook 10's log-log slope of the full loss from 2 to 1.36, and to 1.62 with only the
  forward's workspace made first. The version with both has not run on a GPU yet.)
- CPU: PyTorch's CPU allocator keeps no statistics, and the process's resident set size mixes
  in allocator slack and pages freed but not returned (see `benchmarks/_timing.py`, which
  measures that instead). Here the PyTorch profiler records every allocation and free of the
  CPU allocator with its size and time (`profile_memory=True`); the running sum of those sizes,
  in time order, is the curve above and its maximum is the peak. (`tracemalloc` would not
  help: it sees Python's allocator only, never tensor storage.)

A single call is measured; the sizes are those PyTorch allocates, so the result is exact and
repeatable for a given sequence of operations (CUDA rounds each block up to 512 bytes).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

__all__ = ["peak_memory_bytes", "MIB"]

MIB = 2 ** 20


def _warm_cublas(device: torch.device) -> None:
    """Create the cuBLAS and cuBLASLt workspaces that a forward and a backward use (PyTorch keeps
    one per handle and stream once made; the autograd engine's thread has a handle of its own)."""
    with torch.enable_grad():  # also when measuring inside torch.no_grad()
        for dtype in (torch.float32, torch.bfloat16):
            _warm_one(device, dtype)


def _warm_one(device: torch.device, dtype: torch.dtype) -> None:
    x = torch.ones(8, 8, device=device, dtype=dtype, requires_grad=True)
    y = torch.addmm(x[0], x, x) + x @ x  # cuBLASLt (with a bias) and cuBLAS
    y.sum().backward()                   # the same, on the backward's thread


def _cuda_peak(fn: Callable[[], object], device: torch.device) -> int:
    _warm_cublas(device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - before)


def _cpu_peak(fn: Callable[[], object]) -> int:
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # the profiler's start/stop lines stay quiet
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    running = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):  # + allocations, − frees, in time order
        running += e.nbytes()
        peak = max(peak, running)
    return peak


def peak_memory_bytes(fn: Callable[[], object], device: str | torch.device = "cpu") -> int:
    """Peak bytes of tensor memory that one call `fn()` adds (see the module docstring).

    Args:
        fn: the work to measure, e.g. `lambda: loss(a, b).backward()`; called exactly once.
            Its return value is dropped (keep what you need in a closure).
        device: where `fn` allocates: "cpu", or "cuda" / "cuda:N".
    Returns:
        The peak, in bytes (divide by `MIB` for MiB); 0 if the call allocated nothing.
    Raises:
        ValueError: `device` is neither a CPU nor a CUDA device (mps has no peak counter).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return _cuda_peak(fn, device)
    if device.type == "cpu":
        return _cpu_peak(fn)
    raise ValueError(f"`device` must be 'cpu' or 'cuda', got {str(device)!r}: PyTorch keeps no "
                     "peak memory statistics for it; measure on 'cpu' or 'cuda' instead.")
