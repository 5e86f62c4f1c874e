"""The computations behind the two interactive controls of notebook 07 (attention and attribution).

Each control is a `figure_browser(draw, {...})` whose `draw` calls a function here, so a headless
test can move the control and compare the figure's data with an independent computation
(tests/test_viz_controls_07.py). The maps are those of `mmlab.attribution.similarity_attribution`
(gradient-weighted attention, Chefer, Gur & Wolf 2021; rollout, Abnar & Zuidema 2020; integrated
gradients, Sundararajan, Taly & Yan 2017), scored against ground truth the generator knows.

- `sample_attribution_figure`: a sample i and a method → the map of S_ii over image i's pixels
  with its bounding box and in-box fraction, and caption i's tokens coloured by their attribution.
- `clip_attribution_figure`: a clip i → its log-mel spectrogram over the positive attribution per
  frame of each method, the spoken span shaded, and the in-span fraction of every method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import torch
from torch import Tensor, nn

from mmlab.attribution import (attribution_in_box, attribution_in_span, box_share,
                               similarity_attribution, span_share, upsample_to_image)
from mmlab.viz.audio_attribution import frame_attribution_figure
from mmlab.viz.overlays import image_overlay, token_overlay

__all__ = ["image_attribution_map", "sample_attribution_figure", "clip_attribution_figure"]


# ---------------------------------------------------------------------- images and captions
def image_attribution_map(model: nn.Module, batch: Mapping[str, Any], i: int, j: int,
                          method: str = "grad_attention", *, steps: int = 32,
                          other: str = "text") -> Tensor:
    """The attribution of S_ij = cos(image i, caption j) over image i's pixels, as an (H, W) map.

    Patch scores (attention methods, an (H/p, W/p) grid) are spread over their p × p pixels
    (`upsample_to_image`, nearest); pixel scores (integrated gradients) are returned as they are.

    Args:
        model: a ContrastiveModel with an "image" encoder. batch: an mmlab batch with "image"
            (B, 3, H, W) and `other`. i: the explained image. j: the sample of `other` held fixed.
        method: a `similarity_attribution` method. steps: integrated-gradients nodes.
    Returns:
        (H, W) float tensor on the CPU.
    """
    a = similarity_attribution(model, batch, i, j, "image", other=other, method=method,
                               steps=steps)
    H, W = batch["image"].shape[-2:]
    return a.scores if a.kind == "pixels" else upsample_to_image(a.scores, (H, W))  # (H, W)


def sample_attribution_figure(model: nn.Module, batch: Mapping[str, Any], i: int,
                              method: str = "grad_attention", *,
                              steps: int = 32) -> tuple[go.Figure, str]:
    """What the learner sees for sample i: where in the image, and which words, raise S_ii.

    The figure is image i with `image_attribution_map(model, batch, i, i, method)` m over it and
    its bounding box drawn in white; the title gives the in-box fraction and the box's share,

        in_box = Σ_p m_p⁺ c_p / Σ_p m_p⁺,    box_share = area(box) / (H W),

    with c_p ∈ [0, 1] the part of pixel p inside the box (`attribution_in_box`, `box_share`).
    The HTML colours caption i's tokens by the attribution of S_ii over them (red raises it, blue
    lowers it; `token_overlay`), the image held fixed.

    Args:
        model: a ContrastiveModel with "image" and "text" encoders.
        batch: "image" (B, 3, H, W) in [0, 1], "text" (B captions), "bbox" (B, 4) as
            (x0, y0, x1, y1) in pixels.
        i: the sample. method: a `similarity_attribution` method. steps: integrated-gradients nodes.
    Returns:
        (figure, html): an Image and a Heatmap trace of shape (H, W), and the coloured caption.
    """
    pixel_map = image_attribution_map(model, batch, i, i, method, steps=steps)  # (H, W)
    H, W = pixel_map.shape
    bbox = batch["bbox"][i]
    x0, y0, x1, y1 = bbox.tolist()
    in_box, share = attribution_in_box(pixel_map, bbox), box_share(bbox, H, W)
    fig = image_overlay(batch["image"][i].cpu(), pixel_map,
                        title=f"{method}: image {i}, in-box {in_box:.2f} (box share {share:.2f})")
    fig.add_shape(type="rect", x0=x0 - 0.5, y0=y0 - 0.5, x1=x1 - 0.5, y1=y1 - 0.5,
                  line=dict(color="white", width=2))
    t = similarity_attribution(model, batch, i, i, "text", other="image", method=method,
                               steps=steps)
    return fig, token_overlay(t.tokens, t.scores,
                              title=f"{method} over the caption (S = {t.similarity:.3f})")


# ---------------------------------------------------------------------- spoken captions
def clip_attribution_figure(model: nn.Module, batch: Mapping[str, Any], i: int,
                            span: tuple[float, float], *, hop_seconds: float = 0.01,
                            methods: Sequence[str] = ("grad_attention", "integrated_gradients"),
                            steps: int = 32, other: str = "text") -> go.Figure:
    """When does the model listen to clip i? Its spectrogram over the attribution per frame.

    For every method, a = `similarity_attribution(model, batch, i, i, "audio", other=other)`
    explains S_ii over clip i's frames ((frames,) for attention methods, (mels, frames) for
    integrated gradients). `frame_attribution_figure` draws the log-mel spectrogram (top), the
    positive mass per frame Σ_m a⁺_{m,k} of each method scaled to a maximum of 1 (bottom), and
    the spoken span [t₀, t₁) shaded. The title gives, per method, the in-span fraction against
    the span share (frame k covers [(k − ½)Δt, (k + ½)Δt), a fraction c_k of it inside the span):

        in_span = Σ_{m,k} a⁺_{m,k} c_k / Σ_{m,k} a⁺_{m,k},    span_share = Σ_k c_k / n_frames.

    Args:
        model: a ContrastiveModel whose "audio" encoder has `logmel` (e.g. `AudioTransformer`).
        batch: "audio" (B, samples) waveforms and `other` (B captions).
        i: the clip. span: (t₀, t₁) in seconds, where caption i is spoken in clip i.
        hop_seconds: Δt, seconds between frames (hop_length / sample_rate).
        methods: `similarity_attribution` methods, one curve each. steps: integrated-gradients
            nodes. other: the modality held fixed.
    Returns:
        A plotly Figure: a Heatmap (mels, frames), one Scatter per method, the shaded span.
    """
    start, end = (float(t) for t in span)
    maps = {m: similarity_attribution(model, batch, i, i, "audio", other=other, method=m,
                                      steps=steps).scores for m in methods}
    with torch.no_grad():
        spec = model.encoders["audio"].logmel(batch["audio"][i:i + 1])[0].cpu()  # (mels, frames)
    share = span_share(start, end, spec.shape[-1], hop_seconds=hop_seconds)
    scores = ", ".join(f"{m} {attribution_in_span(a, start, end, hop_seconds=hop_seconds):.2f}"
                       for m, a in maps.items())
    return frame_attribution_figure(
        spec, maps, span=(start, end), hop_seconds=hop_seconds,
        title=f"clip {i}: {batch[other][i]!r} | in-span {scores} (span share {share:.2f})")
