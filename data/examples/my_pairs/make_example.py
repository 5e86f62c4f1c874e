"""Build this example folder for `mmlab.data.from_folder` (run: python data/examples/my_pairs/make_example.py).

Six pairs of a coloured shape (PNG or JPEG, 64x64), the colour word spoken (a shipped espeak-ng
clip from data/speech/v00, re-saved at 8, 16, 22.05, 44.1 or 48 kHz, some in stereo) and a
caption. One pair has no sound and one has no caption, to show the `present` masks. The script
is deterministic, so re-running it rewrites the same files.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw
from scipy.signal import resample_poly

HERE = Path(__file__).resolve().parent
SPEECH = HERE.parents[1] / "speech" / "v00"
SIZE = 64
COLOURS = {"red": (220, 40, 40), "blue": (40, 80, 220), "green": (40, 170, 70),
           "yellow": (235, 205, 40), "purple": (140, 60, 180), "orange": (245, 140, 30)}
# id, shape, image format, sample rate of the wav (None: no sound), channels, caption
PAIRS = [
    ("red_circle", "circle", "png", 8000, 1, "a red circle"),
    ("blue_square", "square", "jpg", 22050, 2, "a blue square"),
    ("green_triangle", "triangle", "png", 44100, 1, "a green triangle"),
    ("yellow_star", "star", "png", 16000, 1, "a yellow star"),
    ("purple_cross", "cross", "jpg", None, 1, "a purple cross"),
    ("orange_circle", "circle", "png", 48000, 2, ""),
]


def draw(shape: str, colour: tuple[int, int, int]) -> Image.Image:
    im = Image.new("RGB", (SIZE, SIZE), (245, 245, 245))
    d = ImageDraw.Draw(im)
    box = (12, 12, SIZE - 12, SIZE - 12)
    if shape == "circle":
        d.ellipse(box, fill=colour)
    elif shape == "square":
        d.rectangle(box, fill=colour)
    elif shape == "triangle":
        d.polygon([(SIZE // 2, 10), (SIZE - 10, SIZE - 12), (10, SIZE - 12)], fill=colour)
    elif shape == "star":
        c, pts = SIZE / 2, []
        for k in range(10):
            r = 24 if k % 2 == 0 else 10
            a = np.pi / 2 + k * np.pi / 5
            pts.append((c + r * np.cos(a), c - r * np.sin(a)))
        d.polygon(pts, fill=colour)
    elif shape == "cross":
        d.rectangle((26, 10, 38, SIZE - 10), fill=colour)
        d.rectangle((10, 26, SIZE - 10, 38), fill=colour)
    return im


def main() -> None:
    (HERE / "images").mkdir(exist_ok=True)
    (HERE / "sounds").mkdir(exist_ok=True)
    rows = []
    for pid, shape, fmt, rate, channels, caption in PAIRS:
        colour = pid.split("_")[0]
        image = f"images/{pid}.{fmt}"
        draw(shape, COLOURS[colour]).save(HERE / image, **({"quality": 90} if fmt == "jpg" else {}))
        audio = ""
        if rate is not None:
            x, sr = sf.read(SPEECH / f"{colour}.wav", dtype="float64")  # (T,) at 16 kHz
            g = np.gcd(rate, sr)
            y = resample_poly(x, rate // g, sr // g)  # (T * rate / sr,)
            if channels == 2:
                y = np.stack([y, 0.5 * y], axis=1)  # (T', 2): a louder left channel
            audio = f"sounds/{colour}.wav"
            sf.write(HERE / audio, np.clip(y, -1, 1), rate, subtype="PCM_16")
        rows.append({"id": pid, "image": image, "audio": audio, "text": caption})
    with open(HERE / "pairs.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "image", "audio", "text"])
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
