"""Measure what the worst file `from_folder` accepts costs: peak memory and time.

The limits in `mmlab/data/limits.py` bound what one file may declare; this builds, in a
temporary folder, the most expensive file each limit still lets through and loads it with
`from_folder` in a fresh Python process (peak RSS above a warmed-up baseline, wall time):

    python scripts/worst_file_cost.py          # about a minute; writes ~0.3 GB of temporary files

The figures go into docs/ERRORS.md ("Files") and the docstring of mmlab/data/limits.py. Refused
files (decompression bombs, absurd rates) are measured by tests/test_data_media.py instead.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from mmlab.data import limits

SIDE = math.isqrt(limits.MAX_IMAGE_PIXELS)  # 7071 × 7071: the largest square image accepted
RATE = 383_987  # a prime rate just under MAX_SAMPLE_RATE: the hardest to resample

# Peak RSS from /proc (Linux): VmHWM after resetting it with clear_refs, since getrusage's
# ru_maxrss would start from the parent's peak (kept across fork and exec).
_CHILD = r"""
import sys, time
from pathlib import Path
from mmlab.data import from_folder
def kib(field):
    line = next(l for l in open("/proc/self/status") if l.startswith(field))
    return int(line.split()[1])
folder, warm, rate = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
from_folder(warm, image_size=8)  # imports and first-call costs, outside the measurement
open("/proc/self/clear_refs", "w").write("5")  # the peak is now the current RSS
base = kib("VmRSS:")
t = time.perf_counter()
from_folder(folder, image_size=32, audio_seconds=30.0, sample_rate=rate)
print(time.perf_counter() - t, (kib("VmHWM:") - base) / 1024)
"""


def _cases(root: Path) -> dict[str, tuple[Path, int]]:
    """name → (folder with pairs.csv and the file, the `sample_rate` option)."""
    cases = {}

    def folder(name: str, column: str, file: str, rate: int = 16_000) -> Path:
        d = root / name
        d.mkdir()
        (d / "pairs.csv").write_text(f"id,{column}\nx,{file}\n")
        cases[name] = (d, rate)
        return d

    Image.new("RGBA", (SIDE, SIDE), (10, 20, 30, 128)).save(
        folder("50 MP RGBA PNG", "image", "a.png") / "a.png")
    p = Image.new("P", (SIDE, SIDE), 1)
    p.putpalette([0, 0, 0, 255, 0, 0])
    p.save(folder("50 MP palette PNG with transparency", "image", "a.png") / "a.png",
           transparency=0)
    Image.fromarray(np.full((SIDE, SIDE), 30_000, np.uint16)).save(
        folder("50 MP 16-bit grey PNG", "image", "a.png") / "a.png")
    noise = 0.1 * np.random.default_rng(0).standard_normal((RATE * 31, limits.MAX_CHANNELS))
    wav = folder("31 s, 8 channels, 383,987 Hz WAV", "audio", "a.wav")
    sf.write(wav / "a.wav", noise.astype(np.float32), RATE, subtype="PCM_16")
    cases["the same WAV, kept at 384 kHz"] = (wav, limits.MAX_SAMPLE_RATE)
    return cases


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        warm = root / "warm"
        warm.mkdir()
        Image.new("RGB", (4, 4)).save(warm / "a.png")
        sf.write(warm / "a.wav", np.zeros(800, np.float32), 8000)
        (warm / "pairs.csv").write_text("id,image,audio\na,a.png,a.wav\n")
        print(f"{'file':<40} {'size':>9} {'seconds':>8} {'peak MB':>8}")
        for name, (folder, rate) in _cases(root).items():
            file = next(f for f in folder.iterdir() if f.name != "pairs.csv")
            out = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(warm), str(rate)],
                                 capture_output=True, text=True, check=True).stdout.split()
            seconds, peak = float(out[-2]), float(out[-1])
            print(f"{name:<40} {file.stat().st_size / 1e6:>6.1f} MB {seconds:>8.2f} {peak:>8.0f}")


if __name__ == "__main__":
    main()
