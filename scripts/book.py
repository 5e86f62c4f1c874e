"""The course as a static website (`make book`): Jupyter Book 1 on the executed notebooks.

    python scripts/book.py                     # every notebook, tiny mode -> build/book/
    python scripts/book.py --full              # full mode (MMLAB_TINY=0; hours on a CPU)
    python scripts/book.py --notebooks 00_tour 01_embedding_spaces --work /tmp/w --out /tmp/b

Three steps, each in build/ (notebooks/ is never written to):
1. execute each notebook headless into `<work>/executed-<mode>/` (nbconvert, with
   MMLAB_HTML_EXPORT=1 so plotly embeds plotly.js in the output, as `make course` does); an
   executed copy is reused until its notebook or a file of `mmlab/` is newer;
2. assemble the book's source in `<work>/src/`: the executed copies (widget outputs replaced by
   a note, since widgets need a live kernel), a landing page (the path through the course from
   notebooks/README.md, prerequisites, times), both editions of each notebook to download, and
   MathJax 2 from the installed jupyter-server-mathjax package;
3. `jupyter-book build` it and copy the HTML to `<out>/` (entry page `<out>/index.html`).

Nothing is fetched from the network: plotly.js is inlined in the outputs, MathJax and its fonts
are served from the book's own `_static/mathjax/`, the theme's assets ship with
sphinx-book-theme, search is Sphinx's own index, and myst-nb's widget scripts (a CDN) are off.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import editions  # noqa: E402  (scripts/editions.py: the student and instructor editions)
import instructors_table as it  # noqa: E402  (compute times and learner-time estimates)
from check_offline_html import remote_loads  # noqa: E402

CSS_REMOTE = re.compile(r"""(?:url\(\s*["']?|@import\s+["'])(?:https?:)?//[^"')\s]+""", re.I)
NOTEBOOKS = ROOT / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET_NOTE = ("<p><em>An interactive widget is here: it needs a live Python kernel. Open the "
               "notebook in JupyterLab to use it.</em></p>")
# MathJax 2 (the version jupyter-server-mathjax ships), configured as scripts/nbconvert does.
MATHJAX_PATH = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
MATHJAX_CONFIG = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                "processEscapes": True, "processEnvironments": True,
                "ignoreClass": "tex2jax_ignore|mathjax_ignore",
                "processClass": "tex2jax_process|mathjax_process|math|output_area"},
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web",
                 "imageFont": None},
}


def _newest_mtime(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.rglob("*.py")), default=0.0)


def execute(names: list[str], out: Path, full: bool) -> list[Path]:
    """Run each notebook headless into `out` (skipped while the executed copy is current)."""
    out.mkdir(parents=True, exist_ok=True)
    library = _newest_mtime(ROOT / "mmlab")
    env = {**os.environ, "MMLAB_HTML_EXPORT": "1", "MMLAB_TINY": "0" if full else "1",
           "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    done = []
    for name in names:
        src, dst = NOTEBOOKS / f"{name}.ipynb", out / f"{name}.ipynb"
        if dst.exists() and dst.stat().st_mtime > max(src.stat().st_mtime, library):
            print(f"book: {name}: executed copy is current ({dst})")
        else:
            print(f"book: executing {name} ({'full' if full else 'tiny'} mode)", flush=True)
            subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook",
                            "--execute", "--ExecutePreprocessor.timeout=7200",
                            "--output-dir", str(out), str(src)], check=True, env=env, cwd=out)
        done.append(dst)
    return done


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source


def page_notebook(nb: dict, name: str, row: dict) -> dict:
    """The book's copy of an executed notebook: download links, no live-kernel widgets."""
    nb = json.loads(json.dumps(nb))
    nb["metadata"].pop("widgets", None)  # widget state would make myst-nb load a CDN manager
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":  # links into the repository: name the file instead
            text = re.sub(r"\[([^\]]+)\]\(\.\./([^)]+)\)", r"\1 (`\2` in the repository)",
                          _text(cell["source"]))
            cell["source"] = text
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                output["data"] = {"text/html": WIDGET_NOTE, "text/plain": "(interactive widget)"}
            elif PLOTLY in data and "text/html" in data:  # the page draws the HTML version
                del data[PLOTLY]
    note = (f"<p class=\"mmlab-download\">Download this notebook: "
            f"{_download(name, 'student')} (exercises as stubs) or "
            f"{_download(name, 'instructor')} (with solutions), without outputs.</p>\n\n"
            f"Compute: {row['tiny']} in tiny mode on 2 CPU cores, {row['full']} in full mode on "
            f"CPU. Learner time: about {row['learner']} min (an estimate, see the instructor "
            f"guide).")
    cell = {"cell_type": "markdown", "id": "mmlab-book-download", "metadata": {}, "source": note}
    first = nb["cells"][0] if nb["cells"] else None
    at = 1 if first and first["cell_type"] == "markdown" and _text(first["source"]).startswith(
        "# ") else 0
    nb["cells"].insert(at, cell)
    return nb


def _download(name: str, edition: str) -> str:
    return f'<a href="{edition}/{name}.ipynb" download><code>{edition}/{name}.ipynb</code></a>'


def course_rows(names: list[str]) -> dict[str, dict]:
    """Per notebook: README's 'you will see' and times, and the learner-time estimate."""
    import mmlab.exercises as ex

    rows, groups = {}, ex.by_notebook()
    for line in (NOTEBOOKS / "README.md").read_text(encoding="utf-8").splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) == 5 and re.fullmatch(r"\d\d", cols[0]):
            rows[cols[0]] = {"see": cols[2], "tiny": cols[3], "full": cols[4]}
    out = {}
    for name in names:
        if name[:2] not in rows:
            raise SystemExit(f"book: {name} has no row in notebooks/README.md's course table")
        words, regions = it.prose_words(NOTEBOOKS / f"{name}.ipynb")
        exercises = max(len(groups.get(name[:2], [])), regions)
        row = rows[name[:2]]
        cells = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
        title = next((line[2:].strip() for c in cells if c["cell_type"] == "markdown"
                      for line in _text(c["source"]).splitlines() if line.startswith("# ")), name)
        out[name] = {**row, "title": title,
                     "learner": it.learner_minutes(words, exercises, row["tiny"])}
    return out


