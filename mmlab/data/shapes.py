"""`shapes`: a procedural shapes world with image, caption and spoken caption.

Each sample is one coloured shape on a noisy background, 32x32 RGB, with known generative
factors (colour, shape, size, row, col), in the spirit of dSprites (Matthey et al., 2017) and
CLEVR (Johnson et al., CVPR 2017). The caption describes the factors through templates and
synonyms; a fixed subset of templates and synonyms is held out (`templates="heldout"`), so
retrieval can be tested on wordings never seen in training. The audio speaks a short canonical
wording, "<size> <colour> <shape> <row> <col>" (e.g. "small red circle top left"), because
full captions do not fit a 2 s clip; it is composed from the shipped word clips
(`mmlab.data.speech`) with the split's voices.

Rendering: a shape of half-extent r (size) centred at a grid cell (row, col) plus jitter,
rotated by θ ~ U(0, 2π), is rasterised at 2x resolution and box-filtered, giving coverage
α ∈ [0, 1]; image = (background + noise)·(1 − α) + colour·α. `bbox` = (x0, y0, x1, y1) in pixels,
the smallest box holding every pixel with α > 0 (x1, y1 exclusive).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mmlab._checks import check_choice, check_int, check_positive
from mmlab.data.dataset import MultimodalDataset
from mmlab.data.limits import MAX_CLIP_SECONDS, check_at_most, check_dataset_bytes
from mmlab.data.registry import SPLITS, register
from mmlab.data.speech import (SAMPLE_RATE, VOICES, compose_phrases, load_clips,
                               split_voices)
from mmlab.data.words import COLOURS, COLS, ROWS, SHAPES, SIZES, VOCABULARY, WORD_ID

IMAGE_SIZE = 32
DEFAULT_N = {"train": 2000, "val": 500, "test": 500}
AUDIO_SECONDS = 2.0

COLOUR_RGB = {"red": (0.9, 0.1, 0.1), "green": (0.1, 0.75, 0.2), "blue": (0.15, 0.35, 0.95),
              "yellow": (0.95, 0.9, 0.1), "purple": (0.6, 0.2, 0.8), "orange": (1.0, 0.55, 0.05)}
HALF_EXTENT = (3.0, 4.5, 6.0)  # pixels, per size
CELL_CENTRE = (7.5, 16.0, 24.5)  # pixels, per row (y) and per col (x)
JITTER = 1.0  # pixels, uniform ± on each axis

# Captions: (train wordings, held-out wordings) per factor value.
SIZE_WORDS = {"small": (["small", "little"], ["tiny"]),
              "medium": (["medium", "medium-sized"], ["mid-sized"]),
              "large": (["large", "big"], ["huge"])}
COLOUR_WORDS = {"red": (["red"], ["crimson"]), "green": (["green"], ["emerald"]),
                "blue": (["blue"], ["azure"]), "yellow": (["yellow"], ["golden"]),
                "purple": (["purple"], ["violet"]), "orange": (["orange"], ["amber"])}
SHAPE_WORDS = {"circle": (["circle", "disc"], ["round blob"]),
               "square": (["square", "box"], ["block"]),
               "triangle": (["triangle"], ["three-sided shape"]),
               "cross": (["cross", "plus sign"], ["plus"]),
               "star": (["star"], ["five-pointed star"])}
ROW_WORDS = {"top": (["top", "upper"], ["top"]), "middle": (["middle"], ["middle"]),
             "bottom": (["bottom", "lower"], ["bottom"])}
COL_WORDS = {"left": (["left"], ["left"]), "center": (["center", "middle"], ["center"]),
             "right": (["right"], ["right"])}
TRAIN_TEMPLATES: tuple[str, ...] = (
    "a {size} {colour} {shape} in the {row} {col}",
    "{colour} {shape}, {size}, {row} {col}",
    "there is a {size} {colour} {shape} at the {row} {col}",
    "{size} {colour} {shape} {row} {col}",
    "a {colour} {shape} ({size}) in the {row} {col}",
)
HELDOUT_TEMPLATES: tuple[str, ...] = (
    "{row} row, {col} column: one {size} {shape} coloured {colour}",
    "the picture shows a {colour} {shape} that is {size}, located in the {row} row and "
    "{col} column",
)
TEMPLATE_MODES = ("train", "heldout", "all")


def _shape_mask(kind: int, u: Tensor, v: Tensor, r: Tensor) -> Tensor:
    """Inside-test in the shape's own rotated frame (u, v); r is the half-extent, broadcastable."""
    name = SHAPES[kind]
    if name == "circle":
        return u.square() + v.square() <= r.square()
    if name == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.85 * r
    if name == "triangle":  # equilateral, circumradius r, inradius r/2
        inside = torch.ones_like(u, dtype=torch.bool)
        for k in range(3):
            a = math.pi / 2 + 2 * math.pi * k / 3
            inside &= u * math.cos(a) + v * math.sin(a) <= r / 2
        return inside
    if name == "cross":
        arm = 0.33 * r
        return ((u.abs() <= r) & (v.abs() <= arm)) | ((v.abs() <= r) & (u.abs() <= arm))
    if name == "star":  # five points of radius r, inner radius 0.45 r, radius linear in angle
        sector = 2 * math.pi / 5
        phi = torch.remainder(torch.atan2(v, u) - math.pi / 2, sector)
        beta = (phi - sector / 2).abs() / (sector / 2)  # 1 at a point, 0 between points
        return u.square() + v.square() <= (r * (0.45 + 0.55 * beta)).square()
    raise AssertionError(name)


