"""Geometry views: the modality gap and the cross-modal similarity matrix.

Liang et al. (2022, "Mind the Gap", arXiv:2203.02053) found that image and text embeddings of
contrastive models occupy two separate cones: the centroids of `â` and `b̂` differ by the gap
vector `Δ = mean_i â_i − mean_j b̂_j`. `modality_gap_figure` shows both clouds in a joint 2-D PCA
with the centroids and Δ, next to the distributions of `S_ii` (matched) and `S_ij, i ≠ j`
(unmatched). `similarity_heatmap` shows `S_ij = cos(a_i, b_j)` with each row's top-1 marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from mmlab._checks import check_finite, check_int, check_paired, check_tensor
from mmlab.metrics import gap_vector, modality_gap, similarity
from mmlab.viz._common import axis_title, check_labels, color, normalize
from mmlab.viz.reduce import reduce

MAX_UNMATCHED = 20_000  # the unmatched histogram subsamples beyond this many pairs
HIT_COLOR, MISS_COLOR = "#2ca02c", "#d62728"


def _check_names(names: Any) -> tuple[str, str]:
    if (not isinstance(names, Sequence) or isinstance(names, str) or len(names) != 2
            or not all(isinstance(n, str) for n in names)):
        raise ValueError(f"`names` must be two modality names such as ('image', 'text'), "
                         f"got {names!r}.")
    return names[0], names[1]


def modality_gap_figure(a: Tensor, b: Tensor,
                        names: Sequence[str] = ("image", "text")) -> go.Figure:
    """Two panels: the clouds with their centroids and gap vector Δ, and matched/unmatched cosines.

    Args:
        a: (B, D) embeddings of the first modality (row i pairs with row i of `b`).
        b: (B, D) embeddings of the second modality.
        names: the two modality names, for legends and the title.
    Returns:
        A plotly Figure with traces `names[0]`, `names[1]`, "centroids", "gap Δ",
        "matched pairs", "unmatched pairs".
    """
    na, nb = _check_names(names)
    check_paired(("a", "b"), (a, b))
    # (B, D) unit rows, on the CPU for plotting
    a64 = normalize(a.detach().to("cpu", torch.float64))
    b64 = normalize(b.detach().to("cpu", torch.float64))  # (B, D)
    n = a64.shape[0]
    gap = float(modality_gap(a64, b64))
    xy = reduce(torch.cat([a64, b64]), "pca", 2)  # (2B, 2), joint fit of the normalised set
    pa, pb = xy[:n], xy[n:]  # (B, 2) each
    ca, cb = pa.mean(axis=0), pb.mean(axis=0)  # projected centroids (PCA is affine)
    delta = gap_vector(a64, b64)  # (D,)
    sim = similarity(a64, b64)  # (B, B)
    matched = sim.diagonal().numpy()  # (B,)
    off = ~torch.eye(n, dtype=torch.bool)
    unmatched = sim[off].numpy()  # (B(B−1),)
    if unmatched.size > MAX_UNMATCHED:
        unmatched = np.random.default_rng(0).choice(unmatched, MAX_UNMATCHED, replace=False)

    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45],
                        subplot_titles=(f"Joint PCA of normalised embeddings (‖Δ‖ = {gap:.3f})",
                                        "Cosine similarity of pairs"))
    for k, (nm, p) in enumerate(((na, pa), (nb, pb))):
        fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", name=nm, opacity=0.7,
                                 marker=dict(color=color(k), size=6),
                                 text=[f"{nm} #{i}" for i in range(n)], hoverinfo="text"),
                      row=1, col=1)
    fig.add_trace(go.Scatter(x=[ca[0], cb[0]], y=[ca[1], cb[1]], mode="markers", name="centroids",
                             marker=dict(color="black", size=14, symbol="x"),
                             text=[f"centroid of {na}", f"centroid of {nb}"], hoverinfo="text"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=[cb[0], ca[0]], y=[cb[1], ca[1]], mode="lines", name="gap Δ",
                             line=dict(color="black", width=2),
                             hovertext=f"Δ = mean {na} − mean {nb}, ‖Δ‖ = {gap:.3f} "
                                       f"(D = {delta.numel()})",
                             hoverinfo="text"), row=1, col=1)
    fig.add_annotation(x=ca[0], y=ca[1], ax=cb[0], ay=cb[1], xref="x", yref="y", axref="x",
                       ayref="y", showarrow=True, arrowhead=3, arrowsize=1.5, arrowwidth=2,
                       arrowcolor="black", text="", row=1, col=1)
    fig.add_trace(go.Histogram(x=matched, name="matched pairs", histnorm="probability density",
                               opacity=0.6, marker_color=HIT_COLOR), row=1, col=2)
    fig.add_trace(go.Histogram(x=unmatched, name="unmatched pairs", histnorm="probability density",
                               opacity=0.6, marker_color=MISS_COLOR), row=1, col=2)
    fig.update_layout(title=f"Modality gap between {na} and {nb}: ‖Δ‖ = {gap:.3f}",
                      barmode="overlay")
    fig.update_xaxes(title_text=axis_title("pca", 1), row=1, col=1)
    fig.update_yaxes(title_text=axis_title("pca", 2), row=1, col=1)
    fig.update_xaxes(title_text="cosine similarity S_ij (unitless)", row=1, col=2)
    fig.update_yaxes(title_text="density (per unit cosine)", row=1, col=2)
    return fig


def top1_hits(sim: Tensor, labels: list | None = None) -> tuple[Tensor, Tensor]:
    """Each row's top-1 column and whether it is a hit (the diagonal, or the same class).

    Args:
        sim: (B, B) similarities, row i's match is column i.
        labels: optional B class labels; then any column of the same class is a hit.
    Returns:
        `(top1, hit)`: int64 (B,) column indices and bool (B,), on the CPU.
    Raises:
        ValueError / TypeError naming `sim` (not a non-empty square float matrix, or holding
        NaN/Inf) or `labels` (not B entries).
    """
    check_tensor("sim", sim, ndim=2, what="of shape (B, B)")
    if sim.shape[0] != sim.shape[1]:
        raise ValueError(f"`sim` must be square (B, B) (row i's match is column i), "
                         f"got shape {tuple(sim.shape)}.")
    sim = check_finite("sim", sim.detach().cpu())
    labels = check_labels(labels, sim.shape[0])
    top1 = sim.argmax(dim=1)  # (B,)
    if labels is None:
        hit = top1 == torch.arange(sim.shape[0])  # (B,)
    else:
        hit = torch.tensor([labels[int(j)] == labels[i] for i, j in enumerate(top1)],
                           dtype=torch.bool)
    return top1, hit


def similarity_heatmap(a: Tensor, b: Tensor, names: Sequence[str] = ("image", "text"),
                       labels: Any = None, max_items: int = 64) -> go.Figure:
    """Heatmap of `S_ij = cos(a_i, b_j)` with every row's top-1 marked as a hit or a miss.

    Args:
        a: (B, D) query embeddings (rows).
        b: (B, D) candidate embeddings (columns); row i pairs with column i.
        names: the two modality names (axis titles).
        labels: optional (B,) classes; with them a top-1 of the same class counts as a hit.
        max_items: show only the first `max_items` pairs (a 64 × 64 matrix stays readable).
    Returns:
        A plotly Figure with traces "cosine" (heatmap), "top-1 hit" and "top-1 miss".
    """
    na, nb = _check_names(names)
    check_paired(("a", "b"), (a, b))
    check_finite("a", a.detach())
    check_finite("b", b.detach())
    check_int("max_items", max_items)
    n = min(a.shape[0], max_items)
    labels = check_labels(labels, a.shape[0])
    labels = None if labels is None else labels[:n]
    sim = similarity(a.detach()[:n].to("cpu", torch.float64),
                     b.detach()[:n].to("cpu", torch.float64))  # (n, n)
    top1, hit = top1_hits(sim, labels)
    rows = torch.arange(n)
    fig = go.Figure(go.Heatmap(z=sim.numpy(), name="cosine", colorscale="RdBu", zmid=0, zmin=-1,
                               zmax=1, colorbar=dict(title="cos (unitless)"),
                               hovertemplate=f"{na} %{{y}} · {nb} %{{x}}<br>cos = %{{z:.3f}}"
                                             "<extra></extra>"))
    for name, mask, col, sym in (("top-1 hit", hit, HIT_COLOR, "circle-open"),
                                 ("top-1 miss", ~hit, MISS_COLOR, "x")):
        fig.add_trace(go.Scatter(x=top1[mask].numpy(), y=rows[mask].numpy(), mode="markers",
                                 name=name, marker=dict(color=col, size=9, symbol=sym,
                                                        line=dict(width=2, color=col))))
    crit = "same class" if labels is not None else "diagonal"
    fig.update_layout(title=f"Cosine similarity {na} → {nb}: "
                            f"top-1 {int(hit.sum())}/{n} hits ({crit})",
                      xaxis_title=f"{nb} candidate (index)", yaxis_title=f"{na} query (index)",
                      yaxis_autorange="reversed", legend=dict(orientation="h", y=-0.15))
    return fig
