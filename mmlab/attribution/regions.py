"""Scoring a map against ground truth: the attribution mass inside a box (image) or a span (time).

A synthetic dataset knows where its evidence is: `shapes` knows the bounding box of the shape it
drew and when, in the clip, the caption is spoken. An explanation is then judged by how much of
its positive mass falls in that region, against the region's share of the input (the score of a
map spread uniformly). This is the "pointing game" of Zhang et al. 2016 ("Top-down Neural
Attention by Excitation Backprop") made continuous, as in the energy-based pointing game of
Wang et al. 2020 ("Score-CAM").

- images: `attribution_in_box` and `box_share` (pixels), `upsample_to_image` for patch grids;
- audio: `attribution_in_span` and `span_share` (spectrogram frames; frame k is centred at
  k · hop_seconds, as in a centred STFT, and covers [(k − ½)·hop, (k + ½)·hop)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mmlab._checks import (check_choice, check_finite_if_cheap, check_int, check_positive,
                           check_tensor)

__all__ = ["box_share", "attribution_in_box", "upsample_to_image", "span_share",
           "attribution_in_span"]


def _check_bbox(bbox: Any) -> tuple[float, float, float, float]:
    if isinstance(bbox, Tensor):
        bbox = bbox.detach().flatten().tolist()
    try:
        x0, y0, x1, y1 = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise TypeError(f"`bbox` must be 4 numbers (x0, y0, x1, y1) in pixels, "
                        f"got {bbox!r}.") from None
    if not (x1 >= x0 and y1 >= y0):
        raise ValueError(f"`bbox` must have x1 ≥ x0 and y1 ≥ y0 (x0, y0, x1, y1), "
                         f"got {(x0, y0, x1, y1)}.")
    return x0, y0, x1, y1


def _pixel_coverage(bbox: tuple[float, float, float, float], H: int, W: int,
                    dtype: torch.dtype = torch.float64) -> Tensor:
    """Fraction of each pixel [c, c+1) × [r, r+1) covered by the box: (H, W) in [0, 1]."""
    x0, y0, x1, y1 = bbox
    cols = torch.arange(W, dtype=dtype)
    rows = torch.arange(H, dtype=dtype)
    cover_x = (torch.clamp(cols + 1, max=x1) - torch.clamp(cols, min=x0)).clamp(0, 1)  # (W,)
    cover_y = (torch.clamp(rows + 1, max=y1) - torch.clamp(rows, min=y0)).clamp(0, 1)  # (H,)
    return cover_y[:, None] * cover_x[None, :]  # (H, W)


def box_share(bbox: Any, H: int, W: int) -> float:
    """The box's share of the image: area(box ∩ image) / (H·W), the score of a uniform map.

    Args:
        bbox: (x0, y0, x1, y1) in pixels (x to the right, y down; pixel (r, c) is
            [c, c+1)×[r, r+1)).
        H: image height in pixels. W: image width in pixels.
    Returns:
        A float in [0, 1].
    """
    check_int("H", H)
    check_int("W", W)
    return float(_pixel_coverage(_check_bbox(bbox), H, W).sum()) / (H * W)


def attribution_in_box(attr_map: Tensor, bbox: Any) -> float:
    """Share of the positive attribution mass that falls inside a bounding box.

    in_box = Σ_p a_p⁺ · cover_p / Σ_p a_p⁺,

    where cover_p ∈ [0, 1] is the fraction of pixel p inside the box (fractional boxes are
    handled exactly). A map spread uniformly scores `box_share(bbox, H, W)`; a good
    explanation of an object scores well above it. Upsample patch maps first
    (`upsample_to_image`).

    Args:
        attr_map: (H, W) attribution map in pixels.
        bbox: (x0, y0, x1, y1) in pixels (the shapes dataset's `bbox[i]`).
    Returns:
        A float in [0, 1]; NaN when the map has no positive mass.
    """
    check_tensor("attr_map", attr_map, ndim=2, what="of shape (H, W)")
    H, W = attr_map.shape
    positive = attr_map.detach().to(torch.float64).cpu().clamp(min=0)  # (H, W)
    total = float(positive.sum())
    if total == 0.0:
        return float("nan")
    return float((positive * _pixel_coverage(_check_bbox(bbox), H, W)).sum()) / total


def _check_image_size(image_size: Any) -> tuple[int, int]:
    """H (square) or (H, W): positive ints (not bools, floats or strings)."""
    def is_size(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    if is_size(image_size):
        return (image_size, image_size)
    if isinstance(image_size, Sequence) and not isinstance(image_size, str) \
            and len(image_size) == 2 and all(is_size(v) for v in image_size):
        return (image_size[0], image_size[1])
    kind = (TypeError if not isinstance(image_size, (int, Sequence))
            or isinstance(image_size, (bool, str)) else ValueError)
    raise kind(f"`image_size` must be a positive int H or a pair (H, W) of positive ints, "
               f"got {image_size!r}.")


def upsample_to_image(patch_scores: Tensor, image_size: int | tuple[int, int],
                      mode: str = "nearest") -> Tensor:
    """Spread a patch grid (h, w) (or (B, h, w)) over the image's pixels (H, W).

    "nearest" gives every pixel its patch's score (when H, W are multiples of h, w the mass
    per patch is preserved up to the factor H·W/(h·w)); "bilinear" is smoother for display.

    Args:
        patch_scores: (h, w) or (B, h, w).
        image_size: H (square) or (H, W), positive ints.
        mode: "nearest" or "bilinear".
    Returns:
        (H, W) or (B, H, W).
    """
    check_tensor("patch_scores", patch_scores)
    if patch_scores.ndim not in (2, 3):
        raise ValueError(f"`patch_scores` must be (h, w) or (B, h, w), "
                         f"got shape {tuple(patch_scores.shape)}.")
    check_choice("mode", mode, ("nearest", "bilinear"))
    check_finite_if_cheap("patch_scores", patch_scores)
    size = _check_image_size(image_size)
    grid = patch_scores if patch_scores.ndim == 3 else patch_scores[None]  # (B, h, w)
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    up = F.interpolate(grid[:, None], size=size, mode=mode, **kwargs)[:, 0]  # (B, H, W)
    return up if patch_scores.ndim == 3 else up[0]


def _check_seconds(name: str, value: Any) -> float:
    """A finite time in seconds: an int, a float or a one-element tensor (e.g. `offset_s[i]`)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"`{name}` must be a single time in seconds, "
                             f"got a tensor of shape {tuple(value.shape)}.")
        value = float(value.detach())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a time in seconds (a number), "
                        f"got {type(value).__name__}.")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite time in seconds, got {value}.")
    return float(value)