def _readme_section(heading: str) -> str:
    """The body of one `## heading` section of notebooks/README.md."""
    text = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    body = text.split(f"## {heading}\n", 1)[1]
    return body.split("\n## ", 1)[0].strip()


def landing_page(names: list[str], rows: dict[str, dict], full: bool) -> str:
    """index.md: what the course is, prerequisites, the path with times, how to run it."""
    before = _readme_section("Before you start")
    path_text = _readme_section("The path through the course")
    after_table = path_text.split("\n\n", 1)[1].split("\n\n")[0] if "\n\n" in path_text else ""
    path = []
    for name in names:
        r = rows[name]
        path.append(f"- **[{r['title']}]({name}.ipynb)**: {r['see']}.\n  Compute {r['tiny']} in "
                    f"tiny mode (2 CPU cores), {r['full']} in full mode (CPU); learner time about "
                    f"{r['learner']} min (estimate); download {_download(name, 'student')}.")
    mode = ("full mode (`MMLAB_TINY=0`)" if full else
            "tiny mode (`MMLAB_TINY=1`: small models and data, every claim the same)")
    return "\n".join([
        "# mmlab: learn multimodal contrastive learning by doing", "",
        "A course of notebooks backed by a small PyTorch library. You train audio, image and text "
        "encoders so that they share one embedding space, and then you see what happened: "
        "embedding geometry, the modality gap, the effect of temperature, attention "
        "attribution. Every notebook states its claims, runs the experiment, shows it and "
        "checks each claim: the verdicts are printed on each page.", "",
        f"Each page here is a notebook executed headless in {mode} by `make book`; its figures "
        "are interactive (zoom, hover). Widgets need a live kernel: run the notebook in "
        "JupyterLab for those. The download links give the notebook without outputs, as a "
        "learner starts it.", "",
        "## Before you start", "", _strip_repo_links(before), "",
        "## The path through the course", "", *path, "", _strip_repo_links(after_table), "",
        "Compute times are measured (see `notebooks/README.md` in the repository); learner times "
        "are estimates: the prose read at 100 words a minute, 10 minutes per checked exercise "
        "and the tiny-mode compute time (`docs/INSTRUCTORS.md`).", "",
    ])


def _strip_repo_links(text: str) -> str:
    return re.sub(r"\[([^\]]+)\]\(\.\./([^)]+)\)", r"\1 (`\2` in the repository)", text)


