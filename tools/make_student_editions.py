"""Generate the student edition of chapter notebooks: exercises kept, solutions removed.

The chapter notebook (the *instructor* edition) is the single source. Its student edition is the
same notebook with

* every code region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` replaced by a stub
  that raises ``NotImplementedError("Exercise N.M: <title>")`` at the same indentation, where
  ``N.M`` is the book's number of the exercise (``N`` from the file name's ``NN_`` prefix, ``M``
  the position of the ``{exercise}`` directive in the notebook, as the site numbers them);
  those cells lose their outputs and execution counts, and are tagged ``raises-exception`` when
  running them now raises: a stub outside a function body runs with the cell, and so does a
  call, outside a function body, of a function that a stubbed cell defines (the learner's);
* every ``{solution}`` directive (the dropdown of a derivation) removed;
* every gated solution (``{solution-start}`` ... ``{solution-end}``) reduced to its code cells:
  the two marker cells and the solution's discussion (markdown, and code cells without the
  markers) are removed, and the stubbed code cells stay as the learner's workspace;
* the cells that name one of the learner's functions (the self-check cells, which now print
  "not solved yet") losing their outputs and their ``# NBVAL_CHECK_OUTPUT`` line.

Everything else is kept as it is, including the Colab setup cell, the figures and the
self-checks, and a short note saying what this edition is goes after the title.

    python -m tools.make_student_editions [--out student] [NOTEBOOK ...]   # default: notebooks/*.ipynb
"""

from __future__ import annotations

import argparse
import ast
import copy
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"
RAISES = "raises-exception"
NOTE_TAG = "student-edition-note"
NOTE = (
    "> **Student edition.** The solutions of this chapter's exercises{numbers} are removed. Where a"
    " solution was, a code cell raises `NotImplementedError`: replace the line"
    " `raise NotImplementedError(...)` with your code. The cell after a code exercise checks your"
    " answer and says `correct`, `not solved yet`, or what is wrong. The rest of the notebook runs"
    " without your answers."
)

_FENCE = re.compile(r"^ {0,3}(`{3,}|:{3,})(.*)$")
_DIRECTIVE = re.compile(r"^\{([\w:-]+)\}\s*(.*)$")
_OPTION = re.compile(r"^\s*:([\w-]+):\s*(.*?)\s*$")
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class StudentEditionError(ValueError):
    """The instructor notebook does not follow the exercise conventions."""


@dataclass
class Exercise:
    """An ``{exercise}`` of the notebook: its ``:label:``, its number in the book and its title."""

    label: str
    number: str
    title: str


@dataclass
class Edition:
    """A student edition and what was done to produce it (cell indices are the edition's)."""

    notebook: nbformat.NotebookNode
    exercises: list[Exercise] = field(default_factory=list)
    stubbed_cells: list[int] = field(default_factory=list)
    raising_cells: list[int] = field(default_factory=list)
    removed_solutions: int = 0  # derivation {solution} blocks
    removed_cells: int = 0


def _blocks(text: str):
    """Split MyST markdown into top-level pieces ``(directive, argument, lines)``.

    A fence (```` ```{name} arg ```` or ``:::{name} arg``) is one piece up to its closing line (at
    least as many of the same character, as in MyST), with directive ``name`` (None for a fence
    that is not a directive); every other line is a piece ``(None, None, [line])``.
    """
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence or (fence[1][0] == "`" and "`" in fence[2]):  # no fence, or inline code
            yield None, None, [lines[i]]
            i += 1
            continue
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[1][0])}{{{len(fence[1])},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if close.match(lines[j])), len(lines))
        directive = _DIRECTIVE.match(fence[2].strip())
        name, arg = (directive[1], directive[2]) if directive else (None, None)
        yield name, arg, lines[i : end + 1]
        i = end + 1


def _options(lines: list[str]) -> dict[str, str]:
    """The ``:name: value`` options at the start of a directive (``lines`` from its opening fence)."""
    return dict(m.groups() for m in itertools.takewhile(bool, map(_OPTION.match, lines[1:])))


def chapter_number(path: str | Path) -> str | None:
    """The chapter of a notebook from its file name: ``"6"`` for ``06_learned_proposal.ipynb``."""
    m = re.match(r"^(\d+)", Path(path).name)
    return str(int(m.group(1))) if m else None


