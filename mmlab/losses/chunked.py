"""InfoNCE in blocks of K rows: never a (B, B) tensor, four matrix products in all.

With Â = s·A (each row a_i scaled by s = 1/τ) and L = Â Bᵀ, the CLIP loss needs, for each row
i and each column j of L, the log-sum-exps r_i = log Σ_j exp L_ij and c_j = log Σ_i exp L_ij:

    loss = ½ [mean_i (r_i − L_ii) + mean_j (c_j − L_jj)].

Forward, one pass over the blocks of K rows: L_I = Â_I Bᵀ (matmul 1), r_I from the block, and c
accumulated block by block with log-add-exp. The backward needs the gradient of the logits,

    G_ij = g^r_i softmax_j(L_i·) + g^c_j softmax_i(L_·j)
         = g^r_i exp(L_ij − r_i) + g^c_j exp(L_ij − c_j),

which depends on every c_j, known only after the last block. So the backward recomputes each
block (matmul 2; the same trick as gradient checkpointing and FlashAttention, Dao et al. 2022)
and takes both directions from it at once:

    ∂/∂Â_I = G_I B (matmul 3),   ∂/∂B += G_Iᵀ Â_I (matmul 4).

Storing L would save matmul 2 but cost the (B, B) memory this path exists to avoid. The
gradient reaches s through Â = s·A (autograd), and the positives L_ii = s·a_i·b_i are O(B·D),
computed outside. The backward recomputes with autocast off, in the forward's float32.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor


def autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off on `device_type` (nothing to turn off where autocast does not exist)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def blocks(n: int, size: int) -> list[tuple[int, int]]:
    """[(start, stop), ...] covering range(n) in steps of `size` (the last block may be short)."""
    return [(start, min(start + size, n)) for start in range(0, n, size)]


class ChunkedLogSumExp(torch.autograd.Function):
    """Row and column log-sum-exps of L = Â Bᵀ, computed K rows at a time.

    forward(Â (B, D), B (B', D), K) → (r (B,), c (B',)).
    """

    @staticmethod
    def forward(ctx: Any, a_scaled: Tensor, b: Tensor, chunk_size: int) -> tuple[Tensor, Tensor]:
        row_lse = a_scaled.new_empty(a_scaled.shape[0])  # (B,)
        col_lse = a_scaled.new_full((b.shape[0],), float("-inf"))  # (B',)
        for start, stop in blocks(a_scaled.shape[0], chunk_size):
            logits = a_scaled[start:stop] @ b.T  # (K, B'): matmul 1
            row_lse[start:stop] = torch.logsumexp(logits, dim=1)  # (K,)
            top = logits.amax(dim=0)  # (B',): this block's column log-sum-exp, in place
            block_lse = logits.sub_(top).exp_().sum(dim=0).log_().add_(top)  # (B',)
            col_lse = torch.logaddexp(col_lse, block_lse)  # (B',)
        ctx.save_for_backward(a_scaled, b, row_lse, col_lse)
        ctx.chunk_size = chunk_size
        return row_lse, col_lse

    @staticmethod
    def backward(ctx: Any, g_row: Tensor, g_col: Tensor) -> tuple[Tensor | None, ...]:
        a_scaled, b, row_lse, col_lse = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[:2]
        grad_a = torch.empty_like(a_scaled) if need_a else None
        grad_b = torch.zeros_like(b) if need_b else None
        with autocast_off(g_row.device.type):
            for start, stop in blocks(a_scaled.shape[0], ctx.chunk_size):
                a_block = a_scaled[start:stop]  # (K, D)
                logits = a_block @ b.T  # (K, B'): matmul 2, the recomputed block
                # G = g^r exp(L − r) + g^c exp(L − c), the second term in place of the logits
                grad = (logits - row_lse[start:stop, None]).exp_().mul_(g_row[start:stop, None])
                grad.add_(logits.sub_(col_lse).exp_().mul_(g_col))  # (K, B')
                if need_a:
                    torch.mm(grad, b, out=grad_a[start:stop])  # (K, D): matmul 3
                if need_b:
                    grad_b.addmm_(grad.T, a_block)  # (B', D): matmul 4
        return grad_a, grad_b, None


def chunked_info_nce(a: Tensor, b: Tensor, scale: float | Tensor,
                     chunk_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Symmetric CLIP loss without the (B, B) matrix; a, b prepared (B, D), scale s = 1/τ.

    Returns:
        (loss, CE a_to_b, CE b_to_a), each a scalar tensor.
    """
    a_scaled = a * scale  # (B, D): Â, as in the full path's (a * scale) @ b.T
    row_lse, col_lse = ChunkedLogSumExp.apply(a_scaled, b, chunk_size)  # (B,), (B,)
    pos = (a_scaled * b).sum(dim=-1)  # (B,): L_ii
    a_to_b = (row_lse - pos).mean()
    b_to_a = (col_lse - pos).mean()
    return 0.5 * (a_to_b + b_to_a), a_to_b, b_to_a
