"""Keep the two book-wide cells of every chapter notebook in sync with `_config.yml`, and its nbgrader metadata.

1. The *notation* cell (tag ``book-macros``, removed from the site, which has the macros already):
   the MathJax macros of ``_config.yml`` as ``\\newcommand``s, so that the notebook's formulas
   also render in Jupyter and on Colab.
2. The *setup* cell (tag ``book-setup``): installs ``vi_lib`` from the repository named in
   ``_config.yml`` (``repository.url`` at ``repository.branch``), only when running on Colab.

3. The *nbgrader metadata* of the exercise cells, derived from their roles
   (``tools.exercises.nbgrader_metadata``): grade ids, points, read-only and answer cells.

So the repository, the notation and the grading metadata are each defined in one place. ``--check`` only reports
notebooks that are out of sync (the test suite uses it); without it, notebooks are rewritten.

    python -m tools.sync_notebooks [--check] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

from tools import exercises

ROOT = Path(__file__).resolve().parents[1]
MACROS_TAG = "book-macros"
SETUP_TAG = "book-setup"


def load_config(root: Path = ROOT) -> dict:
    with open(root / "_config.yml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def install_target(config: dict) -> str:
    """The pip requirement that Colab installs: ``vi_lib @ git+<repository.url>@<branch>``."""
    repo = config["repository"]
    return f"vi_lib @ git+{repo['url']}@{repo.get('branch', 'main')}"


def macros_source(config: dict) -> str:
    macros = config["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    lines = [f"\\newcommand{{\\{name}}}{{{body}}}" for name, body in macros.items()]
    return "$$\n" + "\n".join(lines) + "\n$$"


def setup_source(config: dict) -> str:
    return (
        "# Setup: on Google Colab, install the book's helper library vi_lib; elsewhere, do nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install --quiet "{install_target(config)}"'
    )


def _tagged(nb, tag):
    return [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]


def sync(nb, config: dict, chapter: str | None) -> bool:
    """Insert or update the two cells and the exercises' nbgrader metadata in ``nb`` (chapter
    ``chapter``, e.g. "6"); return True if anything changed."""
    changed = exercises.write_nbgrader_metadata(nb, chapter)
    want = {MACROS_TAG: macros_source(config), SETUP_TAG: setup_source(config)}
    for tag, source in want.items():
        where = _tagged(nb, tag)
        if not where:
            if tag == MACROS_TAG:
                cell = nbformat.v4.new_markdown_cell(source)
                cell.metadata["tags"] = [MACROS_TAG, "remove-cell"]
                nb.cells.insert(0, cell)
            else:
                cell = nbformat.v4.new_code_cell(source)
                cell.metadata["tags"] = [SETUP_TAG]
                # right after the title cell (the first markdown cell that is not the macros)
                first_md = next(
                    i for i, c in enumerate(nb.cells)
                    if c.cell_type == "markdown" and MACROS_TAG not in c.metadata.get("tags", [])
                )
                nb.cells.insert(first_md + 1, cell)
            changed = True
        elif nb.cells[where[0]].source != source:
            nb.cells[where[0]].source = source
            changed = True
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="report, do not write")
    args = parser.parse_args(argv)
    config = load_config()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if sync(nb, config, exercises.chapter_number(path)):
            stale.append(path)
            if not args.check:
                nbformat.write(nb, path)
    if args.check and stale:
        print("out of sync with _config.yml or the exercise roles (run `make sync`):", *stale, sep="\n  ")
        return 1
    for path in stale:
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
