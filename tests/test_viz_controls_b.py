"""The controls of notebooks 06, 08, 09, 10, 11 (mmlab/viz/controls_b.py), moved headlessly.

Each test builds the control as its notebook does (`figure_browser(draw, {...})`), sets the
widget's value, and compares the figure's data with an independent computation.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np
import pytest
import torch

from mmlab.train import MIB, History
from mmlab.viz import (chunk_memory_figure, few_shot_draw_figure, figure_browser,
                       missing_image_figure, negative_gradients, negative_weights_figure,
                       run_reader)


def _unit(x):
    return x / x.norm(dim=1, keepdim=True)


# ---- 06: the missing fraction → R@1 ------------------------------------------------------------
def _r1_loop(q, t, y):
    hits = [int(y[int(torch.argmax(q[i] @ t.T))] == y[i]) for i in range(len(q))]
    return sum(hits) / len(q)


def test_missing_fraction_slider_mixes_rows_and_scores_r1():
    g = torch.Generator().manual_seed(0)
    N, D = 40, 6
    y = torch.arange(N) % 5
    centres = _unit(torch.randn(5, D, generator=g))
    target = _unit(centres[y] + 0.3 * torch.randn(N, D, generator=g))
    views = {"good image": (_unit(centres[y] + 0.2 * torch.randn(N, D, generator=g)),
                            _unit(torch.randn(N, D, generator=g)), target),
             "robust": (_unit(centres[y] + 0.2 * torch.randn(N, D, generator=g)),
                        _unit(centres[y] + 0.5 * torch.randn(N, D, generator=g)), target)}
    slider = widgets.IntSlider(0, 0, 100, step=10)
    box = figure_browser(lambda missing: missing_image_figure(views, y, missing, seed=3,
                                                              reference=0.4), {"missing": slider})
    for percent in (0, 30, 100):
        slider.value = percent
        n_missing = round(percent / 100 * N)
        gone = torch.randperm(N, generator=torch.Generator().manual_seed(3))[:n_missing]
        expect = []
        for z_with, z_without, z_t in views.values():
            q = z_with.clone()
            q[gone] = z_without[gone]
            expect.append(_r1_loop(q, z_t, y))
        bars = box.figure.data[0]
        assert list(bars.x) == list(views) and np.allclose(bars.y, expect)
        assert f"{percent}%" in box.figure.layout.title.text
    assert box.figure.data[0].y[0] < box.figure.data[0].y[1]  # at 100 % the robust model wins


def test_missing_image_rejects_mismatched_views():
    z = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"views\['m'\]"):
        missing_image_figure({"m": (z, z[:3], z)}, torch.arange(4), 50, 0)


# ---- 08: β and τ⁺ → the push on each negative ------------------------------------------------
def _row_grad(S, i, tau, beta, tau_plus):
    """B · ∂ℓ_i/∂S_i· from the formula of Chuang et al. / Robinson et al., one row, by loops."""
    B = S.shape[0]
    s = S[i].clone().requires_grad_()
    L = s / tau
    neg = [j for j in range(B) if j != i]
    N = B - 1
    w = torch.softmax(torch.stack([beta * L[j] for j in neg]), 0) * N
    mass = sum(w[k] * torch.exp(L[j]) for k, j in enumerate(neg))
    ng = torch.maximum((mass - N * tau_plus * torch.exp(L[i])) / (1 - tau_plus),
                       torch.tensor(N * math.exp(-1 / tau), dtype=S.dtype))
    loss = -torch.log(torch.exp(L[i]) / (torch.exp(L[i]) + ng))
    (g,) = torch.autograd.grad(loss / B, s)
    return g * B


def test_beta_and_tau_plus_sliders_move_the_push_as_the_formula_says():
    g = torch.Generator().manual_seed(1)
    B = 12
    S = (_unit(torch.randn(B, 5, generator=g, dtype=torch.float64))
         @ _unit(torch.randn(B, 5, generator=g, dtype=torch.float64)).T)
    labels = torch.arange(B) % 4
    beta, tau_plus = widgets.FloatSlider(1.0, min=0, max=4), widgets.FloatSlider(0.0, min=0, max=.2)
    anchor = widgets.IntSlider(0, 0, B - 1)
    box = figure_browser(lambda beta, tau_plus, anchor: negative_weights_figure(
        S, labels, 0.1, beta, tau_plus, anchor), {"beta": beta, "tau_plus": tau_plus,
                                                  "anchor": anchor})
    for b_val, tp_val, i in ((2.0, 0.0, 3), (0.0, 0.1, 5), (1.5, 0.05, 0)):
        beta.value, tau_plus.value, anchor.value = b_val, tp_val, i
        order = [j for j in sorted(range(B), key=lambda j: -float(S[i, j])) if j != i]
        want = _row_grad(S, i, 0.1, b_val, tp_val)[order]
        plain = _row_grad(S, i, 0.1, 0.0, 0.0)[order]
        assert np.allclose(box.figure.data[0].y, want.numpy(), atol=1e-9)
        assert np.allclose(box.figure.data[1].y, plain.numpy(), atol=1e-9)
        same = [r + 1 for r, j in enumerate(order) if labels[j] == labels[i]]
        assert list(box.figure.data[2].x) == same
    # InfoNCE's closed form, (P_ij − 1[i=j])/τ times B/B: the β = 0, τ⁺ = 0 line
    P = torch.softmax(S / 0.1, dim=1)
    assert torch.allclose(negative_gradients(S, 0.1, 0.0, 0.0), (P - torch.eye(B)) / 0.1,
                          atol=1e-9)


# ---- 09: k shots, the modality, the draw → one draw of the probe ------------------------------
def test_k_slider_draws_k_shots_and_scores_the_probe():
    g = torch.Generator().manual_seed(2)
    C, D = 3, 8
    centres = 5 * _unit(torch.randn(C, D, generator=g))
    y_pool, y_test = torch.arange(60) % C, torch.arange(30) % C
    z_pool = centres[y_pool] + 0.1 * torch.randn(60, D, generator=g)
    z_test = centres[y_test] + 0.1 * torch.randn(30, D, generator=g)
    k = widgets.SelectionSlider(options=[1, 2, 5], value=1)
    box = figure_browser(lambda k: few_shot_draw_figure(z_pool, y_pool, z_test, y_test, k, seed=7,
                                                        zero_shot=0.25), {"k": k})
    for value in (1, 5):
        k.value = value
        bars = box.figure.data[0]
        assert list(bars.x) == ["zero-shot", "probe"] and bars.y[0] == 0.25
        # separated clusters: the probe is right on every test point, as the nearest centre is
        nearest = (torch.cdist(z_test, centres).argmin(1) == y_test).float().mean()
        assert bars.y[1] == pytest.approx(float(nearest)) == pytest.approx(1.0)
        assert f"k = {value}" in box.figure.layout.title.text
    assert box.figure.layout.shapes[0].y0 == pytest.approx(1 / C)


def _draw_like_sample_k_shot(y, k, seed):
    """k rows of each class, classes in increasing order, one generator for the whole draw."""
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in sorted(set(y.tolist())):
        rows = [r for r in range(len(y)) if int(y[r]) == c]
        picks += [rows[int(p)] for p in torch.randperm(len(rows), generator=gen)[:k]]
    return picks


def _unit_at(degrees):
    t = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([torch.cos(t), torch.sin(t)], dim=1)  # (N, 2) on the unit circle


def test_modality_and_draw_controls_pick_the_embeddings_and_the_shots():
    # Two classes, one shot each: the regularised logistic probe's boundary is then the
    # perpendicular bisector of the two (unit) shots, so it predicts the nearer shot's class.
    # Each class's pool rows sit at two angles, so which shots a draw picks moves the accuracy.
    SEED = 0
    y_pool, y_test = torch.arange(20) % 2, torch.tensor([0] * 5 + [1] * 5)
    angles = {"image": ([0, 50], [90, 160], [-20, 10, 25, 35, 60, 95, 120, 135, 175, 190]),
              "audio": ([30, 200], [120, 250], [0, 20, 55, 190, 215, 100, 125, 170, 235, 270])}
    z_pool = {m: _unit_at([(a0 if c == 0 else a1)[(r // 2) % 2] for r, c in
                           enumerate(y_pool.tolist())]) for m, (a0, a1, _) in angles.items()}
    z_test = {m: _unit_at(t) for m, (_, _, t) in angles.items()}
    zero_shot = {"image": 0.9, "audio": 0.6}

    def show_draw(modality, k, draw):  # notebook 09's draw, without the class names
        return few_shot_draw_figure(z_pool[modality], y_pool, z_test[modality], y_test, k,
                                    seed=1000 * SEED + draw, zero_shot=zero_shot[modality],
                                    title=f"{modality}: k = {k}, draw {draw}")

    controls = {"modality": widgets.Dropdown(options=["image", "audio"], value="image"),
                "k": widgets.SelectionSlider(options=[1], value=1),
                "draw": widgets.IntSlider(0, 0, 9)}
    box = figure_browser(show_draw, controls)
    scores = set()
    for modality in ("audio", "image"):
        for draw in range(10):
            controls["modality"].value, controls["draw"].value = modality, draw
            x0, x1 = z_pool[modality][_draw_like_sample_k_shot(y_pool, 1, 1000 * SEED + draw)]
            d0 = (z_test[modality] - x0).norm(dim=1)
            d1 = (z_test[modality] - x1).norm(dim=1)
            assert (d0 - d1).abs().min() > 0.05  # no test point near the boundary
            nearest = float(((d1 < d0).long() == y_test).double().mean())
            bars = box.figure.data[0]
            assert list(bars.x) == ["zero-shot", "probe"]
            assert bars.y[0] == zero_shot[modality] and bars.y[1] == pytest.approx(nearest)
            assert box.figure.layout.title.text == f"{modality}: k = 1, draw {draw}"
            scores.add((modality, nearest))
    assert len({s for m, s in scores if m == "image"}) > 1  # the draw moves the probe
    assert {s for m, s in scores if m == "image"} != {s for m, s in scores if m == "audio"}


# ---- 10: the chunk size and log₂ B → the memory model and the measured dots -----------------
def test_chunk_size_dropdown_redraws_the_predicted_lines():
    grid = [256, 512, 1024]
    K = widgets.Dropdown(options=[16, 64, 256], value=64)
    box = figure_browser(lambda chunk_size: chunk_memory_figure(
        grid, chunk_size, n2=4.0, n1=7.5, measured=(512, 4 * 512 ** 2 * 4, 1000)),
        {"chunk_size": K})
    for value in (16, 256):
        K.value = value
        full, chunked, dot_full, dot_chunked = box.figure.data
        assert np.allclose(full.y, [4.0 * 4 * b * b / 2 ** 20 for b in grid])
        assert np.allclose(chunked.y, [7.5 * 4 * value * b / 2 ** 20 for b in grid])
        assert f"K = {value}" in chunked.name
        assert list(dot_full.x) == [512] and dot_full.y[0] == pytest.approx(16 * 512 ** 2 / MIB)
        assert dot_chunked.y[0] == pytest.approx(1000 / 2 ** 20)
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_memory_figure(grid, 0, 4.0, 7.5)


def test_log2_b_slider_moves_the_measured_dots_along_the_lines():
    n2, n1 = 4.0, 7.5

    def loss_step_peak(n, chunk_size):  # stands in for the notebook's measurement
        return 4 * n * n * 4 + 1000 if chunk_size == "full" else 4 * chunk_size * n * 8 + 500

    def draw_memory(log2_b, chunk_size):  # notebook 10's draw
        n = 2 ** log2_b
        full, chunked = loss_step_peak(n, "full"), loss_step_peak(n, chunk_size)
        grid = [2 ** e for e in range(8, 15)]
        fig = chunk_memory_figure(grid, chunk_size, n2, n1, measured=(n, full, chunked),
                                  title="Predicted (lines) and measured now (dots)")
        return fig, f"B = {n}, K = {chunk_size}"

    log2_b = widgets.IntSlider(10, 8, 12)
    K = widgets.Dropdown(options=[16, 64, 256], value=64)
    box = figure_browser(draw_memory, {"log2_b": log2_b, "chunk_size": K})
    grid = [2 ** e for e in range(8, 15)]
    for e, k in ((8, 64), (12, 64), (11, 16), (9, 256)):
        log2_b.value, K.value = e, k
        b = 2 ** e
        full, chunked, dot_full, dot_chunked = box.figure.data
        assert np.allclose(full.y, [n2 * 4 * m * m / 2 ** 20 for m in grid])  # not moved by B
        assert np.allclose(chunked.y, [n1 * 4 * k * m / 2 ** 20 for m in grid])
        assert list(dot_full.x) == [b] and list(dot_chunked.x) == [b]
        assert dot_full.y[0] == pytest.approx((16 * b * b + 1000) / 2 ** 20)
        assert dot_chunked.y[0] == pytest.approx((32 * k * b + 500) / 2 ** 20)
        assert box.children[2].value == f"B = {b}, K = {k}"


# ---- 11: a run and a step → the curves and diagnose -----------------------------------------
def test_step_slider_cuts_the_curves_and_diagnose_reads_the_head():
    B, n = 64, 40
    chance = [math.log(B) + 0.001 * (-1) ** s for s in range(n)]  # a run stuck at ln B
    falling = [math.log(B) * math.exp(-s / 5) for s in range(n)]
    runs = {name: (History(step=list(range(1, n + 1)), epoch=[0] * n, loss=loss,
                           temperature=[0.07] * n, terms=[{}] * n, batch_size=B),
                   {"image": [1.0 / (s + 1) for s in range(n)], "text": [2.0] * n})
            for name, loss in (("stuck", chance), ("healthy", falling))}
    run = widgets.Dropdown(options=list(runs), value="stuck")
    step = widgets.IntSlider(value=n, min=5, max=n, step=5)
    box = figure_browser(lambda run_name, step: run_reader(*runs[run_name], step, B, "none"),
                         {"run_name": run, "step": step})
    for name, k in (("stuck", 20), ("healthy", 35), ("stuck", 40)):
        run.value, step.value = name, k
        hist, norms = runs[name]
        loss, tau, g_img, g_txt = box.figure.data
        assert list(loss.x) == list(range(1, k + 1)) and np.allclose(loss.y, hist.loss[:k])
        assert np.allclose(tau.y, [0.07] * k)
        assert np.allclose(g_img.y, [1.0 / (s + 1) for s in range(k)])
        assert np.allclose(g_txt.y, [2.0] * k)
        assert box.figure.layout.shapes[0].y0 == pytest.approx(math.log(B))
        note = box.children[2].value
        assert note.startswith(f"<b>At step {k}:</b>") and note.endswith("none")
        # a loss at ln B is a finding; a loss far below it is not
        assert ("no problem found" in note) == (name == "healthy")