def _check_span(start_s: Any, end_s: Any) -> tuple[float, float]:
    start, end = _check_seconds("start_s", start_s), _check_seconds("end_s", end_s)
    if end < start:
        raise ValueError(f"`end_s` must be ≥ `start_s` (the span is [start_s, end_s) in seconds), "
                         f"got start_s={start}, end_s={end}. "
                         "For a spoken phrase pass (offset_s, offset_s + duration_s).")
    return start, end


def _frame_coverage(start: float, end: float, n_frames: int, hop_seconds: float,
                    dtype: torch.dtype = torch.float64) -> Tensor:
    """Fraction of each frame's cell [(k − ½)·hop, (k + ½)·hop) inside [start, end):
    (frames,) in [0, 1]."""
    k = torch.arange(n_frames, dtype=dtype)  # (frames,)
    lo, hi = (k - 0.5) * hop_seconds, (k + 0.5) * hop_seconds  # (frames,) cell edges in seconds
    # (frames,) seconds inside the span
    overlap = torch.clamp(hi, max=end) - torch.clamp(lo, min=start)
    return (overlap / hop_seconds).clamp(0.0, 1.0)  # (frames,)


def span_share(start_s: float, end_s: float, n_frames: int, *, hop_seconds: float = 0.01) -> float:
    """The span's share of the clip's frames, the in-span score of a map spread uniformly.

    span_share = Σ_k cover_k / n_frames,
        cover_k = |[start, end) ∩ [(k − ½)·hop, (k + ½)·hop)| / hop

    (frame k of a centred STFT sits at k·hop; partly covered frames count fractionally).

    Args:
        start_s: start of the span in seconds (e.g. `offset_s` of a spoken phrase).
        end_s: end of the span in seconds, ≥ start_s (e.g. `offset_s + duration_s`).
        n_frames: number of spectrogram frames of the clip (`1 + samples // hop_length`).
        hop_seconds: seconds between frames (hop_length / sample_rate; 160 / 16000 = 0.01).
    Returns:
        A float in [0, 1].
    """
    start, end = _check_span(start_s, end_s)
    check_int("n_frames", n_frames)
    hop = check_positive("hop_seconds", hop_seconds)
    return float(_frame_coverage(start, end, n_frames, hop).sum()) / n_frames


def attribution_in_span(frame_scores: Tensor, start_s: float, end_s: float, *,
                        hop_seconds: float = 0.01) -> float:
    """Share of the positive attribution mass that falls inside a time span [start_s, end_s).

    in_span = Σ_{m,k} a⁺_{m,k} · cover_k / Σ_{m,k} a⁺_{m,k},

    the time analogue of `attribution_in_box`: like a pixel there, each (mel, frame) cell keeps
    only its positive part a⁺ = max(a, 0), and cover_k ∈ [0, 1] is the fraction of frame k inside
    the span (see `span_share`). A map spread uniformly scores `span_share(start_s, end_s, frames)`;
    a good explanation of a spoken caption scores well above it.

    Args:
        frame_scores: (frames,) per-frame scores (attention methods) or a (mels, frames) map
            (gradient methods), e.g. `similarity_attribution(..., "audio").scores`.
        start_s: start of the span in seconds.
        end_s: end of the span in seconds, ≥ start_s.
        hop_seconds: seconds between frames (hop_length / sample_rate; 160 / 16000 = 0.01).
    Returns:
        A float in [0, 1]; NaN when the map has no positive mass.
    """
    check_tensor("frame_scores", frame_scores)
    if frame_scores.ndim not in (1, 2):
        raise ValueError(f"`frame_scores` must be (frames,) or (mels, frames), "
                         f"got shape {tuple(frame_scores.shape)}.")
    check_finite_if_cheap("frame_scores", frame_scores)
    start, end = _check_span(start_s, end_s)
    hop = check_positive("hop_seconds", hop_seconds)
    # (frames,) or (mels, frames)
    positive = frame_scores.detach().to(torch.float64).cpu().clamp(min=0)
    per_frame = positive if positive.ndim == 1 else positive.sum(dim=0)  # (frames,)
    total = float(per_frame.sum())
    if total == 0.0:
        return float("nan")
    return float((per_frame * _frame_coverage(start, end, per_frame.numel(), hop)).sum()) / total
