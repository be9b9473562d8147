# The book's commands. `make book` builds the site, `make test` runs every test; both set up a
# virtual environment in .venv first (once: later runs reuse it until pyproject.toml or
# constraints.txt change).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Waiting OpenMP threads sleep instead of spinning (why, and what it is worth: vi_lib/mnist/cli.py).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup book test site-test student execute sync clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --constraint constraints.txt --editable ".[book,test]"
	touch $(STAMP)

## Build the static site into _build/html from the committed notebook outputs (executes nothing).
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --builder html -n -W --keep-going

## Run vi_lib's unit tests and re-execute every notebook with nbval.
test: $(STAMP)
	$(PY) -m pytest

## Test the built site in headless Chromium, as a reader sees it (after `make book`);
## screenshots of every page land in _build/screenshots.
site-test: $(STAMP)
	$(PY) -m pytest tests/site

## Re-execute notebooks in place (authors): `make execute` for all, or NB="notebooks/01_*.ipynb".
execute: $(STAMP)
	$(PY) -m tools.execute_notebooks $(NB)

## Generate the student edition of every chapter into student/ (solutions removed; not committed).
student: $(STAMP)
	$(PY) -m tools.make_student_editions

## Rewrite the Colab setup and notation cells of every notebook from _config.yml, and the
## exercises' nbgrader metadata from their roles (tools/exercises.py).
sync: $(STAMP)
	$(PY) -m tools.sync_notebooks

clean:
	rm -rf _build
