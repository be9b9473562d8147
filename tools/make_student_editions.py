"""Generate the student edition of chapter notebooks with nbgrader's own preprocessors.

The chapter notebook is the *instructor edition* and the single source; its exercise cells carry
nbgrader's metadata (``tools.exercises``). The student edition is what ``nbgrader
generate_assignment`` releases, made by the same preprocessors in the same order (``LockCells``,
``ClearSolutions``, ``ComputeChecksums``, ``ClearHiddenTests``, ``ClearMarkScheme``, with
``CheckCellMetadata`` checking the result), so every code solution becomes
``# YOUR CODE HERE`` / ``raise NotImplementedError()``, every written answer ``YOUR ANSWER HERE``,
and the autograder tests lose their hidden tests. Three differences from nbgrader's release,
for a learner who reads the edition on its own:

* outputs are kept (the figures and numbers of the chapter), except in the exercise cells and in
  cells that use a function the learner writes, whose outputs would show the solution;
* cells that now raise are tagged ``raises-exception`` (a stub that runs with its cell, a call of
  the learner's function outside a function body, and the autograder tests), so the edition still
  runs to the end under nbval and myst-nb;
* a note after the title says what this edition is.

    python -m tools.make_student_editions [--out student] [NOTEBOOK ...]   # default: notebooks/*.ipynb
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
)

from tools import exercises

ROOT = Path(__file__).resolve().parents[1]
RAISES = "raises-exception"
CHECK_TAG = "nbval-check-output"
NOTE_TAG = "student-edition-note"
NOTE = (
    "> **Student edition.** The solutions of this chapter's exercises{numbers} are removed, as"
    " nbgrader removes them. Where a code solution was, a cell raises `NotImplementedError`:"
    " replace `raise NotImplementedError()` with your code. Where a written answer was, the cell"
    " says YOUR ANSWER HERE: write yours there. After a code exercise, its self-check says `correct`,"
    " `not solved yet`, or what is wrong, and the autograder test after it fails until the"
    " self-check says `correct`. The rest of the notebook runs without your answers."
)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class StudentEditionError(ValueError):
    """The instructor notebook does not follow the exercise conventions."""


@dataclass
class Edition:
    """A student edition, its exercises and the cells it changed (indices are the edition's)."""

    notebook: nbformat.NotebookNode
    exercises: list[exercises.Exercise] = field(default_factory=list)
    stubbed_cells: list[int] = field(default_factory=list)
    raising_cells: list[int] = field(default_factory=list)


def nbgrader_release(nb: nbformat.NotebookNode, keep_outputs: bool = False) -> nbformat.NotebookNode:
    """``nb`` as ``nbgrader generate_assignment`` releases it (``nb`` is left unchanged).

    The preprocessors of nbgrader's ``GenerateAssignment``, in its order, without the ones that
    need a course (``IncludeHeaderFooter``, ``InstantiateTests``, ``SaveCells``); with
    ``keep_outputs``, without ``ClearOutput`` too.
    """
    nb, resources = copy.deepcopy(nb), {}
    clear = [] if keep_outputs else [ClearOutput()]
    for step in (LockCells(), ClearSolutions(), *clear, CheckCellMetadata(), ComputeChecksums(),
                 ClearHiddenTests(), ClearMarkScheme(), ComputeChecksums(), CheckCellMetadata()):
        nb, resources = step.preprocess(nb, resources)
    return nb


def _parse(source: str) -> ast.Module | None:
    """A code cell as Python (its IPython magics and shell escapes read as ``pass``); None if it is not."""
    try:
        return ast.parse(re.sub(r"(?m)^(\s*)[%!].*$", r"\1pass", source))
    except SyntaxError:
        return None


def _raises(tree: ast.Module, learner: set[str]) -> bool:
    """Does running the cell raise: does a stub or a call of a ``learner`` function run with it?

    What runs with a cell is everything but the bodies of its functions and lambdas.
    """
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.Raise) and ast.unparse(node).startswith("raise NotImplementedError("):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in learner:
            return True
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            nodes += ast.iter_child_nodes(node)
    return False


