"""Contrastive losses across processes: all-gather with gradients and the "local loss".

With N processes each holding B pairs, the contrastive batch should be the global N·B. Each
rank gathers every rank's embeddings (keeping the autograd graph) and computes the loss of its
own B rows against all N·B columns (open_clip's `local_loss=True, gather_with_grad=True`;
Radford et al., 2021; Zhai et al., 2023 for SigLIP). With ranks r = 0..N−1, the local row i
of rank r has the global label r·B + i, every row's loss is averaged within its rank, and

    (1/N) Σ_r L_r = L_full,

the loss of one process on the concatenated (N·B, D) batch (the functions give L_r exactly).

Gradient scale. The all-gather's backward sums the gradients of all ranks (a reduce-scatter),
so on rank r, ∂L_r/∂a_i (i ∈ r) after backward equals ∂(Σ_r' L_r')/∂a_i = N · ∂L_full/∂a_i.
DDP then *averages* parameter gradients over ranks, which divides by N again: parameters get
exactly ∂L_full/∂θ. A learnable temperature held by every rank gets ∂L_r/∂τ locally, and
(1/N) Σ_r ∂L_r/∂τ = ∂L_full/∂τ after DDP's average. (tests/test_distributed.py checks all three.)

Inputs are prepared exactly as in `mmlab.losses` (`losses._prep`: validation, float32 for half
precision and under autocast, L2 normalisation), and the terms use the losses' vocabulary.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from mmlab.losses._prep import as_bias, as_scale, in_float32, prepare
from mmlab.losses.output import DEFAULT_TEMPERATURE, LossOutput

__all__ = ["is_distributed", "rank", "world_size", "gather_with_grad", "distributed_info_nce",
           "distributed_siglip"]


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_with_grad(x: Tensor) -> Tensor:
    """All-gather `x` (B, ...) from every rank into (N·B, ...), keeping gradients.

    Rank r's rows sit at [r·B, (r+1)·B). The backward sums the incoming gradients of all ranks
    (see the module docstring for the scale). Every rank must pass the same shape. Identity when
    not distributed.

    Args:
        x: a tensor with the batch on dim 0.
    Returns:
        The gathered (N·B, ...) tensor.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"`x` must be a torch.Tensor, got {type(x).__name__}.")
    if not is_distributed():
        return x
    from torch.distributed import _functional_collectives as fc

    gather = (getattr(fc, "all_gather_single_autograd", None)
              or getattr(fc, "all_gather_tensor_autograd", None))
    if gather is not None:
        out = gather(x.contiguous(), 0, dist.group.WORLD)
        return fc.wait_tensor(out) if hasattr(fc, "wait_tensor") else out
    from torch.distributed.nn.functional import all_gather  # older torch

    return torch.cat(all_gather(x.contiguous()), dim=0)


@in_float32
def distributed_info_nce(a: Tensor, b: Tensor, temperature: float | Tensor = DEFAULT_TEMPERATURE,
                         *, normalize: bool = True) -> LossOutput:
    """InfoNCE of this rank's rows against the whole gathered batch (open_clip's local loss).

    With Â, B̂ the gathered (N·B, D) embeddings and labels y_i = r·B + i:
        L_r = ½[CE(â B̂ᵀ/τ, y) + CE(b̂ Âᵀ/τ, y)],   (1/N) Σ_r L_r = info_nce(A, B, τ).
    Not distributed, this is `mmlab.losses.info_nce` on (a, b).

    Args:
        a: (B, D) this rank's embeddings of the first modality.
        b: (B, D) this rank's embeddings of the second; every rank must use the same B.
        temperature: τ > 0, a float or a 0-d tensor (gradients flow to it).
        normalize: L2-normalise a and b first.
    Returns:
        LossOutput with `logits` â B̂ᵀ/τ of shape (B, N·B) and terms {"a_to_b", "b_to_a"}.
    """
    a, b = prepare(("a", "b"), (a, b), normalize)
    scale = as_scale(temperature, a)
    all_a, all_b = gather_with_grad(a), gather_with_grad(b)  # (N·B, D) each
    n_local = a.shape[0]
    labels = torch.arange(n_local, device=a.device) + rank() * n_local  # (B,)
    logits_ab = (a * scale) @ all_b.T  # (B, N·B)
    logits_ba = (b * scale) @ all_a.T  # (B, N·B)
    a_to_b = F.cross_entropy(logits_ab, labels)
    b_to_a = F.cross_entropy(logits_ba, labels)
    return LossOutput(0.5 * (a_to_b + b_to_a), logits_ab, {"a_to_b": a_to_b, "b_to_a": b_to_a})


@in_float32
def distributed_siglip(a: Tensor, b: Tensor, temperature: float | Tensor = 0.1,
                       bias: float | Tensor = -10.0, *, normalize: bool = True) -> LossOutput:
    """SigLIP of this rank's rows against the whole gathered batch (Zhai et al., 2023).

    With L_ij = â_i·b̂_j/τ + bias over local rows i and all N·B columns j, and z_ij = +1 iff
    j = r·B + i (else −1):
        L_r = −(1/B) Σ_i Σ_j log σ(z_ij L_ij),   (1/N) Σ_r L_r = siglip(A, B, τ, bias).
    (SigLIP's paper passes the b chunks around a ring; a gather gives the same value.)

    Args:
        a: (B, D) this rank's embeddings of the first modality.
        b: (B, D) this rank's embeddings of the second.
        temperature: τ > 0 (float or 0-d tensor).
        bias: the logit offset (float or 0-d tensor; SigLIP initialises −10).
        normalize: L2-normalise a and b first.
    Returns:
        LossOutput with `logits` (B, N·B) and terms {"pos", "neg"} (pos + neg = loss).
    """
    a, b = prepare(("a", "b"), (a, b), normalize)
    scale = as_scale(temperature, a)
    bias = as_bias(bias, a)
    all_b = gather_with_grad(b)  # (N·B, D)
    n_local = a.shape[0]
    logits = (a * scale) @ all_b.T + bias  # (B, N·B)
    cols = torch.arange(n_local, device=a.device) + rank() * n_local  # (B,): each row's positive
    signs = torch.full_like(logits, -1.0)  # (B, N·B): z_ij
    signs[torch.arange(n_local, device=a.device), cols] = 1.0
    loss = -F.logsigmoid(signs * logits).sum() / n_local
    pos = -F.logsigmoid(logits[torch.arange(n_local, device=a.device), cols]).sum() / n_local
    return LossOutput(loss, logits, {"pos": pos, "neg": loss - pos})
