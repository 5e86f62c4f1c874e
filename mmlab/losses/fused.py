"""Losses whose gradient is known block by block: loss and gradient in one pass, three matmuls.

Some contrastive losses need nothing global to differentiate a block of K rows of the logits
L = Â Bᵀ (Â = s·A, s = 1/τ), so the forward pass can produce the gradient too, and the (B, B)
logits are computed once and never stored:

- SigLIP (Zhai et al. 2023) is a sum of independent terms, Σ_ij softplus(−z_ij L_ij) with
  L = Â Bᵀ + bias and z = +1 on the diagonal, −1 elsewhere:
  ∂/∂L_ij = −z_ij σ(−z_ij L_ij).
- One direction of a cross-entropy, Σ_i r_i with r_i = log Σ_j exp L_ij, as in each anchor's
  term of Symile with the "n" negatives (Saporta et al. 2024): ∂r_i/∂L_ij = softmax_j(L_i·),
  and r_i depends on row i only. There the diagonal of L is replaced by given positive logits.

Per block I: L_I = Â_I Bᵀ (matmul 1); the loss and G_I = ∂loss/∂L_I from L_I alone;
∂/∂Â_I = G_I B (matmul 2) and ∂/∂B += G_Iᵀ Â_I (matmul 3). The backward only multiplies the
stored (B, D) gradients by the incoming scalar. Without autograd (evaluation, `torch.no_grad`)
the forward skips matmuls 2 and 3. (The symmetric InfoNCE cannot do this: its column
log-sum-exps need every row first; see `mmlab.losses.chunked`.)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mmlab.losses.chunked import blocks

SOFTPLUS_LINEAR_FROM = 50.0
"""`F.softplus` returns x itself above this x; log(1 + e⁻ˣ) < 2e−22 there. (PyTorch's default
threshold, 20, leaves an error of 2e−9: invisible in float32, not in float64.)"""


def _accumulate(grad: Tensor, a_block: Tensor, b: Tensor, grads: list[Tensor | None],
                start: int, stop: int) -> None:
    """grads[0][I] = G_I B (matmul 2), grads[1] += G_Iᵀ Â_I (matmul 3), where requested."""
    if grads[0] is not None:
        torch.mm(grad, b, out=grads[0][start:stop])  # (K, D)
    if grads[1] is not None:
        grads[1].addmm_(grad.T, a_block)  # (B, D)


def _wanted(ctx: Any, grad_enabled: bool, n: int) -> list[bool]:
    """Which of the first n inputs get a gradient. `needs_input_grad` alone stays True under
    `torch.no_grad()`, so the caller also passes whether autograd was on when it called."""
    return [grad_enabled and need for need in ctx.needs_input_grad[:n]]


def _empty_grads(want: list[bool], a_scaled: Tensor, b: Tensor) -> list[Tensor | None]:
    return [torch.empty_like(a_scaled) if want[0] else None,
            torch.zeros_like(b) if want[1] else None]


def _stored_grads_times(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
    """The backward of a one-pass loss: its stored gradients times the incoming scalar (and
    None for `chunk_size` and `grad_enabled`)."""
    return (*[None if g is None else g * grad_out for g in ctx.grads], None, None)


class FusedSigmoidLoss(torch.autograd.Function):
    """Σ_ij softplus(−z_ij L_ij), L = Â Bᵀ + bias, in blocks of K rows, gradient included.

    forward(Â (B, D), B (B, D), bias 0-d, K, grad_enabled) → the scalar sum (÷ B for SigLIP).
    """

    @staticmethod
    def forward(ctx: Any, a_scaled: Tensor, b: Tensor, bias: Tensor, chunk_size: int,
                grad_enabled: bool) -> Tensor:
        want = _wanted(ctx, grad_enabled, 3)
        grads = _empty_grads(want, a_scaled, b)
        grad_bias = bias.new_zeros(()) if want[2] else None
        total = a_scaled.new_zeros(())
        for start, stop in blocks(a_scaled.shape[0], chunk_size):
            a_block = a_scaled[start:stop]  # (K, D)
            x = torch.addmm(bias, a_block, b.T)  # (K, B): L_I, matmul 1; −z·L = L off the diagonal
            x.diagonal(offset=start).neg_()  # ... and −L at (i, i): column start + local row
            # softplus(x) = log(1 + eˣ); above x = 50 it is x to float64 precision (e⁻⁵⁰ ≈ 2e−22)
            total += F.softplus(x, threshold=SOFTPLUS_LINEAR_FROM).sum()
            if not any(want):
                continue
            grad = x.sigmoid_()  # (K, B): softplus'(x) = σ(x), in place of x
            grad.diagonal(offset=start).neg_()  # ∂softplus(−z L)/∂L = −z σ(−z L)
            _accumulate(grad, a_block, b, grads, start, stop)
            if grad_bias is not None:
                grad_bias += grad.sum()
        ctx.grads = (*grads, grad_bias)
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        return _stored_grads_times(ctx, grad_out)


class FusedRowLogSumExp(torch.autograd.Function):
    """Σ_i log Σ_j exp L_ij with L = Â Bᵀ off the diagonal and L_ii = p_i, gradient included.

    forward(Â (B, D), B (B, D), p (B,), K, grad_enabled) → the scalar Σ_i r_i.
    """

    @staticmethod
    def forward(ctx: Any, a_scaled: Tensor, b: Tensor, positives: Tensor, chunk_size: int,
                grad_enabled: bool) -> Tensor:
        want = _wanted(ctx, grad_enabled, 3)
        grads = _empty_grads(want, a_scaled, b)
        grad_pos = torch.empty_like(positives) if want[2] else None
        total = a_scaled.new_zeros(())
        for start, stop in blocks(a_scaled.shape[0], chunk_size):
            a_block = a_scaled[start:stop]  # (K, D)
            logits = a_block @ b.T  # (K, B): matmul 1
            logits.diagonal(offset=start).copy_(positives[start:stop])  # L_ii = p_i
            top = logits.amax(dim=1, keepdim=True)  # (K, 1): the row maxima, for a safe exp
            exps = logits.sub_(top).exp_()  # (K, B): exp(L_ij − max_j L_ij), in place
            sums = exps.sum(dim=1)  # (K,)
            total += (sums.log() + top.squeeze(1)).sum()  # Σ_i r_i, r_i = log Σ_j exp L_ij
            if not any(want):
                continue
            grad = exps.div_(sums[:, None])  # (K, B): softmax_j(L_i·), in place
            diagonal = grad.diagonal(offset=start)  # (K,): ∂r_i/∂p_i, not a matmul term
            if grad_pos is not None:
                grad_pos[start:stop] = diagonal
            diagonal.zero_()
            _accumulate(grad, a_block, b, grads, start, stop)
        ctx.grads = (*grads, grad_pos)
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        return _stored_grads_times(ctx, grad_out)


def fused_sigmoid_sum(a_scaled: Tensor, b: Tensor, bias: Tensor, chunk_size: int) -> Tensor:
    """Σ_ij softplus(−z_ij (Â Bᵀ + bias)_ij) in blocks of `chunk_size` rows (a scalar tensor)."""
    return FusedSigmoidLoss.apply(a_scaled, b, bias, chunk_size, torch.is_grad_enabled())


def fused_row_lse_sum(a_scaled: Tensor, b: Tensor, positives: Tensor, chunk_size: int) -> Tensor:
    """Σ_i log Σ_j exp L_ij, L = Â Bᵀ with diagonal `positives`, in blocks (a scalar tensor)."""
    return FusedRowLogSumExp.apply(a_scaled, b, positives, chunk_size, torch.is_grad_enabled())
