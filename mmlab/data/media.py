"""Decoding one user image or sound file, with bounded cost, for `from_folder`.

Images (Pillow). The header is read first (Pillow's lazy open) and width × height is checked
against MAX_IMAGE_PIXELS before any pixel is decoded. Every mode becomes RGB in [0, 1], resized
to S × S (bicubic, the whole picture, no crop), then turned upright by its EXIF orientation:
    8-bit (1, L, P, RGB, CMYK, YCbCr, ...):  Pillow's conversion to RGB, then x / 255;
    16-bit greyscale (I;16*, and I):          x / 65535 (mode I is read as 16-bit, as Pillow's
                                              PNG and TIFF readers produce it);
    float (F):                                values taken as already in [0, 1] (the convention of
                                              torchvision's to_tensor), clipped; NaN/Inf refused;
    alpha (RGBA, LA, PA, P or RGB with a transparent colour): composited over ALPHA_BACKGROUND
        (white), out = α·rgb + (1 − α)·1, computed from the premultiplied, resized image,
        so a fully transparent pixel is white whatever colour it hides.
Sounds (soundfile). `soundfile.info` reads the header; sample rate, channels and duration are
checked against the limits; then only the frames the kept clip needs are read (block by block,
each mixed to mono: the mean over channels) and resampled with a polyphase filter
(`scipy.signal.resample_poly`, up/down = the reduced ratio of the rates). The frames read cover the
filter's support, so the clip is bit-identical to resampling the whole file and cropping it.
Every problem raises `FolderError` naming the file; the limits are in `mmlab.data.limits`.
"""

from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path

import numpy as np

from mmlab.data.limits import (MAX_CHANNELS, MAX_FILE_SECONDS, MAX_IMAGE_PIXELS, MAX_SAMPLE_RATE,
                               MIN_SAMPLE_RATE)

ALPHA_BACKGROUND = 1.0  # transparent pixels are composited over white
HIGH_DEPTH_SCALE = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0,
                    "I": 65535.0, "F": 1.0}  # divide by this to get [0, 1]
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
EXIF_ORIENTATION = 0x0112  # the EXIF tag; its value 1..8 says how to turn the stored pixels
READ_BLOCK_FRAMES = 1 << 16  # sound is read and mixed to mono this many frames at a time


class FolderError(ValueError):
    """A problem with a user's folder: the message names the file (or csv line) and the fix."""


def check_file(path: Path, cell: str) -> None:
    """Raise FolderError unless `path` is a non-empty regular file."""
    if not path.exists():
        raise FolderError(f"{cell}: file not found ({path}). Check the spelling and the folder.")
    if not path.is_file():
        raise FolderError(f"{cell}: is not a file ({path} is a directory or a special file).")
    if path.stat().st_size == 0:
        raise FolderError(f"{cell}: the file is empty (0 bytes).")


# ---- images --------------------------------------------------------------------------------
def _check_pixels(size: tuple[int, int], cell: str) -> None:
    w, h = size
    if w * h > MAX_IMAGE_PIXELS or w <= 0 or h <= 0:
        raise FolderError(f"{cell}: the image declares {w}×{h} = {w * h:,} pixels; the limit is "
                          f"{MAX_IMAGE_PIXELS:,} (mmlab.data.limits.MAX_IMAGE_PIXELS). Resize it "
                          "first (e.g. to 1024×1024); a tiny file declaring a huge size is a "
                          "decompression bomb.")


