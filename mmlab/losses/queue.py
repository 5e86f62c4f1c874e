"""A FIFO memory queue of negatives and the MoCo-style InfoNCE that uses it
(He et al. 2020, "Momentum Contrast for Unsupervised Visual Representation Learning").

The queue decouples the number of negatives from the batch size: keys from past batches
(usually from a slowly-moving momentum encoder) are kept and reused. For query q_i with its
positive key k_i and the Q queued keys n_1…n_Q (all L2-normalised):

    loss = −(1/B) Σ_i log( exp(q_i·k_i/τ) / (exp(q_i·k_i/τ) + Σ_q exp(q_i·n_q/τ)) ).

`queue_info_nce` is one-directional (queries against keys); call `queue.enqueue(k)` after the
loss. `queue_clip_loss` is the symmetric, CLIP-style functional core (see its docstring for the
formula with in-batch negatives), and `QueueClipLoss` the module that owns one queue per side,
calls it and enqueues for you. Queued keys are constants: no gradient ever reaches them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab._checks import check_embeddings, check_finite_if_cheap, check_int, check_paired
from mmlab.losses._prep import as_scale, in_float32, norm_eps, normalize_rows, prepare, upcast
from mmlab.losses.output import DEFAULT_TEMPERATURE, LossOutput
from mmlab.losses.temperature import LearnableTemperature


class MemoryQueue(nn.Module):
    """A first-in-first-out queue of `size` keys of width `dim`, held in a registered buffer
    (so it moves with `.to(device)` and is saved in the state dict).

    The write position and fill level are kept twice: as Python ints, which `enqueue` and
    `negatives` use (reading a GPU tensor would stall the device every step), and as the
    buffers `ptr` and `count`, which the state dict saves; loading a state dict reads them back.

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
        self._ptr, self._count = 0, 0  # the same two numbers on the host

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Append keys (K, D), detached, overwriting the oldest rows once full.

        If K > Q, only the last Q keys are kept. No value is read back from the device.
        """
        check_embeddings("keys", keys)
        if keys.shape[1] != self.dim:
            raise ValueError(f"`keys` must have width D = {self.dim} (the queue's dim), "
                             f"got shape {tuple(keys.shape)}.")
        keys = keys.detach()[-self.size:].to(self.queue.dtype)  # (K, D)
        k = keys.shape[0]
        idx = (torch.arange(k, device=self.queue.device) + self._ptr) % self.size  # (K,)
        self.queue[idx] = keys.to(self.queue.device)
        self._ptr = (self._ptr + k) % self.size
        self._count = min(self._count + k, self.size)
        self.ptr.fill_(self._ptr)
        self.count.fill_(self._count)

    @torch.no_grad()
    def reset(self) -> MemoryQueue:
        """Empty the queue."""
        self.queue.zero_()
        self.ptr.zero_()
        self.count.zero_()
        self._ptr, self._count = 0, 0
        return self

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._ptr, self._count = int(self.ptr), int(self.count)  # one host read per load

    @property
    def negatives(self) -> Tensor:
        """The filled rows (≤ Q, D); rows fill from 0 upward, so these are the first `count`."""
        return self.queue[: self._count]

    def __len__(self) -> int:
        return self._count

    def extra_repr(self) -> str:
        return f"dim={self.dim}, size={self.size}, filled={self._count}"


def _prepare_negatives(name: str, negatives: Any, like: Tensor, normalize: bool) -> Tensor:
    """Check queued keys (Q, D) against the prepared queries `like` (B, D); return them detached,
    in `like`'s dtype and device, L2-normalised if asked. Q may be 0."""
    if not isinstance(negatives, Tensor):
        raise TypeError(f"`{name}` must be a (Q, D) tensor of negative keys, "
                        f"got {type(negatives).__name__}.")
    if negatives.ndim != 2 or negatives.shape[1] != like.shape[1]:
        raise ValueError(f"`{name}` must have shape (Q, D) with D = {like.shape[1]} like the "
                         f"embeddings {tuple(like.shape)}, got {tuple(negatives.shape)}.")
    if not negatives.is_floating_point():
        raise TypeError(f"`{name}` must have a floating dtype, got {negatives.dtype}.")
    check_finite_if_cheap(name, negatives)
    eps = norm_eps(negatives.dtype)
    negatives = upcast(negatives.detach()).to(device=like.device, dtype=like.dtype)  # (Q, D)
    return normalize_rows(negatives, eps) if normalize else negatives


