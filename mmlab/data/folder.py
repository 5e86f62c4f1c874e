"""`from_folder`: bring your own paired images, sounds and captions.

A folder holds a `pairs.csv` with one row per pair, keyed by `id`:

    id,image,audio,text
    cat01,images/cat01.png,sounds/cat01.wav,a cat on a sofa
    dog02,images/dog02.jpg,,a dog (no sound for this one)

Any modality cell may be empty: that pair then has `present[modality] = False` and a zero
placeholder, so batches keep one shape (the missing-modality mask of ImageBind-style training).
Images are read with Pillow, EXIF-rotated, converted to RGB and resized to `image_size` ×
`image_size` (the whole picture, squashed; no crop), then scaled to [0, 1]. Sounds are read with
soundfile, mixed to mono (the mean over channels), resampled to `sample_rate` with a polyphase
filter (`scipy.signal.resample_poly`, up/down = the reduced ratio of the two rates) and padded
with zeros (or cropped at the end) to one common length T.

Pairs are never shifted against each other: every pair is read row by row and a row whose file
is bad is dropped as a whole, so `meta["ids"][i]` always names row i of every modality.
Paths are relative to the folder and may not leave it (no `..`, no absolute paths, no symlinks
pointing outside).
"""

from __future__ import annotations

import csv
import math
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmlab._checks import check_choice, check_int, check_positive
from mmlab.data.dataset import MultimodalDataset

PAIRS_FILE = "pairs.csv"
MODALITY_COLUMNS = ("image", "audio")
MAX_AUDIO_SECONDS = 10.0  # the default common length is the longest clip, capped at this
ON_ERROR = ("raise", "skip")


class FolderError(ValueError):
    """A problem with a user's folder: the message names the file (or csv line) and the fix."""


@dataclass
class _Row:
    line: int           # line number in pairs.csv (the header is line 1)
    id: str
    image: str
    audio: str
    text: str


# ---- paths ---------------------------------------------------------------------------------
def _resolve_inside(root: Path, cell: str, column: str, row: _Row) -> Path:
    """`root / cell`, refusing absolute paths and anything that resolves outside `root`."""
    where = f"{PAIRS_FILE} line {row.line} (id {row.id!r}), column `{column}`"
    p = Path(cell)
    if p.is_absolute() or os.path.isabs(cell) or p.drive or cell.startswith(("~", "\\")):
        raise FolderError(f"{where}: the path {cell!r} is absolute; paths must be relative to the folder "
                          f"{root} (e.g. 'images/{p.name}'). Copy the file into the folder.")
    full = (root / p).resolve()
    if not full.is_relative_to(root):
        how = "is a symlink that points" if ".." not in p.parts else "goes"
        raise FolderError(f"{where}: the path {cell!r} {how} outside the folder {root} (resolves to {full}); "
                          "from_folder only reads files inside the folder. Copy the file into the folder.")
    return full


# ---- readers (each raises FolderError naming the path and the problem) ---------------------
def _check_file(path: Path, cell: str) -> None:
    if not path.exists():
        raise FolderError(f"{cell}: file not found ({path}). Check the spelling and the folder.")
    if not path.is_file():
        raise FolderError(f"{cell}: is not a file ({path} is a directory or a special file).")
    if path.stat().st_size == 0:
        raise FolderError(f"{cell}: the file is empty (0 bytes).")