def _clear(cell, raises: bool) -> None:
    """nbgrader's ClearOutput on one cell; drop its output check; tag it ``raises-exception`` if ``raises``."""
    ClearOutput().preprocess_cell(cell, {}, 0)
    tags = [t for t in cell.metadata.pop("tags", []) if t not in (CHECK_TAG, RAISES)]
    if tags or raises:
        cell.metadata["tags"] = tags + [RAISES] * raises


def make_student_edition(nb: nbformat.NotebookNode, chapter: str | None) -> Edition:
    """Return the student edition of ``nb`` (left unchanged), chapter ``chapter`` ("6" or None)."""
    try:
        found = exercises.exercises(nb, chapter)
        wanted = exercises.nbgrader_metadata(nb, chapter)
    except exercises.ExerciseError as error:
        raise StudentEditionError(str(error)) from None
    stale = [i for i, cell in enumerate(nb.cells) if cell.metadata.get("nbgrader") != wanted.get(i)]
    if stale:
        raise StudentEditionError(f"the nbgrader metadata of cells {stale} is not what their exercise roles "
                                  "say: run `python -m tools.sync_notebooks`")
    edition = Edition(notebook=nbgrader_release(nb, keep_outputs=True), exercises=found)
    cells = edition.notebook.cells
    learner: set[str] = set()  # what the answer cells define: the learner's functions
    for i, cell in enumerate(cells):
        r = exercises.role(cell)
        if cell.cell_type != "code" or (r is not None and r[0] == "exercise"):
            continue
        tree = _parse(cell.source)
        if r is not None and r[0] == "solution":
            if tree is None:
                raise StudentEditionError(f"cell {i}, a stubbed answer, is not valid Python:\n{cell.source}")
            learner |= {stmt.name for stmt in tree.body if isinstance(stmt, _DEFS)}
            edition.stubbed_cells.append(i)
            _clear(cell, _raises(tree, learner))
        elif r is not None:  # a self-check, or an autograder test (which fails until the answer is right)
            _clear(cell, r[0] == "test" or _raises(tree, learner))
        elif tree is not None and learner & {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}:
            _clear(cell, _raises(tree, learner))
    edition.raising_cells = [i for i, c in enumerate(cells) if RAISES in c.metadata.get("tags", [])]

    # the note goes after the title cell (the first markdown cell that is not removed from the site)
    title = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"
                  and "remove-cell" not in c.metadata.get("tags", [])), -1)
    numbers = f" ({', '.join(e.number for e in found)})" if found else ""
    note = nbformat.v4.new_markdown_cell(NOTE.format(numbers=numbers), id=NOTE_TAG)
    note.metadata["tags"] = [NOTE_TAG]
    cells.insert(title + 1, note)
    shift = lambda ids: [i + (i > title) for i in ids]  # noqa: E731 - indices after the note
    edition.stubbed_cells, edition.raising_cells = shift(edition.stubbed_cells), shift(edition.raising_cells)
    edition.notebook.metadata["vi_book"] = {
        **{k: v for k, v in nb.metadata.get("vi_book", {}).items() if k != "execution"},
        "edition": "student",
        "exercises": {e.label: e.number for e in found},
    }
    return edition


def generate(path: Path, out_dir: Path) -> Edition:
    """Write the student edition of the notebook ``path`` to ``out_dir/<same name>`` and return it."""
    edition = make_student_edition(nbformat.read(path, as_version=4), exercises.chapter_number(path))
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(edition.notebook, out_dir / path.name)
    return edition


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="default: student/")
    args = parser.parse_args(argv)
    failed = False
    for path in args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb")):
        try:
            edition = generate(path, args.out)
        except StudentEditionError as error:
            print(f"FAILED {path.name}: {error}", file=sys.stderr)
            failed = True
            continue
        numbers = ", ".join(e.number for e in edition.exercises) or "none"
        print(f"{args.out / path.name}: exercises {numbers}; {len(edition.stubbed_cells)} answer cells stubbed, "
              f"{len(edition.raising_cells)} cells that raise until solved")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
