"""Interactive controls for notebooks 01, 04 and 05: move a slider, watch the lesson's quantity.

Each control is a pure function that returns the figure's data for one parameter value
(`cone_data`, `gap_shift_data`, `xor_information`), and a small widget (`ControlView`: a slider,
a line of text, one figure redrawn in place) that calls it. Nothing is trained on display, and
the global random state is never touched (data are drawn from a local `torch.Generator`).

- 01, the cone effect (Liang et al. 2022): x_i = μ + σ ε_i, a shared offset μ (‖μ‖ = 1, like
  the biases of a deep random ReLU net) plus a spread σ. A small σ puts the cloud in a narrow
  cone: the mean pairwise cosine c̄ → 1 and the uncentred effective rank → 1, while the centred
  effective rank does not depend on σ at all (the cone is a shift, not a collapse).
- 04, shifting one modality along the gap vector Δ: â_i(λ) = (â_i − λΔ)/‖â_i − λΔ‖; the loss
  InfoNCE(â(λ), b̂, τ), image→text R@1 and the uniformity of the pooled cloud respond.
- 05, XOR (Symile, Saporta et al. 2024): the exact mutual information between the views as the
  noise p moves, and the Bayes accuracy of predicting b from (a, c).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots
from torch import Tensor

from mmlab._checks import (check_embeddings, check_int, check_positive, check_probability,
                           check_same_shape, check_temperature)
from mmlab.data import bayes_accuracy, mutual_information, xor_joint
from mmlab.losses import info_nce
from mmlab.metrics import (effective_rank, gap_vector, mean_pairwise_cosine, recall_at_k,
                           similarity, uniformity)
from mmlab.viz._widgets import LiveFigure

__all__ = ["ControlView", "cone_data", "cone_explorer", "gap_shift_data", "gap_shift_explorer",
           "xor_information", "xor_explorer"]

COSINE_BINS = np.linspace(-1.0, 1.0, 41)
"""Bin edges of the pairwise-cosine histogram of `cone_data` (40 bins of width 0.05)."""


class ControlView(widgets.VBox):
    """A slider, a text line and one figure; moving the slider redraws the figure in place.

    Attributes:
        slider: the ipywidgets slider; set `.slider.value` (or call `update`) to move it.
        fig: the figure (a FigureWidget, or a Figure shown in an Output).
        text: an `ipywidgets.HTML` line with the numbers.
        data: the dict the compute function returned for the current value.
    """

    def __init__(self, slider: widgets.Widget, fig: go.Figure, compute: Callable[[float], dict],
                 draw: Callable[[Any, dict], None], describe: Callable[[dict], str]) -> None:
        self.slider, self.text = slider, widgets.HTML()
        self._compute, self._draw, self._describe = compute, draw, describe
        self._live = LiveFigure(fig)
        self.fig = self._live.fig
        super().__init__([slider, self.text, self._live.widget])
        slider.observe(lambda change: self.update(change["new"]), names="value")
        self.update(slider.value)

    def update(self, value: float | None = None) -> dict:
        """Recompute at `value` (default: the slider's) and redraw; returns the data."""
        if value is not None and value != self.slider.value:
            self.slider.value = value  # the observer calls update again with this value
            return self.data
        self.data = self._compute(self.slider.value)
        with self.fig.batch_update():
            self._draw(self.fig, self.data)
        self._live.refresh()
        self.text.value = self._describe(self.data)
        return self.data


def _log_slider(description: str, value: float, lo: float, hi: float) -> widgets.FloatLogSlider:
    a, b = math.log10(lo), math.log10(hi)
    return widgets.FloatLogSlider(value=value, base=10, min=a, max=b, step=(b - a) / 100,
                                  description=description, readout_format=".3g",
                                  continuous_update=True, layout=widgets.Layout(width="60%"))


# ---------------------------------------------------------------------- 01: the cone effect
def cone_data(spread: float, n: int = 200, dim: int = 64, seed: int = 0) -> dict[str, Any]:
    """A cloud x_i = μ + σ ε_i (ε_i ~ N(0, I/D), ‖μ‖ = 1) and its cone measures.

    Args:
        spread: σ > 0, the spread around the shared offset μ (small σ: a narrow cone).
        n: N points; dim: their width D; seed: the local generator's seed (same μ, ε for any σ).
    Returns:
        dict with "x" (N, D) float64, "bin_centres" (40,) and "counts" (40,) of the histogram of
        the N(N−1)/2 pairwise cosines over [−1, 1], "mean_cosine" c̄, "erank_uncentred" and
        "erank_centred" (floats).
    """
    sigma = check_positive("spread", spread)
    n, dim = check_int("n", n, minimum=2), check_int("dim", dim)
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    mu = F.normalize(torch.randn(dim, generator=gen, dtype=torch.float64), dim=0)  # (D,)
    eps = torch.randn(n, dim, generator=gen, dtype=torch.float64) / math.sqrt(dim)  # (N, D)
    x = mu + sigma * eps                                                            # (N, D)
    x_hat = F.normalize(x, dim=1)
    cos = (x_hat @ x_hat.T)[torch.triu_indices(n, n, offset=1).unbind()]          # (N(N−1)/2,)
    counts, _ = np.histogram(cos.clamp(-1, 1).numpy(), bins=COSINE_BINS)
    return {"x": x, "bin_centres": (COSINE_BINS[:-1] + COSINE_BINS[1:]) / 2,
            "counts": counts.astype(np.int64), "mean_cosine": float(mean_pairwise_cosine(x)),
            "erank_uncentred": float(effective_rank(x_hat)),
            "erank_centred": float(effective_rank(x_hat - x_hat.mean(dim=0)))}


def cone_explorer(n: int = 200, dim: int = 64, init: float = 1.0, seed: int = 0) -> ControlView:
    """Slide σ: the histogram of pairwise cosines, c̄ and the two effective ranks respond."""
    init = check_positive("init", init)
    fig = go.Figure([go.Bar(x=[], y=[], name="pairs", marker_color="#1f77b4"),
                     go.Scatter(x=[], y=[], mode="lines", name="mean c̄",
                                line=dict(color="#d62728", dash="dash"))])
    fig.update_layout(title=f"Pairwise cosines of N = {n} points x = μ + σε in D = {dim}",
                      xaxis_title="cosine of a pair (unitless)", yaxis_title="pairs (count)",
                      xaxis_range=[-1, 1], height=340, margin=dict(l=60, r=10, t=50, b=50))

    def draw(f: Any, d: dict) -> None:
        f.data[0].x, f.data[0].y = d["bin_centres"].tolist(), d["counts"].tolist()
        top = float(d["counts"].max())
        f.data[1].x, f.data[1].y = [d["mean_cosine"]] * 2, [0.0, top]

    return ControlView(_log_slider("spread σ", init, 0.01, 10.0), fig,
                       lambda s: cone_data(s, n, dim, seed), draw,
                       lambda d: (f"mean pairwise cosine c̄ = {d['mean_cosine']:.3f} · effective "
                                  f"rank: uncentred {d['erank_uncentred']:.1f}, centred "
                                  f"{d['erank_centred']:.1f} (of D = {dim})"))


# ---------------------------------------------------------------------- 04: λ along the gap
def gap_shift_data(a: Tensor, b: Tensor, lam: float, temperature: float) -> dict[str, Any]:
    """Move every â_i by −λΔ back onto the sphere; the loss, R@1 and uniformity at λ.

    Args:
        a, b: (N, D) paired embeddings (image, text); normalised inside.
        lam: λ, the fraction of the gap vector Δ = mean â − mean b̂ (0: as trained, 1: centres
            nearly meet).
        temperature: τ of the InfoNCE loss.
    Returns:
        dict with "a" (N, D) the shifted â(λ), "gap" ‖Δ(λ)‖, "loss" InfoNCE(â(λ), b̂, τ),
        "recall" image→text R@1 of S = â(λ) b̂ᵀ, "uniformity" of the pooled 2N points (floats).
    """
    check_embeddings("a", a)
    check_embeddings("b", b)
    check_same_shape(("a", "b"), (a, b))
    tau = check_temperature(temperature)
    a_hat = F.normalize(a.detach().double().cpu(), dim=1)   # (N, D)
    b_hat = F.normalize(b.detach().double().cpu(), dim=1)   # (N, D)
    shifted = F.normalize(a_hat - float(lam) * gap_vector(a_hat, b_hat), dim=1)  # (N, D)
    return {"a": shifted, "gap": float((shifted.mean(0) - b_hat.mean(0)).norm()),
            "loss": float(info_nce(shifted, b_hat, tau).loss),
            "recall": recall_at_k(similarity(shifted, b_hat), 1),
            "uniformity": float(uniformity(torch.cat([shifted, b_hat])))}


def gap_shift_explorer(a: Tensor, b: Tensor, temperature: float, n_view: int = 150,
                       lambdas: tuple[float, float] = (-0.5, 1.5)) -> ControlView:
    """Slide λ: the shifted images move in a fixed 2-D PCA view, and ΔL, R@1, ΔU respond.

    The PCA basis (`view.basis`, (D, 2), and `view.centre`, (D,)) is fitted once on the unshifted
    pooled cloud, so the motion is the embeddings', not the projection's. The right panel draws
    L(λ) − L(0), R@1(λ) and U(λ) − U(0) over a grid of λ, with markers at the slider's λ.
    """
    n_view = check_int("n_view", n_view)
    lo, hi = float(lambdas[0]), float(lambdas[1])
    if not lo < 0 < 1 < hi:
        raise ValueError(f"`lambdas` must be (λ_min, λ_max) with λ_min < 0 and λ_max > 1, got "
                         f"{lambdas!r}.")
    base = gap_shift_data(a, b, 0.0, temperature)
    b_hat = F.normalize(b.detach().double().cpu(), dim=1)
    pooled = torch.cat([base["a"], b_hat])                       # (2N, D)
    centre = pooled.mean(0)                                      # (D,)
    basis = torch.linalg.svd(pooled - centre, full_matrices=False).Vh[:2].T   # (D, 2)
    grid = np.round(np.arange(lo, hi + 1e-9, 0.25), 10)   # 9 points for the default range
    curves = [gap_shift_data(a, b, float(g), temperature) for g in grid]
    keys = (("loss", "L(λ) − L(0) (nats)"), ("recall", "image→text R@1"),
            ("uniformity", "U(λ) − U(0) (nats)"))
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "Images shifted by −λΔ (fixed 2-D PCA)", "Change with λ (markers: the slider's λ)"))
    b_xy = ((b_hat[:n_view] - centre) @ basis).numpy()
    fig.add_scatter(x=[], y=[], mode="markers", name="image â(λ)", row=1, col=1,
                    marker=dict(size=5, color="#1f77b4"))
    fig.add_scatter(x=b_xy[:, 0].tolist(), y=b_xy[:, 1].tolist(), mode="markers", name="text b̂",
                    row=1, col=1, marker=dict(size=5, color="#ff7f0e"))
    colours = ("#d62728", "#2ca02c", "#9467bd")
    for (key, name), colour in zip(keys, colours):
        y = [c[key] - (base[key] if key != "recall" else 0.0) for c in curves]
        fig.add_scatter(x=grid.tolist(), y=y, mode="lines", name=name, row=1, col=2,
                        line=dict(color=colour))
    for (key, name), colour in zip(keys, colours):
        fig.add_scatter(x=[], y=[], mode="markers", name=f"{name} at λ", showlegend=False,
                        row=1, col=2, marker=dict(size=11, color=colour))
    fig.update_xaxes(title_text="λ (fraction of Δ)", row=1, col=2)
    fig.update_layout(height=400, margin=dict(l=50, r=10, t=60, b=50))

    def draw(f: Any, d: dict) -> None:
        xy = ((d["a"][:n_view] - centre) @ basis).numpy()   # (n_view, 2)
        f.data[0].x, f.data[0].y = xy[:, 0].tolist(), xy[:, 1].tolist()
        for k, (key, _) in enumerate(keys):
            f.data[5 + k].x = [d["lam"]]
            f.data[5 + k].y = [d[key] - (base[key] if key != "recall" else 0.0)]

    view = ControlView(widgets.FloatSlider(value=0.0, min=lo, max=hi, step=0.05,
                                           description="λ", continuous_update=True,
                                           layout=widgets.Layout(width="60%")),
                       fig, lambda lam: {**gap_shift_data(a, b, lam, temperature), "lam": lam},
                       draw, lambda d: (f"λ = {d['lam']:+.2f} · gap ‖Δ(λ)‖ = {d['gap']:.3f} · "
                                        f"L = {d['loss']:.3f} nats · image→text R@1 = "
                                        f"{d['recall']:.3f} · uniformity U = "
                                        f"{d['uniformity']:.3f}"))
    view.basis, view.centre, view.base = basis, centre, base
    return view


