"""Structure of the chapter notebooks: what the book's pipeline relies on.

nbval (collected from notebooks/ by the same pytest run) re-executes every notebook and compares
the outputs marked for checking; these tests check what nbval does not.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools import exercises, sync_notebooks, toc

ROOT = Path(__file__).resolve().parents[1]

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]


def _markdown(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_there_are_notebooks():
    assert NOTEBOOKS, "no chapter notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_in_the_table_of_contents(path):
    assert f"notebooks/{path.stem}" in toc.files()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_was_executed_top_to_bottom_without_errors(path):
    """Committed outputs come from one fresh run of `make execute`."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name} was not executed top to bottom in one fresh kernel; run "
        f"`make execute NB={path.relative_to(ROOT)}`"
    )
    for cell in code:
        if "raises-exception" in cell.metadata.get("tags", []):
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{path.name}: a cell raised {errors[0].ename}"
        stderr = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stderr")
        assert "Traceback" not in stderr and "Warning" not in stderr, (
            f"{path.name}: a cell printed a warning or traceback:\n{stderr[:500]}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_setup_and_notation_cells_match_config(path):
    nb = nbformat.read(path, as_version=4)
    assert not sync_notebooks.sync(nb, sync_notebooks.load_config(), exercises.chapter_number(path)), (
        f"{path.name}: the Colab setup or notation cell differs from _config.yml, or the nbgrader metadata "
        "from the exercise roles; run `make sync`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_has_exercises_of_every_kind_in_the_books_cell_structure(path):
    """At least three exercises, a derivation, a code exercise and an experiment, as tools.exercises wants them."""
    nb = nbformat.read(path, as_version=4)
    found = exercises.exercises(nb, exercises.chapter_number(path))  # raises on a broken convention
    assert len(found) >= 3, f"{path.name}: a chapter ends with at least three exercises"
    assert {e.kind for e in found} == set(exercises.KINDS), f"{path.name}: one exercise of each kind at least"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_jupyter_shows_no_exercise_directives(path):
    """Exercises are plain Markdown in the notebook; the site's directives come from book/_ext/exercises.py."""
    text = _markdown(nbformat.read(path, as_version=4))
    raw = re.findall(r"(?m)^ {0,3}(?:`{3,}|:{3,})\{(?:exercise|solution)[\w-]*\}", text)
    assert not raw, f"{path.name}: write exercises as cells with roles (tools/exercises.py), not {raw}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_self_checks_print_their_exercises_number(path):
    """The committed output of each self-check names the exercise the book numbers it."""
    nb = nbformat.read(path, as_version=4)
    for e in exercises.exercises(nb, exercises.chapter_number(path)):
        if e.check is None:
            continue
        printed = "".join(o.get("text", "") for o in nb.cells[e.check].outputs)
        assert f"Exercise {e.number}: correct." in printed, (
            f"{path.name}: the check of exercise {e.number} printed {printed!r} (fix its number in vi_lib/checks.py)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_checked_cells_exist(path):
    """Numbers the text relies on are compared by nbval: at least one cell is marked."""
    nb = nbformat.read(path, as_version=4)
    assert any(
        "nbval-check-output" in c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"
    ), f"{path.name}: tag the cells whose printed numbers the text quotes nbval-check-output"
    comments = [i for i, c in enumerate(nb.cells) if "# NBVAL_CHECK_OUTPUT" in c.source]
    assert not comments, f"{path.name}: cells {comments} use the comment, which readers see: use the tag"


def _defined_labels(path: Path) -> set[str]:
    text = _markdown(nbformat.read(path, as_version=4))
    return set(re.findall(r"\$\$\s*\((eq-[\w-]+)\)", text)) | set(re.findall(r":label: (eq-[\w-]+)", text))


def test_equations_cited_by_vi_lib_exist_in_their_chapter():
    """vi_lib's docstrings cite equations by label ("Chapter 4, equation ``eq-naive-mc``")."""
    chapters = {int(p.name[:2]): p for p in NOTEBOOKS if p.name[:2].isdigit()}
    missing = []
    for module in sorted((ROOT / "vi_lib").glob("*.py")):
        text = module.read_text()
        for match in re.finditer(r"``(eq-[\w-]+)``", text):
            before = re.findall(r"[Cc]hapters? (\d)", text[max(0, match.start() - 400) : match.start()])
            if not before or int(before[-1]) not in chapters:
                continue  # that chapter is not written yet
            chapter = chapters[int(before[-1])]
            if match.group(1) not in _defined_labels(chapter):
                missing.append(f"{module.name}: {match.group(1)} (expected in {chapter.name})")
    assert not missing, "equations cited but not labelled in their chapter:\n" + "\n".join(missing)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_outputs_have_no_widgets(path):
    """The static site cannot show ipywidgets (and would fetch their scripts from a CDN): text bars only."""
    nb = nbformat.read(path, as_version=4)
    widgets = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
               for o in c.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widgets, f"{path.name}: cells {widgets} show widgets; re-execute with `make execute` (text bars)"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state in the metadata makes the site load widget scripts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_progress_bars_are_committed_as_their_final_line(path):
    """A stream output holds no redraws (text before a carriage return): the site shows one line per bar."""
    nb = nbformat.read(path, as_version=4)
    redrawn = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
               for o in c.outputs if o.output_type == "stream" and re.search(r"\r(?=[^\n])", o.text)]
    assert not redrawn, f"{path.name}: cells {redrawn} keep every redraw of a progress bar; run `make execute`"
