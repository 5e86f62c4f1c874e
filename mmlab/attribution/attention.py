"""Attention-based relevance: attention rollout and gradient-weighted attention.

- **Attention rollout** (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"):
  multiply the head-averaged attention maps of all layers, with the residual stream as `+ I`.
  Class-agnostic: it ignores which score is being explained.
- **Gradient-weighted attention** (Chefer, Gur & Wolf 2021, "Generic Attention-model
  Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", Eqs. 5-6):
  weight every attention map by its gradient `∂s/∂A`, keep the positive part and accumulate
  `R ← R + Ā·R` through the layers.

Notation as in docs/DESIGN.md: `B` batch, `h` heads, `T` tokens, `A_l` the attention of layer
`l` with shape (B, h, T, T), rows summing to 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mmlab._checks import check_choice, check_finite_if_cheap, check_tensor

HEAD_FUSIONS = ("mean", "max", "min")

__all__ = ["HEAD_FUSIONS", "attention_rollout", "gradient_attention"]


def _check_attentions(name: str, attentions: Any) -> list[Tensor]:
    if (isinstance(attentions, Tensor) or not isinstance(attentions, Sequence)
            or len(attentions) == 0):
        raise TypeError(f"`{name}` must be a non-empty list (one per layer) "
                        "of (B, heads, T, T) tensors, "
                        f"got {type(attentions).__name__}. "
                        "Call the encoder with return_attention=True.")
    out = []
    for layer, a in enumerate(attentions):
        check_tensor(f"{name}[{layer}]", a, ndim=4, what="of shape (B, heads, T, T)")
        check_finite_if_cheap(f"{name}[{layer}]", a)
        if a.shape[-1] != a.shape[-2]:
            raise ValueError(f"`{name}[{layer}]` must be square in its last two dims "
                             "(B, heads, T, T), "
                             f"got shape {tuple(a.shape)}.")
        if a.shape != attentions[0].shape:
            raise ValueError(f"every layer of `{name}` must have the same shape (B, heads, T, T); "
                             f"layer 0 is {tuple(attentions[0].shape)}, "
                             f"layer {layer} is {tuple(a.shape)}.")
        out.append(a)
    return out


def _eye_like(a: Tensor) -> Tensor:
    B, _, T, _ = a.shape
    return torch.eye(T, dtype=a.dtype, device=a.device).expand(B, T, T)  # (B, T, T)


def attention_rollout(attentions: Sequence[Tensor], *, head_fusion: str = "mean",
                      residual: bool = True) -> Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much each token flows into each output.

    Â_l = normalise_rows(fuse_h A_l + I)   (without `+ I` when `residual=False`)
    rollout = Â_L · … · Â_2 · Â_1

    `fuse_h` is the mean over heads (the paper), or the max / min (popular variants). Rows are
    renormalised to sum to 1 in every layer, so every row of the result sums to 1: row `t`
    is a distribution over the input tokens that token `t` of the last layer is built from.

    Args:
        attentions: one (B, h, T, T) tensor per layer, first layer first, rows summing to 1
            (CPU tensors are checked for NaN/Inf).
        head_fusion: "mean", "max" or "min" over the h heads.
        residual: add the identity for the skip connection (as in the paper).
    Returns:
        (B, T, T) rollout; `rollout[b, t]` is the relevance of every input token for token t.
    """
    attentions = _check_attentions("attentions", attentions)
    check_choice("head_fusion", head_fusion, HEAD_FUSIONS)
    eye = _eye_like(attentions[0])  # (B, T, T)
    rollout = eye.clone()
    for a in attentions:
        if head_fusion == "mean":
            fused = a.mean(dim=1)  # (B, T, T)
        elif head_fusion == "max":
            fused = a.amax(dim=1)  # (B, T, T)
        else:
            fused = a.amin(dim=1)  # (B, T, T)
        if residual:
            fused = fused + eye  # (B, T, T)
        fused = fused / fused.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(fused.dtype).tiny)
        rollout = fused @ rollout  # (B, T, T): Â_l · (Â_{l-1} ⋯ Â_1)
    return rollout


def gradient_attention(attentions: Sequence[Tensor], attention_grads: Sequence[Tensor]) -> Tensor:
    """Gradient-weighted attention relevance (Chefer, Gur & Wolf 2021, ICCV, Eqs. 5-6).

    For the self-attention layers of one encoder, starting from R = I (each token explains
    only itself) and going from the first layer to the last:

        Ā_l = E_h[(∇A_l ⊙ A_l)⁺]      (Eq. 5: ∇A_l = ∂s/∂A_l, ⁺ keeps the positive part,
                                       E_h is the mean over heads)
        R   ← R + Ā_l · R             (Eq. 6: the residual keeps the old relevance, the
                                       attention mixes it)

    so R = (I + Ā_L) ⋯ (I + Ā_1). Unlike rollout, rows are not normalised and the map depends on
    the score s being explained (through ∇A). The row of the token that is pooled into the
    embedding (CLS) gives the relevance of every input token; R[t, t] ≥ 1 is the identity's
    self-relevance and is usually dropped.

    Args:
        attentions: one (B, h, T, T) tensor per layer, first layer first.
        attention_grads: the gradients ∂s/∂A_l, same shapes
            (`torch.autograd.grad(s, attentions)`).
    Returns:
        (B, T, T) relevance matrix R.
    """
    attentions = _check_attentions("attentions", attentions)
    attention_grads = _check_attentions("attention_grads", attention_grads)
    if len(attentions) != len(attention_grads) or attentions[0].shape != attention_grads[0].shape:
        raise ValueError(f"`attention_grads` must match `attentions` layer by layer: "
                         f"got {len(attention_grads)} "
                         f"layers of {tuple(attention_grads[0].shape)} "
                         f"for {len(attentions)} layers of "
                         f"{tuple(attentions[0].shape)}. "
                         "Pass torch.autograd.grad(score, attentions).")
    relevance = _eye_like(attentions[0]).clone()  # (B, T, T)
    for a, g in zip(attentions, attention_grads):
        a_bar = (g * a).clamp(min=0).mean(dim=1)  # (B, T, T), Eq. 5
        relevance = relevance + a_bar @ relevance  # (B, T, T), Eq. 6
    return relevance
