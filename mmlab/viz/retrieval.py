"""Retrieval app: pick a query, see its top-k neighbours in every other modality.

Cross-modal retrieval ranks the candidates j of another modality by `S_ij = cos(z_i, z_j)`
(Radford et al. 2021, CLIP, arXiv:2103.00020). The dataset is encoded once; each query then
costs one (N,) matrix-vector product. Results show images as thumbnails, audio as players and
text as captions, each with its attribution overlay (`mmlab.attribution.similarity_attribution`)
on request, when the model supports it.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from torch import Tensor

from mmlab._checks import check_int
from mmlab.train.encode import encode_dataset as train_encode_dataset
from mmlab.viz._widgets import LiveFigure
from mmlab.viz.overlays import image_overlay, spectrogram_overlay, token_overlay

ENCODE_BATCH = 256
THUMB_PX = 96


def encode_dataset(model: Any, dataset: Any, batch_size: int = ENCODE_BATCH) -> dict[str, Tensor]:
    """Encode a whole dataset once: modality → (N, D) L2-normalised embeddings on the CPU.

    The loop is `mmlab.train.encode_dataset` (eval mode, no gradients, mode restored).

    Args:
        model: anything with `encode(batch) -> dict[str, (B, D) Tensor]` (a ContrastiveModel).
        dataset: a `MultimodalDataset` (`len`, `batch(idx)`).
        batch_size: rows per forward pass.
    Returns:
        dict modality → float32 (N, D) on the CPU, rows in dataset order.
    """
    return train_encode_dataset(model, dataset, batch_size, normalize=True, cpu=True)


def _png(image: Tensor) -> bytes:
    from PIL import Image

    x = image.detach().float().cpu()
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = x.permute(1, 2, 0)  # (H, W, C)
    arr = (x.detach().cpu().float().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


class RetrievalApp(widgets.VBox):
    """The widget returned by `retrieval_app`.

    Attributes:
        embeddings: modality → (N, D) cached embeddings.
        modality: query modality dropdown; index: query index slider; explain: attribution checkbox.
        results_box: the VBox holding the query and the result rows.
    """

    def __init__(self, model: Any, dataset: Any, k: int, modalities: Sequence[str] | None) -> None:
        self.model, self.dataset, self.k = model, dataset, k
        encoded = encode_dataset(model, dataset)
        if modalities is None:  # every dataset modality the model encodes
            modalities = [m for m in getattr(dataset, "modalities", encoded) if m in encoded]
        self.embeddings = {m: z for m, z in encoded.items() if m in modalities}
        if len(modalities) < 2:
            raise ValueError("retrieval needs at least two encoded modalities, got "
                             f"{list(modalities)} (the model encodes {sorted(encoded)}).")
        missing = [m for m in modalities if m not in self.embeddings]
        if missing:
            raise ValueError(f"`modalities` {missing} are not encoded by the model (it returns "
                             f"{sorted(self.embeddings)}); pick among those.")
        self.modalities = list(modalities)
        n = len(dataset)
        self.modality = widgets.Dropdown(options=self.modalities, value=self.modalities[0],
                                         description="query")
        self.index = widgets.IntSlider(value=0, min=0, max=n - 1, description="index",
                                       continuous_update=False)
        self.explain = widgets.Checkbox(value=False, description="attribution overlays (slower)")
        self.results_box = widgets.VBox()
        controls = widgets.HBox([self.modality, self.index, self.explain])
        super().__init__([controls, self.results_box])
        for w in (self.modality, self.index, self.explain):
            w.observe(lambda ch: self.update(), names="value")
        self.update()

    def results(self, modality: str, index: int) -> dict[str, list[tuple[int, float]]]:
        """Top-k (candidate index, cosine) in every other modality for query `index` of
        `modality`."""
        q = self.embeddings[modality][index]  # (D,)
        out = {}
        for m in self.modalities:
            if m == modality:
                continue
            sims = self.embeddings[m] @ q  # (N,)
            top = torch.topk(sims, min(self.k, sims.shape[0]))
            out[m] = [(int(j), float(s)) for s, j in zip(top.values, top.indices)]
        return out

    def _render(self, m: str, j: int) -> widgets.Widget:
        value = self.dataset.batch(torch.tensor([j]))[m]
        item = value[0]
        if isinstance(item, str):
            return widgets.HTML(f"<div style='max-width:{2 * THUMB_PX}px'>"
                                f"{html.escape(item)}</div>")
        if isinstance(item, Tensor) and item.ndim == 3:
            return widgets.Image(value=_png(item), format="png", width=THUMB_PX, height=THUMB_PX)
        if isinstance(item, Tensor) and item.ndim == 1 and m == "audio":
            from mmlab.data import SAMPLE_RATE
            from mmlab.viz.preview import wav_bytes

            return widgets.Audio(value=wav_bytes(item, SAMPLE_RATE), format="wav",
                                 autoplay=False, loop=False)
        if isinstance(item, Tensor):
            text = np.array2string(item.detach().cpu().numpy(), precision=2, threshold=16)
            return widgets.HTML(f"<code>{html.escape(text)}</code>")
        return widgets.HTML(html.escape(repr(item)))

    def _overlay(self, m: str, j: int, query_m: str, i: int) -> widgets.Widget:
        """Attribution of candidate j (modality m) for its similarity to query i, or a note why
        not."""
        try:
            from mmlab.attribution import similarity_attribution

            batch = self.dataset.batch(torch.tensor([j, i]))
            att = similarity_attribution(self.model, batch, 0, 1, m, other=query_m)
            if att.kind == "tokens":
                return widgets.HTML(token_overlay(att.tokens, att.scores))
            if m == "image":
                fig = image_overlay(batch[m][0], att.scores)
            else:
                enc = self.model.encoders[m]
                spec = enc.logmel(batch[m][:1].to(next(enc.parameters()).device))[0].cpu()
                fig = spectrogram_overlay(spec, att.scores)
            fig.update_layout(width=2 * THUMB_PX + 80, height=2 * THUMB_PX + 40,
                              margin=dict(l=0, r=0, t=30, b=0))
            return LiveFigure(fig).widget
        except Exception as err:  # the app must work without attribution support
            return widgets.HTML(f"<small>no attribution: {html.escape(type(err).__name__)}: "
                                f"{html.escape(str(err))[:120]}</small>")

    def update(self) -> None:
        """Recompute the top-k for the current query and redraw."""
        qm, i = self.modality.value, self.index.value
        rows: list[widgets.Widget] = [widgets.HTML(f"<b>query: {html.escape(qm)} #{i}</b>"),
                                      self._render(qm, i)]
        for m, hits in self.results(qm, i).items():
            cards = []
            for rank, (j, s) in enumerate(hits, 1):
                parts = [widgets.HTML(f"<small>{rank}. #{j} · cos = {s:.3f}</small>"),
                         self._render(m, j)]
                if self.explain.value:
                    parts.append(self._overlay(m, j, qm, i))
                cards.append(widgets.VBox(parts, layout=widgets.Layout(margin="0 8px 0 0")))
            rows += [widgets.HTML(f"<b>top-{self.k} {html.escape(m)}</b>"), widgets.HBox(cards)]
        self.results_box.children = rows


def retrieval_app(model: Any, dataset: Any, k: int = 5,
                  modalities: Sequence[str] | None = None) -> RetrievalApp:
    """An interactive cross-modal retrieval browser.

    Args:
        model: a ContrastiveModel (anything with `encode(batch) -> dict[str, (B, D)]`).
        dataset: a `MultimodalDataset` (`len(ds)`, `ds.batch(idx)`, `ds.modalities`).
        k: results shown per modality.
        modalities: the modalities to search (default: those the model encodes, in dataset order).
    Returns:
        A `RetrievalApp` widget (`.results(modality, index)` gives the ranked lists).
    """
    if not callable(getattr(model, "encode", None)):
        raise TypeError("`model` must have an `encode(batch)` method (a ContrastiveModel), "
                        f"got {type(model).__name__}.")
    if not callable(getattr(dataset, "batch", None)) or not hasattr(dataset, "__len__"):
        raise TypeError("`dataset` must be a MultimodalDataset (with `batch(idx)` and `len`), "
                        f"got {type(dataset).__name__}.")
    if len(dataset) == 0:
        raise ValueError("`dataset` is empty.")
    check_int("k", k)
    ds_mods = list(getattr(dataset, "modalities", ()))
    if modalities is not None:
        if isinstance(modalities, str) or not all(m in ds_mods for m in modalities):
            raise ValueError(f"`modalities` must be a list of dataset modalities {ds_mods}, "
                             f"got {modalities!r}.")
        modalities = list(modalities)
    return RetrievalApp(model, dataset, k, modalities)