def stub_solutions(source: str, message: str) -> tuple[str, int]:
    """Replace each BEGIN/END SOLUTION region by a stub raising NotImplementedError(message).

    Returns the new source and the number of regions replaced.
    """
    out, regions, inside = [], 0, False
    literal = json.dumps(message, ensure_ascii=False)
    for line in source.split("\n"):
        marker = line.strip()
        if marker == BEGIN or marker.startswith(BEGIN + " "):
            if inside:
                raise StudentEditionError(f"nested '{BEGIN}' in:\n{source}")
            inside, regions = True, regions + 1
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError({literal})"]
        elif marker == END or marker.startswith(END + " "):
            if not inside:
                raise StudentEditionError(f"'{END}' without '{BEGIN}' in:\n{source}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise StudentEditionError(f"'{BEGIN}' without '{END}' in:\n{source}")
    return "\n".join(out), regions


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
    """Remove a code cell's outputs and output check, and tag it ``raises-exception`` if ``raises``."""
    cell.outputs, cell.execution_count = [], None
    cell.metadata.pop("execution", None)
    cell.source = "\n".join(line for line in cell.source.split("\n") if line.strip() != CHECK_OUTPUT)
    tags = [t for t in cell.metadata.pop("tags", []) if t not in ("nbval-check-output", RAISES)]
    if tags or raises:
        cell.metadata["tags"] = tags + [RAISES] * raises


def make_student_edition(nb: nbformat.NotebookNode, chapter: str | None) -> Edition:
    """Return the student edition of ``nb`` (left unchanged), chapter ``chapter`` ("6" or None)."""
    edition = Edition(notebook=copy.deepcopy(nb))
    by_label: dict[str, Exercise] = {}
    last = gated = None  # the latest exercise; the exercise whose gated solution this is in
    gated_code = False  # that gated solution has a stubbed code cell
    learner: set[str] = set()  # what the stubbed cells define: the learner's functions
    cells, stubbed, numbered = [], [], 0
    for cell in edition.notebook.cells:
        if cell.cell_type == "markdown":
            kept = []
            for name, arg, lines in _blocks(cell.source):
                if name in ("exercise", "exercise-start"):
                    options = _options(lines)
                    numbered += "nonumber" not in options
                    if "nonumber" in options:
                        number = options.get("label") or arg
                    else:
                        number = (f"{chapter}." if chapter else "") + str(numbered)
                    last = Exercise(options.get("label") or f"exercise-{numbered}", number, arg)
                    by_label[last.label] = last
                    edition.exercises += [last] if gated is None else []
                elif name in ("solution", "solution-start"):
                    label = ((arg or "").split() or [""])[0]
                    if label not in by_label:
                        raise StudentEditionError(
                            f"solution for unknown exercise '{label}': no exercise before it has ':label: {label}'"
                        )
                    if gated is not None:
                        raise StudentEditionError(f"{name} inside the solution of '{gated.label}'")
                    if name == "solution":
                        edition.removed_solutions += 1
                    else:
                        gated, gated_code = by_label[label], False
                    continue
                elif name == "solution-end":
                    if gated is None:
                        raise StudentEditionError("solution-end without solution-start")
                    if not gated_code:
                        raise StudentEditionError(
                            f"the solution of '{gated.label}' has no code cell with '{BEGIN}': a gated "
                            "solution needs one, it becomes the learner's workspace"
                        )
                    gated = None
                    continue
                kept += lines if gated is None else []
            text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")  # no gaps where blocks were
            if cell.source.strip() and not text.strip():
                edition.removed_cells += 1
                continue
            cell.source = text
        elif cell.cell_type == "code" and BEGIN in cell.source:
            exercise = gated or last
            if exercise is None:
                raise StudentEditionError(f"a solution region before any exercise:\n{cell.source}")
            message = f"Exercise {exercise.number}" + (f": {exercise.title}" if exercise.title else "")
            cell.source = stub_solutions(cell.source, message)[0]
            gated_code = gated_code or gated is not None
            tree = _parse(cell.source)
            if tree is None:
                raise StudentEditionError(f"a stubbed cell is not valid Python:\n{cell.source}")
            learner |= {stmt.name for stmt in tree.body if isinstance(stmt, _DEFS)}
            _clear(cell, _raises(tree, learner))
            stubbed.append(cell)
        elif gated is not None:
            edition.removed_cells += 1  # a cell of the shown solution (code without the markers)
            continue
        elif cell.cell_type == "code" and (tree := _parse(cell.source)):
            if learner & {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}:
                _clear(cell, RAISES in cell.metadata.get("tags", []))
        cells.append(cell)
    if gated is not None:
        raise StudentEditionError(f"solution-start of '{gated.label}' without solution-end")

    # the note goes after the title cell (the first markdown cell that is not removed from the site)
    title = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"
                  and "remove-cell" not in c.metadata.get("tags", [])), -1)
    numbers = f" ({', '.join(e.number for e in edition.exercises)})" if edition.exercises else ""
    note = nbformat.v4.new_markdown_cell(NOTE.format(numbers=numbers), id=NOTE_TAG)
    note.metadata["tags"] = [NOTE_TAG]
    cells.insert(title + 1, note)
    edition.notebook.cells = cells
    edition.stubbed_cells = [i for i, c in enumerate(cells) if any(c is s for s in stubbed)]
    edition.raising_cells = [i for i in edition.stubbed_cells if RAISES in cells[i].metadata.get("tags", [])]
    edition.notebook.metadata["vi_book"] = {
        **{k: v for k, v in nb.metadata.get("vi_book", {}).items() if k != "execution"},
        "edition": "student",
        "exercises": {e.label: e.number for e in edition.exercises},
    }
    return edition


def generate(path: Path, out_dir: Path) -> Edition:
    """Write the student edition of the notebook ``path`` to ``out_dir/<same name>`` and return it."""
    edition = make_student_edition(nbformat.read(path, as_version=4), chapter_number(path))
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
        print(f"{args.out / path.name}: exercises {numbers}; {len(edition.stubbed_cells)} code cells stubbed, "
              f"{edition.removed_solutions} derivation solutions and {edition.removed_cells} solution cells removed")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
