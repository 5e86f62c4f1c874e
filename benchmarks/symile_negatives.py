"""Symile negatives: the cost of "n" (B−1 shuffled negatives) vs "n_squared" (all B^(M−1) tuples) as B and M grow.

`mmlab.losses.symile(..., negatives=...)` (Saporta et al. 2024), forward + backward, D = 512.
Per anchor modality, "n" multiplies (B, D) by (D, B) after M−2 shuffled products: O(M·B²·D)
work. "n_squared" builds the B^(M−1) candidate products and a (B, B^(M−1)) logits matrix:
O(M·B^M·D) work and memory. With M = 2 both are one (B, B) matmul and "n_squared" skips the
shuffles, so it is never slower; from M = 3 on "n" wins beyond a small B. The rows end with one
"crossover" row per M: the smallest measured B from which "n" is faster at every larger B.
Sizes stop where B^(M−1) would pass `MAX_CANDIDATES`.
"""

from __future__ import annotations

import torch

from benchmarks._timing import measure
from mmlab.losses import symile

D = 512
TAU = 0.07
GRID = {2: (16, 64, 256, 1024, 4096), 3: (4, 8, 16, 32, 64, 128, 256), 4: (4, 8, 16, 32, 40)}
QUICK_GRID = {2: (16, 64), 3: (4, 16, 32), 4: (4, 8)}
MAX_CANDIDATES, QUICK_MAX_CANDIDATES = 65536, 4096


def _time(m: int, n: int, negatives: str, device: str, min_time: float, max_reps: int) -> tuple[float, float | None]:
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(n, D, generator=g).to(device).requires_grad_() for _ in range(m)]  # M × (B, D)
    gen = torch.Generator().manual_seed(1)

    def step() -> None:
        for x in xs:
            x.grad = None
        symile(*xs, temperature=TAU, negatives=negatives, generator=gen).loss.backward()

    s, _, peak = measure(step, device, min_time=min_time, max_reps=max_reps)
    return s, peak


def crossover(rows: list[dict], m: int) -> int | None:
    """The smallest B from which "n" is faster than "n_squared" at every larger measured B (or None)."""
    pts = sorted((r["B"], r["n_ms"] < r["n_squared_ms"]) for r in rows if r.get("M") == m and "n_squared_ms" in r)
    best = None
    for b, n_faster in reversed(pts):
        if not n_faster:
            break
        best = b
    return best


def run(quick: bool, device: str) -> list[dict]:
    """Time both negative schemes over a grid of (M, B).

    Args:
        quick: a few small sizes (a smoke test).
        device: "cpu" or "cuda".
    Returns:
        One row per (M, B) with both times, peaks and which is faster, then one crossover row per M.
    """
    grid = QUICK_GRID if quick else GRID
    cap = QUICK_MAX_CANDIDATES if quick else MAX_CANDIDATES
    min_time, max_reps = (0.02, 2) if quick else (0.3, 5)
    rows: list[dict] = []
    for m, sizes in grid.items():
        for n in sizes:
            if n ** (m - 1) > cap:
                continue
            row: dict = {"M": m, "B": n, "candidates_n_squared": n ** (m - 1)}
            for neg in ("n", "n_squared"):
                s, peak = _time(m, n, neg, device, min_time, max_reps)
                row[f"{neg}_ms"], row[f"{neg}_peak_MiB"] = s * 1e3, peak
            row["faster"] = "n" if row["n_ms"] < row["n_squared_ms"] else "n_squared"
            row["n_squared_over_n"] = row["n_squared_ms"] / row["n_ms"]
            rows.append(row)
            print(f"  symile M={m} B={n}: n {row['n_ms']:.1f} ms, n_squared {row['n_squared_ms']:.1f} ms", flush=True)
    for m in grid:
        b = crossover(rows, m)
        rows.append({"M": m, "B": b, "faster": "crossover: 'n' faster from this B on" if b is not None
                     else "no crossover in the measured range ('n_squared' not slower at the largest B)"})
    return rows
