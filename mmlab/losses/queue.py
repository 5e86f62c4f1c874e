"""A FIFO memory queue of negatives and the MoCo-style InfoNCE that uses it
(He et al. 2020, "Momentum Contrast for Unsupervised Visual Representation Learning").

The queue decouples the number of negatives from the batch size: keys from past batches
(usually from a slowly-moving momentum encoder) are kept and reused. For query q_i with its
positive key k_i and the Q queued keys n_1…n_Q (all L2-normalised):

    loss = −(1/B) Σ_i log( exp(q_i·k_i/τ) / (exp(q_i·k_i/τ) + Σ_q exp(q_i·n_q/τ)) ).

It is one-directional (queries against keys). Call `queue.enqueue(k)` after the loss.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab._checks import check_embeddings, check_finite_if_cheap, check_int
from mmlab.losses._prep import as_scale, norm_eps, prepare, upcast
from mmlab.losses.output import LossOutput


class MemoryQueue(nn.Module):
    """A first-in-first-out queue of `size` keys of width `dim`, held in a registered buffer
    (so it moves with `.to(device)` and is saved in the state dict).

    Args:
        dim: key width D.
        size: capacity Q (MoCo: 65536).
    """

    queue: Tensor
    ptr: Tensor
    count: Tensor

    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        self.size = check_int("size", size)
        self.register_buffer("queue", torch.zeros(size, dim))  # (Q, D)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))  # next row to overwrite
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # rows filled so far

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Append keys (K, D), detached, overwriting the oldest rows once full.

        If K > Q, only the last Q keys are kept.
        """
        check_embeddings("keys", keys)
        if keys.shape[1] != self.dim:
            raise ValueError(f"`keys` must have width D = {self.dim} (the queue's dim), got shape {tuple(keys.shape)}.")
        keys = keys.detach()[-self.size:].to(self.queue.dtype)  # (K, D)
        k = keys.shape[0]
        ptr = int(self.ptr)
        idx = (torch.arange(k, device=self.queue.device) + ptr) % self.size  # (K,)
        self.queue[idx] = keys.to(self.queue.device)
        self.ptr.fill_((ptr + k) % self.size)
        self.count.fill_(min(int(self.count) + k, self.size))

    @property
    def negatives(self) -> Tensor:
        """The filled rows (≤ Q, D); rows fill from 0 upward, so these are the first `count` rows."""
        return self.queue[: int(self.count)]

    def __len__(self) -> int:
        return int(self.count)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, size={self.size}, filled={int(self.count)}"


def queue_info_nce(q: Tensor, k: Tensor, queue: MemoryQueue | Tensor, temperature: float | Tensor = 0.07, *,
                   normalize: bool = True) -> LossOutput:
    """MoCo InfoNCE: CE over [q·k, q·n_1, …, q·n_Q]/τ with the positive at index 0.

    He et al. 2020 (MoCo). The formula is in the module docstring. Gradients reach q and k,
    never the queue.

    Args:
        q: (B, D) queries.
        k: (B, D) positive keys (MoCo: from the momentum encoder, often detached by the caller).
        queue: a `MemoryQueue` or a (Q, D) tensor of negative keys (Q may be 0).
        temperature: τ > 0, a float or a 0-d tensor.
        normalize: L2-normalise q, k and the negatives first.
    Returns:
        LossOutput with `logits` (B, 1 + Q) (column 0 the positive) and term {"q→k": loss}.
    """
    q, k = prepare(("q", "k"), (q, k), normalize)
    negatives = queue.negatives if isinstance(queue, MemoryQueue) else queue
    if not isinstance(negatives, Tensor):
        raise TypeError(f"`queue` must be a MemoryQueue or a (Q, D) tensor, got {type(queue).__name__}.")
    if negatives.ndim != 2 or negatives.shape[1] != q.shape[1]:
        raise ValueError(f"`queue` negatives must have shape (Q, D) with D = {q.shape[1]} like `q` "
                         f"{tuple(q.shape)}, got {tuple(negatives.shape)}.")
    if not negatives.is_floating_point():
        raise TypeError(f"`queue` must have a floating dtype, got {negatives.dtype}.")
    check_finite_if_cheap("queue", negatives)
    eps = norm_eps(negatives.dtype)
    negatives = upcast(negatives.detach()).to(device=q.device, dtype=q.dtype)  # (Q, D)
    if normalize:
        negatives = F.normalize(negatives, dim=-1, eps=eps)
    scale = as_scale(temperature, q)
    q = q * scale  # (B, D)
    l_pos = (q * k).sum(dim=-1, keepdim=True)  # (B, 1)
    l_neg = q @ negatives.T  # (B, Q)
    logits = torch.cat([l_pos, l_neg], dim=1)  # (B, 1 + Q)
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)  # (B,)
    loss = F.cross_entropy(logits, labels)
    return LossOutput(loss, logits, {"q→k": loss})
