"""Chunked (memory-efficient) info_nce and siglip: same values and gradients as the full
versions (for a, b, a tensor temperature and bias), ragged last chunks, B = 1, and proof that
no (B, B) tensor is ever allocated in forward or backward."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import mmlab.losses as L

DT = torch.float64


def _inputs(B, D, seed=0, scale_b=1.0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(B, D, generator=gen, dtype=DT).requires_grad_(True)
    b = (scale_b * torch.randn(B, D, generator=gen, dtype=DT)).requires_grad_(True)
    tau = torch.tensor(0.2, dtype=DT, requires_grad=True)
    bias = torch.tensor(-3.0, dtype=DT, requires_grad=True)
    return a, b, tau, bias


def _compare(loss_fn, B, D, chunk, normalize=True):
    a, b, tau, bias = _inputs(B, D, seed=B * 100 + chunk)
    full = loss_fn(a, b, tau, bias, None, normalize)
    chunked = loss_fn(a, b, tau, bias, chunk, normalize)
    assert chunked.logits is None and full.logits is not None
    torch.testing.assert_close(chunked.loss, full.loss, rtol=1e-12, atol=1e-12)
    for key in full.terms:
        torch.testing.assert_close(chunked.terms[key], full.terms[key], rtol=1e-12, atol=1e-12)
    inputs = [a, b, tau, bias]
    g_full = torch.autograd.grad(full.loss, inputs, allow_unused=True)
    g_chunk = torch.autograd.grad(chunked.loss, inputs, allow_unused=True)
    for gf, gc in zip(g_full, g_chunk):
        if gf is None:
            assert gc is None
        else:
            torch.testing.assert_close(gc, gf, rtol=1e-11, atol=1e-12)
    return g_full


def _info_nce(a, b, tau, bias, chunk, normalize):
    return L.info_nce(a, b, tau, normalize=normalize, chunk_size=chunk)


def _siglip(a, b, tau, bias, chunk, normalize):
    return L.siglip(a, b, tau, bias, normalize=normalize, chunk_size=chunk)


@pytest.mark.parametrize("B,chunk", [(1, 1), (1, 4), (7, 1), (7, 3), (7, 7), (7, 10), (12, 5)])
@pytest.mark.parametrize("normalize", [True, False])
def test_chunked_info_nce_matches_full(B, chunk, normalize):
    grads = _compare(_info_nce, B, 4, chunk, normalize)
    assert grads[2] is not None and grads[3] is None  # τ gets a gradient; info_nce has no bias


@pytest.mark.parametrize("B,chunk", [(1, 1), (1, 4), (7, 1), (7, 3), (7, 7), (12, 5)])
@pytest.mark.parametrize("normalize", [True, False])
def test_chunked_siglip_matches_full(B, chunk, normalize):
    grads = _compare(_siglip, B, 4, chunk, normalize)
    assert grads[2] is not None and grads[3] is not None


def test_chunked_float_temperature_and_partial_requires_grad():
    a, b, _, _ = _inputs(6, 3)
    b = b.detach()
    for fn in (L.info_nce, L.siglip):
        (ga_full,) = torch.autograd.grad(fn(a, b, 0.3).loss, [a])
        (ga_chunk,) = torch.autograd.grad(fn(a, b, 0.3, chunk_size=4).loss, [a])
        torch.testing.assert_close(ga_chunk, ga_full)


def test_chunked_half_precision_matches_full_float32():
    a, b = torch.randn(9, 8), torch.randn(9, 8)
    for fn in (L.info_nce, L.siglip):
        full = fn(a.half().float(), b.half().float(), 0.05)
        chunked = fn(a.half(), b.half(), 0.05, chunk_size=4)
        assert chunked.loss.dtype == torch.float32
        torch.testing.assert_close(chunked.loss, full.loss)


def test_modules_pass_chunk_size():
    a, b, _, _ = _inputs(5, 3)
    for cls in (L.ClipLoss, L.SigLipLoss):
        full, chunked = cls().double(), cls(chunk_size=2).double()
        out_full, out_chunk = full(a, b), chunked(a, b)
        torch.testing.assert_close(out_chunk.loss, out_full.loss)
        g_full = torch.autograd.grad(out_full.loss, list(full.parameters()))
        g_chunk = torch.autograd.grad(out_chunk.loss, list(chunked.parameters()))
        for x, y in zip(g_chunk, g_full):
            torch.testing.assert_close(x, y)


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("fn", [L.info_nce, L.siglip])
def test_chunked_never_materialises_the_full_matrix(fn):
    B, D, K = 64, 4, 8
    a, b, _, _ = _inputs(B, D)
    tau = torch.tensor(0.1, dtype=DT, requires_grad=True)
    with _LargestTensor() as mode:
        out = fn(a, b, tau, chunk_size=K)
        out.loss.backward()
    assert mode.largest <= K * B < B * B
    with _LargestTensor() as mode:  # the detector does see the full path's (B, B) logits
        fn(a, b, tau).loss.backward()
    assert mode.largest >= B * B
