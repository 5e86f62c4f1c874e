"""QueueClipLoss: the symmetric CLIP loss with one FIFO queue of past keys per modality.

Every value is checked against an independent float64 computation written with Python loops over
pairs (no matrix products, no cross_entropy), on values and on gradients (a, b and logit_scale).
"""

from __future__ import annotations

import math

import pytest
import torch

import mmlab.losses as L
from mmlab.encoders import MLPEncoder
from mmlab.model import ContrastiveModel


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def ref_direction(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor, tau: torch.Tensor,
                  in_batch: bool, normalize: bool = True) -> torch.Tensor:
    """−(1/B) Σ_i log( e^{q_i·k_i/τ} / (Σ_{j∈N_i} e^{q_i·k_j/τ} + Σ_q e^{q_i·n_q/τ}) ), by loops."""
    if normalize:
        q, k, negatives = _unit(q), _unit(k), _unit(negatives) if len(negatives) else negatives
    total = q.new_zeros(())
    for i in range(q.shape[0]):
        pos = torch.exp(torch.dot(q[i], k[i]) / tau)
        denominator = q.new_zeros(())
        for j in (range(k.shape[0]) if in_batch else [i]):
            denominator = denominator + torch.exp(torch.dot(q[i], k[j]) / tau)
        for n in negatives:
            denominator = denominator + torch.exp(torch.dot(q[i], n) / tau)
        total = total - torch.log(pos / denominator)
    return total / q.shape[0]


def ref_loss(a, b, queue_a, queue_b, tau, in_batch, normalize=True):
    return 0.5 * (ref_direction(a, b, queue_b, tau, in_batch, normalize)
                  + ref_direction(b, a, queue_a, tau, in_batch, normalize))


def _leaves(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64).requires_grad_(True) for s in shapes]


@pytest.mark.parametrize("in_batch", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_value_and_gradients_match_brute_force(in_batch, normalize):
    g = torch.Generator().manual_seed(1)
    old_a = torch.randn(6, 4, generator=g, dtype=torch.float64)
    old_b = torch.randn(6, 4, generator=g, dtype=torch.float64)
    if not normalize:  # the caller promises unit vectors
        old_a, old_b = _unit(old_a), _unit(old_b)
    loss = L.QueueClipLoss(4, 5, init_temperature=0.3, in_batch=in_batch,
                           normalize=normalize).double()
    loss.queue_a.enqueue(old_a)  # 6 keys into 5 slots: the last 5 are kept
    loss.queue_b.enqueue(old_b)
    a, b = _leaves((3, 4), (3, 4))
    if not normalize:
        a, b = (_unit(a.detach()).requires_grad_(True), _unit(b.detach()).requires_grad_(True))
    out = loss(a, b)
    ga, gb, gs = torch.autograd.grad(out.loss, (a, b, loss.logit_scale))

    a2, b2 = a.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True)
    s2 = torch.tensor(math.log(1 / 0.3), dtype=torch.float64, requires_grad=True)
    ref = ref_loss(a2, b2, old_a[1:], old_b[1:], torch.exp(-s2), in_batch, normalize)
    ra, rb, rs = torch.autograd.grad(ref, (a2, b2, s2))
    torch.testing.assert_close(out.loss, ref)
    torch.testing.assert_close(ga, ra)
    torch.testing.assert_close(gb, rb)
    torch.testing.assert_close(gs, rs)
    # the terms are the two directions, the logits those of a → b
    tau = torch.tensor(0.3, dtype=torch.float64)
    torch.testing.assert_close(out.terms["a_to_b"], ref_direction(a2, b2, old_b[1:], tau, in_batch))
    assert out.logits.shape == ((3, 3 + 5) if in_batch else (3, 1 + 5))
    first = _unit(a.detach())[0] @ _unit(old_b[1:]).T / 0.3  # a_0 against the queued b keys
    torch.testing.assert_close(out.logits[0, -5:], first)


def test_empty_queue_with_in_batch_negatives_is_info_nce():
    a, b = _leaves((5, 3), (5, 3), seed=2)
    out = L.QueueClipLoss(3, 8, init_temperature=0.2, learnable=False).double()(a, b)
    ref = L.info_nce(a, b, 0.2)
    torch.testing.assert_close(out.loss, ref.loss)
    torch.testing.assert_close(out.logits, ref.logits)
    for x, y in zip(torch.autograd.grad(out.loss, (a, b)), torch.autograd.grad(ref.loss, (a, b))):
        torch.testing.assert_close(x, y)


