"""scripts/editions.py: student and instructor editions from one source.

Synthetic notebooks: each solution region (markers included) becomes one stub line at the
marker's indentation, everything else stays, markdown is untouched, outputs are cleared, and a
marker that does not delimit a region of one code cell is an error naming notebook, cell and
line. Then the real notebooks/: every stubbed cell parses and no solution line survives.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import textwrap
from pathlib import Path

import pytest

import mmlab.exercises as ex

ROOT = Path(__file__).resolve().parents[1]
STUB = "raise NotImplementedError  # your code here"


@pytest.fixture(scope="module")
def ed():
    spec = importlib.util.spec_from_file_location("editions", ROOT / "scripts" / "editions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code(src: str, as_list: bool = True, outputs: bool = True) -> dict:
    src = textwrap.dedent(src).strip("\n")
    return {"cell_type": "code", "metadata": {}, "id": "c" + str(abs(hash(src)) % 10**6),
            "execution_count": 3 if outputs else None,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]
            if outputs else [],
            "source": src.splitlines(keepends=True) if as_list else src}


def markdown(src: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": textwrap.dedent(src).strip("\n")}


def notebook(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {"widgets": {"state": {}}}, "nbformat": 4,
            "nbformat_minor": 5}


def text(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


SOLVED = """
    import torch.nn.functional as F


    class Wrapper:
        def my_alignment(self, a, b):
            \"\"\"Mean squared distance of paired unit rows.\"\"\"
            ### BEGIN SOLUTION
            a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
            return (a - b).pow(2).sum(dim=1).mean()
            ### END SOLUTION


    def my_uniformity(x):
        ### BEGIN SOLUTION
        return x.sum()
        ### END SOLUTION
    print("defined")
"""

EXPECTED = """
    import torch.nn.functional as F


    class Wrapper:
        def my_alignment(self, a, b):
            \"\"\"Mean squared distance of paired unit rows.\"\"\"
            raise NotImplementedError  # your code here


    def my_uniformity(x):
        raise NotImplementedError  # your code here
    print("defined")
