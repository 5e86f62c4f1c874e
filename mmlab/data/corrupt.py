"""Corrupting inputs on purpose: pixel noise, audio at a given SNR, and missing rows.

Robustness experiments (fusion under a corrupted or missing modality, notebook 06) need
corruptions that are easy to state and to reproduce:

- `gaussian_noise`: additive Gaussian pixel noise, then clipping back to the valid range,
      x̃ = clip(x + σ ε, lo, hi),   ε ~ N(0, 1) per pixel.
- `noise_at_snr`: additive white Gaussian noise at a given signal-to-noise ratio per clip,
      P_s = (1/T) Σ_t w_t²,   P_n = P_s / 10^(SNR/10),   w̃ = w + √P_n ε,
  so that 10 log10(P_s / P_n) = SNR dB (0 dB: noise as loud as the signal; −10 dB: ten times
  louder). This is the standard way speech is degraded in robustness benchmarks (e.g. the
  noisy-speech protocol of Aurora-2, Hirsch & Pearce, 2000).
- `missing_mask`: which rows lose a modality: exactly round(f·n) rows, chosen by a random
  permutation (the same generator seed gives nested masks as f grows).

Every function takes an optional `torch.Generator`, so an experiment draws the same noise on
every run.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mmlab._checks import check_finite_if_cheap, check_int, check_probability, check_tensor

__all__ = ["gaussian_noise", "noise_at_snr", "missing_mask"]


def _check_generator(generator: Any) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None, "
                        f"got {type(generator).__name__}.")
    return generator


def _standard_normal(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """ε ~ N(0, 1) of `shape`, drawn on the generator's device (or `like`'s) and moved to `like`."""
    dtype = like.dtype if like.dtype in (torch.float32, torch.float64) else torch.float32
    device = generator.device if generator is not None else like.device
    eps = torch.randn(shape, generator=generator, dtype=dtype, device=device)
    return eps.to(device=like.device, dtype=like.dtype)


def gaussian_noise(x: Tensor, sigma: float, *, generator: torch.Generator | None = None,
                   clip: tuple[float, float] | None = (0.0, 1.0)) -> Tensor:
    """Add Gaussian pixel noise and clip: `x̃ = clip(x + σ ε, lo, hi)`, ε ~ N(0, 1) per pixel.

    Args:
        x: images, float (B, C, H, W) or one image (C, H, W), in [0, 1] for the built-in datasets.
        sigma: noise standard deviation σ ≥ 0 (σ = 0 returns the clipped input).
        generator: random source for ε (None: the global RNG).
        clip: `(lo, hi)` range to clamp the result to, or None for no clipping.
    Returns:
        A new tensor of the shape, dtype and device of `x`.
    """
    check_tensor("x", x, what="of images (B, C, H, W) or (C, H, W)")
    if x.ndim not in (3, 4):
        raise ValueError(f"`x` must be images of shape (B, C, H, W) or one image (C, H, W), "
                         f"got shape {tuple(x.shape)} ({x.ndim}-D).")
    if (isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma)
            or sigma < 0):
        raise ValueError(f"`sigma` must be a finite number ≥ 0 (the noise standard deviation), "
                         f"got {sigma!r}.")
    if clip is not None:
        ok = (isinstance(clip, (tuple, list)) and len(clip) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in clip))
        if not ok or not clip[0] < clip[1]:
            raise ValueError(f"`clip` must be None or a pair (lo, hi) with lo < hi, e.g. (0, 1); "
                             f"got {clip!r}.")
    _check_generator(generator)
    check_finite_if_cheap("x", x)
    noisy = x + sigma * _standard_normal(x.shape, x, generator)  # same shape as x
    return noisy if clip is None else noisy.clamp(float(clip[0]), float(clip[1]))


def noise_at_snr(wave: Tensor, snr_db: float, *,
                 generator: torch.Generator | None = None) -> Tensor:
    """Add white Gaussian noise at `snr_db` dB per clip: `w̃ = w + √(P_s / 10^(SNR/10)) ε`.

    `P_s = mean_t w_t²` is each clip's own power (silence included), so every clip gets noise of
    power `P_n = P_s / 10^(SNR/10)` and the expected SNR, `10 log10(P_s / P_n)`, is `snr_db`. A
    silent clip (P_s = 0) gets no noise.

    Args:
        wave: waveforms, float (B, T), or one clip (T,).
        snr_db: the signal-to-noise ratio in dB, any finite number (negative: noise louder).
        generator: random source for ε (None: the global RNG).
    Returns:
        A new tensor of the shape, dtype and device of `wave`.
    """
    check_tensor("wave", wave, what="of waveforms (B, T) or one clip (T,)")
    if wave.ndim not in (1, 2):
        raise ValueError(f"`wave` must be waveforms of shape (B, T) or one clip (T,), got shape "
                         f"{tuple(wave.shape)} ({wave.ndim}-D).")
    if (isinstance(snr_db, bool) or not isinstance(snr_db, (int, float))
            or not math.isfinite(snr_db)):
        raise ValueError(f"`snr_db` must be a finite number of decibels (e.g. 0 or -10), "
                         f"got {snr_db!r}.")
    _check_generator(generator)
    check_finite_if_cheap("wave", wave)
    clips = wave if wave.ndim == 2 else wave[None]  # (B, T)
    power = clips.pow(2).mean(dim=1, keepdim=True)  # (B, 1) P_s per clip
    noise_std = (power / 10 ** (snr_db / 10)).sqrt()  # (B, 1) √P_n per clip
    noisy = clips + noise_std * _standard_normal(clips.shape, clips, generator)  # (B, T)
    return noisy if wave.ndim == 2 else noisy[0]


def missing_mask(n: int, fraction: float, *, generator: torch.Generator | None = None) -> Tensor:
    """A boolean mask of `n` rows, True for the `round(fraction · n)` rows that are missing.

    The missing rows are the first `round(fraction · n)` entries of `torch.randperm(n, generator)`
    (Python's `round`, half to even), so generators in the same state give nested masks: every row
    missing at a fraction f is also missing at any f' > f. Use `~mask` as a `present` mask.

    Args:
        n: number of rows, an int ≥ 1.
        fraction: the fraction of rows to mark missing, in [0, 1].
        generator: random source for the permutation (None: the global RNG).
    Returns:
        (n,) bool tensor on the generator's device (the CPU by default), True = missing.
    """
    check_int("n", n)
    check_probability("fraction", fraction)
    _check_generator(generator)
    device = generator.device if generator is not None else torch.device("cpu")
    order = torch.randperm(n, generator=generator, device=device)  # (n,)
    mask = torch.zeros(n, dtype=torch.bool, device=device)  # (n,)
    mask[order[: int(round(fraction * n))]] = True
    return mask
