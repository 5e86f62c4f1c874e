"""Build hook: a wheel (or a non-editable `pip install .`) carries the shipped data.

The repository keeps one copy of the data, in `data/`, where a source checkout reads it
(`mmlab.data.files`). When setuptools builds the package, this `build_py` also copies into
`mmlab/_data/` exactly what the loaders and the notebooks read, so an installed mmlab works
outside the checkout (`mmlab.data.data_root()` prefers `mmlab/_data/`; `$MMLAB_DATA` still wins):

* `manifest.json` and every file it lists (the espeak-ng clips, `speech/**.wav`);
* `fsdd/manifest.json` and every file it lists (FSDD's FLAC recordings), with `fsdd/LICENSE.md`
  (CC BY-SA 4.0: attribution, licence and changes travel with the recordings);
* `README.md` (what the files are, their licences) and `examples/my_pairs/` (the example folder
  for `mmlab.data.from_folder`, used by notebook 00) without its build script.

The build scripts (`data/build_*.py`) stay in the repository. Editable installs copy nothing:
they read `data/` in place. The sdist carries `data/` (MANIFEST.in), so a wheel built from it
is the same. `scripts/wheel_smoke.py` (`make wheel-smoke`) builds the wheel and tests it in a
fresh environment.
"""

from __future__ import annotations

import json
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
TARGET = ("mmlab", "_data")
LIMIT_BYTES = 30 * 2**20  # the data budget (tests/test_setup.py checks data/ against it too)


def shipped_files(data: Path = DATA) -> list[str]:
    """Paths, relative to `data`, of every file the wheel carries (sorted, forward slashes)."""
    files = {"README.md", "manifest.json", "fsdd/manifest.json", "fsdd/LICENSE.md"}
    for manifest in ("manifest.json", "fsdd/manifest.json"):
        prefix = manifest.rpartition("/")[0]
        listed = json.loads((data / manifest).read_text(encoding="utf-8"))["files"]
        files.update(f"{prefix}/{name}" if prefix else name for name in listed)
    files.update(p.relative_to(data).as_posix() for p in (data / "examples").rglob("*")
                 if p.is_file() and p.suffix not in {".py", ".pyc"}
                 and "__pycache__" not in p.parts)
    missing = sorted(f for f in files if not (data / f).is_file())
    if missing:
        raise FileNotFoundError(f"{len(missing)} data files listed for the wheel are missing from "
                                f"{data}, e.g. {missing[:3]}; run `make data` or restore data/.")
    return sorted(files)


class BuildPyWithData(build_py):
    """`build_py` that also copies the shipped data into `<build>/mmlab/_data/`."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads data/ in place
        files = shipped_files()
        size = sum((DATA / f).stat().st_size for f in files)
        if size > LIMIT_BYTES:
            raise RuntimeError(f"The wheel's data would be {size / 2**20:.1f} MB; the limit is "
                               f"{LIMIT_BYTES / 2**20:.0f} MB.")
        target = Path(self.build_lib, *TARGET)
        for rel in files:
            dst = target / rel
            self.mkpath(str(dst.parent))
            self.copy_file(str(DATA / rel), str(dst), preserve_mode=False)


# setuptools runs this file as __main__; scripts/wheel_smoke.py imports it for shipped_files
if __name__ == "__main__":
    setup(cmdclass={"build_py": BuildPyWithData})
