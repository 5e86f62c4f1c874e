"""Which path a contrastive loss takes: the full (B, B) logits, or blocks of K rows.

A symmetric InfoNCE forward and backward needs three (B, D) × (D, B) matrix products: the
logits L = s·A Bᵀ, then ∂/∂A = G B and ∂/∂B = Gᵀ A with G = ∂loss/∂L. Everything else is
elementwise work on the (B, B) logits (softmax in both directions, their backward). The full path
writes and re-reads a (B, B) matrix several times; once it outgrows the caches, that memory
traffic, not the arithmetic, sets the time (14.8 matmul-times at B = 8,192 on a 2-core CPU).
The block path (`mmlab.losses.chunked`, `mmlab.losses.fused`) works on one (K, B) block at a
time, small enough to stay in the last-level cache, and never stores a (B, B) tensor, so there it
is both smaller and faster; below the switch the full path is faster and also returns the logits
for plotting.

`chunk_size` in `info_nce`, `siglip`, `symile` and their modules:
- None (default): choose. The full path while B < `min_batch(device)`, else blocks of
  K = `block_rows(n_cols, device)` rows. The notebooks train with B ≤ 256: the full path.
- an int K ≥ 1: blocks of K rows, always (K ≥ B is one block).
- "full": the full (B, B) logits, always.

The switch and the block size were measured with `python -m benchmarks --only losses_floor`
(BENCHMARKS.md, section "Losses against the matmul floor"), on a 2-core CPU and on an H200. On
the GPU the two paths trade differently: the full path stays the fastest for InfoNCE at every B
measured (4.5 matmul-times up to B = 65,536, against 5.5 to 6.3 in blocks), because a GPU's memory
bandwidth keeps up with the (B, B) passes; the blocks win only for SigLIP, and by 7 to 8%. So on
CUDA the switch is a memory choice: the block path from where the full path's (B, B) float32
tensors (about 3 alive at its peak) reach 12 GiB, with the largest blocks measured to be fast.
"""

from __future__ import annotations

from typing import Any

import torch

from mmlab._checks import check_int

FULL = "full"

CPU_MIN_BATCH = 2048
"""On the CPU the block path is chosen from this batch size on (B, B float32 logits: 16 MiB).
Measured on 2 cores at D = 512, in matmul-times: at B = 2,048 blocks beat the full path (InfoNCE
4.6 vs 4.9, SigLIP 4.2 vs 4.9, Symile 11.1 vs 13.6); at B = 1,024 the full path wins (4.5 vs 7.4
for InfoNCE)."""
CPU_BLOCK_LOGITS = 2 ** 21
"""Logits per block on the CPU (8 MiB of float32): K = CPU_BLOCK_LOGITS // B rows, at least
MIN_BLOCK_ROWS (K = 1,024 at B = 2,048, 512 from B = 4,096)."""
CUDA_MIN_BATCH = 32768
"""On CUDA the block path is chosen from this batch size on ((B, B) float32 logits: 4 GiB, and the
full path's peak about three times that). Measured on an H200 at D = 512 (InfoNCE, float32, in
matmul-times): full 4.56 / 4.50 / 4.47 at B = 16,384 / 32,768 / 65,536; blocks of K = 8,192 5.84 /
5.59 / 5.51. Below the switch the full path is faster; above it, it would need tens of GiB."""
CUDA_BLOCK_LOGITS = 2 ** 28
"""Logits per block on CUDA (1 GiB of float32): K = 8,192 at B = 32,768, 4,096 at B = 65,536.
Bigger blocks were faster on the H200 (InfoNCE at B = 65,536: K = 512 5.99, 2,048 5.65,
8,192 5.51 matmul-times), unlike the CPU, whose blocks must fit its cache."""
MIN_BLOCK_ROWS = 512
"""Never fewer rows per block by default. Thinner blocks cost more than they save: each block
re-reads B and rewrites the (B, D) gradient of B, and a thin matmul runs below the machine's
peak (InfoNCE at B = 8,192: 4.6 matmul-times with K = 512, 7.9 with K = 64)."""


def check_chunk_size(chunk_size: Any) -> int | str | None:
    """None (choose), "full", or an int ≥ 1; anything else is a clear error."""
    if chunk_size is None or chunk_size == FULL:
        return chunk_size
    if isinstance(chunk_size, str):
        raise ValueError(f"`chunk_size` must be None (choose), {FULL!r} or an int ≥ 1, "
                         f"got {chunk_size!r}.")
    return check_int("chunk_size", chunk_size, minimum=1)


def min_batch(device: torch.device | str) -> int:
    """The batch size from which `chunk_size=None` takes the block path on `device`."""
    return CUDA_MIN_BATCH if torch.device(device).type == "cuda" else CPU_MIN_BATCH


def block_rows(n_cols: int, device: torch.device | str) -> int:
    """Rows per block K for logits with `n_cols` columns: about one block of logits in cache."""
    logits = CUDA_BLOCK_LOGITS if torch.device(device).type == "cuda" else CPU_BLOCK_LOGITS
    return max(MIN_BLOCK_ROWS, logits // max(n_cols, 1))


def resolve_chunk_size(chunk_size: int | str | None, n_rows: int, n_cols: int,
                       device: torch.device | str) -> int | None:
    """The rows per block a loss uses, or None for the full (B, B) path.

    Args:
        chunk_size: None (choose), "full" or an int ≥ 1 (checked here).
        n_rows: B, the rows of the logits (the anchors).
        n_cols: the columns of the logits (B for CLIP, SigLIP and Symile's "n" negatives).
        device: where the embeddings are.
    """
    chunk_size = check_chunk_size(chunk_size)
    if chunk_size == FULL:
        return None
    if chunk_size is not None:
        return int(chunk_size)
    if n_rows < min_batch(device):
        return None
    return min(n_rows, block_rows(n_cols, device))
