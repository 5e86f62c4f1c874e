"""Attribution overlays: heatmaps over images and spectrograms, coloured tokens.

The pictures that go with `mmlab.attribution` (Chefer et al. 2021; Sundararajan et al. 2017):
an attribution map drawn semi-transparently over the input it explains. Figures are plotly
objects (rendered offline by the notebook's bundled plotly.js; nothing here loads a CDN), the
token view is a self-contained HTML string for `IPython.display.HTML`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from torch import Tensor

from mmlab._checks import check_probability, check_positive

__all__ = ["image_overlay", "spectrogram_overlay", "token_overlay", "token_figure"]

HEATMAP_COLORSCALE = "Inferno"


def _as_numpy(name: str, x: Any, ndims: tuple[int, ...], *, nonempty: bool = True) -> np.ndarray:
    """A float64 numpy copy of a float tensor/array (or a list of numbers), checked for rank,
    emptiness and NaN/Inf (plotting reads every value anyway, so the check costs nothing extra)."""
    if isinstance(x, Tensor):
        if not x.is_floating_point():
            raise TypeError(f"`{name}` must have a floating dtype, got {x.dtype}; convert it with "
                            f"`{name}.float()` (images: scale integer pixels to [0, 1] first).")
        x = x.detach().to(torch.float64).cpu().numpy()
    elif isinstance(x, np.ndarray):
        if x.dtype.kind != "f":
            raise TypeError(f"`{name}` must have a floating dtype, got {x.dtype}; convert it with "
                            f"`{name}.astype(float)`.")
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a float tensor or array, "
                        f"got {type(x).__name__}.") from None
    if x.ndim not in ndims:
        raise ValueError(f"`{name}` must have {' or '.join(str(n) for n in ndims)} dims, "
                         f"got shape {x.shape}.")
    if nonempty and x.size == 0:
        raise ValueError(f"`{name}` is empty (shape {x.shape}).")
    if not np.isfinite(x).all():
        raise ValueError(f"`{name}` (shape {x.shape}) contains {int(np.isnan(x).sum())} NaN and "
                         f"{int(np.isinf(x).sum())} Inf values.")
    return x


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to `size` (identity when it already has that size)."""
    if a.shape == size:
        return a
    t = torch.from_numpy(a)[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def image_overlay(image: Tensor, attribution: Tensor, alpha: float = 0.5,
                  title: str | None = None) -> go.Figure:
    """An image with its attribution map as a semi-transparent heatmap on top.

    Args:
        image: (3, H, W) in [0, 1] (or (1, H, W) / (H, W) grey).
        attribution: (h, w) patch grid or (H, W) pixel map; patch grids are upsampled bilinearly.
        alpha: opacity of the heatmap in [0, 1].
        title: figure title ("Attribution" when None).
    Returns:
        A plotly Figure: an Image trace and a Heatmap trace of shape (H, W) with a colour bar.
    """
    img = _as_numpy("image", image, (2, 3))
    if img.ndim == 2:
        img = img[None]
    if img.shape[0] == 1:
        img = np.repeat(img, 3, axis=0)
    if img.shape[0] != 3:
        raise ValueError(f"`image` must be (3, H, W) channels first, got shape {img.shape}.")
    check_probability("alpha", float(alpha))
    H, W = img.shape[1:]
    attr = _resize(_as_numpy("attribution", attribution, (2,)), (H, W))  # (H, W)
    rgb = (np.clip(img, 0.0, 1.0).transpose(1, 2, 0) * 255).round().astype(np.uint8)  # (H, W, 3)
    fig = go.Figure()
    fig.add_trace(go.Image(z=rgb, name="image", hoverinfo="skip"))
    fig.add_trace(go.Heatmap(z=attr, opacity=alpha, colorscale=HEATMAP_COLORSCALE,
                             name="attribution", colorbar={"title": {"text": "attribution"}},
                             hovertemplate="x=%{x} px<br>y=%{y} px<br>attribution=%{z:.3g}"
                                           "<extra></extra>"))
    fig.update_layout(title={"text": title or "Attribution"}, width=420, height=400,
                      margin={"l": 50, "r": 20, "t": 50, "b": 50})
    fig.update_xaxes(title_text="x (pixels)", range=[-0.5, W - 0.5], constrain="domain")
    fig.update_yaxes(title_text="y (pixels)", range=[H - 0.5, -0.5], scaleanchor="x")
    return fig


def spectrogram_overlay(spec: Tensor, attribution: Tensor, hop_seconds: float = 0.01,
                        alpha: float = 0.5, title: str | None = None) -> go.Figure:
    """A log-mel spectrogram with its attribution over time (frames,) or time × mel (mels, frames).

    Args:
        spec: (mels, frames) log-mel spectrogram.
        attribution: (frames,) per-frame scores (drawn as a band over all mel bins) or
            (mels, frames), with the same frames (and mels) as `spec`; other shapes are a
            ValueError.
        hop_seconds: seconds between frames (hop_length / sample_rate; 160 / 16000 = 0.01).
        alpha: opacity of the attribution heatmap.
        title: figure title.
    Returns:
        A plotly Figure with two Heatmap traces (spectrogram, attribution) on a time (s) × mel
        bin grid.
    """
    s = _as_numpy("spec", spec, (2,))
    n_mels, n_frames = s.shape
    check_positive("hop_seconds", hop_seconds)
    check_probability("alpha", float(alpha))
    a = _as_numpy("attribution", attribution, (1, 2))
    expected = (n_frames,) if a.ndim == 1 else (n_mels, n_frames)
    if a.shape != expected:
        raise ValueError(f"`attribution` has shape {a.shape} but `spec` is (mels, frames) = "
                         f"{s.shape}; pass (frames,) = ({n_frames},) per-frame scores or a "
                         f"(mels, frames) = {s.shape} map.")
    if a.ndim == 1:
        a = np.broadcast_to(a[None], (n_mels, n_frames))
    times = np.arange(n_frames) * hop_seconds
    mels = np.arange(n_mels)
    fig = go.Figure()
    fig.add_trace(go.Heatmap(z=s, x=times, y=mels, colorscale="Greys", showscale=False,
                             name="log-mel",
                             hovertemplate="t=%{x:.2f} s<br>mel bin %{y}<br>%{z:.1f} dB"
                                           "<extra></extra>"))
    fig.add_trace(go.Heatmap(z=np.ascontiguousarray(a), x=times, y=mels, opacity=alpha,
                             colorscale=HEATMAP_COLORSCALE, name="attribution",
                             colorbar={"title": {"text": "attribution"}},
                             hovertemplate="t=%{x:.2f} s<br>mel bin %{y}<br>"
                                           "attribution=%{z:.3g}<extra></extra>"))
    fig.update_layout(title={"text": title or "Attribution over the spectrogram"},
                      width=640, height=320, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    fig.update_xaxes(title_text="time (s)")
    fig.update_yaxes(title_text="mel bin")
    return fig


def _colour(score: float, scale: float) -> str:
    """Red for positive, blue for negative, transparency by |score| / max |score|."""
    strength = 0.0 if scale == 0 else min(abs(score) / scale, 1.0)
    rgb = "220, 50, 47" if score >= 0 else "38, 139, 210"
    return f"rgba({rgb}, {strength:.3f})"


def _check_tokens(tokens: Sequence[str], scores: Any) -> np.ndarray:
    if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
        raise TypeError("`tokens` must be a list of strings (e.g. `Attribution.tokens`).")
    values = _as_numpy("scores", scores, (1,), nonempty=False)
    if values.shape[0] != len(tokens):
        raise ValueError(f"`scores` must have one value per token: {len(tokens)} tokens, "
                         f"got shape {values.shape}.")
    return values


def token_overlay(tokens: Sequence[str], scores: Any, title: str | None = None) -> str:
    """Tokens as coloured spans (red = raises the similarity, blue = lowers it), as HTML.

    Args:
        tokens: the text's tokens.
        scores: (n_tokens,) one score per token.
        title: optional heading.
    Returns:
        A self-contained HTML string (no scripts) for `IPython.display.HTML`; hovering a token
        shows its score.
    """
    values = _check_tokens(tokens, scores)
    scale = float(np.abs(values).max()) if len(values) else 0.0
    spans = [
        f'<span title="{v:.4g}" style="background-color: {_colour(float(v), scale)}; '
        f'padding: 1px 3px; margin: 1px; border-radius: 3px; font-family: monospace;">'
        f'{html.escape(t)}</span>'
        for t, v in zip(tokens, values)
    ]
    head = (f"<div style='font-weight: bold; margin-bottom: 4px;'>{html.escape(title)}</div>"
            if title else "")
    return f"<div class='mmlab-token-overlay'>{head}{' '.join(spans)}</div>"


def token_figure(tokens: Sequence[str], scores: Any, title: str | None = None) -> go.Figure:
    """One bar per token (the same scores as `token_overlay`, as a plotly figure).

    Args:
        tokens: the text's tokens. scores: (n_tokens,). title: figure title.
    Returns:
        A plotly Figure with one Bar trace.
    """
    values = _check_tokens(tokens, scores)
    labels = [f"{k}: {t}" for k, t in enumerate(tokens)]  # positions keep repeated words apart
    fig = go.Figure(go.Bar(x=labels, y=values,
                           marker_color=["#dc322f" if v >= 0 else "#268bd2" for v in values],
                           hovertemplate="%{x}<br>attribution=%{y:.3g}<extra></extra>"))
    fig.update_layout(title={"text": title or "Attribution per token"}, width=560, height=320)
    fig.update_xaxes(title_text="token (position: word)")
    fig.update_yaxes(title_text="attribution (similarity units)")
    return fig
