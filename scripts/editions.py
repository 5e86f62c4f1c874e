"""Student and instructor editions of the course, from the one source in notebooks/.

    python scripts/editions.py student      # build/student/: every solution replaced by a stub
    python scripts/editions.py instructor   # build/instructor/: the notebooks as they are
    python scripts/editions.py both

Solutions live in code cells between nbgrader's markers, indented like the code around them:

    def my_alignment(a, b):
        ### BEGIN SOLUTION
        return (F.normalize(a, dim=1) - F.normalize(b, dim=1)).pow(2).sum(dim=1).mean()
        ### END SOLUTION

The student edition replaces each region, markers included, with one line at the marker's
indentation, `raise NotImplementedError  # your code here`, so the check cell after it says "not
attempted yet" and the rest of the lesson runs on the library's version. Both editions clear
every output. A marker that does not open and close a region in one code cell (unbalanced,
nested, in a markdown cell, or spelled another way) is an error naming the notebook, the cell
and the line: nothing is built from a source that nbgrader would read differently.

Each edition folder also gets what the notebooks need to run there with the same nbval command
as notebooks/: notebooks/conftest.py (tiny-mode defaults, per-notebook times) and README.md.
Data come from the installed `mmlab`; `checkpoints/` is created next to the notebooks when they
run, as in notebooks/. Markdown links to the repository (`](../docs/...)`) get one more `../`.
Standard library only: `make student` works before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "raise NotImplementedError  # your code here"
SUPPORT = ("conftest.py", "README.md")  # copied from notebooks/ next to the built notebooks
# Anything a reader (or nbgrader) could take for a marker: a comment naming BEGIN/END SOLUTION.
_MARKER_LIKE = re.compile(r"^\s*#.*\b(BEGIN|END)\s+SOLUTION\b")
_UP_LINK = re.compile(r"(\]\(|href=\")\.\./")


class EditionError(ValueError):
    """A solution marker that does not delimit a region of one code cell."""


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _set_source(cell: dict, text: str) -> None:
    cell["source"] = text.splitlines(keepends=True) if isinstance(cell["source"], list) else text


def strip_solutions(text: str, where: str) -> tuple[str, int]:
    """`text` with every solution region replaced by the stub; returns (text, regions).

    `where` names the cell in errors, e.g. "notebooks/02_clip_alignment.ipynb, cell 14".
    """
    out: list[str] = []
    begin_line = 0  # 1-based line of the open region's BEGIN marker; 0: outside a region
    regions = 0
    for n, line in enumerate(text.splitlines(keepends=True), start=1):
        bare = line.strip()
        if bare == BEGIN:
            if begin_line:
                raise EditionError(f"{where}, line {n}: a second `{BEGIN}` inside the region "
                                   f"opened on line {begin_line}: regions cannot nest; close the "
                                   f"first with `{END}`.")
            begin_line = n
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + STUB + ("\n" if line.endswith("\n") else ""))
        elif bare == END:
            if not begin_line:
                raise EditionError(f"{where}, line {n}: `{END}` without a `{BEGIN}` before it "
                                   "in this cell (a region opens and closes in one code cell).")
            begin_line = 0
            regions += 1
            if not line.endswith("\n") and out and out[-1].endswith("\n"):
                out[-1] = out[-1][:-1]  # the END marker was the cell's last line
        elif _MARKER_LIKE.match(line):
            raise EditionError(f"{where}, line {n}: {bare!r} looks like a solution marker but is "
                               f"not one: write exactly `{BEGIN}` or `{END}` on a line of its own "
                               "(nbgrader's markers).")
        elif not begin_line:
            out.append(line)
    if begin_line:
        raise EditionError(f"{where}, line {begin_line}: `{BEGIN}` is never closed: add "
                           f"`{END}` after the solution, in the same cell.")
    return "".join(out), regions


def clear_outputs(nb: dict) -> dict:
    """Outputs, execution counts and saved widget state removed (in place; returns `nb`)."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nb.get("metadata", {}).pop("widgets", None)
    return nb


def make_edition(nb: dict, name: str, student: bool) -> tuple[dict, int]:
    """A copy of notebook `nb` (called `name` in errors) as the student or instructor edition.

    Both editions: outputs cleared, links up the tree one level deeper; every marker validated.
    The student edition: every solution region replaced by the stub. Returns (notebook, regions).
    """
    nb = json.loads(json.dumps(nb))
    regions = 0
    for k, cell in enumerate(nb.get("cells", []), start=1):
        kind = cell.get("cell_type")
        where = f"{name}, cell {k} ({kind}{', id ' + cell['id'] if cell.get('id') else ''})"
        text = _source(cell)
        if kind == "code":
            stripped, n = strip_solutions(text, where)
            regions += n
            if student and n:
                _set_source(cell, stripped)
            continue
        for n_line, line in enumerate(text.splitlines(), start=1):
            if _MARKER_LIKE.match(line) or line.strip() in (BEGIN, END):
                raise EditionError(f"{where}, line {n_line}: a solution marker in a {kind} cell; "
                                   "solutions go in code cells only (the student edition "
                                   "replaces them with code).")
        if kind == "markdown" and _UP_LINK.search(text):
            _set_source(cell, _UP_LINK.sub(r"\1../../", text))
    return clear_outputs(nb), regions


def build(edition: str, src: Path, out: Path) -> dict[str, int]:
    """Write `edition` ("student" or "instructor") of src/NN_*.ipynb into `out`.

    Every notebook is checked before anything is written; old *.ipynb in `out` are removed
    (its checkpoints/ cache is kept). Returns notebook file name -> solution regions.
    """
    paths = sorted(src.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise EditionError(f"no notebooks NN_*.ipynb in {src}")
    built = {}
    for path in paths:
        nb = json.loads(path.read_text(encoding="utf-8"))
        built[path.name] = make_edition(nb, _shown(path), edition == "student")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.ipynb"):
        old.unlink()
    for name, (nb, _) in built.items():
        (out / name).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n",
                                encoding="utf-8")
    for name in SUPPORT:
        if (src / name).exists():
            text = (src / name).read_text(encoding="utf-8")
            if name.endswith(".md"):
                text = _UP_LINK.sub(r"\1../../", text)
            (out / name).write_text(text, encoding="utf-8")
    return {name: n for name, (_, n) in built.items()}


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("edition", choices=("student", "instructor", "both"))
    parser.add_argument("--src", type=Path, default=ROOT / "notebooks",
                        help="folder of the source notebooks (default: notebooks/)")
    parser.add_argument("--out", type=Path, default=ROOT / "build",
                        help="the editions go to OUT/student and OUT/instructor (default: build/)")
    args = parser.parse_args(argv)
    editions = ("student", "instructor") if args.edition == "both" else (args.edition,)
    try:
        for edition in editions:
            regions = build(edition, args.src, args.out / edition)
            what = ("solution regions replaced by stubs" if edition == "student"
                    else "solution regions kept")
            print(f"{edition} edition: {len(regions)} notebooks in {_shown(args.out / edition)}, "
                  f"{sum(regions.values())} {what}")
    except EditionError as exc:
        print(f"editions.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
