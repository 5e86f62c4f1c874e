"""Real human speech: the Free Spoken Digit Dataset (FSDD).

3,000 recordings of the digits 0 to 9, 50 takes of each digit by each of 6 speakers with
different accents, 8 kHz mono (Zohar Jackson et al., "Jakobovski/free-spoken-digit-dataset",
Zenodo, doi:10.5281/zenodo.1342401; CC BY-SA 4.0: see `data/fsdd/LICENSE.md`). It is the audio
half of AV-MNIST, the audio-visual digits benchmark of MultiBench (Liang et al., 2021).

Shipped as lossless FLAC under `data/fsdd/` (built by `data/build_fsdd.py`) and verified against
`data/fsdd/manifest.json` (sha256) once per process. On load every recording is

    fitted to 1 s at 8 kHz (8,000 samples): left-aligned and zero-padded; the 20 takes longer
                               than 1 s (up to 2.3 s) keep their middle second;
    upsampled 8 kHz → 16 kHz:  x₁₆ = resample_poly(x₈, up=2, down=1), T = 16,000 samples
                               (one batched call: scipy's polyphase FIR with a Kaiser window,
                               no per-sample Python loop).

Splits. `split_by="speaker"` (the default) holds speakers out: train = george, jackson, lucas,
yweweler; val = theo; test = nicolas, so val and test speech comes from voices never heard in
training. `split_by="take"` is FSDD's own convention: takes 0–4 of every speaker are test; we
take 5–9 as val and 10–49 as train. No recording is in two splits either way.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly
from torch import Tensor

from mmlab._checks import check_choice
from mmlab.data.files import data_root, read_manifest, verified_path

SOURCE_RATE = 8_000
TARGET_RATE = 16_000  # mmlab.data.SAMPLE_RATE
SECONDS = 1.0  # every clip is fitted to this duration
SPEAKERS: tuple[str, ...] = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
SPEAKER_SPLITS: dict[str, tuple[str, ...]] = {"train": ("george", "jackson", "lucas", "yweweler"),
                                              "val": ("theo",), "test": ("nicolas",)}
TAKE_SPLITS: dict[str, range] = {"train": range(10, 50), "val": range(5, 10), "test": range(0, 5)}
SPLIT_BY = ("speaker", "take")
REBUILD = "python data/build_fsdd.py [path to FSDD]"


def upsample(x: np.ndarray) -> np.ndarray:
    """8 kHz → 16 kHz along the last axis: `resample_poly(x, 2, 1)` (polyphase, anti-imaging FIR)."""
    return resample_poly(x, TARGET_RATE // SOURCE_RATE, 1, axis=-1).astype(np.float32)


def fit_length(x: np.ndarray, lengths: np.ndarray, length: int) -> np.ndarray:
    """(N, L) padded rows with true `lengths` → (N, length): left-aligned, long rows keep their middle."""
    out = np.zeros((x.shape[0], length), np.float32)
    start = np.maximum((lengths - length) // 2, 0)  # (N,) 0 unless the row is too long
    cols = np.arange(length)[None, :] + start[:, None]  # (N, length) source columns
    valid = cols < np.minimum(lengths, x.shape[1])[:, None]
    out[valid] = x[np.nonzero(valid)[0], cols[valid]]
    return out


class Recordings:
    """All FSDD recordings at 16 kHz: `audio` (3000, 16000), `digit`, `speaker`, `take`, `names`."""

    def __init__(self, audio: Tensor, digit: Tensor, speaker: Tensor, take: Tensor, names: list[str],
                 speakers: dict[str, dict[str, str]]):
        self.audio, self.digit, self.speaker, self.take = audio, digit, speaker, take
        self.names = names  # "7_theo_12.flac", the file each row came from
        self.speakers = speakers  # FSDD's metadata: gender, accent, language per speaker

    def in_split(self, split: str, split_by: str = "speaker") -> Tensor:
        """Indices (sorted) of the recordings of `split` ("train", "val", "test")."""
        check_choice("split_by", split_by, SPLIT_BY)
        if split_by == "speaker":
            ids = torch.tensor([SPEAKERS.index(s) for s in SPEAKER_SPLITS[split]])
            keep = torch.isin(self.speaker, ids)
        else:
            keep = torch.isin(self.take, torch.tensor(list(TAKE_SPLITS[split])))
        return keep.nonzero().flatten()


@functools.lru_cache(maxsize=2)
def _load(root: str) -> Recordings:
    root_path = Path(root)
    manifest = read_manifest(root_path, REBUILD)
    names = sorted(manifest["files"], key=lambda n: (int(n.split("_")[0]), n))
    waves, lengths = [], np.empty(len(names), np.int64)
    for i, name in enumerate(names):  # file I/O is per file; the signal processing below is batched
        x, rate = sf.read(verified_path(name, root_path, REBUILD), dtype="float32")
        if rate != SOURCE_RATE or x.ndim != 1:
            raise ValueError(f"{root_path / name}: expected 8 kHz mono, got {rate} Hz, shape {x.shape}. "
                             f"Rebuild with `{REBUILD}`.")
        waves.append(x)
        lengths[i] = len(x)
    padded = np.zeros((len(names), int(lengths.max())), np.float32)  # (N, L₈)
    for i, x in enumerate(waves):
        padded[i, :len(x)] = x
    audio = upsample(fit_length(padded, lengths, int(SECONDS * SOURCE_RATE)))  # (N, 8000) → (N, 16000)
    parts = [n[:-len(".flac")].split("_") for n in names]
    return Recordings(audio=torch.from_numpy(audio),
                      digit=torch.tensor([int(p[0]) for p in parts]),
                      speaker=torch.tensor([SPEAKERS.index(p[1]) for p in parts]),
                      take=torch.tensor([int(p[2]) for p in parts]),
                      names=names, speakers=manifest.get("speakers", {}))


def load_recordings(root: str | Path | None = None) -> Recordings:
    """Every FSDD recording, verified, at 16 kHz and 1 s; cached per process.

    Args:
        root: the data directory (default `mmlab.data.data_root()`); the files are in `root/fsdd/`.
    Raises:
        DataFileError: a file is missing or its sha256 differs from `fsdd/manifest.json`.
    """
    return _load(str((Path(root) if root is not None else data_root()) / "fsdd"))


def pair_within_class(labels: np.ndarray, pool: Tensor, pool_digit: Tensor,
                      rng: np.random.Generator) -> np.ndarray:
    """For each label, a recording of `pool` with the same digit; distinct while the class has enough.

    Each class's recordings are shuffled by `rng` and dealt in turn to that class's samples (a
    recording repeats only when a class has more samples than recordings).
    Returns:
        (N,) indices into the recordings (rows of `Recordings`).
    """
    out = np.empty(len(labels), np.int64)
    pool, pool_digit = pool.numpy(), pool_digit.numpy()
    for c in np.unique(labels):
        rows = np.nonzero(labels == c)[0]
        candidates = pool[pool_digit == c]
        if len(candidates) == 0:
            raise ValueError(f"no recording of the digit {c} in this split; rebuild data/fsdd.")
        dealt = candidates[rng.permutation(len(candidates))]
        out[rows] = dealt[np.arange(len(rows)) % len(dealt)]
    return out
