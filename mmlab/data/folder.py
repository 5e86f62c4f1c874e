"""`from_folder`: bring your own paired images, sounds and captions.

A folder holds a `pairs.csv` with one row per pair, keyed by `id`:

    id,image,audio,text
    cat01,images/cat01.png,sounds/cat01.wav,a cat on a sofa
    dog02,images/dog02.jpg,,a dog (no sound for this one)

Any modality cell may be empty: that pair then has `present[modality] = False` and a zero
placeholder, so batches keep one shape (the missing-modality mask of ImageBind-style training).
Loading runs in three phases: read the csv (`_read_pairs`), decode each row's files with the skip
policy (`_load_rows`, decoding in `mmlab.data.media`: every image mode to RGB in [0, 1], sounds
to mono at `sample_rate`, each file checked against `mmlab.data.limits` from its header first),
and assemble the tensors (`_assemble`: images resized to S × S, sounds padded with zeros or
cropped at the end to one common length T).

Pairs are never shifted against each other: every pair is read row by row and a row whose file
is bad is dropped as a whole, so `meta["ids"][i]` always names row i of every modality.
Paths are relative to the folder and may not leave it (no `..`, no absolute paths, no symlinks
pointing outside, `pairs.csv` itself included).
"""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmlab._checks import check_choice, check_int, check_positive
from mmlab.data.dataset import MultimodalDataset
from mmlab.data.limits import (MAX_CLIP_SECONDS, MAX_IMAGE_SIZE, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE,
                               check_at_most)
from mmlab.data.media import FolderError, read_audio, read_image

PAIRS_FILE = "pairs.csv"
MODALITY_COLUMNS = ("image", "audio")
MAX_AUDIO_SECONDS = 10.0  # the default common length is the longest clip, capped at this
ON_ERROR = ("raise", "skip")
__all__ = ["FolderError", "from_folder", "read_audio", "read_image"]


@dataclass
class _Row:
    line: int           # line number in pairs.csv where the row starts (the header is line 1)
    id: str
    image: str
    audio: str
    text: str


def _resolve_inside(root: Path, cell: str, where: str) -> Path:
    """`root / cell`, refusing absolute paths and anything that resolves outside `root`."""
    p = Path(cell)
    if p.is_absolute() or os.path.isabs(cell) or p.drive or cell.startswith(("~", "\\")):
        raise FolderError(f"{where}: the path {cell!r} is absolute; paths must be relative to the "
                          f"folder {root} (e.g. 'images/{p.name}'). Copy the file into the folder.")
    full = (root / p).resolve()
    if not full.is_relative_to(root):
        how = "is a symlink that points" if ".." not in p.parts else "goes"
        raise FolderError(f"{where}: the path {cell!r} {how} outside the folder {root} "
                          f"(resolves to {full}); from_folder only reads files inside the folder. "
                          "Copy the file into the folder.")
    return full


# ---- phase 1: pairs.csv --------------------------------------------------------------------
def _csv_records(csv_path: Path) -> list[tuple[int, list[str]]]:
    """(start line, cells) of every csv record; a quoted cell may span several lines."""
    records, line = [], 0
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            for cells in reader:
                records.append((line + 1, cells))
                line = reader.line_num
    except UnicodeDecodeError as err:
        raise FolderError(f"{csv_path}: is not UTF-8 text ({err}); "
                          "save it as 'CSV UTF-8'.") from None
    except csv.Error as err:
        raise FolderError(f"{csv_path}: cannot be parsed as CSV ({err}).") from None
    if not records:
        raise FolderError(f"{csv_path}: is empty; it needs a header line `id,image,audio,text` and "
                          "one row per pair.")
    return records


def _check_header(csv_path: Path, header: list[str], text_column: str) -> list[str]:
    """The modality columns present; refuses misspelt case and a missing chosen text column."""
    known = ("id", *MODALITY_COLUMNS, text_column)
    for h in header:
        match = [k for k in known if h != k and h.lower() == k.lower()]
        if match and match[0] not in header:
            raise FolderError(f"{csv_path}: the header has a column {h!r}; column names are "
                              f"case-sensitive: rename it to {match[0]!r} (header: {header}).")
    if "id" not in header:
        raise FolderError(f"{csv_path}: has no `id` column (header: {header}). The first line "
                          "must name the columns, e.g. `id,image,audio,text`; every pair needs a "
                          "unique id.")
    dup_cols = sorted({h for h in header if header.count(h) > 1 and h})
    if dup_cols:
        raise FolderError(f"{csv_path}: the header names columns {dup_cols} more than once: "
                          f"{header}.")
    if text_column != "text" and text_column not in header:
        raise FolderError(f"{csv_path}: `text_column` {text_column!r} is not a column of the "
                          f"header {header}; pass one of its columns or add the column.")
    columns = [c for c in (*MODALITY_COLUMNS, text_column) if c in header]
    if not columns:
        raise FolderError(f"{csv_path}: has no modality column; expected some of 'image', 'audio', "
                          f"{text_column!r} (header: {header}).")
    return columns