def _to_rgb(im, image_size: int, cell: str) -> np.ndarray:
    """Any Pillow image → float32 (S, S, 3) in [0, 1] (see the module docstring, per mode)."""
    from PIL import Image

    size, bicubic = (image_size, image_size), Image.Resampling.BICUBIC
    if im.mode in HIGH_DEPTH_SCALE:  # one float conversion (4 bytes per pixel), then resize
        grey = np.asarray(im.convert("F").resize(size, bicubic))  # (S, S)
        grey = grey / HIGH_DEPTH_SCALE[im.mode]
        if not np.isfinite(grey).all():
            raise FolderError(f"{cell}: the image holds NaN or Inf pixel values.")
        return np.repeat(grey.astype(np.float32)[..., None], 3, axis=2)  # (S, S, 3)
    if im.mode in ALPHA_MODES or "transparency" in im.info:
        rgba = im if im.mode in ("RGBA", "RGBa") else im.convert("RGBA")
        small = rgba.convert("RGBa").resize(size, bicubic)  # premultiplied
        arr = np.asarray(small, dtype=np.float32) / 255.0  # (S, S, 4): α·rgb, α
        return arr[..., :3] + (1.0 - arr[..., 3:]) * ALPHA_BACKGROUND  # (S, S, 3)
    rgb = im if im.mode == "RGB" else im.convert("RGB")
    return np.asarray(rgb.resize(size, bicubic), dtype=np.float32) / 255.0


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Turn (S, S, 3) pixels stored with EXIF `orientation` upright (ImageOps.exif_transpose's
    table, applied after resizing to the square, which costs no full-size copy)."""
    flips = {2: arr[:, ::-1], 3: arr[::-1, ::-1], 4: arr[::-1], 5: arr.transpose(1, 0, 2),
             6: np.rot90(arr, -1), 7: arr.transpose(1, 0, 2)[::-1, ::-1], 8: np.rot90(arr, 1)}
    return flips.get(orientation, arr)


def read_image(path: Path, image_size: int, cell: str = "") -> np.ndarray:
    """Read an image as float32 (3, image_size, image_size) in [0, 1] (RGB, EXIF-rotated)."""
    from PIL import Image, UnidentifiedImageError

    cell = cell or str(path)
    check_file(path, cell)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit is lower
            with Image.open(path) as im:  # lazy: reads the header only
                _check_pixels(im.size, cell)
                im.load()  # decodes now, so a truncated or corrupt file fails here
                orientation = im.getexif().get(EXIF_ORIENTATION, 1)
                arr = _orient(_to_rgb(im, image_size, cell), orientation)  # (S, S, 3)
    except FolderError:
        raise
    except Image.DecompressionBombError as err:
        raise FolderError(f"{cell}: the image is larger than the limit of {MAX_IMAGE_PIXELS:,} "
                          f"pixels (mmlab.data.limits.MAX_IMAGE_PIXELS; {err}). Resize it "
                          "first.") from None
    except UnidentifiedImageError:
        raise FolderError(f"{cell}: not an image Pillow can read (a corrupt file, or not an image "
                          "format Pillow supports; use PNG or JPEG).") from None
    except Exception as err:  # noqa: BLE001 - any failure to decode a user's file is its problem
        raise FolderError(f"{cell}: corrupt or truncated image "
                          f"({type(err).__name__}: {err}).") from None
    return np.ascontiguousarray(arr.transpose(2, 0, 1)).clip(0.0, 1.0)  # (3, H, W)


# ---- sounds --------------------------------------------------------------------------------
def _wav_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file, compare the declared `data` chunk size with the bytes on disk.

    libsndfile silently reads what is there when a wav was cut short; we report it instead.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            cid, csize = struct.unpack("<4sI", fh.read(8))
            if cid == b"data":
                if csize in (0, 0xFFFFFFFF):  # streamed wav: length unknown
                    return None
                have = size - pos - 8
                if have < csize:
                    return (f"truncated wav: the header declares {csize} bytes of audio but only "
                            f"{have} are in the file")
                return None
            pos += 8 + csize + (csize & 1)
    return "truncated wav: no 'data' chunk (the file was cut short)"


def _audio_header(path: Path, cell: str) -> tuple[int, int, int]:
    """(sample rate, channels, frames) from the header, checked against the limits."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise FolderError(f"{cell}: not a sound file soundfile can read ({err}); "
                          "use WAV, FLAC or OGG.") from None
    sr, channels, frames = int(info.samplerate), int(info.channels), int(info.frames)
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise FolderError(f"{cell}: the header declares a sample rate of {sr:,} Hz, outside "
                          f"{MIN_SAMPLE_RATE:,} to {MAX_SAMPLE_RATE:,} Hz (mmlab.data.limits); "
                          "re-export it at 16000 Hz.")
    if not 1 <= channels <= MAX_CHANNELS:
        raise FolderError(f"{cell}: the header declares {channels} channels; the limit is "
                          f"{MAX_CHANNELS} (mmlab.data.limits.MAX_CHANNELS). Mix it down to mono.")
    if frames <= 0:
        raise FolderError(f"{cell}: the sound file has no samples.")
    if frames > MAX_FILE_SECONDS * sr:
        raise FolderError(f"{cell}: the header declares {frames / sr:,.0f} s of sound; the limit "
                          f"is {MAX_FILE_SECONDS:,.0f} s (mmlab.data.limits.MAX_FILE_SECONDS). "
                          "Cut it into clips.")
    return sr, channels, frames


