"""Embedding maps: paired points from every modality in one projected space.

A contrastive model maps matched pairs (row i of every modality) close together (Radford et al.
2021, CLIP, arXiv:2103.00020). `plot_embeddings` fits one projection (PCA, UMAP or t-SNE, see
`mmlab.viz.reduce`) on all modalities jointly, so distances between modalities are comparable,
draws each modality (or class), and joins matched pairs by line segments; the length of those
segments is what the loss shrinks. `trajectory_figure` animates saved snapshots on shared axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor

from mmlab._checks import check_choice, check_int
from mmlab.viz._common import (SYMBOLS, SYMBOLS_3D, WEBGL_THRESHOLD, axis_title,
                               check_embedding_dict, check_hover, check_labels, color)
from mmlab.viz.reduce import DIMS, METHODS, reduce

COLOR_BY = ("modality", "label")
PAIR_COLOR = "rgba(120, 120, 120, 0.35)"


def _segments(coords: dict[str, np.ndarray]) -> list[list[float | None]]:
    """Per axis, the x (y, z) lists of one trace drawing a segment for every pair of every
    modality pair."""
    dim = next(iter(coords.values())).shape[1]
    axes: list[list[float | None]] = [[] for _ in range(dim)]
    for m1, m2 in combinations(coords, 2):
        p, q = coords[m1], coords[m2]  # (B, dim) each
        seg = np.full((p.shape[0], 3, dim), np.nan)  # (B, 3, dim): start, end, gap
        seg[:, 0], seg[:, 1] = p, q
        for d in range(dim):
            axes[d].extend(None if np.isnan(v) else float(v) for v in seg[:, :, d].ravel())
    return axes


def _scatter(dim: int, n_points: int, **kw: Any) -> go.BaseTraceType:
    if dim == 3:
        return go.Scatter3d(**kw)
    return (go.Scattergl if n_points > WEBGL_THRESHOLD else go.Scatter)(**kw)


def _xyz(xy: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip("xyz", xy.T))


def _hover_texts(m: str, n: int, labels: list | None, hover: dict[str, list[str]]) -> list[str]:
    texts = []
    for i in range(n):
        t = f"{m} #{i}"
        if labels is not None:
            t += f"<br>class {labels[i]}"
        if m in hover:
            t += f"<br>{hover[m][i]}"
        texts.append(t)
    return texts


def _layout(fig: go.Figure, method: str, dim: int, title: str) -> None:
    if dim == 3:
        fig.update_layout(scene=dict(xaxis_title=axis_title(method, 1),
                                     yaxis_title=axis_title(method, 2),
                                     zaxis_title=axis_title(method, 3)))
    else:
        fig.update_xaxes(title_text=axis_title(method, 1))
        fig.update_yaxes(title_text=axis_title(method, 2))
    fig.update_layout(title=title, legend_title_text="", hovermode="closest")


def plot_embeddings(embeddings: Mapping[str, Tensor], labels: Any = None, method: str = "pca",
                    dim: int = 2, pair_lines: bool = True, hover: Any = None,
                    color_by: str = "modality", title: str | None = None) -> go.Figure:
    """Scatter plot of the embeddings of every modality in one jointly fitted 2-D or 3-D projection.

    Args:
        embeddings: modality → (B, D) tensor; row i of every modality is the i-th pair.
        labels: optional (B,) class ids or names (hover text; needed for `color_by="label"`).
        method: "pca" (default, instant), "umap" or "tsne" (slower, non-linear).
        dim: 2 or 3.
        pair_lines: draw a segment between the points of each pair, for every pair of modalities,
            as a single trace named "pairs" (segments separated by None).
        hover: extra hover text, a dict modality → list[str] of length B (e.g. captions), or
            one list.
        color_by: "modality" (one trace per modality) or "label" (one trace per class; the
            modality is the marker symbol).
        title: figure title (a default names the method).
    Returns:
        A plotly Figure.
    """
    check_choice("method", method, METHODS)
    check_choice("dim", dim, DIMS)
    check_choice("color_by", color_by, COLOR_BY)
    emb = check_embedding_dict("embeddings", embeddings, same_rows=True)
    mods = list(emb)
    n = next(iter(emb.values())).shape[0]
    labels = check_labels(labels, n)
    if color_by == "label" and labels is None:
        raise ValueError("`color_by='label'` needs `labels` (a (B,) tensor or list of class ids).")
    hover = check_hover(hover, mods, n)

    xy = reduce(torch.cat([emb[m] for m in mods]), method, dim)  # (M·B, dim), one joint fit
    coords = {m: xy[k * n:(k + 1) * n] for k, m in enumerate(mods)}  # each (B, dim)
    total = n * len(mods)
    size = 7 if total <= 500 else 4
    fig = go.Figure()
    if pair_lines and len(mods) > 1:
        seg = _segments(coords)
        fig.add_trace(_scatter(dim, total, mode="lines", name="pairs", hoverinfo="skip",
                               line=dict(color=PAIR_COLOR, width=1), **dict(zip("xyz", seg))))
    symbols = SYMBOLS_3D if dim == 3 else SYMBOLS
    if color_by == "modality":
        for k, m in enumerate(mods):
            fig.add_trace(_scatter(dim, total, mode="markers", name=m, **_xyz(coords[m]),
                                   text=_hover_texts(m, n, labels, hover), hoverinfo="text",
                                   marker=dict(color=color(k), size=size,
                                               symbol=symbols[k % len(symbols)])))
    else:
        classes = list(dict.fromkeys(labels))
        lab = np.array([classes.index(c) for c in labels])  # (B,) position of each class
        texts = {m: _hover_texts(m, n, labels, hover) for m in mods}
        for c_i, c in enumerate(classes):
            rows = np.nonzero(lab == c_i)[0]
            pts = np.concatenate([coords[m][rows] for m in mods])  # (M·B_c, dim)
            sym = [symbols[k % len(symbols)] for k, _ in enumerate(mods) for _ in rows]
            txt = [texts[m][i] for m in mods for i in rows]
            fig.add_trace(_scatter(dim, total, mode="markers", name=f"class {c}", **_xyz(pts),
                                   text=txt, hoverinfo="text",
                                   marker=dict(color=color(c_i), size=size, symbol=sym)))
    if title is None:
        title = (f"Embeddings of {', '.join(mods)} "
                 f"({method.upper() if method != 'tsne' else 't-SNE'}, joint fit)")
    _layout(fig, method, dim, title)
    return fig


def trajectory_figure(snapshots: Sequence[Mapping[str, Tensor]], steps: Sequence[int],
                      labels: Any = None, method: str = "pca", pair_lines: bool = False,
                      title: str | None = None) -> go.Figure:
    """Animate embeddings saved during training: one frame per snapshot, with a slider and a
    play button.

    One projection is fitted on all snapshots and modalities jointly, so every frame shares the
    same axes and the motion is the model's, not the projection's.

    Args:
        snapshots: list of dicts modality → (B, D), one per saved step, same modalities and shapes.
        steps: the training step of each snapshot (slider labels).
        labels: optional (B,) class ids for the hover text.
        method: "pca" (default), "umap" or "tsne".
        pair_lines: also animate the segments joining matched pairs.
        title: figure title.
    Returns:
        A plotly Figure with `frames`, a slider and play/pause buttons.
    """
    check_choice("method", method, METHODS)
    if not isinstance(snapshots, Sequence) or len(snapshots) == 0:
        raise ValueError("`snapshots` must be a non-empty list of dicts modality → (B, D) tensor.")
    if not isinstance(steps, Sequence) or len(steps) != len(snapshots):
        raise ValueError(f"`steps` must be a list with one step per snapshot ({len(snapshots)}), "
                         f"got {steps if not isinstance(steps, Sequence) else len(steps)}.")
    for s in steps:
        check_int("steps[i]", s, minimum=0)
    snaps = [check_embedding_dict(f"snapshots[{t}]", s) for t, s in enumerate(snapshots)]
    mods = list(snaps[0])
    shape = tuple(snaps[0][mods[0]].shape)
    for t, s in enumerate(snaps):
        if list(s) != mods or any(tuple(x.shape) != shape for x in s.values()):
            raise ValueError(f"`snapshots[{t}]` has modalities/shapes "
                             f"{ {m: tuple(x.shape) for m, x in s.items()} }; "
                             f"every snapshot must match snapshots[0] "
                             f"({ {m: shape for m in mods} }).")
    n = shape[0]
    labels = check_labels(labels, n)
    all_x = torch.cat([s[m] for s in snaps for m in mods])  # (T·M·B, D)
    xy = reduce(all_x, method, 2)  # (T·M·B, 2), one joint fit for every frame
    per = n * len(mods)
    coords = [{m: xy[t * per + k * n: t * per + (k + 1) * n] for k, m in enumerate(mods)}
              for t in range(len(snaps))]

    def traces(c: dict[str, np.ndarray]) -> list[go.Scatter]:
        out = []
        if pair_lines and len(mods) > 1:
            sx, sy = _segments(c)
            out.append(go.Scatter(x=sx, y=sy, mode="lines", name="pairs", hoverinfo="skip",
                                  line=dict(color=PAIR_COLOR, width=1)))
        for k, m in enumerate(mods):
            out.append(go.Scatter(x=c[m][:, 0], y=c[m][:, 1], mode="markers", name=m,
                                  text=_hover_texts(m, n, labels, {}), hoverinfo="text",
                                  marker=dict(color=color(k), size=7,
                                              symbol=SYMBOLS[k % len(SYMBOLS)])))
        return out

    names = [f"step {s}" for s in steps]
    frames = [go.Frame(data=traces(c), name=nm) for c, nm in zip(coords, names)]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pad = 0.05 * np.maximum(hi - lo, 1e-9)
    fig = go.Figure(data=traces(coords[0]), frames=frames)
    anim = dict(frame=dict(duration=500, redraw=False), transition=dict(duration=300),
                mode="immediate")
    fig.update_layout(
        title=title or (f"Embeddings during training "
                        f"({method.upper() if method != 'tsne' else 't-SNE'}, shared axes)"),
        xaxis=dict(title=axis_title(method, 1), range=[lo[0] - pad[0], hi[0] + pad[0]]),
        yaxis=dict(title=axis_title(method, 2), range=[lo[1] - pad[1], hi[1] + pad[1]]),
        updatemenus=[dict(type="buttons", showactive=False, x=0.0, y=-0.12, xanchor="left",
                          direction="left",
                          buttons=[dict(label="▶ play", method="animate",
                                        args=[None, {**anim, "fromcurrent": True}]),
                                   dict(label="❚❚ pause", method="animate",
                                        args=[[None], dict(frame=dict(duration=0, redraw=False),
                                                           mode="immediate")])])],
        sliders=[dict(active=0, x=0.15, len=0.85, y=-0.08, currentvalue=dict(prefix="training "),
                      steps=[dict(label=str(s), method="animate", args=[[nm], anim])
                             for s, nm in zip(steps, names)])],
    )
    return fig
