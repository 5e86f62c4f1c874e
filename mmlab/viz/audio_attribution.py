"""When does the model listen? A spectrogram above per-frame attribution, with the spoken span
marked.

The audio picture that goes with `mmlab.attribution.similarity_attribution(..., "audio")` and
`attribution_in_span` (gradient-weighted attention, Chefer, Gur & Wolf 2021; integrated
gradients, Sundararajan, Taly & Yan 2017). The top panel is the log-mel spectrogram, the bottom
panel the positive attribution mass of every frame, Σ_m max(a_{m,k}, 0) (the quantity that
`attribution_in_span` counts), one curve per method. A shaded band over both panels marks the
ground-truth span, e.g. where the caption is spoken in the clip. Frame k is drawn at k·hop
seconds (the centre of a centred STFT frame). Plotly only; nothing is loaded from a CDN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from mmlab._checks import check_finite, check_positive, check_tensor
from mmlab.viz._common import color

__all__ = ["frame_attribution_figure"]


def _per_frame(name: str, scores: Any, n_mels: int, n_frames: int) -> np.ndarray:
    """Positive attribution mass per frame, (frames,), from (frames,) or (mels, frames) scores."""
    check_tensor(name, scores)
    expected = ((n_frames,), (n_mels, n_frames))
    if tuple(scores.shape) not in expected:
        raise ValueError(f"`{name}` has shape {tuple(scores.shape)} but `spec` is (mels, frames) "
                         f"= {(n_mels, n_frames)}; pass (frames,) = ({n_frames},) per-frame scores "
                         f"or a (mels, frames) map.")
    # (frames,) / (mels, frames)
    positive = check_finite(name, scores.detach().to(torch.float64).cpu()).clamp(min=0)
    return (positive if positive.ndim == 1 else positive.sum(dim=0)).numpy()  # (frames,)


def _check_span(span: Any) -> tuple[float, float] | None:
    if span is None:
        return None
    try:
        start, end = (float(v) for v in span)
    except (TypeError, ValueError):
        raise TypeError(f"`span` must be (start_s, end_s) in seconds or None, "
                        f"got {span!r}.") from None
    if not (np.isfinite(start) and np.isfinite(end) and end >= start):
        raise ValueError(f"`span` must be finite (start_s, end_s) with end_s ≥ start_s, "
                         f"got {(start, end)}.")
    return start, end


def frame_attribution_figure(spec: Tensor, frame_scores: Tensor | Mapping[str, Tensor], *,
                             span: tuple[float, float] | None = None, hop_seconds: float = 0.01,
                             normalize: bool = True, span_label: str = "spoken caption",
                             title: str | None = None) -> go.Figure:
    """A log-mel spectrogram (top) and the positive attribution per frame (bottom), span shaded.

    curve_k = Σ_m max(a_{m,k}, 0)   (for (frames,) scores: max(a_k, 0)),
    divided by its maximum when `normalize` (methods have different units: relevance for
    attention methods, similarity for integrated gradients).

    Args:
        spec: (mels, frames) log-mel spectrogram in dB.
        frame_scores: (frames,) or (mels, frames) attribution, or a dict method name → such a
            tensor (one curve each), e.g.
            `{"grad_attention": a.scores, "integrated_gradients": b.scores}`.
        span: (start_s, end_s) in seconds to shade, e.g. (offset_s, offset_s + duration_s);
            None: no band.
        hop_seconds: seconds between frames (hop_length / sample_rate; 160 / 16000 = 0.01).
        normalize: scale every curve to a maximum of 1.
        span_label: legend text of the shaded band.
        title: figure title.
    Returns:
        A plotly Figure: a Heatmap trace (spectrogram) and one Scatter trace per curve on a shared
        time axis in seconds, plus a shaded rectangle over both panels when `span` is given.
    """
    check_tensor("spec", spec, ndim=2, what="of shape (mels, frames)")
    s = check_finite("spec", spec.detach().to(torch.float64).cpu()).numpy()  # (mels, frames)
    n_mels, n_frames = s.shape
    hop = check_positive("hop_seconds", hop_seconds)
    band = _check_span(span)
    if isinstance(frame_scores, Mapping):
        if not frame_scores:
            raise ValueError("`frame_scores` is an empty dict; "
                             "pass at least one method name → scores.")
        curves = {str(k): _per_frame(f"frame_scores[{k!r}]", v, n_mels, n_frames)
                  for k, v in frame_scores.items()}
    else:
        curves = {"attribution": _per_frame("frame_scores", frame_scores, n_mels, n_frames)}
    times = np.arange(n_frames) * hop  # (frames,) seconds

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.55, 0.45])
    fig.add_trace(go.Heatmap(z=s, x=times, y=np.arange(n_mels), colorscale="Viridis",
                             showscale=False, name="log-mel",
                             hovertemplate="t=%{x:.2f} s<br>mel bin %{y}<br>%{z:.1f} dB"
                                           "<extra></extra>"),
                  row=1, col=1)
    for n, (name, curve) in enumerate(curves.items()):
        peak = float(curve.max())
        y = curve / peak if normalize and peak > 0 else curve
        fig.add_trace(go.Scatter(x=times, y=y, mode="lines", name=name,
                                 line={"color": color(n), "width": 1.5},
                                 hovertemplate=f"{name}<br>t=%{{x:.2f}} s<br>%{{y:.3g}}"
                                               "<extra></extra>"),
                      row=2, col=1)
    if band is not None:
        for row in (1, 2):
            fig.add_vrect(x0=band[0], x1=band[1], fillcolor="orange", opacity=0.25, line_width=0,
                          row=row, col=1)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=span_label,
                                 marker={"color": "orange", "opacity": 0.5, "size": 12,
                                         "symbol": "square"}),
                      row=2, col=1)
    fig.update_layout(title={"text": title or "Attribution over the spectrogram's frames"},
                      width=720, height=460, margin={"l": 60, "r": 20, "t": 60, "b": 50},
                      legend={"orientation": "h", "y": -0.18})
    fig.update_yaxes(title_text="mel bin", row=1, col=1)
    fig.update_yaxes(title_text="positive attribution per frame"
                     + (" (max = 1)" if normalize else ""), row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    return fig