# ---------------------------------------------------------------------- 05: XOR noise p
def xor_information(p: float, bits: int = 3) -> dict[str, float]:
    """The exact mutual information (bits) between the XOR views at noise p, and accuracies.

    Returns a dict with "I(b; a)", "I(b; c)", "I(a; c)", "I(b; (a, c))" in bits, "Bayes" (the
    best accuracy of predicting b from (a, c), 2^-bits + (1 − 2^-bits) p) and "pairs only"
    (the best accuracy from the pairwise joints alone: chance, 2^-bits).
    """
    p = check_probability("p", p)
    codes, prob = xor_joint(check_int("bits", bits), p)
    ln2 = math.log(2)
    return {"I(b; a)": mutual_information(prob, codes[:, 1], codes[:, 0]) / ln2,
            "I(b; c)": mutual_information(prob, codes[:, 1], codes[:, 2]) / ln2,
            "I(a; c)": mutual_information(prob, codes[:, 0], codes[:, 2]) / ln2,
            "I(b; (a, c))": mutual_information(prob, codes[:, 1], codes[:, [0, 2]]) / ln2,
            "Bayes": bayes_accuracy(bits, p), "pairs only": 2.0 ** -bits}


XOR_INFO_KEYS = ("I(b; a)", "I(b; c)", "I(a; c)", "I(b; (a, c))")
XOR_ACC_KEYS = ("Bayes", "pairs only")


