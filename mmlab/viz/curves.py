"""Training curves and small chart helpers for notebooks (tables → plots).

`training_curves` reads what `mmlab.train.fit` records: the loss and the temperature τ at every
step, and periodic evaluations with retrieval recall R@1, the modality gap ‖Δ‖ (Liang et al.
2022) and the uniformity `log E exp(−2‖x̂−ŷ‖²)` (Wang & Isola 2020, arXiv:2005.10242).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import Tensor

from mmlab.viz._common import color

PANELS = (("loss", "loss (nats)"), ("temperature", "τ (unitless)"), ("R@1", "R@1 (fraction)"),
          ("gap", "‖Δ‖ (cosine units)"), ("uniformity", "uniformity (nats)"))


def _seq(name: str, x: Any) -> list[float]:
    if isinstance(x, Tensor):
        x = x.detach().cpu().reshape(-1).tolist()
    elif isinstance(x, np.ndarray):
        x = x.reshape(-1).tolist()
    if not isinstance(x, Sequence) or isinstance(x, str):
        raise TypeError(f"`{name}` must be a list of numbers, got {type(x).__name__}.")
    return [float(v) if v is not None else None for v in x]


def _field(history: Any, key: str, default: Any = None) -> Any:
    if isinstance(history, Mapping):
        return history.get(key, default)
    return getattr(history, key, default)


def training_curves(history: Any, title: str = "Training curves") -> go.Figure:
    """Loss, τ, R@1, modality gap and uniformity against the training step: one panel each,
    only for the quantities the history holds (a run without evaluation shows loss and τ).

    Args:
        history: `fit`'s History or a dict with "step" and "loss" (lists), optional
            "temperature" (list) and "evals" (list of dicts with "step" and metric keys such
            as "image→text R@1", "gap", "uniformity").
        title: the figure title.
    Returns:
        A plotly Figure, one panel per quantity with data (up to 3 per row).
    """
    if not isinstance(history, Mapping) and not hasattr(history, "loss"):
        raise TypeError(f"`history` must be fit's History or a dict with 'step' and 'loss', "
                        f"got {type(history).__name__}.")
    loss = _seq("history.loss", _field(history, "loss", []))
    steps = _field(history, "step", None)
    steps = list(range(len(loss))) if steps is None else _seq("history.step", steps)
    if len(steps) != len(loss):
        raise ValueError(f"`history` has {len(steps)} steps but {len(loss)} loss values; "
                         "they must match.")
    temp = _field(history, "temperature", None)
    temp = [] if temp is None else _seq("history.temperature", temp)
    evals = _field(history, "evals", None) or []
    if not isinstance(evals, Sequence) or not all(isinstance(e, Mapping) for e in evals):
        raise TypeError("`history.evals` must be a list of dicts with a 'step' key and metric "
                        "values.")
    ev_steps = [e.get("step") for e in evals]
    keys = list(dict.fromkeys(k for e in evals for k in e if k != "step"))
    traces: dict[str, list[go.Scatter]] = {"loss": [go.Scatter(
        x=steps, y=loss, mode="lines", name="loss", line=dict(color=color(0)))]}
    if any(t is not None for t in temp):  # None: the model has no temperature
        traces["temperature"] = [go.Scatter(x=steps[:len(temp)], y=temp, mode="lines", name="τ",
                                            line=dict(color=color(1)))]
    groups = {"R@1": [k for k in keys if re.search(r"R@1(?!\d)", k)],  # not R@10
              "gap": [k for k in keys if "gap" in k],
              "uniformity": [k for k in keys if "uniformity" in k]}
    k_color = 2
    for panel, group in groups.items():
        for key in group:
            xs = [s for s, e in zip(ev_steps, evals) if key in e]
            ys = [float(e[key]) for e in evals if key in e]
            traces.setdefault(panel, []).append(go.Scatter(
                x=xs, y=ys, mode="lines+markers", name=key, line=dict(color=color(k_color))))
            k_color += 1
    units = dict(PANELS)
    cols = min(3, len(traces))
    rows = -(-len(traces) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(traces))
    for i, (panel, panel_traces) in enumerate(traces.items()):
        r, c = divmod(i, cols)
        for trace in panel_traces:
            fig.add_trace(trace, r + 1, c + 1)
        fig.update_xaxes(title_text="step", row=r + 1, col=c + 1)
        fig.update_yaxes(title_text=units[panel], row=r + 1, col=c + 1,
                         type="log" if panel == "temperature" else None)
    fig.update_layout(title=title, height=280 * rows + 40)
    return fig


def bar_chart(values: Mapping[str, float], title: str, yaxis: str, xaxis: str = "") -> go.Figure:
    """One bar per entry of a dict (e.g. a results table → a plot).

    Args:
        values: name → finite number (a float, int or one-element tensor).
        title: the figure title.
        yaxis: the y-axis title with its unit, e.g. "R@1 (fraction)".
        xaxis: the x-axis title.
    Returns:
        A plotly Figure with one Bar trace.
    """
    if not isinstance(values, Mapping) or len(values) == 0:
        raise ValueError(f"`values` must be a non-empty dict name → number, got {values!r}.")
    for name, arg in (("title", title), ("yaxis", yaxis), ("xaxis", xaxis)):
        if not isinstance(arg, str):
            raise TypeError(f"`{name}` must be a str, got {type(arg).__name__}.")
    ys = []
    for name, v in values.items():
        try:
            y = float(v.detach().cpu()) if isinstance(v, Tensor) else float(v)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"`values[{name!r}]` must be a number, "
                            f"got {type(v).__name__} ({v!r:.60}).") from None
        if not math.isfinite(y):
            raise ValueError(f"`values[{name!r}]` is {y}; every bar needs a finite number.")
        ys.append(y)
    fig = go.Figure(go.Bar(x=[str(k) for k in values], y=ys, name=yaxis,
                           text=[f"{v:.3g}" for v in ys], textposition="auto"))
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis)
    return fig


def line_chart(x: Sequence[float], ys: Mapping[str, Sequence[float]], title: str, xaxis: str,
               yaxis: str, log_x: bool = False, log_y: bool = False) -> go.Figure:
    """Several named lines over a shared x (e.g. a sweep → a plot).

    Args:
        x: the shared x values.
        ys: line name → y values (same length as `x`).
        title: the figure title.
        xaxis, yaxis: axis titles with units.
        log_x, log_y: logarithmic axes.
    Returns:
        A plotly Figure with one Scatter trace per entry of `ys`.
    """
    xs = _seq("x", x)
    if not isinstance(ys, Mapping) or len(ys) == 0:
        raise ValueError("`ys` must be a non-empty dict line name → list of y values.")
    fig = go.Figure()
    for k, (name, y) in enumerate(ys.items()):
        y = _seq(f"ys[{name!r}]", y)
        if len(y) != len(xs):
            raise ValueError(f"`ys[{name!r}]` has {len(y)} values but `x` has {len(xs)}.")
        fig.add_trace(go.Scatter(x=xs, y=y, mode="lines+markers", name=str(name),
                                 line=dict(color=color(k))))
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis)
    if log_x:
        fig.update_xaxes(type="log")
    if log_y:
        fig.update_yaxes(type="log")
    return fig
