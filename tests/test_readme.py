"""The README's Python examples run as written (with fewer training steps)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert len(_python_blocks()) >= 2


@pytest.mark.slow
def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write checkpoints/ relative to the working directory
    namespace: dict = {}
    for block in _python_blocks():
        code = block.replace("steps=500", "steps=3").replace("checkpoint_every=100", "checkpoint_every=2")
        code = code.replace("mmlab.viz.training_curves(history)", "fig = mmlab.viz.training_curves(history)")
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["out"].logits.shape == (8, 8)
    assert len(namespace["history"].loss) == 3
    assert (tmp_path / "checkpoints" / "digits.pt").exists()
    assert os.path.getsize(tmp_path / "checkpoints" / "digits.pt") > 0
