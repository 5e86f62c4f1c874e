#!/usr/bin/env python
"""Build the shipped word clips: espeak-ng → 16 kHz, 16-bit mono WAV, silence-trimmed.

    python data/build_speech.py            # rebuild data/speech/** and data/manifest.json
    python data/build_speech.py --out DIR  # build into another directory

For every voice id in `mmlab.data.speech.VOICES` (espeak-ng voice + variant + speed + pitch) and
every word in `mmlab.data.words.VOCABULARY` it writes `speech/<voice_id>/<word>.wav`, then
`manifest.json` with the sha256 of every file and the build parameters. The output is
deterministic: espeak-ng's 22,050 Hz output is byte-identical on reruns, resampling is
`scipy.signal.resample_poly(x, 320, 441)` (no random dither), and WAV headers carry no dates.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import wave
from dataclasses import asdict
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from mmlab.data.files import MANIFEST_NAME, sha256_file
from mmlab.data.speech import SAMPLE_RATE, VOICES, Voice, clip_relpath
from mmlab.data.words import VOCABULARY
from mmlab.utils import atomic_write

ESPEAK = "espeak-ng"
ESPEAK_RATE = 22_050
UP, DOWN = 320, 441  # 22,050 Hz * 320 / 441 = 16,000 Hz
TRIM_THRESHOLD = 0.02  # relative to the clip's peak
MARGIN_S = 0.01  # silence kept either side of the trimmed word
FADE_S = 0.005  # linear fade in/out, avoids clicks at the cut
PEAK = 0.9  # peak amplitude after normalisation


def espeak_version() -> str:
    """The first line of `espeak-ng --version`."""
    out = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[0]


def _pcm_from_wav_bytes(data: bytes) -> np.ndarray:
    # espeak-ng writing to stdout cannot seek back, so the header sizes may be wrong: read the
    # format with `wave`, then take every byte after the "data" chunk id.
    with wave.open(io.BytesIO(data), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == ESPEAK_RATE
    start = data.index(b"data") + 8
    raw = data[start:start + (len(data) - start) // 2 * 2]
    return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0


def synthesize(voice: Voice, word: str) -> np.ndarray:
    """Speak one word and return int16 samples at 16 kHz, trimmed, faded and peak-normalised."""
    cmd = [ESPEAK, "-v", voice.espeak_name, "-s", str(voice.speed), "-p", str(voice.pitch), "--stdout", word]
    x = _pcm_from_wav_bytes(subprocess.run(cmd, capture_output=True, check=True).stdout)
    y = resample_poly(x, UP, DOWN)  # (L,) at 16 kHz
    loud = np.nonzero(np.abs(y) > TRIM_THRESHOLD * np.abs(y).max())[0]
    margin = int(MARGIN_S * SAMPLE_RATE)
    y = y[max(0, loud[0] - margin):loud[-1] + margin + 1]
    fade = int(FADE_S * SAMPLE_RATE)
    ramp = np.linspace(0.0, 1.0, fade)
    y[:fade] *= ramp
    y[-fade:] *= ramp[::-1]
    y = y * (PEAK / np.abs(y).max())
    return np.clip(np.round(y * 32767.0), -32768, 32767).astype("<i2")


def write_wav(path: Path, samples: np.ndarray) -> None:
    """Write int16 mono samples as a 16 kHz WAV (atomically)."""
    def write(tmp: Path) -> None:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(samples.tobytes())
    atomic_write(path, write)


def build(out: Path, voices: list[Voice] | None = None, words: list[str] | None = None,
          write_manifest: bool = True, verbose: bool = False) -> dict[str, dict]:
    """Synthesise the clips into `out` and (optionally) write `out/manifest.json`.

    Args:
        out: the data directory.
        voices: voice ids to build (default all of `VOICES`).
        words: words to build (default all of `VOCABULARY`).
        write_manifest: write the manifest (only sensible for a full build).
        verbose: print progress.
    Returns:
        `{relpath: {"sha256": ..., "bytes": ...}}` for the files written.
    """
    voices = list(VOICES) if voices is None else voices
    words = list(VOCABULARY) if words is None else words
    files = {}
    for v in voices:
        for word in words:
            rel = clip_relpath(v.voice_id, word)
            write_wav(out / rel, synthesize(v, word))
            files[rel] = {"sha256": sha256_file(out / rel), "bytes": (out / rel).stat().st_size}
        if verbose:
            print(f"{v.voice_id} ({v.espeak_name}, speed {v.speed}, pitch {v.pitch}, {v.split}): {len(words)} words")
    if write_manifest:
        manifest = {
            "description": "Checksums of the shipped data files; built by data/build_speech.py.",
            "rebuild": "python data/build_speech.py",
            "build": {
                "espeak_ng": espeak_version(), "espeak_rate": ESPEAK_RATE, "sample_rate": SAMPLE_RATE,
                "resample": f"scipy.signal.resample_poly(x, {UP}, {DOWN})",
                "trim_threshold": TRIM_THRESHOLD, "margin_s": MARGIN_S, "fade_s": FADE_S, "peak": PEAK,
                "format": "WAV, 16-bit PCM, mono",
            },
            "voices": [asdict(v) for v in voices],
            "vocabulary": words,
            "files": dict(sorted(files.items())),
        }
        atomic_write(out / MANIFEST_NAME,
                     lambda p: p.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8"))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="data directory to write (default: this script's directory)")
    args = parser.parse_args(argv)
    build(args.out, verbose=True)
    print(f"wrote {len(VOICES) * len(VOCABULARY)} clips and {args.out / MANIFEST_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
