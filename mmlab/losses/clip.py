"""The symmetric InfoNCE / CLIP loss (Oord et al. 2018; Radford et al. 2021) and its module.

With S_ij = cos(a_i, b_j) and τ the temperature, the logits are L = S/τ and

    loss = ½ [CE(L, I) + CE(Lᵀ, I)],   CE(L, I) = −(1/B) Σ_i log( exp L_ii / Σ_j exp L_ij ).

Row i of L asks "which b belongs to a_i?"; row j of Lᵀ asks "which a belongs to b_j?".
The gradient with respect to a negative logit is softmax_j(L_i·) (Wang & Liu 2021), so hard
negatives get most of the push, more so at small τ.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mmlab.losses._prep import as_scale, in_float32, prepare, unpack_modalities
from mmlab.losses.chunked import chunked_info_nce
from mmlab.losses.chunking import check_chunk_size, resolve_chunk_size
from mmlab.losses.output import DEFAULT_TEMPERATURE, LossOutput
from mmlab.losses.temperature import LearnableTemperature


@in_float32
def info_nce(a: Tensor, b: Tensor, temperature: float | Tensor = DEFAULT_TEMPERATURE, *,
             normalize: bool = True, chunk_size: int | str | None = None) -> LossOutput:
    """Symmetric InfoNCE (CLIP) loss: ½[CE(S/τ, I) + CE(Sᵀ/τ, I)], S_ij = cos(a_i, b_j).

    Oord et al. 2018 "Representation Learning with Contrastive Predictive Coding";
    Radford et al. 2021 "Learning Transferable Visual Models From Natural Language Supervision".

    Args:
        a: (B, D) embeddings of the first modality; row i is paired with row i of `b`.
        b: (B, D) embeddings of the second modality.
        temperature: τ > 0, a float or a 0-d tensor (gradients flow to it).
        normalize: L2-normalise a and b first (S is then the cosine similarity).
        chunk_size: None: choose (the full logits below B = 2,048 on a CPU, else blocks; see
            `mmlab.losses.chunking`); an int K: compute the loss K rows at a time and never
            build the (B, B) logits, in forward or backward (same value and gradients up to
            rounding, and faster for large B); "full": always the full logits.
    Returns:
        LossOutput with `logits` L = S/τ (B, B) (None on the block path) and terms
        {"a_to_b": CE(L, I), "b_to_a": CE(Lᵀ, I)}.
    """
    a, b = prepare(("a", "b"), (a, b), normalize)
    scale = as_scale(temperature, a)
    chunk_size = resolve_chunk_size(chunk_size, a.shape[0], b.shape[0], a.device)
    if chunk_size is not None:
        loss, a_to_b, b_to_a = chunked_info_nce(a, b, scale, chunk_size)
        return LossOutput(loss, None, {"a_to_b": a_to_b, "b_to_a": b_to_a})
    logits = (a * scale) @ b.T  # (B, B): S/τ, scaling the (B, D) side is cheaper
    labels = torch.arange(logits.shape[0], device=logits.device)  # (B,)
    a_to_b = F.cross_entropy(logits, labels)
    b_to_a = F.cross_entropy(logits.T, labels)
    return LossOutput(0.5 * (a_to_b + b_to_a), logits, {"a_to_b": a_to_b, "b_to_a": b_to_a})


@in_float32
def pairwise_info_nce(*embeddings: Any, temperature: float | Tensor = DEFAULT_TEMPERATURE,
                      normalize: bool = True) -> LossOutput:
    """Mean of `info_nce` over all M(M−1)/2 modality pairs (pairwise CLIP, as in ImageBind-style
    training without an anchor modality; the baseline in Saporta et al. 2024).

        loss = (2 / (M(M−1))) Σ_{m<n} info_nce(x_m, x_n)

    Args:
        *embeddings: M ≥ 2 tensors (B, D), or one dict of modality name → (B, D) tensor.
        temperature: τ > 0, a float or a 0-d tensor.
        normalize: L2-normalise the embeddings first.
    Returns:
        LossOutput with `logits` None and one term per pair m < n, keyed "m-n" (indices such
        as "0-1", or dict keys such as "image-text").
    """
    names, keys, xs = unpack_modalities(embeddings)
    xs = prepare(names, xs, normalize)  # validate and normalise each modality once
    terms = {f"{keys[m]}-{keys[n]}": info_nce(xs[m], xs[n], temperature, normalize=False).loss
             for m, n in itertools.combinations(range(len(xs)), 2)}
    loss = torch.stack(list(terms.values())).mean()
    return LossOutput(loss, None, terms)


class ClipLoss(LearnableTemperature):
    """CLIP loss with a learnable temperature, stored as `logit_scale = log(1/τ)` (Radford et al.
    2021).

    The clamp `logit_scale ≤ MAX_LOGIT_SCALE = log 100` (τ ≥ 0.01) happens in `forward`, on the
    value used (so the gradient is zero while the parameter sits above the bound). Call
    `clamp_()` after each optimiser step to also clamp the stored parameter in place, as CLIP
    does.

    Args:
        init_temperature: initial τ (CLIP: `DEFAULT_TEMPERATURE` = 0.07).
        learnable: whether `logit_scale` receives gradients.
        normalize: L2-normalise inside the loss (set False if the model already did).
        chunk_size: passed to `info_nce` (None: choose; an int K: blocks of K rows; "full").
    """

    multiway = False

    def __init__(self, init_temperature: float = DEFAULT_TEMPERATURE, learnable: bool = True, *,
                 normalize: bool = True, chunk_size: int | str | None = None) -> None:
        super().__init__(init_temperature, learnable)
        self.normalize = normalize
        self.chunk_size = check_chunk_size(chunk_size)

    def forward(self, a: Tensor, b: Tensor) -> LossOutput:
        """Args: a, b: (B, D) paired embeddings. Returns: `info_nce(a, b, τ)`."""
        return info_nce(a, b, 1.0 / self.scale(), normalize=self.normalize,
                        chunk_size=self.chunk_size)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4g}, learnable={self.logit_scale.requires_grad}"
