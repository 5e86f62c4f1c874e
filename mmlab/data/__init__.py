"""Datasets for multimodal contrastive learning: shapes, digits, xor (and from_folder).

    ds = mmlab.data.load("shapes", split="train", n=500, seed=0)
    for batch in ds.batches(64, generator=torch.Generator().manual_seed(0)):
        batch["image"], batch["audio"], batch["text"], batch["label"], batch["index"]

Everything is built in memory at load time; the shipped speech clips are verified against
`data/manifest.json` (sha256) before use. See docs/DESIGN.md, "The batch format".
Corruptions for robustness experiments (`gaussian_noise`, `noise_at_snr`, `missing_mask`) live
in `mmlab.data.corrupt`. Previews of a dataset (image grids, audio players, spectrograms) are
plots, so they live in `mmlab.viz` (`import mmlab.data` does not load plotly).
"""

from __future__ import annotations

from mmlab.data.dataset import MultimodalDataset, collate
from mmlab.data.files import DATA_ROOT, DataFileError, data_root, read_manifest, verified_path
from mmlab.data.registry import SPLITS, available, load, register
from mmlab.data.speech import SAMPLE_RATE, VOICES, Voice, load_clips, split_voices
from mmlab.data.shapes import load_shapes
from mmlab.data.digits import load_digits_dataset
from mmlab.data.xor import bayes_accuracy, bits_to_int, load_xor, mutual_information, xor_joint
from mmlab.data.corrupt import gaussian_noise, missing_mask, noise_at_snr
from mmlab.data.folder import from_folder

__all__ = ["MultimodalDataset", "collate", "DATA_ROOT", "DataFileError", "data_root",
           "read_manifest", "verified_path", "SPLITS", "available", "load", "register",
           "SAMPLE_RATE", "VOICES", "Voice", "load_clips", "split_voices", "load_shapes",
           "load_digits_dataset", "load_xor", "xor_joint", "mutual_information", "bayes_accuracy",
           "bits_to_int", "gaussian_noise", "noise_at_snr", "missing_mask", "from_folder"]
