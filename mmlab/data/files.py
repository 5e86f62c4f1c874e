"""Where the shipped data lives and how it is verified (sha256 checksums, like d2l's DATA_HUB).

Every file a loader reads is listed in `data/manifest.json` with its sha256. A loader calls
`verified_path(relpath)`, which checks the file once per process (the result is cached by
path, size and modification time) and raises `DataFileError` when it is missing or corrupt.

Where the data directory is (`data_root()`), first match wins:
1. `$MMLAB_DATA`, when set;
2. `mmlab/_data/` inside the installed package: a wheel or a non-editable `pip install .`
   carries the shipped files there (setup.py copies them at build time);
3. the source checkout's `data/` (beside `mmlab/`): editable installs and `make`.
A checkout never has `mmlab/_data/`, so the one copy of the data lives in `data/`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import mmlab

DATA_ENV = "MMLAB_DATA"
_PACKAGE_DATA = Path(mmlab.__file__).resolve().parent / "_data"  # in a wheel (see setup.py)
_CHECKOUT_DATA = Path(mmlab.__file__).resolve().parents[1] / "data"  # in a source checkout
MANIFEST_NAME = "manifest.json"
REBUILD_COMMAND = "python data/build_speech.py"


class DataFileError(OSError):
    """A shipped data file is missing or does not match its sha256 in `data/manifest.json`.

    One class for both cases (a subclass of `OSError`, like `FileNotFoundError`); the message
    names the file, says what is wrong and gives the rebuild command.
    """


def data_root() -> Path:
    """The data directory: `$MMLAB_DATA` if set (read at every call), else the installed
    package's `mmlab/_data/` if it exists, else the source checkout's `data/`."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return _PACKAGE_DATA if (_PACKAGE_DATA / MANIFEST_NAME).is_file() else _CHECKOUT_DATA


DATA_ROOT: Path = data_root()  # the data directory when mmlab.data was imported


def _fix_hint(root: Path, rebuild: str = REBUILD_COMMAND) -> str:
    return (f"Rebuild the files with `{rebuild}` (writes into {root}), restore the data/ directory "
            f"from the repository, or point ${DATA_ENV} at a good copy.")


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def _manifest(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_manifest(root: Path | None = None, rebuild: str = REBUILD_COMMAND) -> dict[str, Any]:
    """Read `manifest.json` under `root` (default `data_root()`).

    Raises:
        DataFileError: when the manifest is missing or is not valid JSON.
    """
    root = Path(root) if root is not None else data_root()
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise DataFileError(f"Data file missing: {path} (the checksum manifest). "
                            f"{_fix_hint(root, rebuild)}")
    st = path.stat()
    try:
        return _manifest(str(path.resolve()), st.st_mtime_ns, st.st_size)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFileError(f"Data file corrupt: {path} is not valid JSON ({err}). "
                            f"{_fix_hint(root, rebuild)}") from None


@functools.lru_cache(maxsize=4096)
def _verify(path: str, mtime_ns: int, size: int, expected: str) -> str:
    return sha256_file(path)


def verified_path(relpath: str, root: Path | None = None, rebuild: str = REBUILD_COMMAND) -> Path:
    """Return `root / relpath` after checking it against the manifest's sha256 (cached).

    Args:
        relpath: path relative to the data root, with forward slashes, e.g. "speech/v00/zero.wav".
        root: the directory holding `manifest.json` (default `data_root()`).
        rebuild: the command that rebuilds these files, for the error message.
    Returns:
        The absolute path of the verified file.
    Raises:
        DataFileError: if the file is not in the manifest, is missing, or its checksum differs.
    """
    root = Path(root) if root is not None else data_root()
    files = read_manifest(root, rebuild).get("files", {})
    hint = _fix_hint(root, rebuild)
    if relpath not in files:
        raise DataFileError(f"Data file {relpath!r} is not listed in {root / MANIFEST_NAME}. "
                            f"{hint}")
    expected = files[relpath]["sha256"]
    path = root / relpath
    if not path.is_file():
        raise DataFileError(f"Data file missing: {path}. {hint}")
    st = path.stat()
    got = _verify(str(path.resolve()), st.st_mtime_ns, st.st_size, expected)
    if got != expected:
        raise DataFileError(f"Data file corrupt: {path}: checksum mismatch, "
                            f"expected sha256 {expected}, got {got}. {hint}")
    return path
