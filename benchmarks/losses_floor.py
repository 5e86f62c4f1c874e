"""Losses against the matmul floor: forward + backward time in units of one matrix product.

A symmetric InfoNCE or SigLIP step needs three (B, D) × (D, B) products (the logits, then
∂/∂A = G B and ∂/∂B = Gᵀ A); Symile with M modalities and the "n" negatives needs three per
anchor, 3M. Everything else is elementwise work on (B, B) logits or O(B·D). So the time of one
product of the same shapes, `a @ b.T` with a, b of shape (B, D), measured in the same run, is
the unit ("matmul-times"), and `floor` is the number of products the maths needs:

    ratio_to_floor = time / (floor × time of one matmul).

The block path of InfoNCE recomputes its logits in the backward (4 products, `mmlab.losses.chunked`),
so its best possible ratio is 4/3; SigLIP and Symile compute loss and gradient in one pass
(3 products, `mmlab.losses.fused`). Rows: mmlab's default (`chunk_size=None`, which chooses), the
forced full path ("full"), and the peers open_clip (ClipLoss, SigLipLoss) and the symile package,
which build the full logits. Each (loss, B) group is timed interleaved with its matmul (the
minimum over rounds), so a change in machine load hits the unit and the loss alike. Peak memory
is measured once per row as in `benchmarks._timing`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from benchmarks._timing import interleaved_min, measure
from benchmarks.losses import SIGLIP_BIAS, SIGLIP_TAU, SYMILE_M, TAU, _step, implementations
from mmlab.losses import info_nce, siglip, symile
from mmlab.losses.chunking import resolve_chunk_size

D = 512
SIZES = (1024, 2048, 4096, 8192, 16384)
CUDA_SIZES = (4096, 16384, 32768, 65536)  # where the (B, B) float32 logits take 64 MiB to 16 GiB
QUICK_SIZES = (64, 256)
FULL_MAX_B_CPU = 8192  # the full paths and the peers above this take minutes per run on 2 cores
SYMILE_MAX_B_CPU = 8192
PEERS_MAX_B_CUDA = 16384  # the peers above this add minutes of GPU time and nothing new
SYMILE_MAX_B_CUDA = 32768
CUDA_BLOCKS = (2048, 8192)  # extra block sizes timed on CUDA, to place CUDA_MIN_BATCH and CUDA_BLOCK_LOGITS
FLOOR = {"info_nce": 3, "siglip": 3, "symile": 3 * SYMILE_M}

Fn = Callable[..., Tensor]


def _mmlab(family: str, chunk_size: int | str | None) -> Fn:
    if family == "info_nce":
        return lambda a, b: info_nce(a, b, TAU, chunk_size=chunk_size).loss
    if family == "siglip":
        return lambda a, b: siglip(a, b, SIGLIP_TAU, SIGLIP_BIAS, chunk_size=chunk_size).loss
    return lambda *xs: symile(*xs, temperature=TAU, negatives="n", chunk_size=chunk_size).loss


def _rows_for(family: str, n: int, device: str) -> list[tuple[str, Fn]]:
    """(name, loss function) for one group: mmlab default, mmlab full, the peers; on CUDA also
    the block path with each K in CUDA_BLOCKS (below B and not the default's K)."""
    cuda = device.startswith("cuda")
    chosen = resolve_chunk_size(None, n, n, device)
    default = f"mmlab default ({'full' if chosen is None else f'blocks of K = {chosen}'})"
    rows = [(default, _mmlab(family, None))]
    if device == "cpu" and n > FULL_MAX_B_CPU:
        return rows
    if chosen is not None:
        rows.append(("mmlab full", _mmlab(family, "full")))
    if cuda:
        rows += [(f"mmlab blocks of K = {k}", _mmlab(family, k)) for k in CUDA_BLOCKS if k < n and k != chosen]
    if not cuda or n <= PEERS_MAX_B_CUDA:
        rows += [(i.name, i.fn) for i in implementations()
                 if i.family == family and i.name != "mmlab" and i.fn is not None
                 and not i.max_bytes_per_b3]  # PML's O(B³) matrix: not at these sizes
    return rows


def run(quick: bool, device: str) -> list[dict]:
    """Time each loss's forward + backward and one matmul of the same shapes, interleaved.

    Args:
        quick: B ∈ {64, 256}, few rounds (a smoke test; numbers not meant to be read).
        device: "cpu" or "cuda" (CUDA also times bfloat16 inputs, with a bfloat16 matmul unit).
    Returns:
        One row per (loss, dtype, B, implementation): ms, the matmul's ms, matmul-times, the
        floor, the ratio to the floor and peak MiB.
    """
    sizes = QUICK_SIZES if quick else CUDA_SIZES if device.startswith("cuda") else SIZES
    dtypes = [torch.float32] + ([torch.bfloat16] if device == "cuda" else [])
    rows: list[dict] = []
    for family in ("info_nce", "siglip", "symile"):
        m = SYMILE_M if family == "symile" else 2
        for dtype in dtypes:
            for n in sizes:
                if family == "symile" and n > (SYMILE_MAX_B_CPU if device == "cpu" else SYMILE_MAX_B_CUDA):
                    continue
                g = torch.Generator().manual_seed(n)
                xs = [torch.randn(n, D, generator=g).to(device=device, dtype=dtype).requires_grad_()
                      for _ in range(m)]
                a, b = xs[0].detach(), xs[1].detach()
                impls = _rows_for(family, n, device)
                fns = [lambda: a @ b.T] + [_step(fn, xs) for _, fn in impls]
                first = measure(fns[0], device, min_time=0.0, max_reps=1)[0]
                rounds = 3 if quick else (15 if first < 0.05 else 3)
                times = interleaved_min(fns, device, rounds=rounds)
                unit = times[0]
                for (name, fn), s in zip(impls, times[1:]):
                    peak = measure(_step(fn, xs), device, min_time=0.0, max_reps=1)[2]
                    rows.append({"loss": family, "impl": name, "dtype": str(dtype).removeprefix("torch."),
                                 "B": n, "D": D, "ms": s * 1e3, "matmul_ms": unit * 1e3,
                                 "matmul_times": s / unit, "floor": FLOOR[family],
                                 "ratio_to_floor": s / unit / FLOOR[family], "peak_MiB": peak})
                print(f"  {family} {dtype} B={n}: matmul {unit * 1e3:.1f} ms; " + ", ".join(
                    f"{name} {s / unit:.2f}" for (name, _), s in zip(impls, times[1:])) + " matmul-times",
                      flush=True)
                del xs, a, b, fns
    return rows
