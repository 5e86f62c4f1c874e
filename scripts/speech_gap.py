"""What real speech costs: audio↔image R@1 on digits with synthetic vs real speech, same model and budget.

    python scripts/speech_gap.py --seeds 0 1 2 3 4      # prints a markdown table (about 25 s per run)

The model and budget are notebook 05's pairwise CLIP in tiny mode: a CNN on images, a CNN on the
log-mel spectrogram, a bag of words on text, D = 32, 400 steps of B = 64 (lr 5e-3). Each seed
trains it twice on `load("digits", "train")`: with `speech="synthetic"` (espeak-ng voices, test
voices unheard in training) and with `speech="real"` (FSDD, the default: four training speakers,
takes 5–49). Test sets (class-level R@1, chance ≈ 0.1):

- synthetic: the synthetic test split (voices never heard in training);
- real, unseen speaker: `load("digits", "test")`, nicolas, never heard in training;
- real, FSDD test takes: `load("digits", "test", split_by="take")`, takes 0–4 of all six speakers
  (never heard in training), reported separately for the four training speakers and the two others.

The table in notebooks/README.md comes from this script.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import mmlab
from mmlab.data import load
from mmlab.data.fsdd import seen_speakers
from mmlab.encoders import (AudioConvEncoder, BagOfWordsEncoder, ConvEncoder, ProjectionHead,
                            Tokenizer)
from mmlab.model import ContrastiveModel
from mmlab.losses import ClipLoss
from mmlab.metrics import retrieval_report
from mmlab.train import fit
from mmlab.viz import encode_dataset

STEPS, BATCH, LR, WIDTH, FEAT, D, HOP = 400, 64, 5e-3, 16, 64, 32, 320  # notebook 05, tiny mode
DIRECTIONS = ("audio→image R@1", "image→audio R@1")


def train_model(train, seed: int) -> ContrastiveModel:
    tokenizer = Tokenizer.from_texts(train.batch(torch.arange(len(train)))["text"])
    mmlab.seed_everything(seed)
    encoders = {"image": ConvEncoder(out_dim=FEAT, width=WIDTH),
                "audio": AudioConvEncoder(out_dim=FEAT, width=WIDTH, hop_length=HOP),
                "text": BagOfWordsEncoder(tokenizer, out_dim=FEAT)}
    model = ContrastiveModel(encoders, {m: ProjectionHead(FEAT, D) for m in encoders}, ClipLoss(), pairs="all")
    fit(model, train, steps=STEPS, batch_size=BATCH, lr=LR, seed=seed, progress=False)
    return model.eval()


def audio_image_r1(model, ds) -> dict[str, float]:
    """Class-level R@1 in both audio↔image directions on `ds`."""
    z = encode_dataset(model, ds)
    report = retrieval_report(z["audio"], z["image"], ks=(1,), names=("audio", "image"),
                              labels_a=ds.label, labels_b=ds.label)
    return {k: report[k] for k in DIRECTIONS}


def one_seed(seed: int) -> dict[str, dict[str, float]]:
    out = {}
    synthetic = train_model(load("digits", "train", seed=seed, speech="synthetic"), seed)
    out["synthetic speech: unheard voices"] = audio_image_r1(synthetic, load("digits", "test", seed=seed,
                                                                             speech="synthetic"))
    real = train_model(load("digits", "train", seed=seed), seed)
    out["real speech: unseen speaker (default test split)"] = audio_image_r1(real, load("digits", "test", seed=seed))
    takes = load("digits", "test", seed=seed, split_by="take")
    seen = seen_speakers(takes.factors["speaker"])
    out["real speech: FSDD test takes, 4 speakers heard in training"] = audio_image_r1(
        real, takes.subset(seen.nonzero().flatten()))
    out["real speech: FSDD test takes, 2 speakers never heard"] = audio_image_r1(
        real, takes.subset((~seen).nonzero().flatten()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    rows: dict[str, dict[str, list[float]]] = {}
    start = time.perf_counter()
    for seed in args.seeds:
        for name, r in one_seed(seed).items():
            for k, v in r.items():
                rows.setdefault(name, {}).setdefault(k, []).append(v)
        print(f"seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"\n| test set | {' | '.join(DIRECTIONS)} |\n|---|---|---|")
    for name, r in rows.items():
        cells = [f"{np.mean(v):.2f} ± {np.std(v):.2f} (min {min(v):.2f})" for v in (r[k] for k in DIRECTIONS)]
        print(f"| {name} | {' | '.join(cells)} |")
    print(f"\nmean ± standard deviation over seeds {args.seeds}; chance ≈ 0.10.")


if __name__ == "__main__":
    main()
