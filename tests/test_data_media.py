"""Tests for `mmlab.data.media` and `mmlab.data.limits`: image modes, hostile files, bounded cost.

Files are crafted in tmp_path. Independent expectations: grey levels from the values written
(16-bit v / 65535, float values themselves), alpha compositing from the formula α·c + (1 − α)·1,
CMYK from (1 − C)(1 − K), EXIF orientation from Pillow's own `ImageOps.exif_transpose` at full
size, partial audio reads from resampling the whole file with scipy and cropping. The cost of a
hostile file is measured in a fresh process (peak resident memory and wall time).
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image, ImageOps
from scipy.signal import resample_poly

import mmlab.data
from mmlab.data import limits, media
from mmlab.data.folder import FolderError, from_folder
from mmlab.data.media import read_audio, read_image

ROOT = Path(__file__).resolve().parents[1]
HOSTILE_MAX_MB = 50  # a file refused from its header costs at most this much memory ...
HOSTILE_MAX_S = 1.0  # ... and this much time (docs/ERRORS.md, "Files")


def one_image_folder(root: Path, name: str, im: Image.Image, **save) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    im.save(root / name, **save)
    (root / "pairs.csv").write_text(f"id,image\nx,{name}\n")
    return root


def load_one(root: Path, size: int = 8) -> np.ndarray:
    return from_folder(root, image_size=size).modalities_data["image"][0].numpy()  # (3, S, S)


# ---- image modes ---------------------------------------------------------------------------
def test_16_bit_grey_keeps_its_level(tmp_path):
    v = round(0.46 * 65535)
    im = Image.fromarray(np.full((10, 14), v, np.uint16))
    assert im.mode == "I;16"
    one_image_folder(tmp_path, "g16.png", im)
    assert Image.open(tmp_path / "g16.png").mode in ("I;16", "I")  # a real 16-bit PNG
    np.testing.assert_allclose(load_one(tmp_path), v / 65535, atol=1e-6)  # was 1.0 (white)


def test_16_bit_grey_gradient_and_8_bit_grey(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 16).round().astype(np.uint16), (16, 1))  # (16, 16)
    one_image_folder(tmp_path / "a", "r.png", Image.fromarray(ramp))
    got = load_one(tmp_path / "a", size=16)
    np.testing.assert_allclose(got, np.broadcast_to(ramp / 65535, (3, 16, 16)), atol=1e-5)
    one_image_folder(tmp_path / "b", "g8.png", Image.new("L", (9, 7), 117))
    np.testing.assert_allclose(load_one(tmp_path / "b"), 117 / 255, atol=1e-7)


def test_float_tiff_is_taken_in_0_1_and_clipped(tmp_path):
    arr = np.full((12, 12), 0.3, np.float32)
    arr[:, 6:] = 1.7  # out of range: clipped to 1
    arr[:6, :] = -0.2  # clipped to 0
    one_image_folder(tmp_path, "f.tif", Image.fromarray(arr))
    assert Image.open(tmp_path / "f.tif").mode == "F"
    got = load_one(tmp_path, size=12)
    np.testing.assert_allclose(got[:, 9:, :3], 0.3, atol=1e-6)  # was 0 (black)
    np.testing.assert_allclose(got[:, 9:, 9:], 1.0, atol=1e-6)
    np.testing.assert_allclose(got[:, :3, :], 0.0, atol=1e-6)


def test_float_tiff_with_nan_is_refused(tmp_path):
    arr = np.full((6, 6), 0.5, np.float32)
    arr[2, 3] = np.nan
    one_image_folder(tmp_path, "n.tif", Image.fromarray(arr))
    with pytest.raises(FolderError, match=r"line 2 \(id 'x'\): n.tif: .*NaN"):
        from_folder(tmp_path)


@pytest.mark.parametrize("alpha", [0, 64, 128, 255])
def test_rgba_is_composited_over_white(tmp_path, alpha):
    colour = np.array([200, 30, 90])
    one_image_folder(tmp_path, "a.png", Image.new("RGBA", (10, 10), (*colour, alpha)))
    a = alpha / 255
    want = a * colour / 255 + (1 - a) * 1.0  # α·c + (1 − α)·white
    np.testing.assert_allclose(load_one(tmp_path).mean(axis=(1, 2)), want, atol=1 / 255)
    if alpha == 0:  # the hidden colour does not show at all
        np.testing.assert_array_equal(load_one(tmp_path), 1.0)


def test_transparent_pixels_do_not_bleed_into_their_neighbours(tmp_path):
    arr = np.zeros((16, 16, 4), np.uint8)
    arr[:, :8] = (0, 0, 255, 255)  # opaque blue on the left
    arr[:, 8:] = (255, 0, 0, 0)  # transparent red on the right: must read as white
    one_image_folder(tmp_path, "edge.png", Image.fromarray(arr, "RGBA"))
    got = load_one(tmp_path, size=16)
    assert got[0, :, 8:].min() >= got[2, :, 8:].min() - 1e-6  # no red cast: R is never below B
    np.testing.assert_allclose(got[:, :, 12:], 1.0, atol=1e-6)
    blue = np.broadcast_to(np.array([0, 0, 1.0])[:, None, None], (3, 16, 4))
    np.testing.assert_allclose(got[:, :, :4], blue, atol=1e-6)


def test_la_and_palette_with_transparency(tmp_path):
    grey, alpha = np.full((6, 6), 40, np.uint8), np.full((6, 6), 51, np.uint8)
    la = Image.fromarray(np.stack([grey, alpha], -1), "LA")
    one_image_folder(tmp_path / "la", "la.png", la)
    a = 51 / 255
    np.testing.assert_allclose(load_one(tmp_path / "la"), a * 40 / 255 + 1 - a, atol=1 / 255)
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([10, 200, 30] + [250, 0, 0] * 255)
    pal.paste(1, (0, 0, 8, 4))  # top half: index 1 (red), declared transparent below
    one_image_folder(tmp_path / "p", "p.png", pal, transparency=1)
    got = load_one(tmp_path / "p", size=8)
    np.testing.assert_allclose(got[:, :2], 1.0, atol=1e-6)  # transparent → white, not red
    green = np.broadcast_to(np.array([10, 200, 30])[:, None, None] / 255, (3, 2, 8))
    np.testing.assert_allclose(got[:, 6:], green, atol=1e-6)


def test_cmyk(tmp_path):
    c, m, y, k = 0, 255, 255, 128
    one_image_folder(tmp_path, "c.tif", Image.new("CMYK", (5, 5), (c, m, y, k)))
    want = np.array([(1 - v / 255) * (1 - k / 255) for v in (c, m, y)])  # (1 − C)(1 − K)
    np.testing.assert_allclose(load_one(tmp_path).mean(axis=(1, 2)), want, atol=1.5 / 255)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    arr = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide, 20 high: four coloured quadrants
    arr[:10, :20], arr[:10, 20:] = (255, 0, 0), (0, 255, 0)
    arr[10:, :20], arr[10:, 20:] = (0, 0, 255), (255, 255, 0)
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = orientation
    one_image_folder(tmp_path, "o.png", im, exif=exif)
    got = load_one(tmp_path, size=8).transpose(1, 2, 0)  # (8, 8, 3)
    with Image.open(tmp_path / "o.png") as ref:
        upright = ImageOps.exif_transpose(ref).convert("RGB")
        upright = upright.resize((8, 8), Image.Resampling.BICUBIC)
    want = np.asarray(upright, np.float32) / 255
    assert np.abs(got - want).max() <= 2 / 255  # same picture; rounding of the two resize orders
    np.testing.assert_allclose(got[[0, 0, 7, 7], [0, 7, 0, 7]], want[[0, 0, 7, 7], [0, 7, 0, 7]],
                               atol=1e-6)  # the corners' colours exactly


# ---- hostile and broken images -------------------------------------------------------------
def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width × height 8-bit RGB but holds no pixels (65 bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))


def wav_declaring(rate: int, n_samples: int, channels: int = 1) -> bytes:
    """A 16-bit PCM WAV at `rate` Hz holding n_samples frames of a ramp."""
    data = (np.arange(n_samples * channels) % 200 - 100).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data))
            + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def hostile_files(root: Path) -> dict[str, tuple[str, str]]:
    """The probe's files: name → (column, expected words in the message)."""
    files = {"bomb.png": png_declaring(20000, 20000), "big.png": png_declaring(8000, 8000),
             "fast.wav": wav_declaring(999_983, 100), "slow.wav": wav_declaring(1, 80_000)}
    assert len(files["bomb.png"]) == 65 and len(files["fast.wav"]) == 244
    assert len(files["slow.wav"]) > 160_000
    root.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        (root / name).write_bytes(raw)
    return {"bomb.png": ("image", "limit"), "big.png": ("image", "64,000,000 pixels"),
            "fast.wav": ("audio", "999,983 Hz"), "slow.wav": ("audio", "1 Hz")}


