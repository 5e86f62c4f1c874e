"""The two controls of notebook 07 (mmlab/viz/controls_07.py), moved headlessly.

Each test builds the control as the notebook does (`figure_browser(draw, {...})` with the same
widgets), moves every widget, and compares the figure's data with an independent computation:
the maps straight from `similarity_attribution` (patches spread over their pixels by
`repeat_interleave`), the in-box and in-span fractions and the shares by direct sums and loops
over the box and the frames, the similarity from the normalised embeddings.
"""

from __future__ import annotations

import re

import ipywidgets as widgets
import numpy as np
import pytest
import torch

from mmlab.attribution import similarity_attribution
from mmlab.encoders import AudioTransformer, TextTransformer, Tokenizer, ViTEncoder
from mmlab.losses import ClipLoss
from mmlab.model import ContrastiveModel
from mmlab.viz import (clip_attribution_figure, figure_browser, image_attribution_map,
                       sample_attribution_figure)

TEXTS = ["a small red circle top left", "large blue square in the bottom right",
         "there is a green star at the center"]
PATCH, SIZE, STEPS = 4, 16, 8
HOP_LENGTH, SAMPLE_RATE = 32, 16000
HOP = HOP_LENGTH / SAMPLE_RATE  # seconds between frames
METHODS = ("grad_attention", "rollout", "integrated_gradients")
AUDIO_METHODS = ("grad_attention", "integrated_gradients")


@pytest.fixture(scope="module")
def image_text():
    torch.manual_seed(0)
    tok = Tokenizer.from_texts(TEXTS)
    vit = ViTEncoder(image_size=SIZE, patch_size=PATCH, dim=16, depth=2, heads=2, out_dim=8)
    text = TextTransformer(tok, dim=16, depth=2, heads=2, out_dim=8)
    model = ContrastiveModel({"image": vit, "text": text}, None, ClipLoss()).eval()
    batch = {"image": torch.rand(3, 3, SIZE, SIZE), "text": TEXTS,
             "bbox": torch.tensor([[2, 3, 9, 8], [0, 0, 5, 6], [7, 10, 16, 16]])}
    return model, batch


@pytest.fixture(scope="module")
def audio_text():
    torch.manual_seed(1)
    tok = Tokenizer.from_texts(TEXTS)
    audio = AudioTransformer(n_mels=8, dim=16, depth=1, heads=2, out_dim=8, frame_stride=4,
                             n_fft=64, hop_length=HOP_LENGTH, sample_rate=SAMPLE_RATE)
    text = TextTransformer(tok, dim=16, depth=2, heads=2, out_dim=8)
    model = ContrastiveModel({"audio": audio, "text": text}, None, ClipLoss()).eval()
    return model, {"audio": torch.randn(3, HOP_LENGTH * 21), "text": TEXTS}  # 22 frames each


def _pixel_map(model, batch, i, j, method):
    a = similarity_attribution(model, batch, i, j, "image", other="text", method=method,
                               steps=STEPS)
    if a.kind == "pixels":
        return a.scores.double()
    return a.scores.double().repeat_interleave(PATCH, 0).repeat_interleave(PATCH, 1)  # (H, W)


def _numbers(text):
    return [float(v) for v in re.findall(r"-?\d+\.\d+", text)]