def resampled_length(frames: int, up: int, down: int) -> int:
    """The length `resample_poly` gives `frames` samples: ceil(frames · up / down)."""
    return -(-frames * up // down)


def _frames_needed(keep: int, up: int, down: int) -> int:
    """Source frames that output samples 0..keep-1 of `resample_poly(x, up, down)` depend on.

    resample_poly's filter has half-length 10·max(up, down) on the upsampled grid; output m sits
    at upsampled position m·down and source frame k at k·up.
    """
    if up == down:
        return keep
    return ((keep - 1) * down + 10 * max(up, down)) // up + 2  # + 2: a margin for the rounding


def _read_mono(path: Path, frames: int, cell: str) -> np.ndarray:
    """The first `frames` frames (or fewer, if the file ends early) as float32 mono (T,)."""
    import soundfile as sf

    mono = np.empty(frames, np.float32)  # (T,)
    got = 0
    try:
        with sf.SoundFile(str(path)) as fh:
            while got < frames:
                block = fh.read(min(READ_BLOCK_FRAMES, frames - got), dtype="float32",
                                always_2d=True)  # (b, channels)
                if len(block) == 0:
                    break
                mono[got:got + len(block)] = block.mean(axis=1)  # (b,)
                got += len(block)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise FolderError(f"{cell}: not a sound file soundfile can read ({err}); "
                          "use WAV, FLAC or OGG.") from None
    return mono[:got]


def read_audio(path: Path, sample_rate: int, cell: str = "",
               max_samples: int | None = None) -> tuple[np.ndarray, int]:
    """Read a sound file as float32 mono at `sample_rate` Hz, decoding only what is kept.

    Args:
        path: the file.
        sample_rate: the rate to resample to (Hz).
        cell: the path as written in pairs.csv, for messages.
        max_samples: keep at most this many samples at `sample_rate` (None: the whole file).
    Returns:
        (clip, length): clip float32 (min(length, max_samples),) and `length`, the samples the
        whole file has at `sample_rate` (from the header: ceil(frames · up / down)).
    """
    from scipy.signal import resample_poly

    cell = cell or str(path)
    check_file(path, cell)
    problem = _wav_truncation(path)
    if problem:
        raise FolderError(f"{cell}: {problem}. Re-export or re-record the file.")
    sr, _, frames = _audio_header(path, cell)
    g = math.gcd(sr, sample_rate)
    up, down = sample_rate // g, sr // g
    length = resampled_length(frames, up, down)
    keep = length if max_samples is None else min(length, max_samples)
    mono = _read_mono(path, min(frames, _frames_needed(keep, up, down)), cell)  # (T_read,)
    if len(mono) == 0:
        raise FolderError(f"{cell}: the sound file has no samples.")
    if len(mono) < min(frames, _frames_needed(keep, up, down)):  # ended before its header said
        length = resampled_length(len(mono), up, down)
        keep = min(keep, length)
    if not np.isfinite(mono).all():
        raise FolderError(f"{cell}: the sound file contains NaN or Inf samples.")
    if up != down:
        mono = resample_poly(mono, up, down).astype(np.float32)  # (T_read · up / down,)
    return mono[:keep], length