def test_empty_queue_without_in_batch_negatives_is_zero_like_queue_info_nce():
    a, b = _leaves((4, 3), (4, 3), seed=3)
    out = L.QueueClipLoss(3, 8, in_batch=False).double()(a, b)
    assert out.loss.item() == pytest.approx(0.0, abs=1e-12)  # log(e^x / e^x): nothing to contrast
    empty = torch.zeros(0, 3, dtype=torch.float64)
    torch.testing.assert_close(out.terms["a_to_b"], L.queue_info_nce(a, b, empty).loss)


def test_queue_only_matches_queue_info_nce_in_both_directions():
    a, b = _leaves((4, 3), (4, 3), seed=4)
    qa, qb = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    loss = L.QueueClipLoss(3, 6, init_temperature=0.1, in_batch=False).double()
    loss.queue_a.enqueue(qa)
    loss.queue_b.enqueue(qb)
    out = loss(a, b)
    ref = 0.5 * (L.queue_info_nce(a, b, qb, 0.1).loss + L.queue_info_nce(b, a, qa, 0.1).loss)
    torch.testing.assert_close(out.loss, ref)


def test_queue_contents_after_steps_fifo_of_normalised_keys():
    loss = L.QueueClipLoss(2, 5).double()
    batches = [_leaves((2, 2), (2, 2), seed=s) for s in range(4)]
    seen_a, seen_b = [], []
    for step, (a, b) in enumerate(batches):
        out = loss(a, b)
        # the logits use only the keys queued BEFORE this batch (at most 5, the most recent)
        filled = min(2 * step, 5)
        assert out.logits.shape == (2, 2 + filled)
        if filled:
            queued = torch.stack(seen_b[-filled:])  # (filled, D)
            expected = torch.sort((_unit(a.detach()) @ queued.T / 0.07), dim=1).values
            got = torch.sort(out.logits[:, 2:].detach(), dim=1).values
            torch.testing.assert_close(got, expected)
        seen_a += list(_unit(a.detach()))
        seen_b += list(_unit(b.detach()))
        assert len(loss.queue_a) == len(loss.queue_b) == min(2 * (step + 1), 5)
    # 8 keys went into 5 slots: the queue holds the 5 most recent, unit-norm, detached
    as_set = lambda rows: {tuple(round(v, 9) for v in r.tolist()) for r in rows}  # noqa: E731
    assert as_set(loss.queue_a.negatives) == as_set(seen_a[-5:])
    assert as_set(loss.queue_b.negatives) == as_set(seen_b[-5:])
    assert not loss.queue_a.queue.requires_grad and not loss.queue_b.queue.requires_grad
    loss.reset()
    assert len(loss.queue_a) == len(loss.queue_b) == 0


def test_eval_mode_reads_but_does_not_enqueue():
    loss = L.QueueClipLoss(3, 4).double()
    a, b = _leaves((2, 3), (2, 3), seed=5)
    loss(a, b)
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    loss.eval()
    c, d = _leaves((2, 3), (2, 3), seed=6)
    out = loss(c, d)
    assert out.logits.shape == (2, 2 + 2)  # it used the 2 queued keys
    for k, v in loss.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=f"eval mode changed {k}")
    loss.train()
    loss(c, d)
    assert len(loss.queue_a) == 4


def test_backward_after_enqueue_without_normalize():
    """The queue buffer is written in place after the loss; the loss must keep its own copy."""
    loss = L.QueueClipLoss(3, 4, normalize=False).double()
    loss.queue_b.enqueue(_unit(torch.randn(4, 3, dtype=torch.float64)))
    loss.queue_a.enqueue(_unit(torch.randn(4, 3, dtype=torch.float64)))
    a, b = _leaves((2, 3), (2, 3), seed=7)
    out = loss(a, b)  # enqueues: overwrites two rows that the loss just used
    out.loss.backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


