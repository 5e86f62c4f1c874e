"""Temperature explorer: how τ shapes the softmax of one anchor's InfoNCE term.

For one anchor with candidate similarities `s_j` (the positive at index p), InfoNCE
(van den Oord et al. 2018, arXiv:1807.03748) is `L = −log softmax(s/τ)_p`, with
`P_j = exp(s_j/τ) / Σ_k exp(s_k/τ)`. Its gradient is `∂L/∂s_j = P_j/τ` for every negative
j ≠ p and `(P_p − 1)/τ` for the positive: a small τ puts almost all the weight on the hardest
negatives (Wang & Liu 2021, "Understanding the Behaviour of Contrastive Loss",
arXiv:2012.09740). The entropy `H = −Σ_j P_j log P_j` goes to 0 as τ → 0 (one-hot, when the
maximum is unique) and to log B as τ → ∞ (uniform). No retraining: only the softmax is recomputed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from torch import Tensor

from mmlab._checks import check_finite, check_int, check_temperature, check_tensor
from mmlab.losses.output import DEFAULT_TEMPERATURE
from mmlab.viz._widgets import LiveFigure

POS_COLOR, NEG_COLOR = "#2ca02c", "#1f77b4"


def temperature_stats(similarities: Tensor, temperature: float,
                      positive: int = 0) -> dict[str, Any]:
    """Softmax, gradient weights, entropy and loss of one anchor's InfoNCE term at temperature τ.

    Args:
        similarities: (B,) similarities `s_j` of the anchor to its B candidates.
        temperature: τ > 0.
        positive: index p of the matching candidate.
    Returns:
        dict with "probs" (B,) `P_j`, "grad_weights" (B,) `∂L/∂s_j` (`P_j/τ` for negatives,
        `(P_p − 1)/τ` at p), "entropy" `H` in nats (float) and "loss" `L` in nats (float);
        tensors are float64.
    """
    s = check_tensor("similarities", similarities, ndim=1,
                     what="of shape (B,)").detach().to(torch.float64)
    check_finite("similarities", s)
    tau = check_temperature(temperature)
    check_int("positive", positive, minimum=0)
    if positive >= s.shape[0]:
        raise ValueError(f"`positive` is {positive} but there are only B = {s.shape[0]} "
                         f"candidates.")
    logits = s / tau  # (B,)
    log_p = torch.log_softmax(logits, dim=0)  # (B,)
    probs = log_p.exp()  # (B,)
    grad = probs / tau  # (B,)
    grad[positive] -= 1.0 / tau
    entropy = float(-(probs * log_p).sum())
    return {"probs": probs, "grad_weights": grad, "entropy": entropy,
            "loss": float(-log_p[positive])}


class TemperatureExplorer(widgets.VBox):
    """The widget returned by `temperature_explorer`.

    Attributes:
        slider: the log-scale τ slider (`ipywidgets.FloatLogSlider`).
        anchor: the anchor dropdown (only for a (B, B) matrix, else None).
        softmax_fig, grad_fig: the two bar charts (FigureWidget, or Figure shown in an Output).
        text: `ipywidgets.HTML` with the entropy and the loss.
    """

    def __init__(self, similarities: Tensor, anchor: int, temperatures: tuple[float, float],
                 init: float, labels: Sequence[str] | None, positive: int) -> None:
        self.similarities = similarities.detach().to("cpu", torch.float64)
        self.matrix = similarities.ndim == 2
        b = similarities.shape[-1]
        self.labels = ([str(x) for x in labels] if labels is not None
                       else [f"#{j}" for j in range(b)])
        self._positive = positive
        lo, hi = math.log10(temperatures[0]), math.log10(temperatures[1])
        self.slider = widgets.FloatLogSlider(value=init, base=10, min=lo, max=hi,
                                             step=(hi - lo) / 200, description="τ",
                                             readout_format=".4f", continuous_update=True,
                                             layout=widgets.Layout(width="60%"))
        self.anchor = None
        if self.matrix:
            self.anchor = widgets.Dropdown(
                options=[(f"anchor {i}", i) for i in range(similarities.shape[0])],
                value=anchor, description="anchor")
        self.text = widgets.HTML()
        self._soft = LiveFigure(self._bar_figure("Softmax over the anchor's candidates",
                                                 "probability P_j (unitless)"))
        self._grad = LiveFigure(self._bar_figure(
            "Gradient weight on each candidate: ∂L/∂s_j = P_j/τ", "∂L/∂s_j (1/unit similarity)"))
        self.softmax_fig, self.grad_fig = self._soft.fig, self._grad.fig
        controls = [self.slider] + ([self.anchor] if self.anchor is not None else [])
        super().__init__([widgets.HBox(controls), self.text,
                          widgets.HBox([self._soft.widget, self._grad.widget])])
        self._syncing = False
        self.slider.observe(lambda ch: None if self._syncing else self.update(ch["new"]),
                            names="value")
        if self.anchor is not None:
            self.anchor.observe(lambda ch: self.update(), names="value")
        self.update(init)

    def _bar_figure(self, title: str, ytitle: str) -> go.Figure:
        b = len(self.labels)
        fig = go.Figure(go.Bar(x=list(range(b)), y=[0.0] * b, name=ytitle.split(" ")[0],
                               hovertext=self.labels))
        if b <= 32:
            fig.update_xaxes(tickvals=list(range(b)), ticktext=self.labels)
        fig.update_layout(title=title, xaxis_title="candidate (index; green = positive)",
                          yaxis_title=ytitle, width=480, height=340,
                          margin=dict(l=60, r=10, t=50, b=50), showlegend=False)
        return fig

    @property
    def positive(self) -> int:
        """Index of the positive candidate: the anchor itself for a matrix, else `positive`."""
        return int(self.anchor.value) if self.anchor is not None else self._positive

    def row(self) -> Tensor:
        """The current anchor's (B,) candidate similarities."""
        return (self.similarities[self.anchor.value] if self.anchor is not None
                else self.similarities)

    def update(self, tau: float | None = None) -> dict[str, Any]:
        """Recompute the softmax at τ (default: the slider's value) and redraw; returns the
        stats."""
        if tau is None:
            tau = self.slider.value
        tau = check_temperature(tau, "tau")
        if self.slider.value != tau:  # keep the slider in sync without redrawing twice
            self._syncing = True
            try:
                self.slider.value = tau
            finally:
                self._syncing = False
        st = temperature_stats(self.row(), tau, self.positive)
        p = self.positive
        colors = [POS_COLOR if j == p else NEG_COLOR for j in range(len(self.labels))]
        for live, y in ((self._soft, st["probs"]), (self._grad, st["grad_weights"])):
            with live.fig.batch_update():
                live.fig.data[0].y = y.tolist()
                live.fig.data[0].marker.color = colors
            live.refresh()
        b = len(self.labels)
        self.text.value = (f"τ = {tau:.4g} · entropy H = {st['entropy']:.3f} nats "
                           f"(max log B = {math.log(b):.3f}) · "
                           f"loss L = −log P_{p} = {st['loss']:.3f} nats")
        self.stats = st
        return st