def read_image(path: Path, image_size: int, cell: str = "") -> np.ndarray:
    """Read an image as float32 (3, image_size, image_size) in [0, 1] (RGB, EXIF-rotated, resized)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    cell = cell or str(path)
    _check_file(path, cell)
    try:
        with Image.open(path) as im:
            im.load()  # decodes now, so a truncated or corrupt file fails here
            im = ImageOps.exif_transpose(im)
            if im.mode in ("P", "LA", "PA") or "transparency" in im.info:
                im = im.convert("RGBA")
            im = im.convert("RGB").resize((image_size, image_size), Image.Resampling.BICUBIC)
            arr = np.asarray(im, dtype=np.float32) / 255.0  # (H, W, 3)
    except UnidentifiedImageError:
        raise FolderError(f"{cell}: not an image Pillow can read (a corrupt file, or not an image format "
                          "Pillow supports; use PNG or JPEG).") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise FolderError(f"{cell}: corrupt or truncated image ({err}).") from None
    return np.ascontiguousarray(arr.transpose(2, 0, 1)).clip(0.0, 1.0)  # (3, H, W)


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
                    return (f"truncated wav: the header declares {csize} bytes of audio but only {have} "
                            "are in the file")
                return None
            pos += 8 + csize + (csize & 1)
    return "truncated wav: no 'data' chunk (the file was cut short)"


def read_audio(path: Path, sample_rate: int, cell: str = "") -> np.ndarray:
    """Read a sound file as float32 mono (T,) at `sample_rate` Hz (channel mean, polyphase resampling)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    cell = cell or str(path)
    _check_file(path, cell)
    problem = _wav_truncation(path)
    if problem:
        raise FolderError(f"{cell}: {problem}. Re-export or re-record the file.")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (T, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise FolderError(f"{cell}: not a sound file soundfile can read ({err}); use WAV, FLAC or OGG.") from None
    if data.shape[0] == 0:
        raise FolderError(f"{cell}: the sound file has no samples.")
    if not np.isfinite(data).all():
        raise FolderError(f"{cell}: the sound file contains NaN or Inf samples.")
    mono = data.mean(axis=1)  # (T,)
    if sr != sample_rate:
        g = math.gcd(int(sr), int(sample_rate))
        mono = resample_poly(mono, sample_rate // g, int(sr) // g).astype(np.float32)  # (T * sample_rate / sr,)
    return mono


# ---- pairs.csv -----------------------------------------------------------------------------
def _read_pairs(csv_path: Path, text_column: str) -> tuple[list[_Row], list[str]]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            lines = list(csv.reader(fh))
    except UnicodeDecodeError as err:
        raise FolderError(f"{csv_path}: is not UTF-8 text ({err}); save it as 'CSV UTF-8'.") from None
    except csv.Error as err:
        raise FolderError(f"{csv_path}: cannot be parsed as CSV ({err}).") from None
    if not lines:
        raise FolderError(f"{csv_path}: is empty; it needs a header line `id,image,audio,text` and one row per pair.")
    header = [h.strip() for h in lines[0]]
    if "id" not in header:
        raise FolderError(f"{csv_path}: has no `id` column (header: {header}). The first line must name the "
                          "columns, e.g. `id,image,audio,text`; every pair needs a unique id.")
    dup_cols = sorted({h for h in header if header.count(h) > 1 and h})
    if dup_cols:
        raise FolderError(f"{csv_path}: the header names columns {dup_cols} more than once: {header}.")
    columns = [c for c in (*MODALITY_COLUMNS, text_column) if c in header]
    if not columns:
        raise FolderError(f"{csv_path}: has no modality column; expected some of 'image', 'audio', "
                          f"{text_column!r} (header: {header}).")
    col = {h: i for i, h in enumerate(header)}
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    for n, cells in enumerate(lines[1:], start=2):
        if not any(c.strip() for c in cells):
            continue  # blank line
        if len(cells) > len(header):
            raise FolderError(f"{csv_path} line {n}: has {len(cells)} cells but the header has {len(header)} "
                              "columns; put text containing commas in double quotes.")

        def get(name: str) -> str:
            i = col.get(name)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        rid = get("id")
        if not rid:
            raise FolderError(f"{csv_path} line {n}: the `id` cell is empty; every pair needs a unique id.")
        if rid in seen:
            raise FolderError(f"{csv_path}: id {rid!r} appears more than once (lines {seen[rid]} and {n}); "
                              "ids key the pairs and must be unique.")
        seen[rid] = n
        text = cells[col[text_column]] if text_column in col and col[text_column] < len(cells) else ""
        rows.append(_Row(n, rid, get("image"), get("audio"), text.strip()))
    if not rows:
        raise FolderError(f"{csv_path}: has a header but no rows; add one line per pair.")
    return rows, columns


def from_folder(root: str | os.PathLike, *, image_size: int = 32, audio_seconds: float | None = None,
                sample_rate: int = 16_000, on_error: str = "raise", text_column: str = "text") -> MultimodalDataset:
    """Load your own pairs from `root/pairs.csv` into the batch format of the built-in datasets.

    Args:
        root: the folder holding `pairs.csv` (columns `id`, and any of `image`, `audio` and
            `text_column`); file paths in the csv are relative to it.
        image_size: images are resized to (3, image_size, image_size).
        audio_seconds: the common clip length in seconds (pad with zeros / crop the end); None
            takes the longest clip, capped at MAX_AUDIO_SECONDS.
        sample_rate: audio is resampled to this rate in Hz (mmlab's encoders expect 16000).
        on_error: "raise" stops at the first bad file with its path and the problem; "skip" drops
            that pair, warns with a summary and lists it in `meta["skipped"]`. Problems with the
            csv itself (no `id` column, duplicated ids) and paths leaving the folder always raise.
        text_column: the csv column read as the text modality.
    Returns:
        A `MultimodalDataset` with modalities "image" float32 (N, 3, S, S) in [0, 1], "audio"
        float32 (N, T), "text" list[str] (those whose columns exist), `present` masks, and meta:
        "ids" (row order), "skipped" [(id, path, reason)], "root", "sample_rate", and per-sample
        "sample": {"row": csv line (N,), "audio_length": samples before padding (N,), "ids": list
        of N ids}. `ds.subset(idx)` slices "ids" and "sample", so `meta["ids"][i]` names row i.
    Raises:
        FolderError (a ValueError): a bad csv, a missing/corrupt/empty/unsupported file (with
            on_error="raise"), a path leaving the folder, or no usable pair left.
        TypeError / ValueError: for bad arguments.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"`root` must be a folder path (str or Path), got {type(root).__name__}.")
    check_int("image_size", image_size)
    check_int("sample_rate", sample_rate)
    if audio_seconds is not None:
        check_positive("audio_seconds", audio_seconds)
    check_choice("on_error", on_error, ON_ERROR)
    if not isinstance(text_column, str) or not text_column:
        raise TypeError(f"`text_column` must be a non-empty str, got {text_column!r}.")
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        hint = " Pass the folder that contains it, not the file." if root.is_file() else ""
        raise FolderError(f"`root` {root} is not a folder.{hint}")
    csv_path = root / PAIRS_FILE
    if not csv_path.is_file():
        raise FolderError(f"`root` {root} has no {PAIRS_FILE}; create it with the header `id,image,audio,text` "
                          "and one row per pair (see docs/ERRORS.md, 'Bring your own data').")
    rows, columns = _read_pairs(csv_path, text_column)

    kept: list[tuple[_Row, np.ndarray | None, np.ndarray | None]] = []
    skipped: list[tuple[str, str, str]] = []
    for row in rows:
        image = audio = None
        try:
            for column, reader, arg in (("image", read_image, image_size), ("audio", read_audio, sample_rate)):
                cell = getattr(row, column)
                if column in columns and cell:
                    path = _resolve_inside(root, cell, column, row)  # always raises: a safety rule
                    try:
                        value = reader(path, arg, cell=cell)
                    except FolderError as err:
                        if on_error == "raise":
                            raise FolderError(f"{PAIRS_FILE} line {row.line} (id {row.id!r}): {err}") from None
                        raise _Skip(row.id, cell, str(err).removeprefix(f"{cell}: ")) from None
                    image, audio = (value, audio) if column == "image" else (image, value)
        except _Skip as s:
            skipped.append((s.id, s.path, s.reason))
            continue
        kept.append((row, image, audio))

    if skipped:
        listed = "; ".join(f"{i} ({p}): {r.rstrip('.')}" for i, p, r in skipped[:5])
        more = f"; ... and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warnings.warn(f"from_folder({str(root)!r}) skipped {len(skipped)} of {len(rows)} pairs: {listed}{more}. "
                      "See ds.meta['skipped'].", stacklevel=2)
    if not kept:
        raise FolderError(f"{csv_path}: no usable pair is left after skipping {len(skipped)} bad ones; "
                          f"first problem: {skipped[0] if skipped else None}.")
    n = len(kept)
    modalities: dict[str, Any] = {}
    present: dict[str, torch.Tensor] = {}
    if "image" in columns:
        images = torch.zeros(n, 3, image_size, image_size)  # (N, 3, S, S); zeros where missing
        for i, (_, im, _) in enumerate(kept):
            if im is not None:
                images[i] = torch.from_numpy(im)
        modalities["image"] = images
        present["image"] = torch.tensor([im is not None for _, im, _ in kept])
    lengths = torch.tensor([0 if au is None else len(au) for _, _, au in kept], dtype=torch.int64)  # (N,)
    if "audio" in columns:
        if audio_seconds is not None:
            t = max(1, round(audio_seconds * sample_rate))
        else:
            longest = int(lengths.max())
            t = min(longest, round(MAX_AUDIO_SECONDS * sample_rate)) if longest else sample_rate
        audio = torch.zeros(n, t)  # (N, T); zero padding at the end
        for i, (_, _, au) in enumerate(kept):
            if au is not None:
                clip = torch.from_numpy(np.ascontiguousarray(au[:t], dtype=np.float32))
                audio[i, :len(clip)] = clip
        modalities["audio"] = audio
        present["audio"] = torch.tensor([au is not None for _, _, au in kept])
    if text_column in columns:
        modalities["text"] = [row.text for row, _, _ in kept]
        present["text"] = torch.tensor([bool(row.text) for row, _, _ in kept])
    key = {"image": "image", "audio": "audio", text_column: "text"}
    modalities = {key_: modalities[key_] for key_ in (key[c] for c in columns)}
    ids = [row.id for row, _, _ in kept]
    meta = {"ids": ids, "skipped": skipped, "root": str(root), "sample_rate": sample_rate,
            "sample": {"row": torch.tensor([row.line for row, _, _ in kept], dtype=torch.int64),
                       "audio_length": lengths, "ids": list(ids)}}
    return MultimodalDataset(modalities, present=present, meta=meta)


class _Skip(Exception):
    def __init__(self, id_: str, path: str, reason: str) -> None:
        super().__init__(reason)
        self.id, self.path, self.reason = id_, path, reason