def test_state_dict_round_trip():
    loss = L.QueueClipLoss(3, 6, init_temperature=0.2).double()
    for s in range(3):
        loss(*_leaves((2, 3), (2, 3), seed=10 + s))
    with torch.no_grad():
        loss.logit_scale.add_(0.3)
    state = loss.state_dict()
    keys = {"logit_scale", "queue_a.queue", "queue_a.ptr", "queue_a.count", "queue_b.queue"}
    assert keys <= set(state)
    fresh = L.QueueClipLoss(3, 6).double()
    fresh.load_state_dict(state)
    a, b = _leaves((2, 3), (2, 3), seed=20)
    torch.testing.assert_close(fresh(a, b).loss, loss(a, b).loss)
    for k, v in fresh.state_dict().items():  # both enqueued the same batch at the same position
        torch.testing.assert_close(v, loss.state_dict()[k])


def test_inside_contrastive_model_trains_and_enqueues_only_in_training():
    torch.manual_seed(0)
    enc = {"image": MLPEncoder(6, hidden=8, depth=1, out_dim=4),
           "audio": MLPEncoder(5, hidden=8, depth=1, out_dim=4)}
    loss = L.QueueClipLoss(4, 8, init_temperature=0.1)
    model = ContrastiveModel(enc, None, loss)
    batch = {"image": torch.randn(3, 6), "audio": torch.randn(3, 5)}
    out = model(batch)
    out.loss.backward()
    assert loss.logit_scale.grad is not None and len(loss.queue_a) == 3
    z = model.encode(batch)
    torch.testing.assert_close(loss.queue_a.negatives, z["image"].detach())  # the first modality
    torch.testing.assert_close(loss.queue_b.negatives, z["audio"].detach())
    model.eval()
    model(batch)
    assert len(loss.queue_a) == 3
    assert "loss.queue_a.queue" in model.state_dict()


