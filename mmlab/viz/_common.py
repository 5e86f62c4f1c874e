"""Shared helpers for the figures: input checks, colours and axis titles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.express as px
import torch
from torch import Tensor

from mmlab._checks import check_embeddings, check_finite, check_modalities
from mmlab._norm import l2_normalize

PALETTE = px.colors.qualitative.Plotly + px.colors.qualitative.Dark24
SYMBOLS = ("circle", "square", "diamond", "cross", "x", "triangle-up", "star", "hexagon")
SYMBOLS_3D = ("circle", "square", "diamond", "cross", "x", "circle-open", "square-open",
              "diamond-open")
AXIS_NAMES = {"pca": "PC", "umap": "UMAP", "tsne": "t-SNE"}
WEBGL_THRESHOLD = 2000  # above this many points use Scattergl (WebGL) instead of SVG


def axis_title(method: str, i: int) -> str:
    """Axis title with its unit, e.g. "PC 1 (a.u.)": projected coordinates have arbitrary units."""
    return f"{AXIS_NAMES[method]} {i} (a.u.)"


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def check_embedding_dict(name: str, embeddings: Any, *,
                         same_rows: bool = True) -> dict[str, Tensor]:
    """A non-empty dict modality → (B, D) float tensor without NaN/Inf, all with the same D
    (and B if asked)."""
    check_modalities(name, embeddings)
    if len(embeddings) == 0:
        raise ValueError(f"`{name}` is empty; pass e.g. {{'image': img_emb, 'text': txt_emb}}.")
    out = {}
    for m, x in embeddings.items():
        if not isinstance(m, str):
            raise TypeError(f"`{name}` keys must be modality names (str), got {type(m).__name__}.")
        out[m] = check_finite(f"{name}[{m!r}]", check_embeddings(f"{name}[{m!r}]", x).detach())
    widths = {m: x.shape[1] for m, x in out.items()}
    if len(set(widths.values())) > 1:
        raise ValueError(f"`{name}` embeddings must share the width D to be projected jointly; "
                         f"got {widths}. Pass the projected (head) embeddings, "
                         "not the raw encoder features.")
    rows = {m: x.shape[0] for m, x in out.items()}
    if same_rows and len(set(rows.values())) > 1:
        raise ValueError(f"`{name}` embeddings must have the same number of rows B (row i of every "
                         f"modality is one pair); got {rows}.")
    return out


def check_labels(labels: Any, n: int, name: str = "labels") -> list | None:
    """Labels as a python list of length n (class ids or names), or None."""
    if labels is None:
        return None
    if isinstance(labels, Tensor):
        if labels.ndim != 1:
            raise ValueError(f"`{name}` must be 1-D of shape (B,), "
                             f"got shape {tuple(labels.shape)}.")
        labels = labels.tolist()
    elif isinstance(labels, np.ndarray):
        labels = labels.reshape(-1).tolist() if labels.ndim == 1 else None
        if labels is None:
            raise ValueError(f"`{name}` must be 1-D of shape (B,).")
    elif not isinstance(labels, Sequence) or isinstance(labels, str):
        raise TypeError(f"`{name}` must be a tensor, array or list of length B, "
                        f"got {type(labels).__name__}.")
    labels = list(labels)
    if len(labels) != n:
        raise ValueError(f"`{name}` has {len(labels)} entries but there are B = {n} rows.")
    return labels


def check_hover(hover: Any, modalities: Sequence[str], n: int) -> dict[str, list[str]]:
    """Hover text per modality: a dict modality → list[str] (or one list shared by all)."""
    if hover is None:
        return {}
    if isinstance(hover, Sequence) and not isinstance(hover, str):
        hover = {m: hover for m in modalities}
    if not isinstance(hover, Mapping):
        raise TypeError(f"`hover` must be a dict modality → list[str] or a list[str], "
                        f"got {type(hover).__name__}.")
    out = {}
    for m, texts in hover.items():
        if m not in modalities:
            raise ValueError(f"`hover` has modality {m!r}, which is not in the embeddings "
                             f"{list(modalities)}.")
        if isinstance(texts, str) or len(texts) != n:
            raise ValueError(f"`hover[{m!r}]` must be a list of {n} strings.")
        out[m] = [str(t) for t in texts]
    return out


def normalize(x: Tensor) -> Tensor:
    """â = a / ‖a‖ in float64."""
    return l2_normalize(x.to(torch.float64))