"""


@pytest.mark.parametrize("as_list", [True, False])
def test_each_region_becomes_one_stub_at_the_markers_indentation(ed, as_list):
    md = markdown("## Your turn\nWrite `my_alignment` (solutions between markers).")
    src = notebook(md, code(SOLVED, as_list), code("x = 1  # no region"))
    before = json.dumps(src)
    student, regions = ed.make_edition(src, "nb.ipynb", student=True)
    assert regions == 2 and json.dumps(src) == before  # the source is not modified
    cell = student["cells"][1]
    assert text(cell) == textwrap.dedent(EXPECTED).strip("\n")
    assert isinstance(cell["source"], list) is as_list
    assert student["cells"][0] == md and text(student["cells"][2]) == "x = 1  # no region"
    ast.parse(text(cell))
    # the instructor edition keeps every line; both editions clear outputs and widget state
    instructor, regions = ed.make_edition(src, "nb.ipynb", student=False)
    assert regions == 2 and text(instructor["cells"][1]) == textwrap.dedent(SOLVED).strip("\n")
    for nb in (student, instructor):
        assert "widgets" not in nb["metadata"]
        for c in nb["cells"][1:]:
            assert c["outputs"] == [] and c["execution_count"] is None


def test_a_region_on_the_last_line_and_an_empty_region(ed):
    src = notebook(code("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
                   code("def g():\n    ### BEGIN SOLUTION\n    ### END SOLUTION\nh = 1"))
    student, regions = ed.make_edition(src, "nb.ipynb", student=True)
    assert regions == 2
    assert text(student["cells"][0]) == f"def f():\n    {STUB}"
    assert text(student["cells"][1]) == f"def g():\n    {STUB}\nh = 1"


def test_markdown_is_untouched_except_links_one_level_deeper(ed):
    prose = ("Solutions sit between `### BEGIN SOLUTION` and `### END SOLUTION`; "
             "see [the errors](../docs/ERRORS.md) and [the tour](00_tour.ipynb).")
    student, _ = ed.make_edition(notebook(markdown(prose)), "nb.ipynb", student=True)
    assert text(student["cells"][0]) == prose.replace("](../docs", "](../../docs")


@pytest.mark.parametrize("cells, cell_no, line_no, words", [
    ([code("def f():\n    ### BEGIN SOLUTION\n    return 1")], 1, 2, "never closed"),
    ([code("x = 1"), code("y = 2\n### END SOLUTION")], 2, 2, "without a `### BEGIN"),
    ([code("### BEGIN SOLUTION\na = 1\n### BEGIN SOLUTION\n### END SOLUTION\n"
           "### END SOLUTION")], 1, 3, "cannot nest"),
    ([code("def f():\n    ## BEGIN SOLUTION\n    return 1\n    ## END SOLUTION")], 1, 2,
     "looks like a solution marker"),
    ([markdown("# Title"), markdown("text\n### BEGIN SOLUTION\nanswer\n### END SOLUTION")],
     2, 2, "markdown cell"),
])
def test_bad_markers_are_errors_naming_notebook_cell_and_line(ed, cells, cell_no, line_no,
                                                              words):
    for student in (True, False):  # the instructor edition validates the markers too
        with pytest.raises(ed.EditionError) as info:
            ed.make_edition(notebook(*cells), "notebooks/07_x.ipynb", student=student)
        message = str(info.value)
        assert message.startswith(f"notebooks/07_x.ipynb, cell {cell_no} (")
        assert f"line {line_no}:" in message and words in message


def test_build_writes_runnable_folders_and_nothing_on_an_error(ed, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "01_a.ipynb").write_text(json.dumps(notebook(code(SOLVED))))
    (src / "02_b.ipynb").write_text(json.dumps(notebook(markdown("[x](../CLAIMS.md)"))))
    (src / "conftest.py").write_text("# conftest\n")
    (src / "README.md").write_text("[claims](../CLAIMS.md)\n")
    (src / "scratch.ipynb").write_text("{}")  # not NN_*: not part of the course
    out = tmp_path / "build"
    (out / "student" / "checkpoints").mkdir(parents=True)
    (out / "student" / "01_old.ipynb").write_text("{}")
    assert ed.main(["both", "--src", str(src), "--out", str(out)]) == 0
    assert "2 notebooks" in capsys.readouterr().out
    for edition in ("student", "instructor"):
        folder = out / edition
        assert sorted(p.name for p in folder.glob("*.ipynb")) == ["01_a.ipynb", "02_b.ipynb"]
        assert (folder / "conftest.py").read_text() == "# conftest\n"
        assert (folder / "README.md").read_text() == "[claims](../../CLAIMS.md)\n"
    assert (out / "student" / "checkpoints").is_dir()  # the cache is kept
    assert STUB in (out / "student" / "01_a.ipynb").read_text()
    assert STUB not in (out / "instructor" / "01_a.ipynb").read_text()
    # a bad marker in any notebook: exit 1, the message on stderr, no notebook rewritten
    (src / "02_b.ipynb").write_text(json.dumps(notebook(code("### END SOLUTION"))))
    stamp = (out / "student" / "01_a.ipynb").stat().st_mtime_ns
    assert ed.main(["student", "--src", str(src), "--out", str(out)]) == 1
    assert "02_b.ipynb, cell 1 (code" in capsys.readouterr().err
    assert (out / "student" / "01_a.ipynb").stat().st_mtime_ns == stamp


def test_editions_meet_the_checks_modes(ed, monkeypatch, capsys):
    """The student stub is "not attempted yet" and the instructor's solution is right."""
    cell = code("""
        import torch.nn.functional as F

        def my_alignment(a, b):
            ### BEGIN SOLUTION
            return (F.normalize(a, dim=1) - F.normalize(b, dim=1)).pow(2).sum(dim=1).mean()
            ### END SOLUTION
    """)
    for student, mode in ((True, "unattempted"), (False, "require")):
        nb, _ = ed.make_edition(notebook(cell), "nb.ipynb", student=student)
        namespace: dict = {}
        exec(text(nb["cells"][0]), namespace)  # noqa: S102 - our own synthetic cell
        monkeypatch.setenv("MMLAB_EXERCISES", mode)
        ex.get("alignment").check(namespace["my_alignment"])  # raises unless as the mode says
    assert "not attempted yet" in capsys.readouterr().out


