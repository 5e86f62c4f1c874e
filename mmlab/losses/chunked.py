"""Memory-efficient contrastive losses for large batches: never build the full (B, B) matrix.

The CLIP loss needs, for each row i and each column j of the logits L = s·Â Bᵀ (s = 1/τ), the
log-sum-exps r_i = log Σ_j exp L_ij and c_j = log Σ_i exp L_ij. We compute them chunk by
chunk of K rows (memory O(K·B) instead of O(B²)) and recompute each chunk in the backward pass
(the same trick as gradient checkpointing / FlashAttention, Dao et al. 2022):

    ∂r_i/∂L_ij = softmax_j(L_i·) ,   ∂c_j/∂L_ij = softmax_i(L_·j)

    G_ij = g^r_i softmax_j(L_i·) + g^c_j softmax_i(L_·j)
    ∂/∂a_i = s Σ_j G_ij b_j ,  ∂/∂b_j = s Σ_i G_ij a_i ,  ∂/∂s = Σ_ij G_ij (a_i·b_j).

With the positive logits p_i = s·a_i·b_i (cheap, O(B·D)), CE(L, I) = mean_i (r_i − p_i), i.e.
the usual "grad wrt logits = softmax − onehot". The SigLIP loss (Zhai et al. 2023) is a plain
sum of softplus terms, so its chunked form accumulates the sum and recomputes the sigmoid in
backward. Both are `torch.autograd.Function`s, so gradients also reach a learnable τ and bias.
Their backward passes recompute the logits with autocast off, in the forward pass's float32 even
when `loss.backward()` is called inside `torch.autocast`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def _chunks(n: int, size: int) -> range:
    return range(0, n, size)


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off on `device_type` (nothing to turn off where autocast does not exist)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


class ChunkedLogSumExp(torch.autograd.Function):
    """Row and column log-sum-exps of L = s·a bᵀ, computed K rows at a time.

    forward(a (B, D), b (B, D), s 0-d, K) → (r (B,), c (B,)).
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, scale: Tensor,
                chunk_size: int) -> tuple[Tensor, Tensor]:
        n = a.shape[0]
        row_lse = a.new_empty(n)  # (B,)
        col_lse = a.new_full((b.shape[0],), float("-inf"))  # (B,)
        for start in _chunks(n, chunk_size):
            stop = min(start + chunk_size, n)
            logits = scale * (a[start:stop] @ b.T)  # (K, B)
            row_lse[start:stop] = torch.logsumexp(logits, dim=1)  # (K,)
            col_lse = torch.logaddexp(col_lse, torch.logsumexp(logits, dim=0))  # (B,)
        ctx.save_for_backward(a, b, scale, row_lse, col_lse)
        ctx.chunk_size = chunk_size
        return row_lse, col_lse

    @staticmethod
    def backward(ctx: Any, g_row: Tensor, g_col: Tensor) -> tuple[Tensor | None, ...]:
        with _autocast_off(g_row.device.type):
            return ChunkedLogSumExp._backward(ctx, g_row, g_col)

    @staticmethod
    def _backward(ctx: Any, g_row: Tensor, g_col: Tensor) -> tuple[Tensor | None, ...]:
        a, b, scale, row_lse, col_lse = ctx.saved_tensors
        need_a, need_b, need_s = ctx.needs_input_grad[:3]
        n, k = a.shape[0], ctx.chunk_size
        grad_a = torch.empty_like(a) if need_a else None
        grad_b = torch.zeros_like(b) if need_b else None
        grad_s = torch.zeros_like(scale) if need_s else None
        for start in _chunks(n, k):
            stop = min(start + k, n)
            a_c = a[start:stop]  # (K, D)
            sim = a_c @ b.T  # (K, B)
            logits = scale * sim  # (K, B)
            grad_logits = (g_row[start:stop, None] * torch.exp(logits - row_lse[start:stop, None])
                           + g_col[None, :] * torch.exp(logits - col_lse[None, :]))  # (K, B)
            if need_a:
                grad_a[start:stop] = scale * (grad_logits @ b)  # (K, D)
            if need_b:
                grad_b += scale * (grad_logits.T @ a_c)  # (B, D)
            if need_s:
                grad_s += (grad_logits * sim).sum()
        return grad_a, grad_b, grad_s, None