def render_shapes(shape: Tensor, colour: Tensor, size: Tensor, cx: Tensor, cy: Tensor,
                  theta: Tensor, background: Tensor, generator: torch.Generator,
                  noise_std: float = 0.04,
                  colour_jitter: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Rasterise a batch of shapes (see the module docstring).

    Args:
        shape, colour, size: int64 `(B,)` factor ids.
        cx, cy: float `(B,)` centres in pixels; theta: `(B,)` rotations in radians.
        background: float `(B,)` grey level of the background.
        generator: torch generator for the background noise.
        noise_std: standard deviation of the per-pixel background noise.
        colour_jitter: float `(B, 3)` added to the colour, or None.
    Returns:
        `(images, bbox)`: float32 `(B, 3, 32, 32)` in [0, 1] and float32 `(B, 4)` (x0, y0, x1, y1).
    """
    B, S, ss = shape.shape[0], IMAGE_SIZE, 2
    grid = (torch.arange(S * ss, dtype=torch.float32) + 0.5) / ss  # (2S,) sub-pixel centres
    Y, X = grid[:, None], grid[None, :]  # (2S, 1), (1, 2S)
    r = torch.tensor(HALF_EXTENT)[size].float()  # (B,)
    mask = torch.zeros(B, S * ss, S * ss, dtype=torch.bool)
    for k in range(len(SHAPES)):
        sel = (shape == k).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        dx = X[None] - cx[sel, None, None]  # (b, 2S, 2S)
        dy = Y[None] - cy[sel, None, None]
        c, s = theta[sel].cos()[:, None, None], theta[sel].sin()[:, None, None]
        u, v = c * dx + s * dy, -s * dx + c * dy  # rotated frame
        mask[sel] = _shape_mask(k, u, v, r[sel, None, None])
    alpha = mask.float().reshape(B, S, ss, S, ss).mean((2, 4))  # (B, S, S) coverage
    rgb = torch.tensor([COLOUR_RGB[c] for c in COLOURS])[colour]  # (B, 3)
    if colour_jitter is not None:
        rgb = rgb + colour_jitter
    noise = torch.randn(B, 3, S, S, generator=generator)  # (B, 3, S, S)
    bg = background[:, None, None, None] + noise_std * noise  # (B, 3, S, S)
    images = bg * (1 - alpha[:, None]) + rgb[:, :, None, None] * alpha[:, None]  # (B, 3, S, S)
    images = images.clamp(0.0, 1.0)
    on = alpha > 0  # (B, S, S)
    cols, rows = on.any(1), on.any(2)  # (B, S) x and y occupancy
    idx = torch.arange(S)
    x0 = torch.where(cols, idx, S).amin(1)
    x1 = torch.where(cols, idx, -1).amax(1) + 1
    y0 = torch.where(rows, idx, S).amin(1)
    y1 = torch.where(rows, idx, -1).amax(1) + 1
    bbox = torch.stack([x0, y0, x1, y1], 1).float()  # (B, 4)
    return images, bbox


def _fix_articles(text: str) -> str:
    return re.sub(r"\ba ([aeiou])", r"an \1", text)


def make_captions(factors: dict[str, np.ndarray], templates: str,
                  rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Caption every sample from templates and synonyms.

    Args:
        factors: `{"size", "colour", "shape", "row", "col"}` int arrays (N,).
        templates: "train" (training wordings), "heldout" (held-out templates and synonyms) or
            "all".
        rng: NumPy generator.
    Returns:
        `(captions, template_id)`: template ids index `TRAIN_TEMPLATES + HELDOUT_TEMPLATES`.
    """
    n = len(factors["shape"])
    n_train = len(TRAIN_TEMPLATES)
    all_templates = TRAIN_TEMPLATES + HELDOUT_TEMPLATES
    if templates == "train":
        tid = rng.integers(0, n_train, size=n)
    elif templates == "heldout":
        tid = rng.integers(n_train, len(all_templates), size=n)
    else:
        tid = rng.integers(0, len(all_templates), size=n)
    pick = rng.random(size=(n, 5))  # one uniform per slot, mapped onto the synonym list
    captions = []
    for j in range(n):
        held = int(tid[j] >= n_train)
        slots = {}
        for s, (key, table, names) in enumerate((("size", SIZE_WORDS, SIZES),
                                                 ("colour", COLOUR_WORDS, COLOURS),
                                                 ("shape", SHAPE_WORDS, SHAPES),
                                                 ("row", ROW_WORDS, ROWS),
                                                 ("col", COL_WORDS, COLS))):
            options = table[names[factors[key][j]]][held]
            slots[key] = options[int(pick[j, s] * len(options))]
        captions.append(_fix_articles(all_templates[tid[j]].format(**slots)))
    return captions, tid


@register("shapes")
def load_shapes(split: str = "train", n: int | None = None, seed: int = 0, templates: str = "train",
                audio: bool = True, audio_seconds: float = AUDIO_SECONDS,
                root: str | Path | None = None) -> MultimodalDataset:
    """The shapes world: image (N, 3, 32, 32), text, audio (N, 32000) at 16 kHz.

    Args:
        split: "train", "val" or "test"; selects the random stream and the voices (disjoint per
            split).
        n: number of samples (default 2000 / 500 / 500 for train / val / test).
        seed: base seed; the same (split, n, seed, options) give the same bytes.
        templates: caption wordings, "train", "heldout" (never used by "train") or "all".
        audio: include the spoken caption (set False for a faster, image+text dataset).
        audio_seconds: clip length, at most MAX_CLIP_SECONDS; phrases longer than this are sped
            up to fit.
        root: data directory holding the speech clips (default `mmlab.data.data_root()`).
    Returns:
        A `MultimodalDataset` with label = shape id, factors colour/shape/size/row/col,
        batch extra `"bbox"` (B, 4) and `meta["sample"]` with per-sample `voice` (index into
        `meta["voices"]`), `words` (N, 5) word ids into `meta["vocabulary"]`, `template`, `speed`,
        `snr_db`.
    Raises:
        ValueError: for a bad option, or `n` and `audio_seconds` that would need more than
            MAX_DATASET_BYTES (mmlab.data.limits).
    """
    check_choice("split", split, SPLITS)
    check_choice("templates", templates, TEMPLATE_MODES)
    n = DEFAULT_N[split] if n is None else check_int("n", n)
    check_int("seed", seed, minimum=0)
    audio_seconds = check_positive("audio_seconds", audio_seconds)
    check_at_most("audio_seconds", audio_seconds, MAX_CLIP_SECONDS, "MAX_CLIP_SECONDS")
    per_sample = 3 * IMAGE_SIZE**2 + (round(audio_seconds * SAMPLE_RATE) if audio else 0)
    check_dataset_bytes(n, 4 * per_sample, "`n` and `audio_seconds`")  # float32 images and audio
    rng = np.random.default_rng([seed, SPLITS.index(split), 0x5A])
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    f = {k: rng.integers(0, len(v), size=n) for k, v in
         (("colour", COLOURS), ("shape", SHAPES), ("size", SIZES), ("row", ROWS), ("col", COLS))}
    ft = {k: torch.from_numpy(v).long() for k, v in f.items()}
    centre = torch.tensor(CELL_CENTRE)
    jitter = torch.from_numpy(rng.uniform(-JITTER, JITTER, size=(n, 2))).float()
    cx, cy = centre[ft["col"]] + jitter[:, 0], centre[ft["row"]] + jitter[:, 1]
    theta = torch.from_numpy(rng.uniform(0, 2 * math.pi, size=n)).float()
    background = torch.from_numpy(rng.uniform(0.05, 0.3, size=n)).float()
    cjit = torch.from_numpy(rng.uniform(-0.05, 0.05, size=(n, 3))).float()
    images, bbox = render_shapes(ft["shape"], ft["colour"], ft["size"], cx, cy, theta, background,
                                 gen, colour_jitter=cjit)
    captions, tid = make_captions(f, templates, rng)

    voices = split_voices(split)
    voice_global = np.array([VOICES.index(v) for v in voices])[rng.integers(0, len(voices), size=n)]
    spoken = np.stack([f["size"], f["colour"], f["shape"], f["row"], f["col"]], 1)  # (N, 5) ids
    names = (SIZES, COLOURS, SHAPES, ROWS, COLS)
    words = np.array([[WORD_ID[names[k][spoken[j, k]]] for k in range(5)]
                      for j in range(n)])  # (N, 5)
    modalities = {"image": images}
    sample = {"voice": torch.from_numpy(voice_global).long(),
              "words": torch.from_numpy(words).long(),
              "template": torch.from_numpy(tid).long(), "centre": torch.stack([cx, cy], 1),
              "theta": theta}
    if audio:
        clips = load_clips(root)
        phrases = [[clips[(VOICES[voice_global[j]].voice_id, names[k][spoken[j, k]])]
                    for k in range(5)]
                   for j in range(n)]
        wave, info = compose_phrases(phrases, int(round(audio_seconds * SAMPLE_RATE)), rng)
        modalities["audio"] = wave
        sample.update(info)
    modalities["text"] = captions
    meta = {"name": "shapes", "split": split, "seed": seed, "templates": templates,
            "voices": [v.voice_id for v in VOICES], "split_voices": [v.voice_id for v in voices],
            "vocabulary": list(VOCABULARY),
            "template_strings": list(TRAIN_TEMPLATES + HELDOUT_TEMPLATES),
            "sample_rate": SAMPLE_RATE, "extras": {"bbox": bbox}, "sample": sample}
    return MultimodalDataset(modalities, label=ft["shape"].clone(), factors=ft,
                             classes=list(SHAPES), meta=meta)
