"""InfoNCE with corrected negatives: debiased (Chuang et al. 2020) and hard-negative
(Robinson et al. 2021) contrastive losses, both symmetric like `info_nce`.

For anchor i with logits L_ij = S_ij/τ, positive p_i = exp L_ii and N = B−1 negatives, a
batch negative is a false negative (same latent class) with prior probability τ⁺. Debiasing
replaces the negative mass Σ_{j≠i} exp L_ij by

    N_g = max( (Σ_{j≠i} w_ij exp L_ij − N τ⁺ p_i) / (1 − τ⁺),  N e^{−1/τ} ),
    loss_i = −log( p_i / (p_i + N_g) ),

where w_ij = 1 (debiased) or w_ij = N softmax_{j≠i}(β L_ij) (hard negatives: importance
weights that up-weight negatives close to the anchor; β = 0 recovers the debiased loss, and
τ⁺ = 0 with β = 0 recovers the one-directional InfoNCE, up to the floor).
The floor N e^{−1/τ} is the smallest possible mass for unit vectors (S ≥ −1).
Computed in log space: log N_g from log-sum-exps, loss_i = softplus(log N_g − L_ii).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mmlab._checks import check_probability
from mmlab.losses._prep import as_scale, as_tensor_scalar, in_float32, prepare
from mmlab.losses.output import DEFAULT_TEMPERATURE, LossOutput

_SAFE = 1e-6  # keep 1 − x ≥ 1e-6 inside log1p so gradients stay finite near the floor


def _check_beta(beta: Any) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)):
        raise TypeError(f"`beta` must be a number, got {type(beta).__name__}.")
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"`beta` must be a finite number ≥ 0 (the hardness concentration), "
                         f"got {beta}.")
    return float(beta)


def _debiased_rows(logits: Tensor, scale: float | Tensor, tau_plus: float, beta: float) -> Tensor:
    """Mean over rows i of softplus(log N_g,i − L_ii) for a (B, B) logit matrix with B ≥ 2."""
    n_neg = logits.shape[0] - 1
    pos = logits.diagonal()  # (B,)
    self_mask = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)  # (B, B)
    off = float("-inf")  # the masked diagonal
    if beta == 0:
        log_mass = torch.logsumexp(logits.masked_fill(self_mask, off), dim=1)  # (B,)
    else:  # log( N Σ_j softmax(βL)_j exp L_j ) = log N + lse((1+β)L) − lse(βL)
        log_mass = (math.log(n_neg)
                    + torch.logsumexp(((1 + beta) * logits).masked_fill(self_mask, off), dim=1)
                    - torch.logsumexp((beta * logits).masked_fill(self_mask, off), dim=1))  # (B,)
    if tau_plus > 0:
        log_x = math.log(n_neg * tau_plus) + pos - log_mass  # (B,): log(N τ⁺ p / mass)
        x = torch.exp(log_x.clamp(max=0)).clamp(max=1 - _SAFE)  # (B,)
        debiased = log_mass + torch.log1p(-x) - math.log1p(-tau_plus)  # (B,)
        log_ng = torch.where(log_x < 0, debiased, torch.full_like(debiased, off))  # (B,)
    else:
        log_ng = log_mass
    floor = as_tensor_scalar(math.log(n_neg) - scale, logits)  # log(N e^{−1/τ})
    log_ng = torch.maximum(log_ng, floor)  # (B,)
    return -F.logsigmoid(pos - log_ng).mean()  # softplus(log N_g − L_ii), exact beyond 20


def _symmetric(a: Tensor, b: Tensor, temperature: float | Tensor, tau_plus: float, beta: float,
               normalize: bool) -> LossOutput:
    a, b = prepare(("a", "b"), (a, b), normalize)
    scale = as_scale(temperature, a)
    tau_plus = check_probability("tau_plus", tau_plus, inclusive=False)
    logits = (a * scale) @ b.T  # (B, B)
    if logits.shape[0] == 1:  # no negatives: p / (p + 0) = 1, the loss is exactly 0
        zero = logits.sum() * 0
        return LossOutput(zero, logits, {"a_to_b": zero, "b_to_a": zero})
    a_to_b = _debiased_rows(logits, scale, tau_plus, beta)
    b_to_a = _debiased_rows(logits.T, scale, tau_plus, beta)
    return LossOutput(0.5 * (a_to_b + b_to_a), logits, {"a_to_b": a_to_b, "b_to_a": b_to_a})


@in_float32
def debiased_info_nce(a: Tensor, b: Tensor, temperature: float | Tensor = DEFAULT_TEMPERATURE,
                      tau_plus: float = 0.1, *, normalize: bool = True) -> LossOutput:
    """Debiased contrastive loss, symmetric: ½[ℓ(L) + ℓ(Lᵀ)],
    ℓ(L) = (1/B) Σ_i −log(p_i / (p_i + N_g,i)).

    Chuang et al. 2020 "Debiased Contrastive Learning". N_g is defined in the module docstring
    (w_ij = 1).

    Args:
        a: (B, D) embeddings; row i is paired with row i of `b`.
        b: (B, D) embeddings.
        temperature: τ > 0, a float or a 0-d tensor.
        tau_plus: τ⁺ ∈ [0, 1), the prior probability that a batch negative shares the anchor's
            class.
        normalize: L2-normalise a and b first.
    Returns:
        LossOutput with `logits` S/τ (B, B) and terms {"a_to_b", "b_to_a"}.
    """
    return _symmetric(a, b, temperature, tau_plus, 0.0, normalize)


@in_float32
def hard_negative_info_nce(a: Tensor, b: Tensor, temperature: float | Tensor = DEFAULT_TEMPERATURE,
                           beta: float = 1.0, tau_plus: float = 0.1, *,
                           normalize: bool = True) -> LossOutput:
    """Hard-negative contrastive loss, symmetric, with importance weights
    w_ij = N softmax_{j≠i}(β L_ij).

    Robinson et al. 2021 "Contrastive Learning with Hard Negative Samples". N_g is defined in
    the module docstring; β = 0 gives `debiased_info_nce`.

    Args:
        a: (B, D) embeddings; row i is paired with row i of `b`.
        b: (B, D) embeddings.
        temperature: τ > 0, a float or a 0-d tensor.
        beta: β ≥ 0, how strongly to up-weight negatives similar to the anchor.
        tau_plus: τ⁺ ∈ [0, 1), the false-negative prior of the debiasing correction.
        normalize: L2-normalise a and b first.
    Returns:
        LossOutput with `logits` S/τ (B, B) and terms {"a_to_b", "b_to_a"}.
    """
    return _symmetric(a, b, temperature, tau_plus, _check_beta(beta), normalize)
