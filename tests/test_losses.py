"""Tests for mmlab.losses: every loss against a brute-force loop (values and gradients, float64),
closed forms, the temperature modules, validation and numerical stability.

The `ref_*` functions below loop over pairs/tuples with scalar torch ops and use exp/log
directly, independent of the vectorised code under test; autograd through them gives the
reference gradients.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import mmlab.losses as L

DT = torch.float64


# ----------------------------------------------------------------------------- references

def cos(u, v):
    return (u * v).sum() / (u.norm() * v.norm())


def sim_matrix(a, b, normalize=True):
    B = a.shape[0]
    return [[cos(a[i], b[j]) if normalize else (a[i] * b[j]).sum() for j in range(B)]
            for i in range(B)]


def ce_row(logits_row, target):
    return -(logits_row[target] - torch.log(sum(torch.exp(x) for x in logits_row)))


def ref_info_nce(a, b, tau, normalize=True):
    B = a.shape[0]
    S = sim_matrix(a, b, normalize)
    a2b = sum(ce_row([S[i][j] / tau for j in range(B)], i) for i in range(B)) / B
    b2a = sum(ce_row([S[j][i] / tau for j in range(B)], i) for i in range(B)) / B
    return (a2b + b2a) / 2


def ref_siglip(a, b, tau, bias):
    B = a.shape[0]
    S = sim_matrix(a, b)
    total = 0
    for i in range(B):
        for j in range(B):
            z = 1.0 if i == j else -1.0
            total = total - torch.log(1 / (1 + torch.exp(-z * (S[i][j] / tau + bias))))
    return total / B


def _unit(x):
    return [x[i] / x[i].norm() for i in range(x.shape[0])]


def _mip(vectors):
    prod = vectors[0]
    for v in vectors[1:]:
        prod = prod * v
    return prod.sum()


def ref_symile_n_squared(xs, tau):
    M, B = len(xs), xs[0].shape[0]
    units = [_unit(x) for x in xs]
    losses = []
    for m in range(M):
        others = [k for k in range(M) if k != m]
        total = 0
        for i in range(B):
            tuples = list(itertools.product(range(B), repeat=M - 1))
            logits = [_mip([units[m][i]] + [units[k][t[n]] for n, k in enumerate(others)]) / tau
                      for t in tuples]
            total = total + ce_row(logits, tuples.index((i,) * (M - 1)))
        losses.append(total / B)
    return sum(losses) / M


def ref_symile_n(xs, tau, seed):
    """Reconstructs the documented permutation order: for m, for k ≠ m: randperm(B, generator)."""
    M, B = len(xs), xs[0].shape[0]
    units = [_unit(x) for x in xs]
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for m in range(M):
        others = [k for k in range(M) if k != m]
        perms = {k: torch.randperm(B, generator=gen).tolist() for k in others}
        total = 0
        for i in range(B):
            logits = []
            for j in range(B):
                rows = {k: (i if j == i else perms[k][j]) for k in others}
                logits.append(_mip([units[m][i]] + [units[k][rows[k]] for k in others]) / tau)
            total = total + ce_row(logits, i)
        losses.append(total / B)
    return sum(losses) / M


def ref_debiased(a, b, tau, tau_plus, beta=0.0, return_floor_count=False):
    """Chuang et al. 2020 (beta = 0) and Robinson et al. 2021 (beta > 0), as in their papers'
    code."""
    B = a.shape[0]
    S = sim_matrix(a, b)
    N = B - 1
    floors = 0

    def one_direction(get):
        nonlocal floors
        total = 0
        for i in range(B):
            pos = torch.exp(get(i, i) / tau)
            negs = [torch.exp(get(i, j) / tau) for j in range(B) if j != i]
            imps = [torch.exp(beta * get(i, j) / tau) for j in range(B) if j != i]
            reweighted = sum(w * n for w, n in zip(imps, negs)) / (sum(imps) / N)
            ng = (-N * tau_plus * pos + reweighted) / (1 - tau_plus)
            floor = N * math.exp(-1 / tau)
            if ng < floor:
                floors += 1
                ng = torch.as_tensor(floor, dtype=a.dtype)
            total = total - torch.log(pos / (pos + ng))
        return total / B

    out = (one_direction(lambda i, j: S[i][j]) + one_direction(lambda i, j: S[j][i])) / 2
    return (out, floors) if return_floor_count else out


def ref_supcon(features, labels, tau):
    if features.ndim == 2:
        features = features[:, None]
    B, V, _ = features.shape
    z = [features[i, v] / features[i, v].norm() for v in range(V) for i in range(B)]
    y = [int(labels[i]) for v in range(V) for i in range(B)]
    N = len(z)
    per_anchor = []
    for i in range(N):
        positives = [p for p in range(N) if p != i and y[p] == y[i]]
        if not positives:
            continue
        denom = sum(torch.exp((z[i] * z[a]).sum() / tau) for a in range(N) if a != i)
        logs = [torch.log(torch.exp((z[i] * z[p]).sum() / tau) / denom) for p in positives]
        per_anchor.append(-sum(logs) / len(positives))
    return sum(per_anchor) / len(per_anchor)


def ref_queue_info_nce(q, k, negatives, tau):
    B = q.shape[0]
    total = 0
    for i in range(B):
        logits = [cos(q[i], k[i]) / tau] + [cos(q[i], n) / tau for n in negatives]
        total = total + ce_row(logits, 0)
    return total / B


def ref_clip_lite(a, b, tau):
    B = a.shape[0]
    total = 0
    for i in range(B):
        t_pos = cos(a[i], b[i]) / tau
        t_neg = cos(a[i], b[(i - 1) % B]) / tau
        total = total + torch.log(1 + torch.exp(-t_pos)) + torch.log(1 + torch.exp(t_neg))
    return total / B


# ----------------------------------------------------------------------------- helpers
def leaves(*shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=gen, dtype=DT).requires_grad_(True) for s in shapes]


def value_and_grads(fn, inputs):
    out = fn(*inputs)
    loss = out.loss if isinstance(out, L.LossOutput) else out
    grads = torch.autograd.grad(loss, inputs)
    return loss.detach(), grads


def assert_matches(fn, ref, inputs, rtol=1e-9, atol=1e-10):
    v1, g1 = value_and_grads(fn, inputs)
    v2, g2 = value_and_grads(ref, inputs)
    torch.testing.assert_close(v1, v2, rtol=rtol, atol=atol)
    for x, y in zip(g1, g2):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- brute force
@pytest.mark.parametrize("B,D", [(1, 3), (2, 1), (5, 4)])
@pytest.mark.parametrize("tau", [0.5, 0.07])
def test_info_nce_matches_brute_force(B, D, tau):
    a, b = leaves((B, D), (B, D), seed=B + D)
    assert_matches(lambda a, b: L.info_nce(a, b, tau), lambda a, b: ref_info_nce(a, b, tau), [a, b])


def test_info_nce_unnormalised_and_terms():
    a, b = leaves((4, 3), (4, 3))
    out = L.info_nce(a, b, 0.5, normalize=False)
    torch.testing.assert_close(out.loss, ref_info_nce(a, b, 0.5, normalize=False))
    torch.testing.assert_close(out.loss, (out.terms["a_to_b"] + out.terms["b_to_a"]) / 2)
    torch.testing.assert_close(out.logits, (a @ b.T) / 0.5)


@pytest.mark.parametrize("B,D", [(1, 2), (4, 3)])
def test_siglip_matches_brute_force(B, D):
    a, b = leaves((B, D), (B, D), seed=B)
    assert_matches(lambda a, b: L.siglip(a, b, 0.3, -2.0), lambda a, b: ref_siglip(a, b, 0.3, -2.0),
                   [a, b])
    out = L.siglip(a, b, 0.3, -2.0)
    torch.testing.assert_close(out.terms["pos"] + out.terms["neg"], out.loss)
    S = torch.tensor([[cos(a[i], b[j]).item() for j in range(B)] for i in range(B)], dtype=DT)
    want = torch.log1p(torch.exp(-(S.diagonal() / 0.3 - 2.0))).mean()
    torch.testing.assert_close(out.terms["pos"], want)


@pytest.mark.parametrize("M,B", [(2, 3), (3, 3), (4, 2), (3, 1)])
def test_symile_n_squared_matches_brute_force(M, B):
    xs = leaves(*[(B, 3)] * M, seed=M * 10 + B)
    assert_matches(lambda *xs: L.symile(*xs, temperature=0.4, negatives="n_squared"),
                   lambda *xs: ref_symile_n_squared(xs, 0.4), xs)


@pytest.mark.parametrize("M,B", [(2, 4), (3, 4), (4, 3), (3, 1)])
def test_symile_n_matches_brute_force_with_same_permutations(M, B):
    xs = leaves(*[(B, 3)] * M, seed=M + B)
    assert_matches(lambda *xs: L.symile(*xs, temperature=0.4, negatives="n",
                                        generator=torch.Generator().manual_seed(7)),
                   lambda *xs: ref_symile_n(xs, 0.4, seed=7), xs)


def test_symile_n_draws_fresh_negatives_and_global_rng():
    xs = leaves((6, 3), (6, 3), (6, 3))
    l1 = L.symile(*xs, generator=torch.Generator().manual_seed(1)).loss
    l2 = L.symile(*xs, generator=torch.Generator().manual_seed(2)).loss
    assert not torch.allclose(l1, l2)
    torch.manual_seed(3)
    g1 = L.symile(*xs).loss
    torch.manual_seed(3)
    torch.testing.assert_close(L.symile(*xs).loss, g1)


def test_symile_two_modalities_n_squared_is_info_nce():
    a, b = leaves((5, 4), (5, 4))
    assert_matches(lambda a, b: L.symile(a, b, temperature=0.2, negatives="n_squared"),
                   lambda a, b: L.info_nce(a, b, 0.2), [a, b], rtol=1e-12, atol=1e-12)


def test_symile_dict_input_terms_and_logit_shapes():
    x = dict(zip("xyz", leaves((3, 2), (3, 2), (3, 2))))
    out = L.symile(x, negatives="n_squared")
    assert set(out.terms) == {"x", "y", "z"} and out.logits.shape == (3, 9)
    torch.testing.assert_close(out.loss, sum(out.terms.values()) / 3)
    assert L.symile(x, negatives="n").logits.shape == (3, 3)


def test_multilinear_inner_product():
    x, y, z = leaves((3, 4), (3, 4), (3, 4))
    ref = torch.stack([sum(x[i, d] * y[i, d] * z[i, d] for d in range(4)) for i in range(3)])
    torch.testing.assert_close(L.multilinear_inner_product(x, y, z), ref)


def test_multilinear_inner_product_validates_its_inputs():
    x = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"`xs\[0\]`.*`xs\[1\]`.*same"):
        L.multilinear_inner_product(x, x[:2])
    with pytest.raises(TypeError, match=r"`xs\[0\]`.*floating"):
        L.multilinear_inner_product(x.long(), x)
    with pytest.raises(ValueError, match=r"`xs\[1\]`.*2-D"):
        L.multilinear_inner_product(x, x[0])
    with pytest.raises(ValueError, match=r"`xs\[0\]` is empty"):
        L.multilinear_inner_product(x[:0], x[:0])
    bad = x.clone()
    bad[1, 2] = math.nan
    with pytest.raises(ValueError, match=r"`xs\[1\]`.*1 NaN"):
        L.multilinear_inner_product(x, bad)
    with pytest.raises(ValueError, match="`xs` is empty"):
        L.multilinear_inner_product()


def test_queue_float16_zero_query_gradient_matches_float64_reference():
    """float16 zero q, k: â = a / max(‖a‖, ε) with ε = HALF_NORM_EPS, so near 0, q̂ = q/ε. The
    gradient (finite, no longer Inf) equals the float64 brute force with that ε."""
    from mmlab.losses._prep import HALF_NORM_EPS
    g = torch.Generator().manual_seed(0)
    negs = torch.randn(5, 4, generator=g, dtype=torch.float64).half()
    q = torch.zeros(3, 4, dtype=torch.float16, requires_grad=True)
    k = torch.zeros(3, 4, dtype=torch.float16, requires_grad=True)
    gq, gk = torch.autograd.grad(L.queue_info_nce(q, k, negs, 0.07).loss, (q, k))
    assert torch.isfinite(gq).all() and torch.isfinite(gk).all()
    q64 = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    n = negs.double() / negs.double().norm(dim=-1, keepdim=True)  # (Q, D)
    loss = 0.0
    for i in range(3):
        qh = q64[i] / HALF_NORM_EPS  # ‖q_i‖ = 0 < ε; k̂_i = 0, so the positive logit is 0
        negatives = torch.stack([qh @ n[j] for j in range(5)])
        logits = torch.cat([torch.zeros(1, dtype=torch.float64), negatives]) / 0.07
        loss = loss - torch.log_softmax(logits, 0)[0] / 3
    g_ref, = torch.autograd.grad(loss, q64)
    assert g_ref.abs().max() > 100  # the case is extreme: 1/ε amplifies the gradient
    torch.testing.assert_close(gq.double(), g_ref, rtol=2e-3, atol=1e-3)
    assert torch.equal(gk, torch.zeros_like(gk))  # ∂L/∂k̂ ∝ q̂ = 0


def test_pairwise_info_nce_is_mean_over_pairs():
    xs = leaves((4, 3), (4, 3), (4, 3))
    assert_matches(lambda *xs: L.pairwise_info_nce(*xs, temperature=0.3),
                   lambda x, y, z: (ref_info_nce(x, y, 0.3) + ref_info_nce(x, z, 0.3)
                                    + ref_info_nce(y, z, 0.3)) / 3,
                   xs)
    assert set(L.pairwise_info_nce(*xs).terms) == {"0-1", "0-2", "1-2"}


@pytest.mark.parametrize("tau_plus", [0.0, 0.1, 0.6])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_debiased_and_hard_negative_match_brute_force(tau_plus, beta):
    a, b = leaves((5, 3), (5, 3), seed=3)
    b2 = (b + a).detach().requires_grad_(True)  # correlated: some rows hit the floor at large τ⁺
    fn = ((lambda a, b: L.debiased_info_nce(a, b, 0.5, tau_plus)) if beta == 0
          else (lambda a, b: L.hard_negative_info_nce(a, b, 0.5, beta, tau_plus)))
    for x, y in [(a, b), (a, b2)]:
        assert_matches(fn, lambda x, y: ref_debiased(x, y, 0.5, tau_plus, beta), [x, y])


def test_debiased_floor_branch_is_exercised():
    a, b = leaves((5, 3), (5, 3), seed=3)
    b2 = (b + a).detach().requires_grad_(True)
    _, floors = ref_debiased(a, b2, 0.5, 0.6, return_floor_count=True)
    _, hard_floors = ref_debiased(a, b2, 0.5, 0.6, beta=1.0, return_floor_count=True)
    _, none = ref_debiased(a, b, 0.5, 0.1, return_floor_count=True)
    # both branches of max(·, N e^{−1/τ}) are covered by the brute-force test above
    assert 0 < floors < 10 and 0 < hard_floors < 10 and none == 0


def test_hard_negative_beta_zero_is_debiased_and_tau_plus_zero_is_info_nce():
    a, b = leaves((6, 3), (6, 3))
    torch.testing.assert_close(L.hard_negative_info_nce(a, b, 0.3, beta=0.0).loss,
                               L.debiased_info_nce(a, b, 0.3).loss)
    torch.testing.assert_close(L.debiased_info_nce(a, b, 0.3, tau_plus=0.0).loss,
                               ref_info_nce(a, b, 0.3))


def test_debiased_batch_of_one_is_zero():
    a, b = leaves((1, 3), (1, 3))
    out = L.debiased_info_nce(a, b)
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert torch.isfinite(a.grad).all()


@pytest.mark.parametrize("views", [None, 1, 2])
def test_supcon_matches_brute_force(views):
    shape = (6, 3) if views is None else (6, views, 3)
    (f,) = leaves(shape, seed=views or 0)
    labels = torch.tensor([0, 1, 0, 2, 1, 3])  # class 3 (and 2 without views) has a single anchor
    assert_matches(lambda f: L.supcon(f, labels, 0.4), lambda f: ref_supcon(f, labels, 0.4), [f])
    assert L.supcon(f, labels).terms == {}  # terms are loss parts only: no anchor count


def test_supcon_without_any_positive_is_zero_with_finite_grads():
    (f,) = leaves((3, 4))
    out = L.supcon(f, torch.tensor([0, 1, 2]))
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert torch.isfinite(f.grad).all()


def test_queue_info_nce_matches_brute_force():
    q, k, negs = leaves((4, 3), (4, 3), (5, 3))
    queue = L.MemoryQueue(3, 8).double()
    queue.enqueue(negs)
    assert_matches(lambda q, k: L.queue_info_nce(q, k, queue, 0.2),
                   lambda q, k: ref_queue_info_nce(q, k, negs.detach(), 0.2), [q, k])
    out = L.queue_info_nce(q, k, negs, 0.2)  # a plain tensor works too; no gradient to it
    assert out.logits.shape == (4, 6)
    out.loss.backward()
    assert negs.grad is None


def test_queue_info_nce_with_empty_queue_is_zero():
    q, k = leaves((3, 2), (3, 2))
    out = L.queue_info_nce(q, k, L.MemoryQueue(2, 4).double())
    assert out.logits.shape == (3, 1) and out.loss.item() == 0.0


def test_memory_queue_fifo_and_buffers():
    queue = L.MemoryQueue(2, 5)
    assert len(queue) == 0 and queue.negatives.shape == (0, 2)
    assert "queue" in dict(queue.named_buffers()) and not list(queue.parameters())
    rows = torch.arange(16.0).reshape(8, 2)
    queue.enqueue(rows[:3])
    torch.testing.assert_close(queue.negatives, rows[:3])
    queue.enqueue(rows[3:7])  # 7 keys into 5 slots: the two oldest are overwritten
    assert len(queue) == 5
    expected = {tuple(r) for r in rows[2:7].tolist()}
    assert {tuple(r) for r in queue.negatives.tolist()} == expected
    queue.enqueue(rows)  # more keys than slots: the last 5 are kept
    assert {tuple(r) for r in queue.negatives.tolist()} == {tuple(r) for r in rows[3:].tolist()}
    with pytest.raises(ValueError, match="width"):
        queue.enqueue(torch.zeros(2, 3))
    x = torch.randn(3, 2, requires_grad=True)
    queue.enqueue(x)
    assert not queue.queue.requires_grad


def test_clip_lite_matches_brute_force():
    a, b = leaves((5, 3), (5, 3))
    assert_matches(lambda a, b: L.clip_lite(a, b, 0.5), lambda a, b: ref_clip_lite(a, b, 0.5),
                   [a, b])
    out = L.clip_lite(a, b, 0.5)
    torch.testing.assert_close(out.terms["pos"] + out.terms["neg"], out.loss)


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("B", [1, 2, 7])
def test_info_nce_equal_logits_is_log_b(B):
    a = torch.ones(B, 3, dtype=DT)
    torch.testing.assert_close(L.info_nce(a, a.clone(), 0.1).loss,
                               torch.tensor(math.log(B), dtype=DT))


@pytest.mark.parametrize("M", [2, 3])
def test_symile_equal_logits_is_log_of_candidate_count(M):
    xs = [torch.ones(3, 2, dtype=DT)] * M
    torch.testing.assert_close(L.symile(*xs, negatives="n").loss,
                               torch.tensor(math.log(3), dtype=DT))
    torch.testing.assert_close(L.symile(*xs, negatives="n_squared").loss,
                               torch.tensor((M - 1) * math.log(3), dtype=DT))


@pytest.mark.parametrize("B", [1, 4])
def test_siglip_zero_similarity_closed_form(B):
    a = torch.zeros(B, 2, dtype=DT)
    a[:, 0] = 1.0
    b = torch.zeros(B, 2, dtype=DT)
    b[:, 1] = 1.0  # S = 0 everywhere, logits = bias = −10
    expected = math.log1p(math.exp(10)) + (B - 1) * math.log1p(math.exp(-10))
    torch.testing.assert_close(L.siglip(a, b, 0.1, -10.0).loss, torch.tensor(expected, dtype=DT))
    torch.testing.assert_close(L.siglip(a, b, 0.1, -10.0, chunk_size=3).loss,
                               torch.tensor(expected, dtype=DT))


def test_clip_lite_zero_critic_is_two_ln_two():
    a = torch.zeros(4, 2, dtype=DT)
    a[:, 0] = 1.0
    b = torch.zeros(4, 2, dtype=DT)
    b[:, 1] = 1.0
    expected = torch.tensor(2 * math.log(2), dtype=DT)
    torch.testing.assert_close(L.clip_lite(a, b).loss, expected, rtol=0, atol=1e-15)
    z = torch.zeros(4, 2, dtype=DT)
    torch.testing.assert_close(L.clip_lite(z, z, normalize=False).loss, expected,
                               rtol=0, atol=1e-15)


def test_info_nce_gradient_wrt_negative_similarity_is_softmax_over_tau():
    """Wang & Liu 2021: ∂CE_i/∂S_ij = softmax_j(S_i·/τ)/τ for a negative j ≠ i.

    With normalize=False, a = S and b = I give logits S/τ, so the gradient of the a→b term
    (a mean over B rows) with respect to S is (softmax − onehot)/(τB)."""
    B, tau = 4, 0.3
    (S,) = leaves((B, B))
    out = L.info_nce(S, torch.eye(B, dtype=DT), tau, normalize=False)
    (grad,) = torch.autograd.grad(out.terms["a_to_b"], S)
    for i in range(B):
        denom = sum(math.exp(S[i, k].item() / tau) for k in range(B))
        for j in range(B):
            softmax_ij = math.exp(S[i, j].item() / tau) / denom
            expected = (softmax_ij - (i == j)) / (tau * B)
            assert grad[i, j].item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


# ----------------------------------------------------------------------------- temperature modules
@pytest.mark.parametrize("cls,fn",
                         [(L.ClipLoss, L.info_nce), (L.SymileLoss, None), (L.SigLipLoss, None)])
def test_modules_clamp_temperature_and_flags(cls, fn):
    m = cls(init_temperature=0.07)
    assert m.temperature == pytest.approx(0.07, rel=1e-6)
    assert m.logit_scale.item() == pytest.approx(math.log(1 / 0.07), rel=1e-6)
    with torch.no_grad():
        m.logit_scale.fill_(10.0)
    assert m.temperature == pytest.approx(0.01, rel=1e-6)  # the clamped value is the one used
    a, b = leaves((4, 3), (4, 3))
    out = m(a, b)
    (g,) = torch.autograd.grad(out.loss, m.logit_scale)
    assert g.item() == 0.0  # above the clamp, no gradient
    if fn is not None:
        torch.testing.assert_close(out.loss, fn(a, b, 0.01).loss, rtol=1e-6, atol=1e-6)
    m.clamp_()
    assert m.logit_scale.item() == pytest.approx(L.MAX_LOGIT_SCALE)
    assert cls(learnable=False).logit_scale.requires_grad is False
    assert cls.multiway is (cls is L.SymileLoss)


def test_clip_loss_gradient_reaches_logit_scale():
    m = L.ClipLoss(init_temperature=0.2).double()
    a, b = leaves((4, 3), (4, 3))
    (g,) = torch.autograd.grad(m(a, b).loss, m.logit_scale)
    ls = m.logit_scale.detach().clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(ref_info_nce(a, b, torch.exp(-ls)), ls)
    torch.testing.assert_close(g, g_ref)
    assert g.abs().item() > 1e-6
    assert L.MAX_LOGIT_SCALE == math.log(100)


def test_siglip_loss_module_gradients_reach_scale_and_bias():
    m = L.SigLipLoss().double()
    assert m.temperature == pytest.approx(0.1) and m.bias.item() == -10.0
    a, b = leaves((4, 3), (4, 3))
    gs, gb = torch.autograd.grad(m(a, b).loss, [m.logit_scale, m.bias])
    ls = m.logit_scale.detach().clone().requires_grad_(True)
    bias = m.bias.detach().clone().requires_grad_(True)
    gs_ref, gb_ref = torch.autograd.grad(ref_siglip(a, b, torch.exp(-ls), bias), [ls, bias])
    torch.testing.assert_close(gs, gs_ref)
    torch.testing.assert_close(gb, gb_ref)


def test_symile_loss_module_passes_dicts_and_generator():
    m = L.SymileLoss(init_temperature=0.4, negatives="n").double()
    xs = leaves((3, 2), (3, 2), (3, 2))
    out = m(*xs, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out.loss, ref_symile_n(xs, 0.4, seed=5))
    out = L.SymileLoss(negatives="n_squared")({"a": xs[0], "b": xs[1]})
    assert set(out.terms) == {"a", "b"}


@pytest.mark.parametrize("name", ["info_nce", "siglip", "clip_lite", "debiased_info_nce",
                                  "hard_negative_info_nce", "symile_n", "symile_n_squared",
                                  "pairwise_info_nce", "supcon", "queue_info_nce"])
def test_tensor_temperature_receives_gradient(name):
    a, b = leaves((4, 3), (4, 3))
    tau = torch.tensor(0.3, dtype=DT, requires_grad=True)
    fn = {
        "symile_n": lambda a, b, temperature: L.symile(a, b, a - b, temperature=temperature,
                                                       generator=torch.Generator().manual_seed(0)),
        "symile_n_squared": lambda a, b, temperature: L.symile(a, b, a - b, temperature=temperature,
                                                               negatives="n_squared"),
        "supcon": lambda a, b, temperature: L.supcon(torch.stack([a, b], 1),
                                                     torch.tensor([0, 1, 0, 1]), temperature),
        "queue_info_nce": lambda a, b, temperature: L.queue_info_nce(a, b, a.detach() + b.detach(),
                                                                     temperature),
    }.get(name) or getattr(L, name)
    loss = fn(a, b, temperature=tau).loss
    (g,) = torch.autograd.grad(loss, tau)
    # central finite difference in float64
    h = 1e-6
    up, down = fn(a, b, temperature=0.3 + h).loss, fn(a, b, temperature=0.3 - h).loss
    assert g.item() == pytest.approx(((up - down) / (2 * h)).item(), rel=1e-5, abs=1e-8)


# ----------------------------------------------------------------------------- validation
PAIR_LOSSES = [L.info_nce, L.siglip, L.clip_lite, L.debiased_info_nce, L.hard_negative_info_nce,
               lambda a, b, **kw: L.symile(a, b, **kw),
               lambda a, b, **kw: L.pairwise_info_nce(a, b, **kw),
               lambda a, b, **kw: L.queue_info_nce(
                   a, b, torch.zeros(0, a.shape[-1] if a.ndim else 1), **kw)]


@pytest.mark.parametrize("fn", PAIR_LOSSES)
def test_pair_losses_reject_bad_inputs(fn):
    ok = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5, 3\)"):
        fn(ok, torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 2\)"):
        fn(ok, torch.randn(4, 2))
    with pytest.raises(ValueError, match="2-D"):
        fn(torch.randn(4), torch.randn(4))
    with pytest.raises(TypeError, match="floating"):
        fn(torch.ones(4, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        fn(torch.randn(0, 3), torch.randn(0, 3))
    bad = ok.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fn(bad, ok)
    bad[1, 2] = float("inf")
    with pytest.raises(ValueError, match="Inf"):
        fn(ok, bad)
    for tau in (0.0, -0.1, float("nan"), torch.tensor(-1.0)):
        with pytest.raises(ValueError, match="temperature"):
            fn(ok, ok, temperature=tau)
    with pytest.raises(ValueError, match="temperature"):
        fn(ok, ok, temperature=torch.ones(2))
    with pytest.raises(TypeError):
        fn(ok, [[1.0]])


def test_option_validation():
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="'n', 'n_squared'"):
        L.symile(x, x, negatives="all")
    with pytest.raises(ValueError, match="'n', 'n_squared'"):
        L.SymileLoss(negatives="m")
    with pytest.raises(ValueError, match="M ≥ 2"):
        L.symile(x)
    with pytest.raises(ValueError, match="tau_plus"):
        L.debiased_info_nce(x, x, tau_plus=1.0)
    with pytest.raises(ValueError, match="beta"):
        L.hard_negative_info_nce(x, x, beta=-1.0)
    with pytest.raises(ValueError, match="chunk_size"):
        L.info_nce(x, x, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        L.siglip(x, x, chunk_size=2.5)
    with pytest.raises(ValueError, match="bias"):
        L.siglip(x, x, bias=float("nan"))
    with pytest.raises(ValueError, match="init_temperature"):
        L.ClipLoss(init_temperature=0.0)
    with pytest.raises(TypeError, match="labels"):
        L.supcon(x, torch.tensor([0.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="labels"):
        L.supcon(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\(B, D\) or \(B, V, D\)"):
        L.supcon(torch.randn(2, 2, 2, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="queue"):
        L.queue_info_nce(x, x, torch.randn(4, 5))
    with pytest.raises(TypeError, match="queue"):
        L.queue_info_nce(x, x, "queue")
    with pytest.raises(ValueError, match="size"):
        L.MemoryQueue(2, 0)


# ----------------------------------------------------------------------------- numerical stability
STABILITY_CASES = {
    "info_nce": lambda a, b, t: L.info_nce(a, b, t),
    "info_nce_chunked": lambda a, b, t: L.info_nce(a, b, t, chunk_size=3),
    "siglip": lambda a, b, t: L.siglip(a, b, t),
    "siglip_chunked": lambda a, b, t: L.siglip(a, b, t, chunk_size=3),
    "symile_n": lambda a, b, t: L.symile(a, b, a * b, temperature=t),
    "symile_n2": lambda a, b, t: L.symile(a, b, a + b, temperature=t, negatives="n_squared"),
    "pairwise": lambda a, b, t: L.pairwise_info_nce(a, b, temperature=t),
    "clip_lite": lambda a, b, t: L.clip_lite(a, b, t),
    "debiased": lambda a, b, t: L.debiased_info_nce(a, b, t, tau_plus=0.3),
    "hard": lambda a, b, t: L.hard_negative_info_nce(a, b, t, beta=1.0, tau_plus=0.3),
    "queue": lambda a, b, t: L.queue_info_nce(a, b, b.detach()[:3] + 1, t),
    "supcon": lambda a, b, t: L.supcon(torch.stack([a, b], 1), torch.tensor([0, 1, 0, 1, 2]), t),
}


def _finite_loss_and_grads(fn, a, b, t):
    a = a.detach().requires_grad_(True)
    b = b.detach().requires_grad_(True)
    loss = fn(a, b, t).loss
    assert loss.dtype in (torch.float32, torch.float64)
    assert torch.isfinite(loss), loss
    ga, gb = torch.autograd.grad(loss, [a, b], allow_unused=True)
    for g in (ga, gb):
        assert g is None or torch.isfinite(g).all()
    return loss


@pytest.mark.parametrize("name", list(STABILITY_CASES))
def test_stable_at_tiny_temperature_half_precision_zero_and_huge_inputs(name):
    fn = STABILITY_CASES[name]
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    _finite_loss_and_grads(fn, a, b, 1e-4)
    for dtype in (torch.float16, torch.bfloat16):
        loss = _finite_loss_and_grads(fn, a.to(dtype), b.to(dtype), 1e-4)
        assert loss.dtype == torch.float32
    _finite_loss_and_grads(fn, torch.zeros(5, 4), torch.zeros(5, 4), 0.07)
    _finite_loss_and_grads(fn, torch.zeros(5, 4), b, 1e-4)


@pytest.mark.parametrize("name", ["info_nce", "info_nce_chunked", "siglip", "siglip_chunked",
                                  "clip_lite", "debiased", "hard"])
def test_stable_with_logits_of_1e4_unnormalised(name):
    fn = {
        "info_nce": lambda a, b: L.info_nce(a, b, 1.0, normalize=False),
        "info_nce_chunked": lambda a, b: L.info_nce(a, b, 1.0, normalize=False, chunk_size=2),
        "siglip": lambda a, b: L.siglip(a, b, 1.0, 0.0, normalize=False),
        "siglip_chunked": lambda a, b: L.siglip(a, b, 1.0, 0.0, normalize=False, chunk_size=2),
        "clip_lite": lambda a, b: L.clip_lite(a, b, 1.0, normalize=False),
        "debiased": lambda a, b: L.debiased_info_nce(a, b, 1.0, normalize=False),
        "hard": lambda a, b: L.hard_negative_info_nce(a, b, 1.0, normalize=False),
    }[name]
    a = 100 * torch.randn(5, 4)
    b = a.flip(0) * -1  # logits of order ±1e4 of both signs
    _finite_loss_and_grads(lambda a, b, t: fn(a, b), a, b, None)
    _finite_loss_and_grads(lambda a, b, t: fn(a, b), a, a.clone(), None)


def test_mixed_float_dtypes_are_promoted():
    a, b = leaves((4, 3), (4, 3))
    for fn in (L.info_nce, L.siglip, L.clip_lite, L.debiased_info_nce):
        mixed, full = fn(a.float(), b), fn(a.float().double(), b)  # float32 + float64 → float64
        assert mixed.loss.dtype == full.loss.dtype == DT
        torch.testing.assert_close(mixed.loss, full.loss)
    mixed = L.symile(a.float(), b.half(), negatives="n_squared")  # float32 + float16 → float32
    full = L.symile(a.float(), b.half().float(), negatives="n_squared")
    assert mixed.loss.dtype == torch.float32
    torch.testing.assert_close(mixed.loss, full.loss)


def test_embeddings_on_different_devices_are_rejected():
    a = torch.randn(3, 2)
    b = torch.randn(3, 2, device="meta")
    with pytest.raises(ValueError, match="same device"):
        L.info_nce(a, b)


# ------------------------------------------------------------ the learnable temperature base class
@pytest.mark.parametrize("bad, error", [(0.0, ValueError), (-0.5, ValueError),
                                        (float("nan"), ValueError), (float("inf"), ValueError),
                                        ("0.07", TypeError)])
def test_learnable_temperature_rejects_bad_init(bad, error):
    from mmlab.losses import LearnableTemperature
    with pytest.raises(error, match="init_temperature"):
        LearnableTemperature(init_temperature=bad)


def test_learnable_temperature_is_shared_by_the_loss_modules():
    from mmlab.losses import MAX_LOGIT_SCALE, ClipLoss, LearnableTemperature, SigLipLoss, SymileLoss
    for cls in (ClipLoss, SigLipLoss, SymileLoss):
        m = cls(init_temperature=0.05)
        assert isinstance(m, LearnableTemperature)
        assert m.temperature == pytest.approx(0.05)
        with torch.no_grad():
            m.logit_scale.fill_(10.0)  # τ = e^-10 would be below the clamp
        assert m.temperature == pytest.approx(0.01)  # the value used is clamped at τ = 0.01
        assert float(m.scale().detach()) == pytest.approx(100.0)
        m.clamp_()
        assert float(m.logit_scale.detach()) == pytest.approx(MAX_LOGIT_SCALE)


def test_symile_draws_its_permutations_on_the_anchors_device(monkeypatch):
    """No permutation is made on the CPU and copied to the embeddings' device per step (the meta
    device stands in for a GPU); a generator's own device is respected."""
    devices = []
    randperm = torch.randperm

    def spy(*args, **kwargs):
        devices.append(torch.device(kwargs.get("device", "cpu")))
        return randperm(*args, **kwargs)

    monkeypatch.setattr(torch, "randperm", spy)
    xs = [torch.randn(5, 3, device="meta") for _ in range(3)]
    out = L.symile(*xs)
    assert out.loss.device.type == "meta" and devices == [torch.device("meta")] * 6  # M(M−1) draws
    devices.clear()
    L.symile(*[torch.randn(5, 3) for _ in range(3)], generator=torch.Generator().manual_seed(0))
    assert devices == [torch.device("cpu")] * 6