def _read_pairs(csv_path: Path, text_column: str) -> tuple[list[_Row], list[str]]:
    records = _csv_records(csv_path)
    header = [h.strip() for h in records[0][1]]
    columns = _check_header(csv_path, header, text_column)
    col = {h: i for i, h in enumerate(header)}
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    for n, cells in records[1:]:
        if not any(c.strip() for c in cells):
            continue  # blank line
        if len(cells) > len(header):
            raise FolderError(f"{csv_path} line {n}: has {len(cells)} cells but the header has "
                              f"{len(header)} columns; put text containing commas in double "
                              "quotes.")

        def get(name: str) -> str:
            i = col.get(name)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        rid = get("id")
        if not rid:
            raise FolderError(f"{csv_path} line {n}: the `id` cell is empty; every pair needs a "
                              "unique id.")
        if rid in seen:
            raise FolderError(f"{csv_path}: id {rid!r} appears more than once (lines "
                              f"{seen[rid]} and {n}); ids key the pairs and must be unique.")
        seen[rid] = n
        rows.append(_Row(n, rid, get("image"), get("audio"), get(text_column)))
    if not rows:
        raise FolderError(f"{csv_path}: has a header but no rows; add one line per pair.")
    return rows, columns


# ---- phase 2: decode each row's files, with the skip policy ---------------------------------
Decoded = tuple[_Row, "np.ndarray | None", "tuple[np.ndarray, int] | None"]


def _load_rows(root: Path, rows: list[_Row], columns: list[str], image_size: int, sample_rate: int,
               max_samples: int, on_error: str) -> tuple[list[Decoded], list[tuple[str, str, str]]]:
    """Decode every row; a bad file raises (naming csv line and id) or drops its whole row."""
    kept: list[Decoded] = []
    skipped: list[tuple[str, str, str]] = []
    for row in rows:
        image = audio = None
        try:
            for column in MODALITY_COLUMNS:
                cell = getattr(row, column)
                if column not in columns or not cell:
                    continue
                where = f"{PAIRS_FILE} line {row.line} (id {row.id!r})"
                path = _resolve_inside(root, cell, f"{where}, column `{column}`")  # always raises
                try:
                    if column == "image":
                        image = read_image(path, image_size, cell=cell)
                    else:
                        audio = read_audio(path, sample_rate, cell=cell, max_samples=max_samples)
                except FolderError as err:
                    if on_error == "raise":
                        raise FolderError(f"{where}: {err}") from None
                    raise _Skip(row.id, cell, str(err).removeprefix(f"{cell}: ")) from None
        except _Skip as s:
            skipped.append((s.id, s.path, s.reason))
            continue
        kept.append((row, image, audio))
    return kept, skipped


class _Skip(Exception):
    def __init__(self, id_: str, path: str, reason: str) -> None:
        super().__init__(reason)
        self.id, self.path, self.reason = id_, path, reason


# ---- phase 3: assemble the tensors ---------------------------------------------------------
def _assemble(kept: list[Decoded], columns: list[str], text_column: str, image_size: int,
              t_audio: int) -> tuple[dict[str, Any], dict[str, torch.Tensor], torch.Tensor]:
    """Stack the kept rows: (modalities, present masks, audio lengths (N,) before padding)."""
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
    lengths = torch.tensor([0 if au is None else au[1] for _, _, au in kept],
                           dtype=torch.int64)  # (N,)
    if "audio" in columns:
        audio = torch.zeros(n, t_audio)  # (N, T); zero padding at the end
        for i, (_, _, au) in enumerate(kept):
            if au is not None:
                clip = torch.from_numpy(np.ascontiguousarray(au[0][:t_audio], dtype=np.float32))
                audio[i, :len(clip)] = clip
        modalities["audio"] = audio
        present["audio"] = torch.tensor([au is not None for _, _, au in kept])
    if text_column in columns:
        modalities["text"] = [row.text for row, _, _ in kept]
        present["text"] = torch.tensor([bool(row.text) for row, _, _ in kept])
    key = {"image": "image", "audio": "audio", text_column: "text"}
    return {k: modalities[k] for k in (key[c] for c in columns)}, present, lengths


