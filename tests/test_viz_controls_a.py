"""Headless tests of the controls of notebooks 01, 04 and 05 (mmlab/viz/controls_a.py): move the
slider as a learner would, then compare the figure's data with an independent computation
(loops over pairs, numpy, a brute-force enumeration of the XOR joint distribution)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import mmlab.viz as viz
from mmlab.viz.controls_a import cone_data, gap_shift_data, xor_information


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt((x ** 2).sum(axis=1, keepdims=True))


def _erank(x: np.ndarray) -> float:
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


# ---------------------------------------------------------------------- 01: the cone
def _cloud(sigma: float, n: int, dim: int, seed: int) -> np.ndarray:
    """The documented recipe: μ a random unit vector, ε ~ N(0, I/D), x = μ + σ ε."""
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(dim, generator=gen, dtype=torch.float64).numpy()
    eps = torch.randn(n, dim, generator=gen, dtype=torch.float64).numpy() / math.sqrt(dim)
    return mu / np.linalg.norm(mu) + sigma * eps


@pytest.mark.parametrize("sigma", [0.03, 0.4, 5.0])
def test_cone_slider_redraws_the_histogram_and_the_mean(sigma):
    n, dim = 30, 8
    view = viz.cone_explorer(n=n, dim=dim, init=1.0, seed=3)
    before = list(view.fig.data[0].y)
    view.slider.value = sigma
    x = _unit_rows(_cloud(sigma, n, dim, 3))
    cos = [float(x[i] @ x[j]) for i in range(n) for j in range(i + 1, n)]
    counts = [0] * 40
    for c in cos:
        counts[min(int((c + 1) / 0.05), 39)] += 1
    assert list(view.fig.data[0].y) == counts and list(view.fig.data[0].y) != before
    np.testing.assert_allclose(view.fig.data[0].x, [-0.975 + 0.05 * k for k in range(40)])
    mean = sum(cos) / len(cos)
    np.testing.assert_allclose(view.fig.data[1].x, [mean, mean], rtol=1e-12)
    assert view.fig.data[1].y[1] == max(counts)
    np.testing.assert_allclose(view.data["erank_uncentred"], _erank(x), rtol=1e-10)
    np.testing.assert_allclose(view.data["erank_centred"], _erank(x - x.mean(0)), rtol=1e-10)
    assert f"{mean:.3f}" in view.text.value


def test_cone_narrows_as_the_spread_shrinks_but_the_centred_rank_stays():
    wide, narrow = cone_data(3.0, n=60, dim=16), cone_data(0.01, n=60, dim=16)
    assert narrow["mean_cosine"] > 0.99 > wide["mean_cosine"]
    assert narrow["erank_uncentred"] < 1.5 < 5 < wide["erank_uncentred"]
    assert narrow["erank_centred"] / wide["erank_centred"] > 0.8


# ---------------------------------------------------------------------- 04: λ along the gap
def _pairs(n=12, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g, dtype=torch.float64) + 2.0
    b = a + torch.randn(n, d, generator=g, dtype=torch.float64) - 1.0
    return a, b


def _by_hand(a: np.ndarray, b: np.ndarray, lam: float, tau: float) -> dict:
    a, b = _unit_rows(a), _unit_rows(b)
    n = len(a)
    delta = a.mean(0) - b.mean(0)
    s = _unit_rows(a - lam * delta)
    logits = np.array([[s[i] @ b[j] / tau for j in range(n)] for i in range(n)])
    lse = lambda v: v.max() + math.log(np.exp(v - v.max()).sum())
    loss = sum(lse(logits[i]) - logits[i, i] + lse(logits[:, i]) - logits[i, i]
               for i in range(n)) / (2 * n)
    recall = sum(int(np.argmax(logits[i]) == i) for i in range(n)) / n
    pooled = np.concatenate([s, b])
    terms = [math.exp(-2 * ((pooled[i] - pooled[j]) ** 2).sum())
             for i in range(2 * n) for j in range(i + 1, 2 * n)]
    return {"a": s, "loss": loss, "recall": recall, "uniformity": math.log(sum(terms) / len(terms)),
            "gap": float(np.linalg.norm(s.mean(0) - b.mean(0)))}


@pytest.mark.parametrize("lam", [1.0, -0.35, 0.6])
def test_gap_slider_moves_the_images_and_the_markers(lam):
    a, b = _pairs()
    view = viz.gap_shift_explorer(a, b, temperature=0.1, n_view=7)
    before = list(view.fig.data[0].x)
    view.slider.value = lam
    want, base = _by_hand(a.numpy(), b.numpy(), lam, 0.1), _by_hand(a.numpy(), b.numpy(), 0.0, 0.1)
    xy = (want["a"][:7] - view.centre.numpy()) @ view.basis.numpy()
    np.testing.assert_allclose(view.fig.data[0].x, xy[:, 0], atol=1e-12)
    np.testing.assert_allclose(view.fig.data[0].y, xy[:, 1], atol=1e-12)
    assert not np.allclose(view.fig.data[0].x, before)
    markers = [view.fig.data[5 + k].y[0] for k in range(3)]
    np.testing.assert_allclose(markers, [want["loss"] - base["loss"], want["recall"],
                                         want["uniformity"] - base["uniformity"]], atol=1e-10)
    assert all(view.fig.data[5 + k].x[0] == lam for k in range(3))
    np.testing.assert_allclose(view.data["gap"], want["gap"], atol=1e-12)


def test_gap_view_basis_is_the_top_two_principal_directions():
    a, b = _pairs()
    view = viz.gap_shift_explorer(a, b, temperature=0.1)
    pooled = np.concatenate([_unit_rows(a.numpy()), _unit_rows(b.numpy())])
    centred = pooled - pooled.mean(0)
    evals, evecs = np.linalg.eigh(centred.T @ centred)
    top = evecs[:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(top.T @ view.basis.numpy()), np.eye(2), atol=1e-8)
    # the curves start at 0 change at λ = 0 and the loss curve matches the hand computation
    lam_axis = np.array(view.fig.data[2].x)
    k0 = int(np.argmin(np.abs(lam_axis)))
    assert abs(view.fig.data[2].y[k0]) < 1e-12 and abs(view.fig.data[4].y[k0]) < 1e-12
    k1 = int(np.argmin(np.abs(lam_axis - 1.0)))
    one, zero = _by_hand(a.numpy(), b.numpy(), 1.0, 0.1), _by_hand(a.numpy(), b.numpy(), 0.0, 0.1)
    np.testing.assert_allclose(view.fig.data[2].y[k1], one["loss"] - zero["loss"], atol=1e-10)


def test_gap_shift_closes_the_gap_at_one_and_rejects_bad_input():
    a, b = _pairs()
    gaps = [gap_shift_data(a, b, lam, 0.1)["gap"] for lam in (0.0, 0.5, 1.0)]
    assert gaps[0] > gaps[1] > gaps[2]
    with pytest.raises(ValueError, match="temperature"):
        gap_shift_data(a, b, 0.5, 0.0)
    with pytest.raises(ValueError, match="lambdas"):
        viz.gap_shift_explorer(a, b, 0.1, lambdas=(0.0, 1.0))
    with pytest.raises((ValueError, TypeError), match="b"):
        gap_shift_data(a, b[:5], 0.5, 0.1)


# ---------------------------------------------------------------------- 05: XOR noise p
def _xor_by_enumeration(bits: int, p: float) -> dict:
    m = 2 ** bits
    joint: dict = {}
    for a, b, i in itertools.product(range(m), range(m), (0, 1)):
        w = (p if i else 1 - p) / m ** 2
        c = a ^ b if i else a
        joint[a, b, c] = joint.get((a, b, c), 0.0) + w

    def mi(f, g):
        pf, pg, pfg = {}, {}, {}
        for k, w in joint.items():
            pf[f(k)] = pf.get(f(k), 0.0) + w
            pg[g(k)] = pg.get(g(k), 0.0) + w
            pfg[f(k), g(k)] = pfg.get((f(k), g(k)), 0.0) + w
        return sum(w * math.log2(w / (pf[x] * pg[y])) for (x, y), w in pfg.items() if w > 0)

    best = {}
    for (a, b, c), w in joint.items():
        best[a, c] = max(best.get((a, c), 0.0), w)
    return {"I(b; a)": mi(lambda k: k[1], lambda k: k[0]),
            "I(b; c)": mi(lambda k: k[1], lambda k: k[2]),
            "I(a; c)": mi(lambda k: k[0], lambda k: k[2]),
            "I(b; (a, c))": mi(lambda k: k[1], lambda k: (k[0], k[2])),
            "Bayes": sum(best.values()), "pairs only": 1 / m}


@pytest.mark.parametrize("bits,p", [(3, 0.0), (3, 0.35), (2, 1.0), (2, 0.8)])
def test_xor_slider_redraws_the_information_and_the_accuracies(bits, p):
    view = viz.xor_explorer(bits=bits, init=0.5)
    before = list(view.fig.data[0].y)
    view.slider.value = p
    want = _xor_by_enumeration(bits, p)
    np.testing.assert_allclose(view.fig.data[0].y, [want[k] for k in
                                                    ("I(b; a)", "I(b; c)", "I(a; c)",
                                                     "I(b; (a, c))")], atol=1e-10)
    np.testing.assert_allclose(view.fig.data[1].y, [want["Bayes"], want["pairs only"]],
                               atol=1e-12)
    assert list(view.fig.data[0].y) != before
    assert xor_information(p, bits)["Bayes"] == pytest.approx(want["Bayes"])


def test_controls_leave_the_global_random_state_alone():
    state = torch.random.get_rng_state()
    viz.cone_explorer(n=20, dim=4).update(0.2)
    viz.gap_shift_explorer(*_pairs(), temperature=0.1).update(0.5)
    viz.xor_explorer().update(0.3)
    assert torch.equal(state, torch.random.get_rng_state())
