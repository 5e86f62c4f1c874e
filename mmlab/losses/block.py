"""InfoNCE with each anchor's negatives restricted to its block of k rows: the control that
separates "more pairs per step" from "more negatives per anchor" (notebook 08).

A batch of B pairs is cut into consecutive blocks of k rows (the last one ragged when k ∤ B).
Anchor i keeps its positive and only the other rows of its block as negatives; every other
logit is set to −∞ before the softmax. With L = S/τ, S_ij = cos(a_i, b_j) and blk(i) the block
of row i,

    ℓ_{a→b}(i) = −log( exp L_ii / Σ_{j: blk(j) = blk(i)} exp L_ij ),
    loss = ½ [ mean_i ℓ_{a→b}(i) + mean_i ℓ_{b→a}(i) ].

So one step averages the gradient over B pairs (as InfoNCE at batch B does) while each anchor
sees the k − 1 negatives of InfoNCE at batch k. With k = B it is `info_nce`; with B a multiple
of k it is the mean of B/k independent `info_nce` losses on the blocks. (InfoNCE: Oord et al.
2018; Radford et al. 2021. The masked-logits construction is the usual way to drop negatives,
e.g. false ones, from a softmax.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmlab._checks import check_int
from mmlab.losses._prep import as_scale, in_float32, prepare
from mmlab.losses.output import DEFAULT_TEMPERATURE, LossOutput


def block_mask(batch_size: int, block_size: int,
               device: torch.device | str | None = None) -> Tensor:
    """(B, B) bool mask, True where row i and column j lie in the same block of `block_size` rows.

    Args:
        batch_size: B ≥ 1.
        block_size: k ≥ 1; blocks are rows [0, k), [k, 2k), …; the last is shorter if k ∤ B.
        device: where to build the mask.
    Returns:
        (B, B) bool tensor, block-diagonal, with a True diagonal (the positives are always kept).
    """
    batch_size = check_int("batch_size", batch_size)
    block_size = check_int("block_size", block_size)
    blocks = torch.arange(batch_size, device=device) // block_size  # (B,): the block of each row
    return blocks[:, None] == blocks[None, :]  # (B, B)


@in_float32
def block_info_nce(a: Tensor, b: Tensor, temperature: float | Tensor = DEFAULT_TEMPERATURE,
                   block_size: int = 8, *, normalize: bool = True) -> LossOutput:
    """Symmetric InfoNCE whose negatives for row i are only the other rows of i's block of k.

    Args:
        a: (B, D) embeddings; row i is paired with row i of `b`.
        b: (B, D) embeddings.
        temperature: τ > 0, a float or a 0-d tensor.
        block_size: k ≥ 1, rows per block (k − 1 negatives per anchor); k ≥ B is `info_nce`.
        normalize: L2-normalise a and b first.
    Returns:
        LossOutput with `logits` S/τ (B, B), −∞ outside the blocks, terms
        {"a_to_b", "b_to_a"}.
    """
    a, b = prepare(("a", "b"), (a, b), normalize)
    scale = as_scale(temperature, a)
    mask = block_mask(a.shape[0], block_size, a.device)  # (B, B)
    logits = (a * scale) @ b.T  # (B, B)
    logits = logits.masked_fill(~mask, float("-inf"))  # (B, B): −∞ outside the blocks
    labels = torch.arange(a.shape[0], device=a.device)  # (B,)
    a_to_b = F.cross_entropy(logits, labels)
    b_to_a = F.cross_entropy(logits.T, labels)
    return LossOutput(0.5 * (a_to_b + b_to_a), logits, {"a_to_b": a_to_b, "b_to_a": b_to_a})