def test_half_precision_inputs_give_a_float32_loss():
    loss = L.QueueClipLoss(4, 4)
    a, b = torch.randn(3, 4).half(), torch.randn(3, 4).half()
    loss(a, b)
    out = loss(a, b)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="size"):
        L.QueueClipLoss(4, 0)
    with pytest.raises(ValueError, match="dim"):
        L.QueueClipLoss(-1, 8)
    with pytest.raises(TypeError, match="size"):
        L.QueueClipLoss(4, 2.5)
    with pytest.raises(ValueError, match="init_temperature"):
        L.QueueClipLoss(4, 8, init_temperature=0.0)
    with pytest.raises(TypeError, match="in_batch"):
        L.QueueClipLoss(4, 8, in_batch="yes")
    loss = L.QueueClipLoss(4, 8)
    with pytest.raises(ValueError, match=r"`a`.*D = 4"):
        loss(torch.randn(3, 5), torch.randn(3, 5))
    with pytest.raises(ValueError, match="`a`"):
        loss(torch.randn(3), torch.randn(3, 4))
    with pytest.raises(ValueError, match="`b`"):
        loss(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(TypeError, match="`b`"):
        loss(torch.randn(3, 4), torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="`a`"):
        loss(torch.full((3, 4), math.nan), torch.randn(3, 4))
    assert len(loss.queue_a) == 0  # nothing was enqueued by the rejected calls


# ----------------------------------------------------------------------------- functional core
@pytest.mark.parametrize("in_batch", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_queue_clip_loss_matches_brute_force_values_and_gradients(in_batch, normalize):
    """queue_clip_loss against the loop reference, with queues of different lengths (Q_a ≠ Q_b),
    on values and on the gradients of a, b and a tensor τ; the queued keys get no gradient."""
    a, b, neg_a, neg_b = _leaves((4, 3), (4, 3), (5, 3), (2, 3), seed=30)
    tau = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
    if not normalize:  # the caller promises unit vectors
        a, b = _unit(a.detach()).requires_grad_(True), _unit(b.detach()).requires_grad_(True)
        neg_a = _unit(neg_a.detach()).requires_grad_(True)
        neg_b = _unit(neg_b.detach()).requires_grad_(True)
    out = L.queue_clip_loss(a, b, neg_a, neg_b, tau, in_batch=in_batch, normalize=normalize)
    grads = torch.autograd.grad(out.loss, (a, b, tau))

    a2, b2, tau2 = (x.detach().clone().requires_grad_(True) for x in (a, b, tau))
    ref = ref_loss(a2, b2, neg_a.detach(), neg_b.detach(), tau2, in_batch, normalize)
    torch.testing.assert_close(out.loss, ref)
    for got, want in zip(grads, torch.autograd.grad(ref, (a2, b2, tau2))):
        torch.testing.assert_close(got, want)
    want_ab = ref_direction(a2, b2, neg_b.detach(), tau2, in_batch, normalize)
    want_ba = ref_direction(b2, a2, neg_a.detach(), tau2, in_batch, normalize)
    torch.testing.assert_close(out.terms["a_to_b"], want_ab)
    torch.testing.assert_close(out.terms["b_to_a"], want_ba)
    assert set(out.terms) == {"a_to_b", "b_to_a"}
    assert out.logits.shape == ((4, 4 + 2) if in_batch else (4, 1 + 2))  # a → b: the keys of b
    assert neg_a.grad is None and neg_b.grad is None  # queued keys are constants


def test_queue_clip_loss_with_empty_queues_is_info_nce():
    a, b = _leaves((5, 3), (5, 3), seed=31)
    empty = torch.zeros(0, 3, dtype=torch.float64)
    out = L.queue_clip_loss(a, b, empty, empty, 0.2)
    ref = L.info_nce(a, b, 0.2)
    torch.testing.assert_close(out.loss, ref.loss)
    for x, y in zip(torch.autograd.grad(out.loss, (a, b)), torch.autograd.grad(ref.loss, (a, b))):
        torch.testing.assert_close(x, y)


def test_module_is_the_functional_core_on_its_queues():
    loss = L.QueueClipLoss(3, 4, init_temperature=0.2).double()
    loss(*_leaves((3, 3), (3, 3), seed=32))  # fill the queues with one batch
    neg_a, neg_b = loss.queue_a.negatives.clone(), loss.queue_b.negatives.clone()
    a, b = _leaves((3, 3), (3, 3), seed=33)
    out = loss(a, b)
    ref = L.queue_clip_loss(a, b, neg_a, neg_b, 1.0 / loss.scale())
    torch.testing.assert_close(out.loss, ref.loss)
    assert set(out.terms) == {"a_to_b", "b_to_a"}


def test_queue_clip_loss_rejects_bad_negatives_by_name():
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    ok = torch.randn(2, 4)
    with pytest.raises(ValueError, match=r"`neg_b`.*D = 4"):
        L.queue_clip_loss(a, b, ok, torch.randn(2, 5))
    with pytest.raises(TypeError, match="`neg_a`"):
        L.queue_clip_loss(a, b, [[1.0] * 4], ok)
    with pytest.raises(ValueError, match="`neg_a`"):
        L.queue_clip_loss(a, b, torch.full((2, 4), math.nan), ok)
    with pytest.raises(TypeError, match="in_batch"):
        L.queue_clip_loss(a, b, ok, ok, in_batch=1)


# ----------------------------------------------------------------------------- no host reads
def test_queue_steps_read_no_value_from_the_device():
    """On the meta device a tensor has no values, so any host read (`int(t)`, `.item()`,
    `bool(t)`) raises. Enqueueing, reading the negatives and whole training steps must not."""
    queue = L.MemoryQueue(4, 8).to("meta")
    for k in (3, 7, 2):
        queue.enqueue(torch.randn(k, 4, device="meta"))
    assert len(queue) == 8 and queue.negatives.shape == (8, 4)
    loss = L.QueueClipLoss(4, 5).to("meta")
    for _ in range(3):
        a = torch.randn(3, 4, device="meta", requires_grad=True)
        out = loss(a, torch.randn(3, 4, device="meta"))
        out.loss.backward()
    assert out.logits.shape == (3, 3 + 5) and len(loss.queue_a) == 5


def test_memory_queue_state_dict_restores_the_host_position():
    queue = L.MemoryQueue(2, 5)
    for s in range(3):  # 6 keys into 5 slots: wrapped once, ptr = 1
        queue.enqueue(torch.randn(2, 2, generator=torch.Generator().manual_seed(s)))
    fresh = L.MemoryQueue(2, 5)
    fresh.load_state_dict(queue.state_dict())
    assert len(fresh) == len(queue) == 5 and int(fresh.ptr) == int(queue.ptr) == 1
    keys = torch.randn(3, 2)
    queue.enqueue(keys)
    fresh.enqueue(keys)  # lands at the same rows only if the host copy of ptr was restored
    assert torch.equal(fresh.queue, queue.queue)
    assert int(fresh.ptr) == int(queue.ptr) == 4
    fresh.reset()
    assert len(fresh) == 0 and int(fresh.ptr) == 0 and int(fresh.count) == 0
