#!/usr/bin/env python
"""Ship the Free Spoken Digit Dataset (FSDD): 3,000 WAV recordings → lossless FLAC under data/fsdd/.

    python data/build_fsdd.py                       # from ../shared/datasets/fsdd (beside the repo)
    python data/build_fsdd.py PATH/TO/fsdd          # from a copy of the FSDD repository
    python data/build_fsdd.py SRC --out DIR         # write DIR/fsdd/ instead of data/fsdd/

FSDD (Zohar Jackson et al., "Jakobovski/free-spoken-digit-dataset", Zenodo,
doi:10.5281/zenodo.1342401; CC BY-SA 4.0) holds 50 takes of each digit by each of 6 speakers,
8 kHz mono 16-bit WAV named `{digit}_{speaker}_{take}.wav`. Each file is re-encoded as FLAC
(16-bit, 8 kHz, mono: the same samples, checked by reading the FLAC back), and
`fsdd/manifest.json` lists every file with its sha256 and size, the speakers' metadata and the
source. `fsdd/LICENSE.md` carries the attribution, the licence and a note of this conversion.
Nothing is resampled here: `mmlab.data.fsdd` resamples to 16 kHz on load.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from mmlab.data.files import MANIFEST_NAME, sha256_file
from mmlab.utils import atomic_write

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "datasets" / "fsdd"
SOURCE_RATE = 8_000
LICENSE_TEXT = """# Free Spoken Digit Dataset (FSDD), as shipped with mmlab

The recordings in this folder are the Free Spoken Digit Dataset:

> Zohar Jackson, César Souza, Jason Flaks, Yuxin Pan, Hereman Nicolas and Adhish Thite,
> "Jakobovski/free-spoken-digit-dataset", Zenodo, doi:10.5281/zenodo.1342401,
> https://github.com/Jakobovski/free-spoken-digit-dataset (commit {commit}).

Licence: **Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0)**,
https://creativecommons.org/licenses/by-sa/4.0/. This folder is distributed under the same licence;
the rest of mmlab (its code) stays MIT.

Changes made: each `recordings/{{digit}}_{{speaker}}_{{take}}.wav` (8 kHz, mono, 16-bit PCM) was
re-encoded losslessly as `{{digit}}_{{speaker}}_{{take}}.flac` (the same samples: the build checks
this by decoding each FLAC and comparing with the WAV) by `data/build_fsdd.py`. The speakers'
metadata (`metadata.py` upstream) is copied into `manifest.json`. Nothing else was changed.
"""


def read_metadata(source: Path) -> dict[str, dict[str, str]]:
    """The `metadata` dict of FSDD's metadata.py, parsed as a literal (the file is not executed)."""
    tree = ast.parse((source / "metadata.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "metadata" for t in node.targets):
            return ast.literal_eval(node.value)
    raise ValueError(f"{source / 'metadata.py'} defines no `metadata = {{...}}` dict.")


def source_commit(source: Path) -> str:
    provenance = source / "PROVENANCE.md"
    if provenance.is_file():
        for word in provenance.read_text(encoding="utf-8").replace(",", " ").split():
            if len(word) == 40 and all(c in "0123456789abcdef" for c in word):
                return word
    return "unknown"


def build(source: Path, out: Path, verbose: bool = False) -> dict[str, dict]:
    """Convert every recording of `source` into `out/fsdd/`; returns the manifest's file table."""
    wavs = sorted((source / "recordings").glob("*.wav"))
    if len(wavs) != 3000:
        raise SystemExit(f"{source / 'recordings'} holds {len(wavs)} WAV files; FSDD has 3,000. "
                         "Pass the folder of a full copy of the FSDD repository.")
    dest = out / "fsdd"
    dest.mkdir(parents=True, exist_ok=True)
    files = {}
    for wav in wavs:
        samples, rate = sf.read(wav, dtype="int16")  # (T,) mono
        if rate != SOURCE_RATE or samples.ndim != 1:
            raise SystemExit(f"{wav}: expected 8 kHz mono, got {rate} Hz with shape {samples.shape}.")
        name = wav.stem + ".flac"
        atomic_write(dest / name, lambda p: sf.write(p, samples, rate, format="FLAC", subtype="PCM_16"))
        back, _ = sf.read(dest / name, dtype="int16")
        if not np.array_equal(back, samples):
            raise SystemExit(f"{dest / name}: the FLAC does not decode to the WAV's samples.")
        files[name] = {"sha256": sha256_file(dest / name), "bytes": (dest / name).stat().st_size,
                       "frames": int(len(samples))}
    commit = source_commit(source)
    manifest = {
        "description": "FSDD recordings as lossless FLAC; checksums verified on load. Built by "
                       "data/build_fsdd.py.",
        "rebuild": "python data/build_fsdd.py [path to FSDD]",
        "source": {"repository": "https://github.com/Jakobovski/free-spoken-digit-dataset",
                   "commit": commit, "doi": "10.5281/zenodo.1342401",
                   "licence": "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/)"},
        "sample_rate": SOURCE_RATE,
        "format": "FLAC, 16-bit, mono",
        "speakers": read_metadata(source),
        "files": files,
    }
    atomic_write(dest / MANIFEST_NAME,
                 lambda p: p.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n", encoding="utf-8"))
    atomic_write(dest / "LICENSE.md", lambda p: p.write_text(LICENSE_TEXT.format(commit=commit), encoding="utf-8"))
    if verbose:
        total = sum(f["bytes"] for f in files.values())
        print(f"wrote {len(files)} FLAC files ({total / 2**20:.1f} MiB), {dest / MANIFEST_NAME} and LICENSE.md")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, nargs="?", default=DEFAULT_SOURCE,
                        help=f"a copy of the FSDD repository (default: {DEFAULT_SOURCE})")
    parser.add_argument("--out", type=Path, default=HERE, help="data directory (default: this script's)")
    args = parser.parse_args(argv)
    if not (args.source / "recordings").is_dir():
        parser.error(f"{args.source} has no recordings/ folder; pass the path of a copy of FSDD "
                     "(https://github.com/Jakobovski/free-spoken-digit-dataset).")
    build(args.source, args.out, verbose=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
