"""The computations behind the interactive controls of notebooks 06, 08, 09, 10 and 11.

Each control of these notebooks is a `figure_browser(draw, {...})` whose `draw` calls one of the
pure functions here: the figure is a function of the control's value and of tensors computed once
(embeddings, a similarity matrix, a training history), so moving a control trains nothing, and a
headless test can set the value and compare the figure's data with an independent computation
(tests/test_viz_controls_b.py).

- 06 `missing_image_recall` / `missing_image_figure`: the share of test queries without their image
  → class-level R@1 of each fused model, from its embeddings with and without the image.
- 08 `negative_gradients` / `negative_weights_figure`: β and τ⁺ → B · ∂ℓ_i/∂S_ij of the
  hard-negative / debiased loss (Robinson et al. 2021; Chuang et al. 2020) on every negative.
- 09 `few_shot_draw` / `few_shot_draw_figure`: a modality, k shots and a draw → the probe's test
  accuracy.
- 10 `chunk_memory_figure`: the chunk size K → the predicted peak memory n₂·4B² and n₁·4KB.
- 11 `run_reader`: a run and a step → its curves up to the step and what `diagnose` reads there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from mmlab.data import missing_mask
from mmlab.losses import hard_negative_info_nce
from mmlab.metrics import few_shot_probe, recall_at_k, sample_k_shot
from mmlab.train import MIB, History, diagnose, report
from mmlab.viz.curves import bar_chart, line_chart

__all__ = ["missing_image_recall", "missing_image_figure", "negative_gradients",
           "negative_weights_figure", "few_shot_draw", "few_shot_draw_figure",
           "chunk_memory_figure", "run_reader"]

Views = Mapping[str, tuple[Tensor, Tensor, Tensor]]


# ---------------------------------------------------------------------- 06: missing modality
def missing_image_recall(views: Views, labels: Tensor, fraction: float,
                         seed: int) -> dict[str, float]:
    """Class-level R@1 → target of each model when `fraction` of the queries lose their image.

    Args:
        views: model name → (z_with (N, D), z_without (N, D), z_target (N, D)): the fused query
            embeddings with every image present, with every image missing, and the targets.
        labels: (N,) class ids (a retrieved target of the query's class counts as a hit).
        fraction: the share of queries without their image, in [0, 1]; which ones is
            `missing_mask(N, fraction, generator=torch.Generator().manual_seed(seed))`.
    Returns:
        name → R@1, with query i embedded as z_without[i] if it is missing, else z_with[i].
    """
    n = len(labels)
    for name, v in views.items():
        if len(v) != 3 or any(t.shape[0] != n for t in v):
            raise ValueError(f"`views[{name!r}]` must be (z_with, z_without, z_target), each with "
                             f"{n} rows like `labels`; got shapes {[tuple(t.shape) for t in v]}.")
    missing = missing_mask(n, fraction, generator=torch.Generator().manual_seed(seed))  # (N,)
    out = {}
    for name, (z_with, z_without, z_target) in views.items():
        m = missing.to(z_with.device)[:, None]
        queries = torch.where(m, z_without, z_with)  # (N, D)
        out[name] = recall_at_k(queries @ z_target.T, 1, labels_query=labels, labels_gallery=labels)
    return out


def missing_image_figure(views: Views, labels: Tensor, missing_percent: int, seed: int,
                         reference: float | None = None) -> go.Figure:
    """Bars of `missing_image_recall` at `missing_percent` %, with a line at `reference`."""
    scores = missing_image_recall(views, labels, missing_percent / 100, seed)
    fig = bar_chart(scores, title=f"{missing_percent}% of the test queries without their image",
                    yaxis="class-level R@1 (fraction)", xaxis="model")
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", annotation_text="audio alone")
    return fig.update_yaxes(range=[0, 1.05])


# ---------------------------------------------------------------------- 08: negative weights
def negative_gradients(sim: Tensor, temperature: float, beta: float, tau_plus: float) -> Tensor:
    """B · ∂ℓ^{a→b}/∂S of `hard_negative_info_nce` on a (B, B) cosine matrix S (rows: anchors).

    β = 0, τ⁺ = 0 is InfoNCE's (P_ij − 1[i=j])/τ; β > 0 moves the push towards the hardest
    negatives; τ⁺ > 0 subtracts the expected false-negative mass. Returns (B, B).
    """
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"`sim` must be a square (B, B) matrix, got shape {tuple(sim.shape)}.")
    s = sim.clone().requires_grad_()
    out = hard_negative_info_nce(s, torch.eye(sim.shape[0], dtype=s.dtype), temperature=temperature,
                                 beta=beta, tau_plus=tau_plus, normalize=False)
    out.terms["a_to_b"].backward()
    return s.grad * sim.shape[0]


def negative_weights_figure(sim: Tensor, labels: Tensor, temperature: float, beta: float,
                            tau_plus: float, anchor: int) -> go.Figure:
    """The push on each negative of `anchor`, hardest first, at (β, τ⁺) and for plain InfoNCE.

    Crosses at 0 mark the negatives of the anchor's class (false negatives).
    """
    B = sim.shape[0]
    if not 0 <= anchor < B:
        raise ValueError(f"`anchor` must be a row of `sim`, 0 ≤ anchor < {B}, got {anchor}.")
    eye = torch.eye(B, dtype=torch.bool)
    order = sim.masked_fill(eye, -2.0)[anchor].argsort(descending=True)[:B - 1]  # (B−1,)
    w = negative_gradients(sim, temperature, beta, tau_plus)[anchor, order]
    w0 = negative_gradients(sim, temperature, 0.0, 0.0)[anchor, order]
    same = np.nonzero((labels[order] == labels[anchor]).numpy())[0] + 1
    fig = line_chart(list(range(1, B)), {f"β = {beta:g}, π⁺ = {tau_plus:g}": w.tolist(),
                                         "β = 0, π⁺ = 0 (InfoNCE)": w0.tolist()},
                     title=f"Gradient on each negative of anchor {anchor} (class "
                           f"{int(labels[anchor])})",
                     xaxis="negative, sorted by similarity to the anchor (rank)",
                     yaxis="B · ∂ℓ_i/∂S_ij (per unit cosine)")
    fig.add_scatter(x=same, y=np.zeros(len(same)), mode="markers",
                    name="same class (false negative)",
                    marker=dict(symbol="x", size=9, color="black"))
    return fig


# ---------------------------------------------------------------------- 09: one few-shot draw
def few_shot_draw(z_pool: Tensor, y_pool: Tensor, z_test: Tensor, y_test: Tensor, k: int,
                  seed: int, text_x: Tensor | None = None,
                  text_y: Tensor | None = None) -> dict[str, float]:
    """Test accuracy of a probe on k shots per class drawn with `sample_k_shot(y_pool, k, seed)`.

    Returns {"probe": ...} and, with class-name embeddings (text_x, text_y), "probe + names".
    """
    idx = sample_k_shot(y_pool, k, seed=seed)
    out = {"probe": few_shot_probe(z_pool[idx], y_pool[idx], z_test, y_test)}
    if text_x is not None:
        out["probe + names"] = few_shot_probe(z_pool[idx], y_pool[idx], z_test, y_test,
                                              text_x=text_x, text_y=text_y)
    return out


def few_shot_draw_figure(z_pool: Tensor, y_pool: Tensor, z_test: Tensor, y_test: Tensor, k: int,
                         seed: int, zero_shot: float, text_x: Tensor | None = None,
                         text_y: Tensor | None = None, title: str = "") -> go.Figure:
    """Bars: zero-shot, then `few_shot_draw`; a dashed line at chance, 1/(number of classes)."""
    bars = {"zero-shot": float(zero_shot),
            **few_shot_draw(z_pool, y_pool, z_test, y_test, k, seed, text_x, text_y)}
    n_classes = len(torch.unique(y_test))
    fig = go.Figure(go.Bar(x=list(bars), y=list(bars.values()),
                           text=[f"{v:.2f}" for v in bars.values()]))
    fig.add_hline(y=1 / n_classes, line_dash="dash", annotation_text=f"chance (1/{n_classes})")
    fig.update_layout(title=title or f"k = {k} shots per class, seed {seed}",
                      xaxis_title="classifier", yaxis_title="test accuracy (fraction)",
                      yaxis_range=[0, 1.05])
    return fig


# ---------------------------------------------------------------------- 10: chunked memory
def chunk_memory_figure(grid: Sequence[int], chunk_size: int, n2: float, n1: float,
                        measured: tuple[int, int, int] | None = None,
                        title: str = "") -> go.Figure:
    """Predicted peak memory of full (n₂ · 4B² bytes) and chunked (n₁ · 4KB) InfoNCE, in MiB.

    Args:
        grid: the batch sizes B of the lines. chunk_size: K.
        n2, n1: the float32 (B, B) and (K, B) blocks alive at the peak (fitted on a sweep).
        measured: optionally (B, full bytes, chunked bytes) measured, drawn as two dots.
    """
    if int(chunk_size) < 1:
        raise ValueError(f"`chunk_size` must be ≥ 1, got {chunk_size}.")
    fig = line_chart(list(grid), {"full: predicted n2 · 4B²": [n2 * 4 * m * m / MIB for m in grid],
                                  f"chunked, K = {chunk_size}: predicted n1 · 4KB":
                                      [n1 * 4 * chunk_size * m / MIB for m in grid]},
                     title=title or "Predicted peak memory of InfoNCE forward + backward",
                     xaxis="batch size B (rows)", yaxis="peak memory added (MiB)",
                     log_x=True, log_y=True)
    for trace in fig.data:
        trace.line.dash, trace.mode = "dash", "lines"
    if measured is not None:
        n, full, chunked = measured
        fig.add_scatter(x=[n], y=[full / MIB], mode="markers", marker=dict(size=12),
                        name="full: measured")
        fig.add_scatter(x=[n], y=[chunked / MIB], mode="markers",
                        marker=dict(size=12, symbol="diamond"), name="chunked: measured")
    return fig


# ---------------------------------------------------------------------- 11: read a run
def run_reader(history: History, grad_norms: Mapping[str, Sequence[float]], step: int,
               batch_size: int, end_findings: str = "") -> tuple[go.Figure, str]:
    """The loss (against ln B), τ and per-tower ‖∇θ‖ up to `step`, and `diagnose` of that head.

    Returns (figure, html): the html is `report(diagnose(history[:step]))` and, if given,
    `end_findings` (what the checks that need the model found at the end).
    """
    k = max(1, min(int(step), len(history)))
    head = History(step=history.step[:k], epoch=history.epoch[:k], loss=history.loss[:k],
                   temperature=history.temperature[:k], terms=history.terms[:k],
                   batch_size=batch_size)
    x = history.step[:k]
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss vs ln B", "τ", "‖∇θ‖ per tower"))
    fig.add_scatter(x=x, y=history.loss[:k], mode="lines", name="loss", row=1, col=1)
    fig.add_hline(y=math.log(batch_size), line_dash="dash", row=1, col=1)
    fig.add_scatter(x=x, y=history.temperature[:k], mode="lines", name="τ", row=1, col=2)
    for tower, g in grad_norms.items():
        fig.add_scatter(x=x, y=list(g)[:k], mode="lines", name=f"∇ {tower}", row=1, col=3)
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_layout(height=330, title=f"steps 1 to {k}")
    text = report(diagnose(head)).replace("\n", "<br>")
    html = f"<b>At step {k}:</b> {text}"
    if end_findings:
        html += f"<br><b>At the end (all checks):</b> {end_findings}"
    return fig, html