def book_config(full: bool) -> dict:
    """_config.yml: Jupyter Book with nothing loaded from the network."""
    return {
        "title": "mmlab", "author": "the mmlab authors", "copyright": "",
        "only_build_toc_files": True,
        "exclude_patterns": ["_build", "_mathjax", "_downloads_nb", "**.ipynb_checkpoints"],
        "execute": {"execute_notebooks": "off"},  # executed by this script, offline
        "parse": {"myst_enable_extensions": ["colon_fence", "dollarmath", "amsmath"]},
        "html": {"use_repository_button": False, "use_issues_button": False,
                 "use_edit_page_button": False, "use_multitoc_numbering": False,
                 "home_page_in_navbar": True,
                 "extra_footer": f"Executed in {'full' if full else 'tiny'} mode by make book."},
        "launch_buttons": {"binderhub_url": "", "jupyterhub_url": "", "thebe": False,
                           "colab_url": "", "deepnote_url": ""},
        "repository": {"url": ""},
        "sphinx": {"config": {
            # Jupyter Book's list without sphinx_thebe (its script names a CDN and is added
            # twice, a JavaScript error), intersphinx (fetches inventories) and
            # the LaTeX builder's extension (no PDF here)
            "extensions": ["sphinx_togglebutton", "sphinx_copybutton", "myst_nb", "jupyter_book",
                           "sphinx_comments", "sphinx_external_toc", "sphinx_design",
                           "sphinx_book_theme"],
            "html_static_path": ["_mathjax"],  # served as _static/mathjax/
            "html_extra_path": ["_downloads_nb"],  # student/ and instructor/ notebooks
            "html_copy_source": False,  # the executed notebooks (MBs each) are not offered
            "mathjax_path": MATHJAX_PATH,
            "mathjax2_config": MATHJAX_CONFIG,
            "myst_update_mathjax": False,
            "nb_ipywidgets_js": {},  # myst-nb's default loads require.js and a manager from CDNs
            "html_theme_options": {"use_download_button": False, "use_fullscreen_button": True},
        }},
    }


def assemble(executed: list[Path], src: Path, full: bool) -> None:
    """Write the book's source folder from the executed notebooks."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    import jupyter_server_mathjax

    # not in src/_static: Jupyter Book would add every .js file found there to every page
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static",
                    src / "_mathjax" / "mathjax")
    names = [p.stem for p in executed]
    rows = course_rows(names)
    for path in executed:
        nb = json.loads(path.read_text(encoding="utf-8"))
        page = page_notebook(nb, path.stem, rows[path.stem])
        (src / path.name).write_text(json.dumps(page, ensure_ascii=False), encoding="utf-8")
        clean = json.loads((NOTEBOOKS / path.name).read_text(encoding="utf-8"))
        for edition in ("student", "instructor"):
            made, _ = editions.make_edition(clean, path.name, edition == "student")
            folder = src / "_downloads_nb" / edition
            folder.mkdir(parents=True, exist_ok=True)
            (folder / path.name).write_text(json.dumps(made, indent=1, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
    (src / "index.md").write_text(landing_page(names, rows, full), encoding="utf-8")
    toc = {"format": "jb-book", "root": "index",
           "chapters": [{"file": name} for name in names]}
    (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    (src / "_config.yml").write_text(yaml.safe_dump(book_config(full), sort_keys=False),
                                     encoding="utf-8")


def build(src: Path, out: Path) -> None:
    """jupyter-book build, then the HTML to `out`."""
    jb = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jb) if jb.exists() else "jupyter-book", "build", str(src), "--all",
                    "--keep-going"], check=True)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src / "_build" / "html", out)
    remote = {p: hits for p in sorted(out.rglob("*.html"))
              if (hits := remote_loads(p.read_text(encoding="utf-8", errors="replace")))}
    remote.update({p: hits for p in sorted(out.rglob("*.css"))
                   if (hits := CSS_REMOTE.findall(p.read_text(encoding="utf-8",
                                                              errors="replace")))})
    if remote:
        raise SystemExit("book: these pages load from the network: "
                         + "; ".join(f"{p}: {hits[:2]}" for p, hits in remote.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="full mode instead of tiny mode")
    parser.add_argument("--notebooks", nargs="+", metavar="NAME",
                        help="notebook names without .ipynb (default: every NN_*.ipynb)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "book-work",
                        help="executed copies and the book's source (default: build/book-work)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book",
                        help="the HTML (default: build/book)")
    args = parser.parse_args(argv)
    names = args.notebooks or [p.stem for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]
    missing = [n for n in names if not (NOTEBOOKS / f"{n}.ipynb").exists()]
    if missing:
        parser.error(f"no notebook {missing} in notebooks/; names look like 00_tour")
    executed = execute(names, args.work / f"executed-{'full' if args.full else 'tiny'}",
                       args.full)
    assemble(executed, args.work / "src", args.full)
    build(args.work / "src", args.out)
    print(f"book: {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