def _region_lines(source: str) -> list[str]:
    inside, lines = False, []
    for line in source.splitlines():
        if line.strip() in ("### BEGIN SOLUTION", "### END SOLUTION"):
            inside = line.strip() == "### BEGIN SOLUTION"
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def test_the_real_notebooks(ed, tmp_path):
    """Both editions of notebooks/ build; every stubbed cell parses; no solution line survives.

    Passes with zero regions too (before the "your turn" cells exist)."""
    for edition in ("student", "instructor"):
        assert ed.main([edition, "--out", str(tmp_path)]) == 0
    sources = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(sources) >= 12
    for path in sources:
        source = json.loads(path.read_text())
        student = json.loads((tmp_path / "student" / path.name).read_text())
        instructor = json.loads((tmp_path / "instructor" / path.name).read_text())
        assert len(student["cells"]) == len(instructor["cells"]) == len(source["cells"])
        for orig, stu, ins in zip(source["cells"], student["cells"], instructor["cells"]):
            if orig["cell_type"] == "code":
                assert text(ins) == text(orig)
                assert ins["outputs"] == stu["outputs"] == []
            solution = _region_lines(text(orig))
            if not solution:
                assert text(stu) == text(ins)
                continue
            ast.parse(text(stu), f"{path.name} (student)")
            outside = set(line.strip() for line in text(orig).splitlines()) - set(solution)
            survivors = [s for s in solution if s not in outside and s in text(stu)]
            assert not survivors, (path.name, survivors)
            assert STUB in text(stu) and "SOLUTION" not in text(stu)


def test_instructors_page_lists_every_exercise_under_its_notebook():
    """docs/INSTRUCTORS.md's generated list names each exercise in its notebook's entry."""
    page = (ROOT / "docs" / "INSTRUCTORS.md").read_text(encoding="utf-8")
    begin = "<!-- BEGIN GENERATED by scripts/instructors_table.py: do not edit by hand -->"
    assert begin in page and "<!-- END GENERATED -->" in page
    block = page.split(begin, 1)[1].split("<!-- END GENERATED -->", 1)[0]
    entries = {}  # notebook number -> its entry's text
    for entry in block.split("\n- **")[1:]:
        entries[entry[:2]] = " ".join(entry.split())  # wrapped lines joined
    fix = "run `python scripts/instructors_table.py --write`"
    notebooks = sorted(p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(entries) == notebooks, f"docs/INSTRUCTORS.md lists other notebooks: {fix}"
    for nb, names in ex.by_notebook().items():
        for name in names:
            assert f"`{name}`" in entries[nb], f"{name} ({nb}) missing from the page: {fix}"
    for nb, entry in entries.items():  # the compute times are notebooks/README.md's
        assert "learner time about" in entry and "in tiny mode" in entry and "?" not in entry


def test_instructors_page_lists_every_claim_of_claims_md():
    """docs/INSTRUCTORS.md's claims block has CLAIMS.md's counts and every claim's statement."""
    page = (ROOT / "docs" / "INSTRUCTORS.md").read_text(encoding="utf-8")
    begin = "<!-- BEGIN GENERATED claims by scripts/instructors_table.py from CLAIMS.md"
    assert begin in page and "<!-- END GENERATED claims -->" in page
    block = page.split(begin, 1)[1].split("<!-- END GENERATED claims -->", 1)[0]
    block = " ".join(block.split())  # wrapped lines joined
    fix = "run `python scripts/instructors_table.py --write` after `make claims`"
    rows = [[c.strip().replace("\0", "|") for c in line.replace("\\|", "\0").split("|")[1:-1]]
            for line in (ROOT / "CLAIMS.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| 0") or line.startswith("| 1")]
    counts = [r for r in rows if len(r) == 4]  # notebook | learned | facts | failures
    claims = [r for r in rows if len(r) >= 6]  # notebook | claim | kind | holds if | seeds...
    assert counts and len(claims) == sum(int(r[1]) + int(r[2]) for r in counts)
    for nb, learned, facts, _ in counts:
        plural = ("s" if learned != "1" else "", "s" if facts != "1" else "")
        head = f"**{nb}**: {learned} learned claim{plural[0]}, {facts} fact{plural[1]}."
        assert head in block, f"{nb}: counts differ from CLAIMS.md: {fix}"
    for nb, text, kind, cond, *_ in claims:
        entry = f"{'fact: ' if kind == 'fact' else ''}{' '.join(text.split())} (holds if {cond})"
        assert entry in block, f"{nb}: claim missing from docs/INSTRUCTORS.md: {text!r}: {fix}"
