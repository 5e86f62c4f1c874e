"""Notebooks survive out-of-order use: a learner re-runs a cell, then carries on.

For each notebook picked (see below), the notebook is executed top to bottom in tiny mode
(MMLAB_TINY=1) with nbclient in this environment's kernel; a deterministic sample of
`CELLS_PER_NOTEBOOK` code cells (seeded by the notebook's name) is executed a second time right
after its first run, and execution then continues with the next cells. Any error fails the test
with the cell index and the traceback. Cells tagged `raises-exception` may raise (nbclient's rule).

Cost and the choice made: `make test` already runs every notebook once under nbval, so this test
only adds the re-runs. Executing a notebook costs its whole tiny runtime (up to ~90 s on 2 cores),
so the tests are marked `slow`, and by default only a fixed sample of notebooks runs:
00_tour.ipynb (when it exists) plus `DEFAULT_SAMPLE - 1` others drawn with a fixed seed.
  MMLAB_RERUN_NOTEBOOKS=all           every notebook
  MMLAB_RERUN_NOTEBOOKS=00_tour,03_x  these notebooks (names without .ipynb)
  MMLAB_RERUN_SEED=7                  another fixed sample (notebooks and cells)
Notebooks are found automatically: every notebooks/[0-9]*.ipynb; none yet means one skip.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
CELLS_PER_NOTEBOOK = 2
DEFAULT_SAMPLE = 3
CELL_TIMEOUT_S = 600
ALWAYS = "00_tour"


def all_notebooks() -> list[Path]:
    return sorted(p for p in NOTEBOOKS_DIR.glob("[0-9]*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def picked_notebooks() -> list[Path]:
    """The notebooks this run re-executes (see the module docstring)."""
    nbs = all_notebooks()
    choice = os.environ.get("MMLAB_RERUN_NOTEBOOKS", "").strip()
    if choice == "all":
        return nbs
    if choice:
        wanted = {c.strip().removesuffix(".ipynb") for c in choice.split(",") if c.strip()}
        return [p for p in nbs if p.stem in wanted]
    first = [p for p in nbs if p.stem == ALWAYS]
    rest = [p for p in nbs if p.stem != ALWAYS]
    rng = random.Random(int(os.environ.get("MMLAB_RERUN_SEED", "0")))
    k = max(0, min(len(rest), DEFAULT_SAMPLE - len(first)))
    return first + sorted(rng.sample(rest, k))


def rerun_cells(name: str, code_cells: list[int]) -> list[int]:
    """A deterministic sample of code-cell indices to run twice (same seed → same cells)."""
    rng = random.Random(f"{os.environ.get('MMLAB_RERUN_SEED', '0')}:{name}")
    return sorted(rng.sample(code_cells, min(CELLS_PER_NOTEBOOK, len(code_cells))))


def execute_with_reruns(path: Path, rerun: set[int] | None = None) -> list[int]:
    """Execute the notebook top to bottom, running each cell in `rerun` twice in a row.

    Returns the indices of the cells that were re-run. Raises nbclient's CellExecutionError.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    if rerun is None:
        rerun = set(rerun_cells(path.stem, code))
    env_note = {"MMLAB_TINY": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for k, v in env_note.items():  # the kernel inherits the environment of this process
        os.environ.setdefault(k, v)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    # run the kernel with this interpreter, whatever the installed kernelspec says
    client.km = client.create_kernel_manager()
    client.km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, i)
            if i in rerun:
                client.execute_cell(cell, i)  # a learner runs it again before moving on
    return sorted(rerun)


NOTEBOOKS = picked_notebooks()


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS or [None], ids=[p.stem for p in NOTEBOOKS] or ["no-notebooks"])
def test_rerun_cells_then_continue(path):
    if path is None:
        pytest.skip(f"no notebooks in {NOTEBOOKS_DIR} yet")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    execute_with_reruns(path)


def test_sampling_is_deterministic_and_in_range():
    cells = list(range(3, 40, 2))
    a, b = rerun_cells("03_example", cells), rerun_cells("03_example", cells)
    assert a == b and len(a) == CELLS_PER_NOTEBOOK and set(a) <= set(cells) and len(set(a)) == len(a)
    assert rerun_cells("x", [5]) == [5] and rerun_cells("x", []) == []
    assert picked_notebooks() == picked_notebooks()


@pytest.mark.slow
def test_a_failing_rerun_is_caught(tmp_path):
    """The harness itself: a cell that breaks when run twice must fail the test."""
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("items = [1, 2, 3]"),
                nbformat.v4.new_code_cell("first = items.pop(0)"),   # not idempotent:
                nbformat.v4.new_code_cell("assert first == 1 and items == [2, 3]")]
    path = tmp_path / "99_fragile.ipynb"
    nbformat.write(nb, path)
    assert execute_with_reruns(path, rerun=set()) == []
    with pytest.raises(CellExecutionError, match="AssertionError"):
        execute_with_reruns(path, rerun={1})
