"""The project's own promises about set-up: pins, the two commands, CI, notebooks, offline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.strip().lstrip("-").strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(==|>=)\s*([^\s#]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2) + m.group(3)
    return pins


def test_environment_yml_mirrors_requirements():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env_text = (ROOT / "environment.yml").read_text()
    pip_block = env_text.split("- pip:", 1)[1].splitlines()
    env = _pins(pip_block)
    assert req, "requirements.txt lists no pinned packages"
    assert env == req, f"environment.yml and requirements.txt disagree: {set(env.items()) ^ set(req.items())}"


def test_torch_set_is_pinned_exactly():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    for name in ("torch", "torchvision", "torchaudio"):
        assert req[name].startswith("=="), f"{name} must be pinned exactly, got {req[name]}"


def test_ci_calls_make_test_and_readme_shows_two_commands():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab:", "test:", "course:", "setup:"):
        assert re.search(rf"^{target}", makefile, re.M), f"Makefile has no `{target}` target"


def test_notebooks_are_committed_without_outputs():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "tests" / "assets").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for nb in notebooks:
        cells = json.loads(nb.read_text())["cells"]
        dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
        assert not dirty, f"{nb.name} has outputs in cells {dirty}; run `make strip`"


def test_data_folder_is_small():
    size = sum(p.stat().st_size for p in (ROOT / "data").rglob("*") if p.is_file())
    assert size < 30 * 2**20, f"data/ is {size / 2**20:.1f} MB; the limit is 30 MB"


_PROBE = r"""
import socket, sys
try:
    socket.create_connection(("pypi.org", 443), timeout=3).close()
    print("NETWORK-REACHABLE"); sys.exit(1)
except OSError:
    pass
from mmlab.encoders import SentenceEncoder
import mmlab.data
ds = mmlab.data.load("digits", split="test")
z = SentenceEncoder()(["the digit seven", "a red circle"])
assert z.shape == (2, 384), z.shape
print("OFFLINE-OK", len(ds))
"""


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_unshare(), reason="no user/network namespaces here (unshare -rn)")
def test_library_works_with_the_network_cut_off():
    """Load data and the pretrained sentence encoder with no network at all (loopback only)."""
    out = subprocess.run([str(ROOT / "scripts" / "offline.sh"), sys.executable, "-c", _PROBE],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OFFLINE-OK" in out.stdout
