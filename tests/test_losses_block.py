"""block_info_nce / block_mask against a brute-force loop over anchors (values and gradients)."""

import math

import pytest
import torch
import torch.nn.functional as F

from mmlab.losses import block_info_nce, block_mask, info_nce


def brute_force(a, b, tau, k):
    """½ mean over anchors of −log(exp L_ii / Σ_{j in block(i)} exp L_ij), both directions,
    by explicit loops."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    n = a.shape[0]
    total = {"a_to_b": 0.0, "b_to_a": 0.0}
    for name, (x, y) in {"a_to_b": (a, b), "b_to_a": (b, a)}.items():
        for i in range(n):
            lo, hi = (i // k) * k, min((i // k) * k + k, n)
            logits = [torch.dot(x[i], y[j]) / tau for j in range(lo, hi)]
            total[name] = total[name] - (logits[i - lo] - torch.logsumexp(torch.stack(logits), 0))
        total[name] = total[name] / n
    return 0.5 * (total["a_to_b"] + total["b_to_a"]), total


@pytest.mark.parametrize("n,k", [(12, 4), (10, 4), (7, 1), (9, 3), (1, 5), (16, 16)])
def test_matches_brute_force_values_and_gradients(n, k):
    g = torch.Generator().manual_seed(n * 31 + k)
    a0 = torch.randn(n, 5, generator=g, dtype=torch.float64)
    b0 = torch.randn(n, 5, generator=g, dtype=torch.float64)
    a1, b1 = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    a2, b2 = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    out = block_info_nce(a1, b1, 0.3, k)
    ref, terms = brute_force(a2, b2, 0.3, k)
    assert torch.allclose(out.loss, ref, atol=1e-12)
    for key in ("a_to_b", "b_to_a"):
        assert torch.allclose(out.terms[key], terms[key], atol=1e-12)
    out.loss.backward()
    ref.backward()
    assert torch.allclose(a1.grad, a2.grad, atol=1e-12)
    assert torch.allclose(b1.grad, b2.grad, atol=1e-12)


@pytest.mark.parametrize("k", [8, 20])
def test_k_at_least_b_is_info_nce(k):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(8, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, 4, generator=g, dtype=torch.float64)
    out, ref = block_info_nce(a, b, 0.1, k), info_nce(a, b, 0.1)
    assert torch.allclose(out.loss, ref.loss, atol=1e-12)
    ga, = torch.autograd.grad(out.loss, a)
    gr, = torch.autograd.grad(ref.loss, a)
    assert torch.allclose(ga, gr, atol=1e-12)


def test_mean_of_per_block_info_nce():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(32, 6, generator=g), torch.randn(32, 6, generator=g)
    per_block = torch.stack([info_nce(a[i:i + 8], b[i:i + 8], 0.1).loss for i in range(0, 32, 8)])
    assert torch.allclose(block_info_nce(a, b, 0.1, 8).loss, per_block.mean(), atol=1e-6)


def test_block_of_one_has_no_negatives():
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    assert block_info_nce(a, b, 0.1, 1).loss.item() == 0.0


def test_mask_shape_and_diagonal():
    m = block_mask(7, 3)
    assert m.shape == (7, 7) and m.diagonal().all()
    assert m.sum().item() == 3 * 3 + 3 * 3 + 1
    assert not m[2, 3] and m[6, 6] and not m[5, 6]


def test_bad_block_size():
    with pytest.raises((ValueError, TypeError), match="block_size"):
        block_info_nce(torch.randn(4, 3), torch.randn(4, 3), 0.1, 0)


def test_float_temperature_tensor_gradient():
    t = torch.tensor(0.2, requires_grad=True)
    block_info_nce(torch.randn(6, 3), torch.randn(6, 3), t, 2).loss.backward()
    assert t.grad is not None and math.isfinite(t.grad.item())