@in_float32
def queue_info_nce(q: Tensor, k: Tensor, queue: MemoryQueue | Tensor,
                   temperature: float | Tensor = DEFAULT_TEMPERATURE, *,
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
        LossOutput with `logits` (B, 1 + Q) (column 0 the positive) and term {"q_to_k": loss}.
    """
    q, k = prepare(("q", "k"), (q, k), normalize)
    if not isinstance(queue, (MemoryQueue, Tensor)):
        raise TypeError(f"`queue` must be a MemoryQueue or a (Q, D) tensor, "
                        f"got {type(queue).__name__}.")
    negatives = queue.negatives if isinstance(queue, MemoryQueue) else queue
    negatives = _prepare_negatives("queue", negatives, q, normalize)  # (Q, D)
    scale = as_scale(temperature, q)
    q = q * scale  # (B, D)
    l_pos = (q * k).sum(dim=-1, keepdim=True)  # (B, 1)
    l_neg = q @ negatives.T  # (B, Q)
    logits = torch.cat([l_pos, l_neg], dim=1)  # (B, 1 + Q)
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)  # (B,)
    loss = F.cross_entropy(logits, labels)
    return LossOutput(loss, logits, {"q_to_k": loss})


def _queue_direction(q: Tensor, k: Tensor, negatives: Tensor, scale: float | Tensor,
                     in_batch: bool) -> tuple[Tensor, Tensor]:
    """One direction q → k of `queue_clip_loss` on prepared inputs: (loss, logits).

    Row i of the logits is [q_i·k_1, …, q_i·k_B, q_i·n_1, …, q_i·n_Q]/τ with the positive at
    column i (in_batch) or [q_i·k_i, q_i·n_1, …]/τ with the positive at column 0 (queue only).
    """
    q = q * scale  # (B, D)
    if in_batch:
        logits = torch.cat([q @ k.T, q @ negatives.T], dim=1)  # (B, B + Q)
        labels = torch.arange(q.shape[0], device=q.device)  # (B,)
    else:
        l_pos = (q * k).sum(dim=-1, keepdim=True)  # (B, 1)
        logits = torch.cat([l_pos, q @ negatives.T], dim=1)  # (B, 1 + Q)
        labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)  # (B,)
    return F.cross_entropy(logits, labels), logits


@in_float32
def queue_clip_loss(a: Tensor, b: Tensor, neg_a: Tensor, neg_b: Tensor,
                    temperature: float | Tensor = DEFAULT_TEMPERATURE, *, in_batch: bool = True,
                    normalize: bool = True) -> LossOutput:
    """Symmetric CLIP loss with queued keys of each modality as extra negatives (MoCo's queue,
    He et al. 2020, used CLIP-style in both directions; Radford et al. 2021).

    With paired batches a, b (B, D), queued keys n^a_1…n^a_Q of modality a and n^b_1…n^b_Q of
    modality b, all L2-normalised, and τ the temperature:

        ℓ_{a→b}(i) = −log( exp(a_i·b_i/τ) / (Σ_{j∈N_i} exp(a_i·b_j/τ) + Σ_q exp(a_i·n^b_q/τ)) ),
        loss = ½ [ mean_i ℓ_{a→b}(i) + mean_i ℓ_{b→a}(i) ],

    with N_i = {1…B} (in-batch negatives, `in_batch=True`) or N_i = {i} (queue only, MoCo's
    form). ℓ_{b→a} swaps the roles of a and b and contrasts with the keys of a. With in-batch
    negatives and empty queues this is exactly `info_nce(a, b, τ)`; queue-only with empty
    queues is log 1 = 0 (nothing to contrast). The queued keys are constants (detached).

    Args:
        a: (B, D) embeddings of the first modality; row i is paired with row i of `b`.
        b: (B, D) embeddings of the second modality.
        neg_a: (Q_a, D) queued keys of the first modality: the extra negatives of b → a.
        neg_b: (Q_b, D) queued keys of the second modality: the extra negatives of a → b.
        temperature: τ > 0, a float or a 0-d tensor (gradients flow to it).
        in_batch: also contrast with the other in-batch items (CLIP-style); False: queue only.
        normalize: L2-normalise a, b and the queued keys first.
    Returns:
        LossOutput with `logits` those of a → b, (B, B + Q_b) with in-batch negatives (positive
        at column i) or (B, 1 + Q_b) queue only (positive at column 0), and terms
        {"a_to_b": mean_i ℓ_{a→b}(i), "b_to_a": mean_i ℓ_{b→a}(i)}.
    """
    if not isinstance(in_batch, bool):
        raise TypeError(f"`in_batch` must be a bool, got {type(in_batch).__name__} ({in_batch!r}).")
    a, b = prepare(("a", "b"), (a, b), normalize)
    neg_a = _prepare_negatives("neg_a", neg_a, a, normalize)  # (Q_a, D)
    neg_b = _prepare_negatives("neg_b", neg_b, a, normalize)  # (Q_b, D)
    scale = as_scale(temperature, a)
    a_to_b, logits = _queue_direction(a, b, neg_b, scale, in_batch)
    b_to_a, _ = _queue_direction(b, a, neg_a, scale, in_batch)
    return LossOutput(0.5 * (a_to_b + b_to_a), logits, {"a_to_b": a_to_b, "b_to_a": b_to_a})


class QueueClipLoss(LearnableTemperature):
    """`queue_clip_loss` with a learnable temperature and one FIFO queue of past embeddings per
    modality (MoCo's queue, He et al. 2020, used CLIP-style; Radford et al. 2021).

    The formula is in `queue_clip_loss`'s docstring; the queued keys are the detached embeddings
    of earlier batches. In-batch negatives (`in_batch=True`, the default) make an empty queue
    give exactly `info_nce(a, b, τ)`, so the queue only ever adds negatives to what CLIP already
    uses; this is the usual choice for CLIP-style training with small batches.

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
        init_temperature: initial τ (CLIP: `DEFAULT_TEMPERATURE` = 0.07).
        learnable: whether `logit_scale` receives gradients.
        in_batch: also contrast with the other in-batch items (CLIP-style); False: queue only.
        normalize: L2-normalise a, b and the queued keys inside the loss.
    """

    multiway = False

    def __init__(self, dim: int, size: int, init_temperature: float = DEFAULT_TEMPERATURE,
                 learnable: bool = True, *, in_batch: bool = True, normalize: bool = True) -> None:
        super().__init__(init_temperature, learnable)
        if not isinstance(in_batch, bool):
            raise TypeError(f"`in_batch` must be a bool, got {type(in_batch).__name__} "
                            f"({in_batch!r}).")
        self.queue_a = MemoryQueue(dim, size)  # keys of the first modality (negatives for b → a)
        self.queue_b = MemoryQueue(dim, size)  # keys of the second modality (negatives for a → b)
        self.in_batch = in_batch
        self.normalize = normalize

    def forward(self, a: Tensor, b: Tensor) -> LossOutput:
        """Args:
            a: (B, D) embeddings of the first modality; row i is paired with row i of `b`.
            b: (B, D) embeddings of the second modality.
        Returns:
            `queue_clip_loss(a, b, keys of a, keys of b, τ)`, with Q = the filled queue length
            before this batch.
        """
        check_paired(("a", "b"), (a, b))
        dim = self.queue_a.dim
        if a.shape[1] != dim:
            raise ValueError(f"`a` and `b` must have width D = {dim} (the `dim` of this "
                             f"QueueClipLoss), got shapes {tuple(a.shape)} and {tuple(b.shape)}.")
        # snapshot the keys: enqueue below writes into the buffers in place, and autograd keeps
        # the negatives of the matmul for the backward pass
        neg_a = self.queue_a.negatives.clone()  # (Q, D)
        neg_b = self.queue_b.negatives.clone()  # (Q, D)
        out = queue_clip_loss(a, b, neg_a, neg_b, 1.0 / self.scale(), in_batch=self.in_batch,
                              normalize=self.normalize)
        if self.training:
            with torch.no_grad():
                keys_a, keys_b = prepare(("a", "b"), (a.detach(), b.detach()), self.normalize)
            self.queue_a.enqueue(keys_a)
            self.queue_b.enqueue(keys_b)
        return out

    @torch.no_grad()
    def reset(self) -> QueueClipLoss:
        """Empty both queues (e.g. before a new run that reuses the module)."""
        self.queue_a.reset()
        self.queue_b.reset()
        return self

    def extra_repr(self) -> str:
        return (f"dim={self.queue_a.dim}, size={self.queue_a.size}, "
                f"temperature={self.temperature:.4g}, learnable={self.logit_scale.requires_grad}, "
                f"in_batch={self.in_batch}, filled={len(self.queue_a)}")