def temperature_explorer(similarities: Tensor, anchor: int = 0,
                         temperatures: tuple[float, float] = (1e-3, 10),
                         init: float = DEFAULT_TEMPERATURE, labels: Sequence[str] | None = None,
                         positive: int = 0) -> TemperatureExplorer:
    """An interactive view of one anchor's softmax and gradient weights as τ changes.

    Args:
        similarities: (B,) one anchor's candidate similarities (positive at `positive`), or a
            (B, B) matrix `S_ij` (anchor i, positive j = i) with an anchor dropdown.
        anchor: the anchor shown first (matrix input).
        temperatures: (τ_min, τ_max) of the log-scale slider.
        init: the initial τ (CLIP starts at 0.07).
        labels: optional B candidate names for the x axis.
        positive: the positive's index for a (B,) vector.
    Returns:
        A `TemperatureExplorer` (an ipywidgets VBox) with `.slider`, `.softmax_fig`, `.grad_fig`,
        `.text` and `.update(tau)`.
    """
    s = check_tensor("similarities", similarities, what="of shape (B,) or (B, B)")
    if s.ndim not in (1, 2) or (s.ndim == 2 and s.shape[0] != s.shape[1]):
        raise ValueError(f"`similarities` must be (B,) or square (B, B), "
                         f"got shape {tuple(s.shape)}.")
    check_finite("similarities", s.detach())
    b = s.shape[-1]
    if (not isinstance(temperatures, Sequence) or len(temperatures) != 2):
        raise ValueError(f"`temperatures` must be a pair (τ_min, τ_max), got {temperatures!r}.")
    t_lo, t_hi = (check_temperature(t, "temperatures") for t in temperatures)
    if not t_lo < t_hi:
        raise ValueError(f"`temperatures` must satisfy τ_min < τ_max, got {temperatures!r}.")
    init = check_temperature(init, "init")
    if not t_lo <= init <= t_hi:
        raise ValueError(f"`init` = {init} must lie in `temperatures` = {temperatures!r}.")
    check_int("anchor", anchor, minimum=0)
    check_int("positive", positive, minimum=0)
    if s.ndim == 2 and anchor >= b:
        raise ValueError(f"`anchor` is {anchor} but the matrix has only B = {b} rows.")
    if s.ndim == 1 and positive >= b:
        raise ValueError(f"`positive` is {positive} but there are only B = {b} candidates.")
    if labels is not None and (isinstance(labels, str) or len(labels) != b):
        raise ValueError(f"`labels` must be a list of B = {b} candidate names.")
    return TemperatureExplorer(s, anchor, (t_lo, t_hi), init, labels, positive)