@pytest.mark.parametrize("name", ["bomb.png", "big.png", "fast.wav", "slow.wav"])
def test_hostile_file_is_a_folder_error_naming_file_and_line_and_skip_skips_it(tmp_path, name):
    column, words = hostile_files(tmp_path)[name]
    Image.new("RGB", (4, 4), (9, 9, 9)).save(tmp_path / "ok.png")
    sf.write(tmp_path / "ok.wav", np.zeros(800, np.float32), 16000)
    good = "ok.png" if column == "image" else "ok.wav"
    (tmp_path / "pairs.csv").write_text(f"id,{column}\na,{good}\nb,{name}\nc,{good}\n")
    with pytest.raises(FolderError) as info:
        from_folder(tmp_path)
    msg = str(info.value)
    assert f"line 3 (id 'b'): {name}" in msg and words in msg, msg
    with pytest.warns(UserWarning, match="skipped 1 of 3"):
        ds = from_folder(tmp_path, on_error="skip")
    assert ds.meta["ids"] == ["a", "c"] and ds.meta["skipped"][0][:2] == ("b", name)


_MEASURE = r"""
import json, resource, sys, time, warnings
from pathlib import Path
from mmlab.data import from_folder
root = Path(sys.argv[1])
from_folder(root / "warm", image_size=8)  # imports, plugins and caches: the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = {}
for folder in sorted(p for p in root.iterdir() if p.name.startswith("h_")):
    t = time.perf_counter()
    try:
        from_folder(folder, image_size=8)
    except ValueError as err:
        times[folder.name] = [time.perf_counter() - t, type(err).__name__]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
print(json.dumps({"extra_mb": (peak - base) / 1024, "times": times}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in kB on Linux")
def test_hostile_files_cost_little_memory_and_time(tmp_path):
    """The probe measured about 1 GB and 4.5 s for fast.wav; each is now refused from its header."""
    names = hostile_files(tmp_path / "files")
    for name, (column, _) in names.items():
        d = tmp_path / f"h_{name}"
        d.mkdir()
        (d / name).write_bytes((tmp_path / "files" / name).read_bytes())
        (d / "pairs.csv").write_text(f"id,{column}\nb,{name}\n")
    warm = tmp_path / "warm"
    warm.mkdir()
    Image.new("RGB", (4, 4)).save(warm / "a.png")
    sf.write(warm / "a.wav", np.zeros(800, np.float32), 8000)
    (warm / "pairs.csv").write_text("id,image,audio\na,a.png,a.wav\n")
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert sorted(got["times"]) == sorted(f"h_{n}" for n in names)  # every one refused
    assert all(kind == "FolderError" for _, kind in got["times"].values()), got
    assert max(t for t, _ in got["times"].values()) < HOSTILE_MAX_S, got
    assert got["extra_mb"] < HOSTILE_MAX_MB, got


def test_image_limit_comes_from_the_header_and_is_a_module_constant(tmp_path, monkeypatch):
    Image.new("RGB", (30, 20), (1, 2, 3)).save(tmp_path / "a.png")
    (tmp_path / "pairs.csv").write_text("id,image\na,a.png\n")
    from_folder(tmp_path)
    monkeypatch.setattr(media, "MAX_IMAGE_PIXELS", 599)
    with pytest.raises(FolderError, match="30×20 = 600 pixels; the limit is 599"):
        from_folder(tmp_path)


# ---- sounds: header limits and reading only the kept clip -----------------------------------
@pytest.mark.parametrize("rate, channels, words", [
    (400_000, 1, "400,000 Hz"), (999, 1, "999 Hz"), (16_000, 9, "9 channels")])
def test_sound_header_limits(tmp_path, rate, channels, words):
    (tmp_path / "s.wav").write_bytes(wav_declaring(rate, 64, channels))
    (tmp_path / "pairs.csv").write_text("id,audio\na,s.wav\n")
    with pytest.raises(FolderError, match=words):
        from_folder(tmp_path)


def test_sound_longer_than_the_file_limit_is_refused(tmp_path, monkeypatch):
    sf.write(tmp_path / "s.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "pairs.csv").write_text("id,audio\na,s.wav\n")
    monkeypatch.setattr(media, "MAX_FILE_SECONDS", 0.5)
    with pytest.raises(FolderError, match="1 s of sound.*MAX_FILE_SECONDS"):
        from_folder(tmp_path)


def whole_file_reference(path: Path, rate: int) -> np.ndarray:
    """The old way: decode everything, mix to mono, resample all of it."""
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = x.mean(axis=1)
    g = math.gcd(sr, rate)
    return mono if sr == rate else resample_poly(mono, rate // g, sr // g).astype(np.float32)


@pytest.mark.parametrize("sr", [8000, 11025, 16000, 22050, 44100, 44101, 48000, 96000])
def test_partial_read_is_bit_identical_to_resampling_the_whole_file(tmp_path, sr):
    rng = np.random.default_rng(sr)
    x = (0.3 * rng.standard_normal((int(1.3 * sr), 2))).astype(np.float32)  # 1.3 s stereo
    sf.write(tmp_path / "s.wav", x, sr, subtype="FLOAT")
    ref = whole_file_reference(tmp_path / "s.wav", 16000)
    for keep in (1, 777, 8000, 16000, 40000):
        clip, length = read_audio(tmp_path / "s.wav", 16000, max_samples=keep)
        assert length == len(ref)
        np.testing.assert_array_equal(clip, ref[:keep])


def test_only_the_kept_clip_is_decoded(tmp_path):
    sr, seconds = 48000, 120
    x = (0.1 * np.random.default_rng(0).standard_normal(sr * seconds)).astype(np.float32)
    sf.write(tmp_path / "long.wav", x, sr, subtype="PCM_16")
    del x
    (tmp_path / "pairs.csv").write_text("id,audio\na,long.wav\n")
    tracemalloc.start()
    ds = from_folder(tmp_path, audio_seconds=0.5)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ds.modalities_data["audio"].shape == (1, 8000)
    assert ds.meta["sample"]["audio_length"].tolist() == [16000 * seconds]  # from the header
    assert peak < 4 * 2**20, peak  # decoding the whole file would take > 60 MB (float32 + float64)


# ---- options of load(...) and from_folder(...) ---------------------------------------------
@pytest.mark.parametrize("kwargs, name, limit", [
    ({"audio_seconds": 1e9}, "audio_seconds", "MAX_CLIP_SECONDS"),
    ({"n": 10**6}, "n", "MAX_DATASET_BYTES"),
    ({"n": 100_000, "audio_seconds": 30.0}, "n", "MAX_DATASET_BYTES")])
def test_load_options_beyond_the_limits_are_value_errors(kwargs, name, limit):
    with pytest.raises(ValueError, match=f"`{name}`.*{limit}"):
        mmlab.data.load("shapes", "train", **kwargs)


def test_xor_sizes_beyond_the_limit_are_value_errors():
    # 10^10 samples: a MemoryError for 224 GiB in numpy before the check
    with pytest.raises(ValueError, match="`n` and `bits` ask for .* GiB.*MAX_DATASET_BYTES"):
        mmlab.data.load("xor", "train", n=10**10)
    limit = limits.MAX_DATASET_BYTES // (36 * 20 + 24)  # the largest n at bits = 20
    with pytest.raises(ValueError, match=f"use n ≤ {limit:,}"):
        mmlab.data.load("xor", "train", n=limit + 1, bits=20)
    assert len(mmlab.data.load("xor", "train", n=5, bits=20)) == 5


@pytest.mark.parametrize("kwargs, name", [
    ({"audio_seconds": 1e9}, "audio_seconds"), ({"image_size": 10**6}, "image_size"),
    ({"sample_rate": 10**9}, "sample_rate"), ({"sample_rate": 1}, "sample_rate")])
def test_from_folder_options_beyond_the_limits_are_value_errors(tmp_path, kwargs, name):
    (tmp_path / "pairs.csv").write_text("id,text\na,hello\n")
    with pytest.raises(ValueError, match=f"`{name}`"):
        from_folder(tmp_path, **kwargs)


def test_limits_are_documented():
    doc = (ROOT / "docs" / "ERRORS.md").read_text()
    for name in ("MAX_IMAGE_PIXELS", "MAX_IMAGE_SIZE", "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE",
                 "MAX_CHANNELS", "MAX_FILE_SECONDS", "MAX_CLIP_SECONDS", "MAX_DATASET_BYTES"):
        assert name in doc and hasattr(limits, name), name
