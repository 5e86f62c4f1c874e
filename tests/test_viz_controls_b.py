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


# ---- 09: k shots → one draw of the probe -----------------------------------------------------
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


# ---- 10: the chunk size → the memory model ---------------------------------------------------
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