def xor_explorer(bits: int = 3, init: float = 1.0) -> ControlView:
    """Slide p: the four mutual informations and the two best accuracies respond."""
    init = check_probability("init", init)
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "What each view says about the others (bits)", "Best accuracy predicting b from (a, c)"))
    fig.add_bar(x=list(XOR_INFO_KEYS), y=[0.0] * 4, row=1, col=1, name="mutual information",
                marker_color="#1f77b4")
    fig.add_bar(x=["Bayes optimum", "from the pairs alone"], y=[0.0] * 2, row=1, col=2,
                name="accuracy", marker_color="#2ca02c")
    fig.update_yaxes(title_text="bits", range=[0, bits + 0.2], row=1, col=1)
    fig.update_yaxes(title_text="accuracy (fraction)", range=[0, 1.05], row=1, col=2)
    fig.update_layout(height=360, showlegend=False, margin=dict(l=60, r=10, t=60, b=50))

    def draw(f: Any, d: dict) -> None:
        f.data[0].y = [d[k] for k in XOR_INFO_KEYS]
        f.data[1].y = [d[k] for k in XOR_ACC_KEYS]

    slider = widgets.FloatSlider(value=init, min=0.0, max=1.0, step=0.05, description="p",
                                 continuous_update=True, layout=widgets.Layout(width="60%"))
    return ControlView(slider, fig, lambda p: {**xor_information(p, bits), "p": p}, draw,
                       lambda d: (f"p = {d['p']:.2f} · I(b; (a, c)) = {d['I(b; (a, c))']:.3f} "
                                  f"bits, I(a; c) = {d['I(a; c)']:.3f} bits · Bayes accuracy "
                                  f"{d['Bayes']:.3f} vs {d['pairs only']:.3f} from the pairs"))
