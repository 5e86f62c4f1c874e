"""Memory-efficient large batches: `chunk_size=K` vs the full (B, B) logits, time and peak memory.

`info_nce(a, b, τ, chunk_size=K)` and `siglip(a, b, τ, bias, chunk_size=K)` never build the
(B, B) logits: they compute K rows at a time and recompute them in the backward pass (see
`mmlab.losses.chunked`). Here both are run forward + backward at B = 16,384, D = 512 on the
device (quick: B = 512) next to the full computation. The target is a chunked peak ≤ 25% of the
full one. Peak memory is measured as in `benchmarks._timing` (CPU: growth of the peak resident
set; CUDA: `max_memory_allocated`). The loss values of the timed runs are compared too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from benchmarks._timing import measure, rel_diff
from mmlab.losses import info_nce, siglip

D = 512
B_FULL, B_QUICK = 16384, 512
CHUNKS_FULL, CHUNKS_QUICK = (1024,), (64,)
TARGET_PEAK_RATIO = 0.25

LOSSES: dict[str, Callable[..., Tensor]] = {
    "info_nce": lambda a, b, k: info_nce(a, b, 0.07, chunk_size=k).loss,
    "siglip": lambda a, b, k: siglip(a, b, 0.1, -10.0, chunk_size=k).loss,
}


def _step(loss: Callable[..., Tensor], a: Tensor, b: Tensor, k: int | str, out: dict) -> Callable[[], None]:
    def run() -> None:
        a.grad = b.grad = None
        value = loss(a, b, k)
        value.backward()
        out["loss"] = float(value.detach())
    return run


def run(quick: bool, device: str) -> list[dict]:
    """Time and measure full vs chunked InfoNCE and SigLIP, forward + backward.

    Args:
        quick: B = 512, K = 64 (a smoke test).
        device: "cpu" or "cuda".
    Returns:
        One row per (loss, K): ms, peak MiB, ratios to the full computation, loss rel. diff.
    """
    n = B_QUICK if quick else B_FULL
    chunks = CHUNKS_QUICK if quick else CHUNKS_FULL
    min_time, max_reps = (0.05, 3) if quick else (1.0, 3)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, D, generator=g).to(device).requires_grad_()  # (B, D)
    b = torch.randn(n, D, generator=g).to(device).requires_grad_()  # (B, D)
    rows = []
    for name, loss in LOSSES.items():
        full: dict = {}
        s_full, reps, peak_full = measure(_step(loss, a, b, "full", full), device, min_time=min_time, max_reps=max_reps)
        rows.append({"loss": name, "B": n, "D": D, "chunk_size": "full (B, B)", "ms": s_full * 1e3, "runs": reps,
                     "peak_MiB": peak_full})
        print(f"  {name} B={n} full: {s_full * 1e3:.0f} ms, peak {peak_full} MiB", flush=True)
        for k in chunks:
            out: dict = {}
            s, reps, peak = measure(_step(loss, a, b, k, out), device, min_time=min_time, max_reps=max_reps)
            ratio = peak / peak_full if peak is not None and peak_full else None
            rows.append({"loss": name, "B": n, "D": D, "chunk_size": k, "ms": s * 1e3, "runs": reps, "peak_MiB": peak,
                         "time_ratio_vs_full": s / s_full, "peak_ratio_vs_full": ratio,
                         "meets_target_peak_le_25pct": None if ratio is None else ratio <= TARGET_PEAK_RATIO,
                         "loss_rel_diff_vs_full": rel_diff(out["loss"], full["loss"])})
            print(f"  {name} B={n} K={k}: {s * 1e3:.0f} ms, peak {peak} MiB (ratio {ratio})", flush=True)
    return rows


def sweep(sizes: list[int], dim: int, chunk_size: int, device: str, loss: str = "info_nce") -> list[dict]:
    """Peak memory and time of one forward + backward, chunked and full, for each B (one run each).

    Used by notebooks/10_scaling_up.ipynb through `python -m benchmarks.chunked --json`, so the
    memory is measured in a fresh process. Also returns the size of the (B, B) float32 logits.
    """
    fn = LOSSES[loss]
    warm = torch.randn(256, dim, device=device, requires_grad=True)  # first calls allocate thread pools etc.
    for k in (min(chunk_size, 64), "full"):
        _step(fn, warm, warm.detach().clone().requires_grad_(), k, {})()
    rows = []
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        a = torch.randn(n, dim, generator=g).to(device).requires_grad_()  # (B, D)
        b = torch.randn(n, dim, generator=g).to(device).requires_grad_()  # (B, D)
        row: dict = {"loss": loss, "B": n, "D": dim, "chunk_size": chunk_size, "logits_MiB": n * n * 4 / 2**20}
        for name, k in (("chunked", chunk_size), ("full", "full")):  # chunked first: no warm heap to reuse
            out: dict = {}
            s, _, peak = measure(_step(fn, a, b, k, out), device, min_time=0.0, max_reps=1)
            row.update({f"{name}_ms": s * 1e3, f"{name}_peak_MiB": peak, f"{name}_loss": out["loss"]})
        rows.append(row)
    return rows


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description="full vs chunked peak memory, one JSON row per B")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--loss", choices=sorted(LOSSES), default="info_nce")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    for r in sweep(args.sizes, args.dim, args.chunk_size, args.device, args.loss):
        print(json.dumps(r), flush=True)