def from_folder(root: str | os.PathLike, *, image_size: int = 32,
                audio_seconds: float | None = None, sample_rate: int = 16_000,
                on_error: str = "raise", text_column: str = "text") -> MultimodalDataset:
    """Load your own pairs from `root/pairs.csv` into the batch format of the built-in datasets.

    Args:
        root: the folder holding `pairs.csv` (columns `id`, and any of `image`, `audio` and
            `text_column`); file paths in the csv are relative to it.
        image_size: images are resized to (3, image_size, image_size); at most MAX_IMAGE_SIZE.
        audio_seconds: the common clip length in seconds (pad with zeros / crop the end), at most
            MAX_CLIP_SECONDS; None takes the longest clip, capped at MAX_AUDIO_SECONDS. Only the
            kept part of each file is decoded.
        sample_rate: audio is resampled to this rate in Hz (mmlab's encoders expect 16000);
            MIN_SAMPLE_RATE to MAX_SAMPLE_RATE.
        on_error: "raise" stops at the first bad file with its path and the problem; "skip" drops
            that pair, warns with a summary and lists it in `meta["skipped"]`. Problems with the
            csv itself (no `id` column, duplicated ids) and paths leaving the folder always raise.
        text_column: the csv column read as the text modality (a column other than "text" must
            exist; column names are case-sensitive).
    Returns:
        A `MultimodalDataset` with modalities "image" float32 (N, 3, S, S) in [0, 1], "audio"
        float32 (N, T), "text" list[str] (those whose columns exist), `present` masks, and meta:
        "ids" (row order), "skipped" [(id, path, reason)], "root", "sample_rate", and per-sample
        "sample": {"row": csv line (N,), "audio_length": samples before padding (N,), "ids": list
        of N ids}. `ds.subset(idx)` slices "ids" and "sample", so `meta["ids"][i]` names row i.
    Raises:
        FolderError (a ValueError): a bad csv, a missing/corrupt/empty/unsupported file or one
            beyond the limits of `mmlab.data.limits` (with on_error="raise"), a path leaving the
            folder, or no usable pair left.
        TypeError / ValueError: for bad arguments.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"`root` must be a folder path (str or Path), got {type(root).__name__}.")
    check_int("image_size", image_size)
    check_at_most("image_size", image_size, MAX_IMAGE_SIZE, "MAX_IMAGE_SIZE")
    check_int("sample_rate", sample_rate, minimum=MIN_SAMPLE_RATE)
    check_at_most("sample_rate", sample_rate, MAX_SAMPLE_RATE, "MAX_SAMPLE_RATE")
    if audio_seconds is not None:
        check_positive("audio_seconds", audio_seconds)
        check_at_most("audio_seconds", audio_seconds, MAX_CLIP_SECONDS, "MAX_CLIP_SECONDS")
    check_choice("on_error", on_error, ON_ERROR)
    if not isinstance(text_column, str) or not text_column:
        raise TypeError(f"`text_column` must be a non-empty str, got {text_column!r}.")
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        hint = " Pass the folder that contains it, not the file." if root.is_file() else ""
        raise FolderError(f"`root` {root} is not a folder.{hint}")
    csv_path = root / PAIRS_FILE
    if not csv_path.is_file():
        raise FolderError(f"`root` {root} has no {PAIRS_FILE}; create it with the header "
                          "`id,image,audio,text` and one row per pair (see docs/ERRORS.md, "
                          "'Bring your own data').")
    csv_path = _resolve_inside(root, PAIRS_FILE, f"{csv_path}")
    rows, columns = _read_pairs(csv_path, text_column)

    cap = round((MAX_AUDIO_SECONDS if audio_seconds is None else audio_seconds) * sample_rate)
    kept, skipped = _load_rows(root, rows, columns, image_size, sample_rate, max(1, cap), on_error)
    if skipped:
        listed = "; ".join(f"{i} ({p}): {r.rstrip('.')}" for i, p, r in skipped[:5])
        more = f"; ... and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warnings.warn(f"from_folder({str(root)!r}) skipped {len(skipped)} of {len(rows)} pairs: "
                      f"{listed}{more}. See ds.meta['skipped'].", stacklevel=2)
    if not kept:
        raise FolderError(f"{csv_path}: no usable pair is left after skipping {len(skipped)} bad "
                          f"ones; first problem: {skipped[0] if skipped else None}.")
    longest = max((au[1] for _, _, au in kept if au is not None), default=0)
    if audio_seconds is not None:
        t = max(1, round(audio_seconds * sample_rate))
    else:
        t = min(longest, round(MAX_AUDIO_SECONDS * sample_rate)) if longest else sample_rate
    modalities, present, lengths = _assemble(kept, columns, text_column, image_size, t)
    ids = [row.id for row, _, _ in kept]
    meta = {"ids": ids, "skipped": skipped, "root": str(root), "sample_rate": sample_rate,
            "sample": {"row": torch.tensor([row.line for row, _, _ in kept], dtype=torch.int64),
                       "audio_length": lengths, "ids": list(ids)}}
    return MultimodalDataset(modalities, present=present, meta=meta)
