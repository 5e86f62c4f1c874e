"""Supervised contrastive loss, SupCon (Khosla et al. 2020, "Supervised Contrastive Learning").

Every sample with the same label is a positive. With the N = B·V view embeddings z (L2-
normalised), P(i) = {p ≠ i : y_p = y_i} and A(i) = {a ≠ i}, the L_out form is

    loss = (1/|I⁺|) Σ_{i∈I⁺} −(1/|P(i)|) Σ_{p∈P(i)} log π_i(p),
    π_i(p) = exp(z_i·z_p/τ) / Σ_{a∈A(i)} exp(z_i·z_a/τ),

averaged over the anchors I⁺ that have at least one positive (an anchor alone in its class
has nothing to pull towards; the paper's code would give NaN there). If no anchor has a
positive (e.g. a single sample with one view), the loss is 0, still connected to the graph, with
zero gradients. The number of anchors, |I⁺| = #{i : |P(i)| > 0}, is not a part of the loss, so it
is not in `terms`; count it from the labels if you need it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmlab._checks import check_finite_if_cheap, check_tensor
from mmlab.losses._prep import as_scale, in_float32, prepare
from mmlab.losses.output import DEFAULT_TEMPERATURE, LossOutput


@in_float32
def supcon(features: Tensor, labels: Tensor, temperature: float | Tensor = DEFAULT_TEMPERATURE, *,
           normalize: bool = True) -> LossOutput:
    """SupCon (L_out): mean over anchors of −mean_{p∈P(i)} log softmax_{a≠i}(z_i·z_a/τ)_p.

    Khosla et al. 2020. The formula is in the module docstring.

    Args:
        features: (B, D) embeddings, or (B, V, D) with V views per sample (views of one sample
            are positives of each other).
        labels: (B,) integer class labels.
        temperature: τ > 0, a float or a 0-d tensor.
        normalize: L2-normalise the features first.
    Returns:
        LossOutput with `logits` z zᵀ/τ (N, N), N = B·V, view-major (row v·B + i is view v of
        sample i), and no terms (`{}`). With no anchor that has a positive the loss is 0.
    """
    check_tensor("features", features)
    if features.ndim not in (2, 3):
        raise ValueError(f"`features` must be (B, D) or (B, V, D), "
                         f"got shape {tuple(features.shape)}.")
    check_tensor("labels", labels, ndim=1, float_dtype=False)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"`labels` must be an integer tensor, got {labels.dtype}.")
    if labels.shape[0] != features.shape[0]:
        raise ValueError(f"`labels` {tuple(labels.shape)} must have one label per row of "
                         f"`features` {tuple(features.shape)}.")
    check_finite_if_cheap("features", features)
    n_views = 1 if features.ndim == 2 else features.shape[1]
    if features.ndim == 3:
        if features.shape[1] == 0 or features.shape[2] == 0:
            raise ValueError(f"`features` is empty (shape {tuple(features.shape)}).")
        features = features.transpose(0, 1).reshape(-1, features.shape[-1])  # (V·B, D), view-major
    (z,) = prepare(("features",), (features,), normalize)
    scale = as_scale(temperature, z)
    y = labels.to(z.device).repeat(n_views)  # (N,)
    logits = (z * scale) @ z.T  # (N, N)
    if z.shape[0] < 2:  # one row: no anchor has a positive (the softmax over a≠i would be empty)
        return LossOutput((logits * 0).sum(), logits, {})
    self_mask = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)  # (N, N)
    pos_mask = (y[:, None] == y[None, :]) & ~self_mask  # (N, N)
    log_denominator = torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1)  # (N,)
    log_prob = logits - log_denominator[:, None]  # (N, N), finite (the diagonal is masked below)
    n_pos = pos_mask.sum(dim=1)  # (N,)
    has_pos = n_pos > 0  # (N,)
    per_anchor = -(log_prob * pos_mask).sum(dim=1) / n_pos.clamp(min=1)  # (N,)
    n_anchors = has_pos.sum()
    loss = (per_anchor * has_pos).sum() / n_anchors.clamp(min=1)
    return LossOutput(loss, logits, {})
