"""A FIFO memory queue of negatives and the MoCo-style InfoNCE that uses it
(He et al. 2020, "Momentum Contrast for Unsupervised Visual Representation Learning").

The queue decouples the number of negatives from the batch size: keys from past batches
(usually from a slowly-moving momentum encoder) are kept and reused. For query q_i with its
positive key k_i and the Q queued keys n_1…n_Q (all L2-normalised):

    loss = −(1/B) Σ_i log( exp(q_i·k_i/τ) / (exp(q_i·k_i/τ) + Σ_q exp(q_i·n_q/τ)) ).

`queue_info_nce` is one-directional (queries against keys); call `queue.enqueue(k)` after the loss.
`QueueClipLoss` is the symmetric, CLIP-style module that owns one queue per side and enqueues
for you (see its docstring for the formula with in-batch negatives).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab._checks import check_embeddings, check_finite_if_cheap, check_int
from mmlab.losses._prep import as_scale, norm_eps, prepare, upcast
from mmlab.losses.output import LossOutput
from mmlab.losses.temperature import LearnableTemperature


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


def _queue_direction(q: Tensor, k: Tensor, negatives: Tensor, scale: float | Tensor, in_batch: bool) -> tuple[Tensor, Tensor]:
    """One direction q → k of `QueueClipLoss` on prepared inputs: (loss, logits).

    Row i of the logits is [q_i·k_1, …, q_i·k_B, q_i·n_1, …, q_i·n_Q]/τ with the positive at
    column i (in_batch) or [q_i·k_i, q_i·n_1, …]/τ with the positive at column 0 (queue only).
    """
    q = q * scale  # (B, D)
    if in_batch:
        logits = torch.cat([q @ k.T, q @ negatives.T], dim=1)  # (B, B + Q)
        labels = torch.arange(q.shape[0], device=q.device)  # (B,)
    else:
        logits = torch.cat([(q * k).sum(dim=-1, keepdim=True), q @ negatives.T], dim=1)  # (B, 1 + Q)
        labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)  # (B,)
    return F.cross_entropy(logits, labels), logits


class QueueClipLoss(LearnableTemperature):
    """Symmetric CLIP loss with a FIFO queue of past embeddings per modality as extra negatives
    (MoCo's queue, He et al. 2020, used CLIP-style in both directions; Radford et al. 2021).

    With paired batches a, b (B, D), queued keys n^a_1…n^a_Q of modality a and n^b_1…n^b_Q of
    modality b (detached embeddings of earlier batches), all L2-normalised, and τ the temperature:

        ℓ_{a→b}(i) = −log( exp(a_i·b_i/τ) / (Σ_{j∈N_i} exp(a_i·b_j/τ) + Σ_q exp(a_i·n^b_q/τ)) ),
        loss = ½ [ mean_i ℓ_{a→b}(i) + mean_i ℓ_{b→a}(i) ],

    with N_i = {1…B} (in-batch negatives, `in_batch=True`, the default) or N_i = {i} (queue
    only, MoCo's form). ℓ_{b→a} swaps the roles of a and b and contrasts with the queue of a.
    With in-batch negatives an empty queue gives exactly `info_nce(a, b, τ)`, so the queue only
    ever adds negatives to what CLIP already uses; this is the usual choice for CLIP-style
    training with small batches. Queue-only with an empty queue is log 1 = 0 (nothing to contrast).

    In training mode (`module.train()`, the default and what `mmlab.train.fit` sets), `forward`
    enqueues the detached, normalised b into the queue of b and a into the queue of a *after*
    computing the loss, so a batch never serves as its own queued negative. In eval mode
    (`module.eval()`) the queues are read but never changed. The queues are registered buffers:
    they move with `.to(device)` and are saved in the state dict. There is no momentum key
    encoder: the keys come from the same (moving) encoder, so old keys are slightly stale.

    One instance holds the queues of ONE modality pair; do not share it between several pairs
    (e.g. a `ContrastiveModel` with three modalities and `pairs="all"`), or keys of different
    modalities would mix in one queue.

    The clamp `logit_scale ≤ MAX_LOGIT_SCALE = log 100` happens in `forward` on the value used;
    `clamp_()` clamps the stored parameter (`fit` calls it after every optimiser step).

    Args:
        dim: embedding width D of a and b.
        size: queue capacity Q per modality (MoCo: 65536).
        init_temperature: initial τ (CLIP: 0.07).
        learnable: whether `logit_scale` receives gradients.
        in_batch: also contrast with the other in-batch items (CLIP-style); False: queue only (MoCo).
        normalize: L2-normalise a, b and the queued keys inside the loss.
    """

    multiway = False

    def __init__(self, dim: int, size: int, init_temperature: float = 0.07, learnable: bool = True, *,
                 in_batch: bool = True, normalize: bool = True) -> None:
        super().__init__(init_temperature, learnable)
        if not isinstance(in_batch, bool):
            raise TypeError(f"`in_batch` must be a bool, got {type(in_batch).__name__} ({in_batch!r}).")
        self.queue_a = MemoryQueue(dim, size)  # keys of the first modality (negatives for b → a)
        self.queue_b = MemoryQueue(dim, size)  # keys of the second modality (negatives for a → b)
        self.in_batch = in_batch
        self.normalize = normalize

    def forward(self, a: Tensor, b: Tensor) -> LossOutput:
        """Args:
            a: (B, D) embeddings of the first modality; row i is paired with row i of `b`.
            b: (B, D) embeddings of the second modality.
        Returns:
            LossOutput with `logits` the a → b logits, (B, B + Q) with in-batch negatives (positive
            at column i) or (B, 1 + Q) queue only (positive at column 0), where Q = the filled queue
            length before this batch, and terms {"a→b": mean ℓ_{a→b}, "b→a": mean ℓ_{b→a}}.
        """
        a, b = prepare(("a", "b"), (a, b), self.normalize)
        dim = self.queue_a.dim
        if a.shape[1] != dim:
            raise ValueError(f"`a` and `b` must have width D = {dim} (the `dim` of this QueueClipLoss), "
                             f"got shapes {tuple(a.shape)} and {tuple(b.shape)}.")
        # snapshot the keys: enqueue below writes into the buffers in place, and autograd keeps
        # the negatives of the matmul for the backward pass
        neg_a = self.queue_a.negatives.detach().to(device=a.device, dtype=a.dtype).clone()  # (Q, D)
        neg_b = self.queue_b.negatives.detach().to(device=a.device, dtype=a.dtype).clone()  # (Q, D)
        if self.normalize:
            neg_a = F.normalize(neg_a, dim=-1, eps=norm_eps(neg_a.dtype))
            neg_b = F.normalize(neg_b, dim=-1, eps=norm_eps(neg_b.dtype))
        scale = self.scale().to(device=a.device, dtype=a.dtype)
        a_to_b, logits = _queue_direction(a, b, neg_b, scale, self.in_batch)
        b_to_a, _ = _queue_direction(b, a, neg_a, scale, self.in_batch)
        if self.training:
            self.queue_a.enqueue(a.detach())
            self.queue_b.enqueue(b.detach())
        return LossOutput(0.5 * (a_to_b + b_to_a), logits, {"a→b": a_to_b, "b→a": b_to_a})

    @torch.no_grad()
    def reset(self) -> QueueClipLoss:
        """Empty both queues (e.g. before a new run that reuses the module)."""
        for queue in (self.queue_a, self.queue_b):
            queue.queue.zero_()
            queue.ptr.zero_()
            queue.count.zero_()
        return self

    def extra_repr(self) -> str:
        return (f"dim={self.queue_a.dim}, size={self.queue_a.size}, temperature={self.temperature:.4g}, "
                f"learnable={self.logit_scale.requires_grad}, in_batch={self.in_batch}, "
                f"filled={len(self.queue_a)}")
