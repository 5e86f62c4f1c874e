"""Real human speech: the Free Spoken Digit Dataset (FSDD).

3,000 recordings of the digits 0 to 9, 50 takes of each digit by each of 6 speakers with
different accents, 8 kHz mono (Zohar Jackson et al., "Jakobovski/free-spoken-digit-dataset",
Zenodo, doi:10.5281/zenodo.1342401; CC BY-SA 4.0: see `data/fsdd/LICENSE.md`). It is the audio
half of AV-MNIST, the audio-visual digits benchmark of MultiBench (Liang et al., 2021).

Shipped as lossless FLAC under `data/fsdd/` (built by `data/build_fsdd.py`). A recording is read
only when a dataset pairs it, verified against `data/fsdd/manifest.json` (sha256) once per
process, and

    fitted to 1 s at 8 kHz (8,000 samples): left-aligned and zero-padded; the 20 takes longer
                               than 1 s (up to 2.3 s) keep their middle second;
    upsampled 8 kHz → 16 kHz:  x₁₆ = resample_poly(x₈, up=2, down=1), T = 16,000 samples
                               (one batched call: scipy's polyphase FIR with a Kaiser window,
                               no per-sample Python loop).

Splits. `split_by="speaker"` (the default) holds speakers out: train = george, jackson, lucas,
yweweler (takes 5–49 only); val = theo; test = nicolas, so val and test speech comes from voices
never heard in training. `split_by="take"` is FSDD's own convention: takes 0–4 of every speaker
are test; we take 5–9 as val and 10–49 as train. No recording is in two splits either way, and
since the speaker split's train leaves takes 0–4 out, the take split's test is unheard too for a
model trained on the speaker split: recordings of four speakers it heard (other takes) and of
two it never heard (`seen_speakers`), the set on which notebook 05 compares the two.
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
SPEAKER_SPLIT_TRAIN_TAKES = range(5, 50)  # the speaker split's train leaves FSDD's test takes out
SPLIT_BY = ("speaker", "take")
REBUILD = "python data/build_fsdd.py [path to FSDD]"


def upsample(x: np.ndarray) -> np.ndarray:
    """8 kHz → 16 kHz along the last axis: `resample_poly(x, 2, 1)` (polyphase,
    anti-imaging FIR)."""
    return resample_poly(x, TARGET_RATE // SOURCE_RATE, 1, axis=-1).astype(np.float32, copy=False)


def fit_length(waves: list[np.ndarray], length: int) -> np.ndarray:
    """1-D waves of any lengths → (N, length): left-aligned and zero-padded; long ones keep
    their middle."""
    out = np.zeros((len(waves), length), np.float32)  # (N, length)
    for i, x in enumerate(waves):  # one slice copy per wave, microseconds each
        start = max((len(x) - length) // 2, 0)  # 0 unless the wave is too long
        seg = x[start:start + length]
        out[i, :len(seg)] = seg
    return out


class Recordings:
    """The FSDD index: `digit`, `speaker`, `take` (3000,) and `names`; `audio(rows)` decodes
    on demand.

    Only the recordings a dataset pairs are read, verified and resampled (a `digits` train split
    needs about a third of them), and each file is decoded once per process.
    """

    def __init__(self, root: Path, names: list[str], speakers: dict[str, dict[str, str]]):
        self.root, self.names = root, names  # names: "7_theo_12.flac", the file of each row
        self.speakers = speakers  # FSDD's metadata: gender, accent, language per speaker
        parts = [n[:-len(".flac")].split("_") for n in names]
        self.digit = torch.tensor([int(p[0]) for p in parts])  # (R,)
        # (R,) index into SPEAKERS
        self.speaker = torch.tensor([SPEAKERS.index(p[1]) for p in parts])
        self.take = torch.tensor([int(p[2]) for p in parts])  # (R,)
        self._waves: dict[int, np.ndarray] = {}  # row → its 8 kHz samples, as read

    def __len__(self) -> int:
        return len(self.names)

    def audio(self, rows: Tensor | np.ndarray | list[int]) -> Tensor:
        """The recordings `rows` fitted to 1 s and upsampled to 16 kHz: float32 (len(rows), 16000).

        Raises:
            DataFileError: a file is missing or its sha256 differs from `fsdd/manifest.json`.
        """
        rows = [int(r) for r in torch.as_tensor(rows).flatten().tolist()]
        bad = [r for r in rows if not 0 <= r < len(self.names)]
        if bad:
            raise ValueError(f"`rows` must index the {len(self.names)} recordings "
                             f"(0 to {len(self.names) - 1}); got {bad[:5]}. Take rows from "
                             f"`in_split(...)` or a dataset's `meta['sample']['recording']`.")
        for r in set(rows) - self._waves.keys():  # file I/O is per file; the resampling is batched
            path = verified_path(self.names[r], self.root, REBUILD)
            x, rate = sf.read(path, dtype="float32")
            if rate != SOURCE_RATE or x.ndim != 1:
                raise ValueError(f"{path}: expected 8 kHz mono, got {rate} Hz, shape {x.shape}. "
                                 f"Rebuild with `{REBUILD}`.")
            self._waves[r] = x
        if not rows:
            return torch.zeros(0, int(SECONDS * TARGET_RATE))
        fitted = fit_length([self._waves[r] for r in rows], int(SECONDS * SOURCE_RATE))  # (N, 8000)
        return torch.from_numpy(upsample(fitted))  # (N, 16000)

    def in_split(self, split: str, split_by: str = "speaker") -> Tensor:
        """Indices (sorted) of the recordings of `split` ("train", "val", "test")."""
        check_choice("split_by", split_by, SPLIT_BY)
        if split_by == "speaker":
            ids = torch.tensor([SPEAKERS.index(s) for s in SPEAKER_SPLITS[split]])
            keep = torch.isin(self.speaker, ids)
            if split == "train":
                keep &= torch.isin(self.take, torch.tensor(list(SPEAKER_SPLIT_TRAIN_TAKES)))
        else:
            keep = torch.isin(self.take, torch.tensor(list(TAKE_SPLITS[split])))
        return keep.nonzero().flatten()


def seen_speakers(speaker: Tensor) -> Tensor:
    """Bool mask (N,): which `speaker` ids (a dataset's `factors["speaker"]`) the speaker split
    trains on."""
    return torch.isin(speaker, torch.tensor([SPEAKERS.index(s) for s in SPEAKER_SPLITS["train"]]))


@functools.lru_cache(maxsize=2)
def _load(root: str) -> Recordings:
    manifest = read_manifest(Path(root), REBUILD)
    names = sorted(manifest["files"], key=lambda n: (int(n.split("_")[0]), n))
    return Recordings(Path(root), names, manifest.get("speakers", {}))


def load_recordings(root: str | Path | None = None) -> Recordings:
    """The FSDD recordings under `root/fsdd/`; cached per process.

    Reads only the manifest: audio is decoded, verified against its sha256 and resampled when
    `Recordings.audio(rows)` asks for it.

    Args:
        root: the data directory (default `mmlab.data.data_root()`).
    Raises:
        DataFileError: `fsdd/manifest.json` is missing or not valid JSON.
    """
    return _load(str((Path(root) if root is not None else data_root()) / "fsdd"))


def pair_within_class(labels: np.ndarray, pool: Tensor, pool_digit: Tensor,
                      rng: np.random.Generator) -> np.ndarray:
    """For each label, a recording of `pool` with the same digit; distinct while the class has
    enough.

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