# ---- section 4: a sample and a method → the image map, its box, the caption's tokens ----------
def test_sample_and_method_controls_redraw_the_map_the_box_and_the_tokens(image_text):
    model, batch = image_text
    sample = widgets.IntSlider(0, 0, 2, description="sample")
    method = widgets.Dropdown(options=METHODS, value="grad_attention", description="method")
    box = figure_browser(lambda i=0, method="grad_attention": sample_attribution_figure(
        model, batch, i, method, steps=STEPS), {"i": sample, "method": method})
    with torch.no_grad():
        z = model.encode(batch)  # unit embeddings
    seen = []
    for i, m in ((1, "grad_attention"), (2, "rollout"), (2, "integrated_gradients"), (0, "rollout"),
                 (1, "integrated_gradients")):
        sample.value, method.value = i, m
        image, heat = box.figure.data
        want = _pixel_map(model, batch, i, i, m)
        assert np.allclose(np.asarray(heat.z), want.numpy(), atol=1e-6)
        rgb = (batch["image"][i].double().permute(1, 2, 0).numpy() * 255).round()
        assert np.array_equal(np.asarray(image.z), rgb)
        # in-box fraction and box share by direct sums over the (integer) box
        x0, y0, x1, y1 = batch["bbox"][i].tolist()
        positive = want.clamp(min=0)
        in_box = float(positive[y0:y1, x0:x1].sum() / positive.sum())
        share = (x1 - x0) * (y1 - y0) / SIZE ** 2
        title = box.figure.layout.title.text
        assert title.startswith(f"{m}: image {i}, in-box ")
        got_in_box, got_share = _numbers(title.split(", ", 1)[1])
        assert got_in_box == pytest.approx(in_box, abs=0.005 + 1e-9)
        assert got_share == pytest.approx(share, abs=0.005 + 1e-9)
        rect = box.figure.layout.shapes[0]
        assert (rect.x0, rect.y0, rect.x1, rect.y1) == (x0 - .5, y0 - .5, x1 - .5, y1 - .5)
        # the tokens under the figure: one span per token with its score, S from the embeddings
        t = similarity_attribution(model, batch, i, i, "text", other="image", method=m,
                                   steps=STEPS)
        note = box.children[2].value
        assert f"{m} over the caption (S = " in note
        s = float(z["image"][i] @ z["text"][i])
        assert _numbers(note.split("(S = ")[1])[0] == pytest.approx(s, abs=5e-4 + 1e-6)
        assert re.findall(r'title="([^"]+)"', note) == [f"{v:.4g}" for v in t.scores.tolist()]
        assert [w for w in re.findall(r">([^<>]+)</span>", note)] == t.tokens
        seen.append(np.asarray(heat.z).copy())
    assert not np.allclose(seen[0], seen[1])  # moving a control changed the map


def test_image_map_explains_any_caption(image_text):
    # what the notebook's image_map(m, i, j, method) returns, for a caption j other than i
    model, batch = image_text
    for m in METHODS:
        got = image_attribution_map(model, batch, 0, 2, m, steps=STEPS)
        assert got.shape == (SIZE, SIZE)
        assert torch.allclose(got.double(), _pixel_map(model, batch, 0, 2, m), atol=1e-6)


# ---- section 8: a clip → its spectrogram, the attribution per frame, the spoken span ---------
def _in_span_by_loops(scores, start, end, n_frames):
    """Positive mass per frame, the part of every frame cell [(k−½)Δt, (k+½)Δt) inside the span."""
    s = scores.double()
    mass = [sum(max(float(v), 0.0) for v in (s[:, k] if s.ndim == 2 else s[k:k + 1]))
            for k in range(n_frames)]
    cover = [min(max(min((k + .5) * HOP, end) - max((k - .5) * HOP, start), 0.0) / HOP, 1.0)
             for k in range(n_frames)]
    return (np.array(mass), sum(a * c for a, c in zip(mass, cover)) / sum(mass),
            sum(cover) / n_frames)


def test_clip_slider_redraws_spectrogram_curves_and_in_span_scores(audio_text):
    model, batch = audio_text
    spans = [(0.010, 0.025), (0.0, 0.013), (0.021, 0.042)]
    clip = widgets.IntSlider(0, 0, 2, description="clip")
    box = figure_browser(lambda i=0: clip_attribution_figure(
        model, batch, i, spans[i], hop_seconds=HOP, methods=AUDIO_METHODS, steps=STEPS),
        {"i": clip})
    for i in (2, 1, 0):
        clip.value = i
        heat, *curves, legend = box.figure.data
        with torch.no_grad():
            spec = model.encoders["audio"].logmel(batch["audio"][i:i + 1])[0]  # (mels, frames)
        n_frames = spec.shape[-1]
        assert n_frames == 22 and np.allclose(np.asarray(heat.z), spec.numpy(), atol=1e-5)
        assert np.allclose(np.asarray(heat.x), [k * HOP for k in range(n_frames)])
        start, end = spans[i]
        expect_scores = []
        for curve, m in zip(curves, AUDIO_METHODS, strict=True):
            a = similarity_attribution(model, batch, i, i, "audio", other="text", method=m,
                                       steps=STEPS)
            mass, in_span, share = _in_span_by_loops(a.scores, start, end, n_frames)
            assert curve.name == m and np.allclose(curve.y, mass / mass.max())
            expect_scores.append(in_span)
        title = box.figure.layout.title.text
        assert title.startswith(f"clip {i}: {TEXTS[i]!r} | in-span grad_attention ")
        assert "integrated_gradients" in title and legend.name == "spoken caption"
        got = _numbers(title.split(" | ", 1)[1])
        assert got == pytest.approx([*expect_scores, share], abs=0.005 + 1e-9)
        bands = [s for s in box.figure.layout.shapes if s.type == "rect"]
        assert len(bands) == 2 and all((b.x0, b.x1) == (start, end) for b in bands)
