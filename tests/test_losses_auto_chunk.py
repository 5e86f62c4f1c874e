"""The block path as the default: `chunk_size=None` chooses, "full" and an int force a path.

Also: Symile's block path ("n" negatives) against its full path in float64 (values and every
gradient, the same permutations), the number of matrix products each block path makes (the
"as few passes as the maths allows" of `mmlab.losses.chunked` and `mmlab.losses.fused`), and
that evaluation under `torch.no_grad()` skips the gradient products.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import mmlab.losses as L
from mmlab.losses import chunking

DT = torch.float64
MATMULS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.mm.out,
           torch.ops.aten.addmm_.default, torch.ops.aten.addmm.out}


def _leaves(m, B, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, D, generator=g, dtype=DT).requires_grad_(True) for _ in range(m)]


def _tau():
    return torch.tensor(0.15, dtype=DT, requires_grad=True)


@pytest.fixture
def small_switch(monkeypatch):
    """Move the CPU switch to B = 16 and the blocks to 4·B logits, so small inputs show it."""
    monkeypatch.setattr(chunking, "CPU_MIN_BATCH", 16)
    monkeypatch.setattr(chunking, "CPU_BLOCK_LOGITS", 64)
    monkeypatch.setattr(chunking, "MIN_BLOCK_ROWS", 1)


LOSSES = {
    "info_nce": lambda xs, t, k: L.info_nce(xs[0], xs[1], t, chunk_size=k),
    "siglip": lambda xs, t, k: L.siglip(xs[0], xs[1], t, -2.0, chunk_size=k),
    "symile": lambda xs, t, k: L.symile(*xs, temperature=t, chunk_size=k,
                                        generator=torch.Generator().manual_seed(7)),
}


def test_the_rule():
    assert chunking.resolve_chunk_size(None, 1024, 1024, "cpu") is None  # notebook batch sizes
    assert chunking.resolve_chunk_size(None, chunking.CPU_MIN_BATCH - 1, 4096, "cpu") is None
    k = chunking.resolve_chunk_size(None, 8192, 8192, "cpu")
    assert k == max(chunking.MIN_BLOCK_ROWS, chunking.CPU_BLOCK_LOGITS // 8192) < 8192
    assert chunking.resolve_chunk_size(None, 2048, 2048, "cpu") == 2 ** 21 // 2048  # 1,024 rows
    assert chunking.resolve_chunk_size(None, 2048, 2 ** 30, "cpu") == chunking.MIN_BLOCK_ROWS
    assert chunking.resolve_chunk_size(None, 16384, 16384, "cuda") is None  # below CUDA's switch
    assert chunking.resolve_chunk_size(None, 2 ** 15, 2 ** 15, "cuda") == 2 ** 28 // 2 ** 15  # 8192
    assert chunking.resolve_chunk_size(None, 2 ** 16, 2 ** 16, "cuda") == 4096
    assert chunking.resolve_chunk_size("full", 10 ** 6, 10 ** 6, "cpu") is None
    assert chunking.resolve_chunk_size(3, 2, 2, "cpu") == 3


@pytest.mark.parametrize("bad", ["fast", "", 0, -2, 1.5, True])
def test_bad_chunk_size_names_the_argument(bad):
    a, b = _leaves(2, 4, 3)
    with pytest.raises((ValueError, TypeError), match="chunk_size"):
        L.info_nce(a, b, chunk_size=bad)


def test_n_squared_refuses_blocks():
    xs = _leaves(3, 4, 3)
    with pytest.raises(ValueError, match="chunk_size.*negatives='n'"):
        L.symile(*xs, negatives="n_squared", chunk_size=2)
    assert L.symile(*xs, negatives="n_squared", chunk_size="full").logits.shape == (4, 16)


@pytest.mark.parametrize("name", list(LOSSES))
def test_default_switches_at_the_rule_and_keeps_values_and_gradients(name, small_switch):
    m = 3 if name == "symile" else 2
    for B, blocked in ((15, False), (16, True), (37, True)):
        xs, tau = _leaves(m, B, 5, seed=B), _tau()
        auto, full = LOSSES[name](xs, tau, None), LOSSES[name](xs, tau, "full")
        assert (auto.logits is None) == blocked and full.logits is not None
        torch.testing.assert_close(auto.loss, full.loss, rtol=1e-12, atol=1e-12)
        for key in full.terms:
            torch.testing.assert_close(auto.terms[key], full.terms[key], rtol=1e-12, atol=1e-12)
        for ga, gf in zip(torch.autograd.grad(auto.loss, [*xs, tau]),
                          torch.autograd.grad(full.loss, [*xs, tau])):
            torch.testing.assert_close(ga, gf, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(LOSSES))
def test_an_int_forces_blocks_below_the_switch(name):
    xs = _leaves(3 if name == "symile" else 2, 9, 4)
    assert LOSSES[name](xs, 0.2, 4).logits is None
    assert LOSSES[name](xs, 0.2, None).logits is not None  # B = 9: the full path


@pytest.mark.parametrize("cls,m", [(L.ClipLoss, 2), (L.SigLipLoss, 2), (L.SymileLoss, 3)])
def test_modules_choose_too(cls, m, small_switch):
    xs = _leaves(m, 20, 4)
    auto, full = cls().double(), cls(chunk_size="full").double()
    torch.manual_seed(0)
    out_auto = auto(*xs)
    torch.manual_seed(0)  # SymileLoss draws its permutations from the global RNG
    out_full = full(*xs)
    assert out_auto.logits is None and out_full.logits is not None
    torch.testing.assert_close(out_auto.loss, out_full.loss, rtol=1e-12, atol=1e-12)
    for ga, gf in zip(torch.autograd.grad(out_auto.loss, list(auto.parameters())),
                      torch.autograd.grad(out_full.loss, list(full.parameters()))):
        torch.testing.assert_close(ga, gf, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("B,K", [(1, 1), (7, 3), (12, 5), (10, 32)])
def test_symile_blocks_match_the_full_loss(m, B, K):
    xs, tau = _leaves(m, B, 4, seed=10 * m + B), _tau()
    full, blocks = LOSSES["symile"](xs, tau, "full"), LOSSES["symile"](xs, tau, K)
    torch.testing.assert_close(blocks.loss, full.loss, rtol=1e-12, atol=1e-12)
    for key in full.terms:
        torch.testing.assert_close(blocks.terms[key], full.terms[key], rtol=1e-12, atol=1e-12)
    for gb, gf in zip(torch.autograd.grad(blocks.loss, [*xs, tau]),
                      torch.autograd.grad(full.loss, [*xs, tau])):
        torch.testing.assert_close(gb, gf, rtol=1e-10, atol=1e-12)


def test_symile_blocks_with_partial_requires_grad_and_float32():
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(11, 6, generator=g) for _ in range(3)]
    xs[1].requires_grad_(True)
    outs = [L.symile(*xs, temperature=0.1, chunk_size=k, generator=torch.Generator().manual_seed(1))
            for k in ("full", 4)]
    torch.testing.assert_close(outs[1].loss, outs[0].loss)
    (g_full,), (g_blocks,) = (torch.autograd.grad(o.loss, [xs[1]]) for o in outs)
    torch.testing.assert_close(g_blocks, g_full)


def test_symile_blocks_never_build_a_b_by_b_tensor():
    class Largest(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in (out if isinstance(out, (tuple, list)) else [out]):
                if isinstance(t, torch.Tensor):
                    self.largest = max(self.largest, t.numel())
            return out

    B, K = 64, 8
    xs = _leaves(3, B, 4)
    with Largest() as mode:
        L.symile(*xs, chunk_size=K).loss.backward()
    assert mode.largest <= K * B < B * B


class _CountMatmuls(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in MATMULS:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name,per_block", [("info_nce", 4), ("siglip", 3), ("symile", 3 * 3)])
def test_matrix_products_per_block(name, per_block):
    """InfoNCE: logits, recomputed logits, G B, Gᵀ A. SigLIP and each Symile anchor: 3."""
    B, K = 24, 5
    blocks = -(-B // K)
    xs = _leaves(3 if name == "symile" else 2, B, 4)
    with _CountMatmuls() as counter:
        LOSSES[name](xs, 0.2, K).loss.backward()
    assert counter.count == per_block * blocks
    with torch.no_grad(), _CountMatmuls() as counter:  # evaluation: the logits only
        LOSSES[name](xs, 0.2, K)
    assert counter.count == (3 if name == "symile" else 1) * blocks


def test_fused_gradient_follows_the_incoming_gradient():
    """The one-pass losses store ∂loss/∂x at forward time and scale it by the incoming gradient."""
    a, b = _leaves(2, 9, 3)
    bias = torch.tensor(-1.0, dtype=DT, requires_grad=True)
    for k in (4, "full"):
        out = L.siglip(a, b, 0.3, bias, chunk_size=k)
        grads = torch.autograd.grad(-2.5 * out.loss + 3.0 * out.terms["pos"], [a, b, bias])
        if k == 4:
            blocked = grads
    for gb, gf in zip(blocked, grads):
        torch.testing.assert_close(gb, gf, rtol=1e-10, atol=1e-12)
