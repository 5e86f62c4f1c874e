"""`digits`: handwritten digit images paired with a spoken digit name and a text caption.

Images are scikit-learn's bundled `load_digits` (1797 8x8 images from the UCI optical
recognition of handwritten digits set; Alpaydin & Kaynak, 1998), upsampled to 32x32 with
bilinear interpolation, copied to 3 channels and scaled from 0..16 to [0, 1]. The images are
split once, stratified by class, 60/20/20 into train/val/test with a fixed seed (independent of
the `seed` option). Each image is paired, within its class, with a caption from a few
templates ("seven", "7", "the digit seven", ...) and a 1 s clip of the digit spoken:

- `speech="real"` (default): a recording of the same digit from the Free Spoken Digit Dataset
  (6 human speakers, `mmlab.data.fsdd`), dealt within class by a seeded shuffle (distinct
  recordings while the class has enough). `split_by="speaker"` (default) takes val and test
  recordings from speakers never heard in training; `split_by="take"` uses FSDD's own take-based
  split.
- `speech="synthetic"`: the digit name spoken by one of the split's espeak-ng voices (test voices
  are never heard in training), augmented by `mmlab.data.speech.compose_phrases` (speed/pitch,
  offset, noise).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmlab._checks import check_choice, check_int
from mmlab.data.dataset import MultimodalDataset
from mmlab.data.fsdd import SPEAKER_SPLITS, SPEAKERS, SPLIT_BY, load_recordings, pair_within_class
from mmlab.data.registry import SPLITS, register
from mmlab.data.speech import SAMPLE_RATE, VOICES, compose_phrases, load_clips, split_voices
from mmlab.data.words import DIGIT_WORDS, VOCABULARY, WORD_ID

IMAGE_SIZE = 32
SPLIT_SEED = 1797  # fixed: the image split never changes
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
AUDIO_SECONDS = 1.0
TEXT_TEMPLATES: tuple[str, ...] = ("{word}", "{digit}", "the digit {word}", "number {word}",
                                   "a handwritten {word}", "the number {digit}")


def _read_bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    # Read scikit-learn's bundled digits.csv.gz directly: importing sklearn takes seconds.
    spec = importlib.util.find_spec("sklearn")
    path = (Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
            if spec else None)
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.data, d.target
    data = np.loadtxt(path, delimiter=",")  # (1797, 65): 64 pixels, then the label
    return data[:, :-1], data[:, -1].astype(np.int64)


@functools.lru_cache(maxsize=1)
def digit_images() -> tuple[Tensor, Tensor]:
    """All 1797 images as float32 (1797, 3, 32, 32) in [0, 1] and their int64 labels (1797,)."""
    pixels, target = _read_bundled_digits()
    x = torch.from_numpy(pixels.reshape(-1, 1, 8, 8)).float() / 16.0  # (N, 1, 8, 8)
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                      align_corners=False)  # (N, 1, 32, 32)
    x = x.clamp(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()  # (N, 3, 32, 32)
    return x, torch.from_numpy(target).long()


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """The fixed stratified split: indices (sorted) of `split` among all images."""
    rng = np.random.default_rng(SPLIT_SEED)
    out = []
    k = SPLITS.index(split)
    for c in range(10):
        idx = np.nonzero(labels == c)[0]
        idx = idx[rng.permutation(len(idx))]
        cuts = np.round(np.cumsum((0.0,) + SPLIT_FRACTIONS) * len(idx)).astype(int)
        out.append(idx[cuts[k]:cuts[k + 1]])
    return np.sort(np.concatenate(out))


@register("digits")
def load_digits_dataset(split: str = "train", n: int | None = None, seed: int = 0,
                        audio: bool = True, root: str | Path | None = None, speech: str = "real",
                        split_by: str = "speaker") -> MultimodalDataset:
    """Digits: image (N, 3, 32, 32), text, audio (N, 16000) at 16 kHz; label = the digit.

    Args:
        split: "train" (1078 images), "val" (360) or "test" (359); speakers (or synthetic voices)
            are disjoint per split.
        n: use a seeded random subset of n of the split's images (default: all of them, in order).
        seed: seed for the subset, the pairing (caption template; recording or voice) and the
            augmentation of synthetic speech.
        audio: include the spoken digit (False gives a faster image+text dataset; the pairing,
            `speaker` factor and sources are the same as with audio).
        root: data directory holding the speech files (default `mmlab.data.data_root()`).
        speech: "real" (default: FSDD recordings of human speakers) or "synthetic" (espeak-ng
            clips).
        split_by: with real speech, "speaker" (val/test speakers unseen in training, whose
            train uses takes 5-49 only) or "take" (FSDD's split: takes 0-4 test, 5-9 val, 10-49
            train; its test is unheard by a model trained on the speaker split).
    Returns:
        A `MultimodalDataset`; factor "digit", and "speaker" (index into `meta["speakers"]`) for
        real speech or "voice" (index into `meta["voices"]`) for synthetic speech.
        `meta["sample"]` holds per-sample `image_id` (row of sklearn's `load_digits`), `word`
        (id into `meta["vocabulary"]`), `template` (id into `meta["templates"]`); with real speech
        `recording` (row of `mmlab.data.fsdd.load_recordings()`) and `meta["sources"]` the FLAC file
        of each sample; with synthetic speech `speed` and `snr_db`.
    """
    check_choice("split", split, SPLITS)
    check_choice("speech", speech, ("real", "synthetic"))
    check_choice("split_by", split_by, SPLIT_BY)
    check_int("seed", seed, minimum=0)
    images, labels = digit_images()
    idx = split_indices(labels.numpy(), split)
    rng = np.random.default_rng([seed, SPLITS.index(split), 0xD1])
    if n is not None:
        check_int("n", n)
        if n > len(idx):
            raise ValueError(f"`n` must be ≤ {len(idx)} (the number of {split!r} images), got {n}.")
        idx = np.sort(idx[rng.permutation(len(idx))[:n]])
    label = labels[idx]
    lab = label.numpy()
    N = len(idx)
    template = rng.integers(0, len(TEXT_TEMPLATES), size=N)
    text = [TEXT_TEMPLATES[t].format(word=DIGIT_WORDS[c], digit=c) for t, c in zip(template, lab)]
    voices = split_voices(split)
    voice = np.array([VOICES.index(v) for v in voices])[rng.integers(0, len(voices), size=N)]
    modalities: dict = {"image": images[torch.from_numpy(idx)].clone()}
    sample = {"image_id": torch.from_numpy(idx).long(),
              "template": torch.from_numpy(template).long(),
              "word": torch.tensor([WORD_ID[DIGIT_WORDS[c]] for c in lab], dtype=torch.int64)}
    factors = {"digit": label.clone(), "voice": torch.from_numpy(voice).long()}
    meta = {"name": "digits", "split": split, "seed": seed, "speech": speech,
            "voices": [v.voice_id for v in VOICES], "split_voices": [v.voice_id for v in voices],
            "vocabulary": list(VOCABULARY), "templates": list(TEXT_TEMPLATES),
            "sample_rate": SAMPLE_RATE, "sample": sample}
    if speech == "real":  # the pairing needs only the manifest; audio=False skips decoding
        rec = load_recordings(root)
        pool = rec.in_split(split, split_by)  # (R,) this split's recordings only
        pairing = np.random.default_rng([seed, SPLITS.index(split), 0xF5])  # its own stream
        # (N,) rows of `rec`
        pick = torch.from_numpy(pair_within_class(lab, pool, rec.digit[pool], pairing))
        if audio:
            modalities["audio"] = rec.audio(pick)  # (N, 16000)
        sample["recording"] = pick
        factors = {"digit": label.clone(), "speaker": rec.speaker[pick].clone()}
        meta.update(speakers=list(SPEAKERS), split_by=split_by,
                    sources=[rec.names[i] for i in pick],
                    split_speakers=(list(SPEAKER_SPLITS[split]) if split_by == "speaker"
                                    else list(SPEAKERS)))
        for key in ("voices", "split_voices"):
            meta.pop(key)
    elif audio:
        clips = load_clips(root)
        phrases = [[clips[(VOICES[v].voice_id, DIGIT_WORDS[c])]] for v, c in zip(voice, lab)]
        wave, info = compose_phrases(phrases, int(round(AUDIO_SECONDS * SAMPLE_RATE)), rng)
        modalities["audio"] = wave
        sample.update(info)
    modalities["text"] = text
    return MultimodalDataset(modalities, label=label.clone(), factors=factors,
                             classes=list(DIGIT_WORDS), meta=meta)