class ChunkedSigmoidLoss(torch.autograd.Function):
    """Σ_ij softplus(−z_ij L_ij) with L = s·a bᵀ + bias, z = +1 on the diagonal, −1 elsewhere.

    forward(a (B, D), b (B, D), s 0-d, bias 0-d, K) → scalar sum (divide by B for SigLIP).
    """

    @staticmethod
    def _signed_logits(a_c: Tensor, b: Tensor, scale: Tensor, bias: Tensor,
                       start: int) -> tuple[Tensor, Tensor]:
        sim = a_c @ b.T  # (K, B)
        x = scale * sim + bias  # (K, B): −z·L = L off the diagonal (z = −1) ...
        x.diagonal(offset=start).neg_()  # ... and −L at (i, i), i.e. column start + row (z = +1)
        return sim, x

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, scale: Tensor, bias: Tensor,
                chunk_size: int) -> Tensor:
        n = a.shape[0]
        total = a.new_zeros(())
        for start in _chunks(n, chunk_size):
            stop = min(start + chunk_size, n)
            _, x = ChunkedSigmoidLoss._signed_logits(a[start:stop], b, scale, bias, start)
            total = total - F.logsigmoid(-x).sum()  # softplus(x), without softplus's threshold
        ctx.save_for_backward(a, b, scale, bias)
        ctx.chunk_size = chunk_size
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        with _autocast_off(grad_out.device.type):
            return ChunkedSigmoidLoss._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        a, b, scale, bias = ctx.saved_tensors
        need_a, need_b, need_s, need_bias = ctx.needs_input_grad[:4]
        n, k = a.shape[0], ctx.chunk_size
        grad_a = torch.empty_like(a) if need_a else None
        grad_b = torch.zeros_like(b) if need_b else None
        grad_s = torch.zeros_like(scale) if need_s else None
        grad_bias = torch.zeros_like(bias) if need_bias else None
        for start in _chunks(n, k):
            stop = min(start + k, n)
            a_c = a[start:stop]  # (K, D)
            sim, x = ChunkedSigmoidLoss._signed_logits(a_c, b, scale, bias, start)
            # d softplus(−z L)/dL = −z σ(−z L): σ(x) off the diagonal, −σ(x) on it
            grad_logits = torch.sigmoid(x) * grad_out  # (K, B)
            grad_logits.diagonal(offset=start).neg_()
            if need_a:
                grad_a[start:stop] = scale * (grad_logits @ b)  # (K, D)
            if need_b:
                grad_b += scale * (grad_logits.T @ a_c)  # (B, D)
            if need_s:
                grad_s += (grad_logits * sim).sum()
            if need_bias:
                grad_bias += grad_logits.sum()
        return grad_a, grad_b, grad_s, grad_bias, None


def chunked_info_nce(a: Tensor, b: Tensor, scale: Tensor,
                     chunk_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Symmetric CLIP loss without the (B, B) matrix; a, b prepared (B, D), scale 0-d tensor.

    Returns:
        (loss, CE a_to_b, CE b_to_a), each a scalar tensor.
    """
    row_lse, col_lse = ChunkedLogSumExp.apply(a, b, scale, chunk_size)  # (B,), (B,)
    pos = scale * (a * b).sum(dim=-1)  # (B,)
    a_to_b = (row_lse - pos).mean()
    b_to_a = (col_lse - pos).mean()
    return 0.5 * (a_to_b + b_to_a), a_to_b, b_to_a


def chunked_siglip_sum(a: Tensor, b: Tensor, scale: Tensor, bias: Tensor,
                       chunk_size: int) -> Tensor:
    """Σ_ij −log σ(z_ij (s·a_i·b_j + bias)) without the (B, B) matrix (a scalar tensor)."""
    return ChunkedSigmoidLoss.apply(a, b, scale, bias, chunk_size)
