"""Interactivity benchmark: is mmlab.viz fast enough to feel live?

Times (1) one `TemperatureExplorer.update(τ)` (the softmax, gradient weights, entropy and loss
for one anchor plus the redraw of both bar charts; the target is < 100 ms) and (2) fitting the
2-D projection behind `plot_embeddings` with PCA and with UMAP for 1,000 and 10,000 points, on
the first call in the process (UMAP pays numba compilation) and on the second (steady state),
plus a cache hit. Run through the benchmark runner, or `python benchmarks/interactivity.py`.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch

from mmlab.viz import reduce, temperature_explorer

EMBED_DIM = 64


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _points(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(10, EMBED_DIM, generator=g) * 3  # 10 clusters, like 10 classes
    x = centers[torch.randint(0, 10, (n,), generator=g)] + torch.randn(n, EMBED_DIM, generator=g)
    return torch.nn.functional.normalize(x, dim=1)  # (n, D)


def _temperature_rows(sizes: tuple[int, ...], repeats: int) -> list[dict]:
    rows = []
    for b in sizes:
        sims = torch.rand(b) * 2 - 1  # (B,)
        app = temperature_explorer(sims, init=0.07)
        first = _time(lambda: app.update(0.5))
        rest = [_time(lambda t=t: app.update(t)) for t in torch.logspace(-2, 0.5, repeats).tolist()]
        rows.append({"benchmark": "temperature_explorer.update", "n": b, "call": "first", "seconds": first})
        rows.append({"benchmark": "temperature_explorer.update", "n": b, "call": "second (median)",
                     "seconds": statistics.median(rest), "target_seconds": 0.1})
    return rows


def _reduce_rows(method: str, sizes: tuple[int, ...]) -> list[dict]:
    rows = []
    for n in sizes:
        x1, x2 = _points(n, 0), _points(n, 1)
        first = _time(lambda: reduce(x1, method, 2, use_cache=True))
        second = _time(lambda: reduce(x2, method, 2, use_cache=False))
        cached = _time(lambda: reduce(x1, method, 2, use_cache=True))
        for call, s in (("first", first), ("second", second), ("cached", cached)):
            rows.append({"benchmark": f"reduce.{method}", "n": n, "call": call, "seconds": s})
    return rows


def run(quick: bool, device: str = "cpu") -> list[dict]:
    """Run the interactivity benchmark (the runner's interface: `run(quick, device)`).

    Args:
        quick: small sizes only (PCA 1k and 10k, UMAP 1k, τ explorer B = 64 and 512).
        device: ignored: the figures and projections run on the CPU, where the notebook
            front end lives, whatever the training device.
    Returns:
        One dict per measurement: "benchmark", "n" (points or candidates), "call"
        ("first", "second", "second (median)" or "cached"), "seconds" (and "target_seconds").
    """
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    rows = _temperature_rows((64, 512) if quick else (64, 512, 4096), repeats=5 if quick else 20)
    rows += _reduce_rows("pca", (1000, 10000))
    rows += _reduce_rows("umap", (1000,) if quick else (1000, 10000))
    return rows


if __name__ == "__main__":
    for row in run(quick="--full" not in sys.argv):
        print(f"{row['benchmark']:<30} n={row['n']:>6} {row['call']:<16} {row['seconds'] * 1e3:10.1f} ms")
