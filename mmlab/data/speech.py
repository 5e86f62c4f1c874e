"""Spoken words: the espeak-ng voice set, loading the shipped clips, and composing phrases.

The clips are single words synthesised by espeak-ng (formant synthesis; Duddington et al.) with
several voices, variants, speeds and pitches, resampled to 16 kHz and silence-trimmed by
`data/build_speech.py`. Voices are split into train / val / test sets that never overlap, so
test audio is always spoken by voices never heard in training.

Augmentation (`compose_phrases`), per sample:
  - words are joined with short silent gaps g ~ U(gap_s) (seconds);
  - the phrase is resampled by a factor f ~ U(speed) (linear interpolation; f > 1 is faster
    and higher-pitched), raised if needed so the phrase fits the output length;
  - it is placed at a random offset in a window of `length` samples (zeros elsewhere);
  - white noise is added at a signal-to-noise ratio SNR ~ U(snr_db) (in dB, measured over the
    phrase): σ_noise = sqrt(P_signal / 10^(SNR/10)).
"""

from __future__ import annotations

import functools
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mmlab.data.files import data_root, verified_path
from mmlab.data.words import VOCABULARY

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Voice:
    """One voice id: an espeak-ng voice, a variant, a speed (words/min) and a pitch (0-99)."""

    voice_id: str
    voice: str
    variant: str
    speed: int
    pitch: int
    split: str

    @property
    def espeak_name(self) -> str:
        """The `-v` argument (`en-us+f2`); espeak-ng ignores variants given as `en-gb+f3`."""
        return f"{self.voice}+{self.variant}"


VOICES: tuple[Voice, ...] = (
    Voice("v00", "en", "m1", 200, 50, "train"),
    Voice("v01", "en-us", "f2", 240, 60, "train"),
    Voice("v02", "en-gb-scotland", "m3", 210, 40, "train"),
    Voice("v03", "en-gb-x-rp", "f3", 240, 70, "train"),
    Voice("v04", "en-029", "m2", 210, 45, "train"),
    Voice("v05", "en-us-nyc", "f1", 230, 55, "train"),
    Voice("v06", "en-gb-x-gbclan", "m4", 210, 35, "train"),
    Voice("v07", "en-gb-x-gbcwmd", "f4", 240, 65, "train"),
    Voice("v08", "en-us", "m5", 200, 30, "train"),
    Voice("v09", "en", "m6", 220, 60, "train"),
    Voice("v10", "en-gb-x-rp", "m7", 210, 55, "val"),
    Voice("v11", "en-us", "f5", 240, 50, "val"),
    Voice("v12", "en-029", "m4", 210, 60, "val"),
    Voice("v13", "en-gb-scotland", "f1", 240, 60, "test"),
    Voice("v14", "en-us-nyc", "m2", 200, 40, "test"),
    Voice("v15", "en-gb-x-gbcwmd", "m3", 210, 50, "test"),
)
SPLITS: tuple[str, ...] = ("train", "val", "test")


def split_voices(split: str) -> list[Voice]:
    """The voices of one split ("train", "val" or "test"); the three sets are disjoint."""
    return [v for v in VOICES if v.split == split]


def clip_relpath(voice_id: str, word: str) -> str:
    """Where a clip lives relative to the data root: `speech/<voice_id>/<word>.wav`."""
    return f"speech/{voice_id}/{word}.wav"


def read_wav(path: str | Path) -> np.ndarray:
    """Read a 16-bit mono WAV as float32 in [-1, 1] (stdlib `wave`, no resampling)."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit mono WAV, got {w.getnchannels()} channels, "
                             f"{8 * w.getsampwidth()}-bit.")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return x.astype(np.float32) / 32768.0


@functools.lru_cache(maxsize=4)
def _load_clips(root: str) -> dict[tuple[str, str], np.ndarray]:
    clips = {}
    for v in VOICES:
        for word in VOCABULARY:
            path = verified_path(clip_relpath(v.voice_id, word), Path(root))
            clips[(v.voice_id, word)] = read_wav(path)
    return clips


def load_clips(root: str | Path | None = None) -> dict[tuple[str, str], np.ndarray]:
    """All word clips, `{(voice_id, word): float32 waveform}`, verified and cached per process.

    Raises:
        DataFileError: when a clip is missing or its checksum differs from the manifest.
    """
    return _load_clips(str(Path(root) if root is not None else data_root()))


def compose_phrases(phrases: list[list[np.ndarray]], length: int, rng: np.random.Generator, *,
                    speed: tuple[float, float] = (0.9, 1.1),
                    gap_s: tuple[float, float] = (0.01, 0.05),
                    snr_db: tuple[float, float] = (10.0, 30.0),
                    rate: int = SAMPLE_RATE) -> tuple[Tensor, dict[str, Tensor]]:
    """Join, resample, place and add noise to a batch of phrases (see the module docstring).

    Args:
        phrases: one list of word waveforms (float32 arrays) per sample.
        length: output length T in samples.
        rng: NumPy generator for gaps, speed factors, offsets, SNRs and the noise.
        speed, gap_s, snr_db: ranges of the uniform draws.
        rate: sample rate in Hz.
    Returns:
        `(audio, info)`: float32 `(B, T)` in [-1, 1], and per-sample float32 `(B,)` tensors
        `speed` (the factor f used), `snr_db`, `offset_s` and `duration_s` (phrase length after
        resampling).
    """
    B = len(phrases)
    audio = np.zeros((B, length), np.float32)  # (B, T)
    f = np.empty(B)
    out_len = np.empty(B, np.int64)
    offset = np.empty(B, np.int64)
    power = np.empty(B)
    for b, words in enumerate(phrases):
        parts = []
        for k, w in enumerate(words):
            if k:
                parts.append(np.zeros(int(rng.uniform(*gap_s) * rate), np.float32))
            parts.append(w)
        x = np.concatenate(parts)  # (L,)
        # speed up phrases that would not fit
        f[b] = max(rng.uniform(*speed), len(x) / (0.98 * length))
        out_len[b] = int((len(x) - 1) / f[b]) + 1
        offset[b] = int(rng.uniform(0, 1) * (length - out_len[b] + 1))
        # (L / f,) linear resampling
        y = np.interp(np.arange(out_len[b]) * f[b], np.arange(len(x)), x)
        audio[b, offset[b]:offset[b] + out_len[b]] = y
        power[b] = np.mean(y * y)
    snr = rng.uniform(*snr_db, size=B)  # (B,)
    sigma = np.sqrt(power / 10.0 ** (snr / 10.0)).astype(np.float32)  # (B,)
    noise = rng.standard_normal((B, length), dtype=np.float32)  # (B, T)
    noise *= sigma[:, None]
    audio += noise
    np.clip(audio, -1.0, 1.0, out=audio)
    info = {"speed": torch.from_numpy(f).float(), "snr_db": torch.from_numpy(snr).float(),
            "offset_s": torch.from_numpy(offset / rate).float(),
            "duration_s": torch.from_numpy(out_len / rate).float()}
    return torch.from_numpy(audio), info
