# mmlab: two commands for a newcomer.
#   make lab    set everything up (first time: a few minutes) and open JupyterLab on notebooks/
#   make test   set everything up and run the library tests, then every notebook in tiny mode
# Also: make claims (the course for seeds 0-4, writes CLAIMS.md), make course (execute every
#       notebook headless into HTML under build/), make bench, make data (rebuild the shipped
#       speech: espeak-ng clips and FSDD recordings), make clean-venv.
#       make student / make instructor write the two editions of the course into build/ (see
#       docs/INSTRUCTORS.md); make test-editions runs both in tiny mode.
#       make book builds the course as a static website in build/book/ (docs/INSTRUCTORS.md).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OFFLINE := scripts/offline.sh
NB_ENV := MMLAB_TINY=1 PYTHONHASHSEED=0

SEEDS ?= 0 1 2 3 4

.PHONY: setup lab test test-lib test-notebooks student instructor test-editions test-student \
	test-instructor claims claims-check course bench bench-deps bench-quick data clean-venv strip \
	book book-deps

setup: $(STAMP)

# (Re)install when the pins change. The exact pins keep pip from taking a CPU-only torch
# wheel that PyPI's torchvision/torchaudio cannot load against.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# JupyterLab with the project's settings (jupyter/jupyter_lab_config.py, also used by
# tests/test_browser.py): news feed and update check off, and never a question about them.
LAB_CONFIG := --config=jupyter/jupyter_lab_config.py
lab: setup
	$(VENV)/bin/jupyter lab $(LAB_CONFIG) notebooks/

test: setup test-lib test-notebooks

test-lib: setup
	$(NB_ENV) $(OFFLINE) $(PY) -m pytest tests -q -ra --durations=15

NBVAL := $(NB_ENV) $(OFFLINE) $(PY) -m pytest --nbval-lax --nbval-current-env -p no:randomly

test-notebooks: setup
	$(NBVAL) notebooks/ -q -ra

# The two editions (scripts/editions.py, standard library only: no set-up needed). The student
# edition replaces every `### BEGIN SOLUTION` ... `### END SOLUTION` region with a stub.
student:
	$(PYTHON) scripts/editions.py student

instructor:
	$(PYTHON) scripts/editions.py instructor

# Each edition in tiny mode, with its exercise checks strict (MMLAB_EXERCISES, mmlab.exercises):
# the instructor edition must pass every check; the student edition must run top to bottom with
# every check "not attempted yet" and every claim holding. (The instructor edition is notebooks/
# with outputs cleared, so CI runs `MMLAB_EXERCISES=require make test` and test-student only.)
test-editions: test-instructor test-student

test-instructor: setup instructor
	MMLAB_EXERCISES=require $(NBVAL) build/instructor/ -q -ra

test-student: setup student
	MMLAB_EXERCISES=unattempted $(NBVAL) build/student/ -q -ra

# Every claim of the course (mmlab.claims) for each seed in tiny mode: writes CLAIMS.md.
claims: setup
	$(OFFLINE) $(PY) scripts/run_claims.py --seeds $(SEEDS) --write CLAIMS.md
	$(PY) scripts/instructors_table.py --write

# CI: the same run for some seeds; fails if a claim fails or CLAIMS.md lacks it (is stale).
claims-check: setup
	$(OFFLINE) $(PY) scripts/run_claims.py --seeds $(SEEDS) --check CLAIMS.md

# HTML that renders offline: plotly.js embedded, MathJax from a local copy, no widget manager
# (its renderer would come from a CDN; widgets need a kernel anyway).
course: setup
	@rm -rf build/mathjax && mkdir -p build
	@cp -r "$$($(PY) -c 'import jupyter_server_mathjax as m, pathlib; \
		print(pathlib.Path(m.__file__).parent / "static")')" build/mathjax
	MMLAB_HTML_EXPORT=1 $(OFFLINE) $(VENV)/bin/jupyter nbconvert --to html --execute \
		--ExecutePreprocessor.timeout=1800 \
		--TemplateExporter.extra_template_basedirs=scripts/nbconvert --template mmlab_offline \
		--output-dir build notebooks/[0-9]*.ipynb
	@$(PY) scripts/check_offline_html.py build/*.html
	@echo "HTML for every notebook is in build/ (plotly figures interactive; widgets need a kernel)"

# The course as a static website, offline (scripts/book.py, Jupyter Book 1): the notebooks
# executed headless in tiny mode (FULL=1: full mode) under build/book-work/, the HTML in
# build/book/ (open build/book/index.html). Executed copies are reused until a notebook or
# mmlab/ changes. Only the installation of requirements-book.txt needs the package index.
BOOK_STAMP := $(VENV)/.installed-book

$(BOOK_STAMP): requirements-book.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-book.txt -c requirements.txt
	@touch $(BOOK_STAMP)

book-deps: $(BOOK_STAMP)

book: $(BOOK_STAMP)
	PYTHONHASHSEED=0 $(OFFLINE) $(PY) scripts/book.py $(if $(FULL),--full)

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.txt -c requirements.txt
	@touch $(BENCH_STAMP)

bench-deps: $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(OFFLINE) $(PY) -m benchmarks

bench-quick: $(BENCH_STAMP)
	$(OFFLINE) $(PY) -m benchmarks --quick --no-write

# The wheel installs and works outside the checkout: builds it, installs it in a fresh venv in a
# temporary directory (and `pip install .` in another) and runs a smoke test there.
.PHONY: wheel-smoke
wheel-smoke: setup
	$(OFFLINE) $(PY) scripts/wheel_smoke.py

# The shipped speech: espeak-ng clips, and FSDD's recordings as FLAC (FSDD=path to a copy of FSDD).
FSDD ?= ../shared/datasets/fsdd
data: setup
	$(PY) data/build_speech.py
	$(PY) data/build_fsdd.py $(FSDD)

strip: setup
	$(PY) scripts/strip_notebooks.py notebooks/*.ipynb tests/assets/*.ipynb

clean-venv:
	rm -rf $(VENV)
