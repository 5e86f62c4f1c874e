"""The course outside a checkout: what the wheel carries, where the data is found, JupyterLab's
own settings, and notebooks in nbformat 4.5 (cell ids).

The wheel itself is built, installed in a fresh venv and smoke-tested by `make wheel-smoke`
(scripts/wheel_smoke.py, about a minute), which CI runs; these tests are the fast checks.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import mmlab.data as D
from mmlab.data import files

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


def _shipped_files() -> list[str]:
    sys.path.insert(0, str(ROOT))
    try:
        from setup import shipped_files  # setup.py only calls setup() when run as __main__
    finally:
        sys.path.remove(str(ROOT))
    return shipped_files()


def test_wheel_carries_what_the_loaders_read():
    shipped = set(_shipped_files())
    speech = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))["files"]
    fsdd = json.loads((DATA / "fsdd" / "manifest.json").read_text(encoding="utf-8"))["files"]
    assert set(speech) <= shipped and {f"fsdd/{name}" for name in fsdd} <= shipped
    assert len(speech) == 480 and len(fsdd) == 3000
    # FSDD's attribution and licence travel with the recordings (CC BY-SA 4.0)
    assert {"manifest.json", "fsdd/manifest.json", "fsdd/LICENSE.md", "README.md"} <= shipped
    examples = {p.relative_to(DATA).as_posix() for p in (DATA / "examples").rglob("*")
                if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts}
    assert examples and examples <= shipped  # notebook 00 reads examples/my_pairs
    assert not [f for f in shipped if f.endswith(".py")], "build scripts do not ship"
    size = sum((DATA / f).stat().st_size for f in shipped)
    assert size < 30 * 2**20, f"the wheel's data is {size / 2**20:.1f} MB; the limit is 30 MB"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license-files = \[.*"data/fsdd/LICENSE\.md"', pyproject, re.M)
    assert "graft data" in (ROOT / "MANIFEST.in").read_text()  # the sdist carries data/ too


def test_data_root_prefers_the_installed_package_data(monkeypatch, tmp_path):
    """$MMLAB_DATA, then mmlab/_data/ (a wheel's copy), then the checkout's data/."""
    checkout = Path(D.__file__).resolve().parents[2] / "data"
    monkeypatch.delenv("MMLAB_DATA", raising=False)
    assert not (Path(D.__file__).resolve().parents[1] / "_data").exists()  # one copy in git
    monkeypatch.setattr(files, "_PACKAGE_DATA", tmp_path / "_data")
    assert D.data_root() == checkout
    (tmp_path / "_data").mkdir()
    assert D.data_root() == checkout  # an empty mmlab/_data/ without manifest does not count
    (tmp_path / "_data" / "manifest.json").write_text("{}")
    assert D.data_root() == tmp_path / "_data"
    monkeypatch.setenv("MMLAB_DATA", str(tmp_path / "mine"))
    assert D.data_root() == tmp_path / "mine"


def test_ci_runs_the_wheel_smoke_test():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^wheel-smoke:.*\n\t.*scripts/wheel_smoke\.py", makefile, re.M)
    assert re.search(r"^make wheel-smoke\b", (ROOT / ".ci" / "run").read_text(), re.M)


def _lab_config() -> Path:
    m = re.search(r"^LAB_CONFIG := --config=(\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert m, "the Makefile has no `LAB_CONFIG := --config=...` line"
    assert re.search(r"^lab:.*\n\t.*jupyter lab \$\(LAB_CONFIG\)", (ROOT / "Makefile").read_text(),
                     re.M), "`make lab` does not start JupyterLab with $(LAB_CONFIG)"
    return ROOT / m.group(1)


def test_make_lab_settings_turn_news_and_update_checks_off():
    loader = pytest.importorskip("traitlets.config.loader")
    path = _lab_config()
    cfg = loader.PyFileConfigLoader(path.name, str(path.parent)).load_config()
    assert cfg.LabApp.news_url is None
    assert cfg.LabApp.check_for_updates_class == "jupyterlab.NeverCheckForUpdate"
    overrides = json.loads((Path(cfg.LabApp.app_settings_dir) / "overrides.json").read_text())
    notification = overrides["@jupyterlab/apputils-extension:notification"]
    assert notification == {"fetchNews": "false", "checkForUpdates": False}
    # the values are valid for the installed JupyterLab (else it would ignore them)
    jsonschema = pytest.importorskip("jsonschema")
    schema = Path(sys.prefix, "share", "jupyter", "lab", "schemas", "@jupyterlab",
                  "apputils-extension", "notification.json")
    if not schema.is_file():
        pytest.skip(f"JupyterLab's schema is not at {schema}")
    jsonschema.validate(notification, json.loads(schema.read_text()))


def test_notebooks_and_editions_are_nbformat_45_with_cell_ids(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    out = tmp_path / "editions"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "editions.py"), "both", "--out",
                    str(out)], check=True, capture_output=True)
    notebooks = [*sorted((ROOT / "notebooks").glob("*.ipynb")),
                 *sorted((ROOT / "tests" / "assets").glob("*.ipynb")),
                 *sorted(out.glob("*/*.ipynb"))]
    assert len(notebooks) >= 3 * 12
    for path in notebooks:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nbformat's MissingIDFieldWarning among others
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
        assert (nb.nbformat, nb.nbformat_minor) >= (4, 5), path
