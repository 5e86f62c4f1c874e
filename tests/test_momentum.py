"""MomentumEncoder / ema_update_ against a hand-written EMA update."""

import pytest
import torch
from torch import nn

from mmlab.encoders import MomentumEncoder, ema_update_


def make_tower():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def test_copy_at_construction_and_frozen():
    q = make_tower()
    k = MomentumEncoder(q, 0.9)
    for (n1, p1), (n2, p2) in zip(q.named_parameters(), k.encoder.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2) and p1 is not p2
        assert not p2.requires_grad
    x = torch.randn(5, 4)
    y = k(x)
    assert not y.requires_grad


@pytest.mark.parametrize("m", [0.0, 0.5, 0.99, 1.0])
def test_update_matches_hand_ema(m):
    q = make_tower()
    k = MomentumEncoder(q, m)
    expected = {n: p.detach().clone() for n, p in k.encoder.named_parameters()}
    opt = torch.optim.SGD(q.parameters(), lr=0.1)
    for step in range(3):
        q.train()
        q(torch.randn(8, 4)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
        k.update(q)
        for n, p in q.named_parameters():  # the hand update: θ_k ← m θ_k + (1 − m) θ_q
            expected[n] = m * expected[n] + (1 - m) * p.detach()
        for n, p in k.encoder.named_parameters():
            assert torch.allclose(p, expected[n], atol=1e-7), (step, n)
    # buffers (batch-norm running statistics) are copied, not averaged
    for (_, b1), (_, b2) in zip(q.named_buffers(), k.encoder.named_buffers()):
        assert torch.equal(b1, b2)


def test_gradient_never_reaches_the_key_tower():
    q = make_tower()
    k = MomentumEncoder(q, 0.9)
    x = torch.randn(4, 4)
    (q(x) * k(x)).sum().backward()
    assert all(p.grad is None for p in k.encoder.parameters())
    assert all(p.grad is not None for p in q.parameters())


def test_functional_update_and_errors():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    wa = a.weight.detach().clone()
    ema_update_(a, b, 0.25)
    assert torch.allclose(a.weight, 0.25 * wa + 0.75 * b.weight.detach())
    with pytest.raises(ValueError, match="momentum"):
        ema_update_(a, b, 1.5)
    with pytest.raises(ValueError, match="same parameters"):
        ema_update_(a, nn.Linear(2, 3, bias=False), 0.5)
    with pytest.raises(TypeError, match="encoder"):
        MomentumEncoder("not a module")
