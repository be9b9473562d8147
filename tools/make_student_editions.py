"""Generate the student edition of chapter notebooks: exercises kept, solutions removed.

The chapter notebook (the *instructor* edition) is the single source. Its student edition is the
same notebook with

* every code region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` replaced by a stub
  that raises ``NotImplementedError("Exercise N.M: <title>")`` at the same indentation, where
  ``N.M`` is the book's number of the exercise (``N`` from the file name's ``NN_`` prefix, ``M``
  the position of the ``{exercise}`` directive in the notebook, as the site numbers them);
  those cells lose their outputs and execution counts, and are tagged ``raises-exception`` when
  running them now raises (the stub runs at module level, or the cell calls the stubbed function);
* every ``{solution}`` directive (the dropdown of a derivation) removed;
* every gated solution (``{solution-start}`` ... ``{solution-end}``) reduced to its code cells:
  the two marker cells and the solution's discussion (markdown, and code cells without the
  markers) are removed, and the stubbed code cells stay as the learner's workspace;
* cells whose output depends on a stubbed definition (the self-check cells, which now print
  "not solved yet") losing their outputs and their ``# NBVAL_CHECK_OUTPUT`` line.

Everything else is kept as it is, including the Colab setup cell, the figures and the
self-checks, and a short note saying what this edition is goes after the title.

    python tools/make_student_editions.py [--out student] [NOTEBOOK ...]   # default: notebooks/*.ipynb
"""

from __future__ import annotations

import argparse
import ast
import copy
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

_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|:{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*)$")


class StudentEditionError(ValueError):
    """The instructor notebook does not follow the exercise conventions."""


@dataclass
class Exercise:
    label: str
    number: str
    title: str


@dataclass
class Edition:
    """A student edition and what was done to produce it."""

    notebook: nbformat.NotebookNode
    exercises: list[Exercise] = field(default_factory=list)
    stubbed_cells: list[int] = field(default_factory=list)  # indices in the student notebook
    raising_cells: list[int] = field(default_factory=list)
    removed_solutions: int = 0  # derivation {solution} blocks
    removed_cells: int = 0
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Markdown: fenced directives


def _blocks(text: str):
    """Split MyST markdown into top-level pieces: ("text", lines) or ("fence", name, arg, lines).

    ``name`` is the directive name for ```` ```{name} arg ```` (or ``:::{name}``) fences, else None.
    A fence closes at a line of at least as many of the same character, as in MyST.
    """
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            yield ("text", None, None, [lines[i]])
            i += 1
            continue
        fence = m.group("fence")
        if fence[0] == "`" and "`" in m.group("info"):
            yield ("text", None, None, [lines[i]])  # inline code, not a fence
            i += 1
            continue
        close = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        d = _DIRECTIVE.match(m.group("info").strip())
        name, arg = (d.group("name"), d.group("arg").strip()) if d else (None, None)
        yield ("fence", name, arg, lines[i : j + 1])
        i = j + 1


def _option(lines: list[str], option: str) -> str | None:
    for line in lines[1:]:
        m = re.match(r"^\s*:" + re.escape(option) + r":\s*(.*)$", line)
        if m:
            return m.group(1).strip()
        if line.strip() and not line.lstrip().startswith(":"):
            break  # options come first
    return None


def _squeeze(text: str) -> str:
    """Collapse the blank lines left where a block was removed."""
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


# --------------------------------------------------------------------------------------------
# Code: stubs and what they break


def chapter_number(path: str | Path) -> str | None:
    m = re.match(r"^(\d+)", Path(path).name)
    return str(int(m.group(1))) if m else None


def stub_message(exercise: Exercise) -> str:
    return f"Exercise {exercise.number}: {exercise.title}" if exercise.title else f"Exercise {exercise.number}"


def stub_solutions(source: str, message: str) -> tuple[str, int]:
    """Replace each BEGIN/END SOLUTION region by a stub raising NotImplementedError(message)."""
    out, regions, inside = [], 0, False
    literal = json.dumps(message, ensure_ascii=False)
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped == BEGIN or stripped.startswith(BEGIN + " "):
            if inside:
                raise StudentEditionError(f"nested '{BEGIN}' in:\n{source}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError({literal})"]
            regions += 1
        elif stripped == END or stripped.startswith(END + " "):
            if not inside:
                raise StudentEditionError(f"'{END}' without '{BEGIN}' in:\n{source}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise StudentEditionError(f"'{BEGIN}' without '{END}' in:\n{source}")
    return "\n".join(out), regions


def _python(source: str) -> ast.Module | None:
    """Parse a cell, with IPython magics and shell escapes turned into ``pass``."""
    lines = []
    for line in source.split("\n"):
        body = line.lstrip()
        indent = line[: len(line) - len(body)]
        lines.append(indent + "pass" if body.startswith(("%", "!")) else line)
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _is_stub(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and isinstance(node.exc.func, ast.Name)
        and node.exc.func.id == "NotImplementedError"
        and bool(node.exc.args)
        and isinstance(node.exc.args[0], ast.Constant)
        and str(node.exc.args[0].value).startswith("Exercise ")
    )


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _defined_names(tree: ast.Module) -> set[str]:
    """Names a cell binds at module level."""
    names = set()
    for stmt in tree.body:
        if isinstance(stmt, _DEFS):
            names.add(stmt.name)
        else:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
                elif isinstance(node, (ast.Import, ast.ImportFrom)):
                    names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _loaded_names(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _module_level_calls(tree: ast.Module) -> set[str]:
    """Names called (``f(...)``, ``f.method(...)``) by the cell's module-level code."""
    called = set()

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return  # a definition's body does not run when the cell runs
        if isinstance(node, ast.Call):
            func = node.func
            while isinstance(func, ast.Attribute):
                func = func.value
            if isinstance(func, ast.Name):
                called.add(func.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in stmt.decorator_list:
                visit(deco)
        else:
            visit(stmt)
    return called


def stub_analysis(source: str, known: set[str]) -> tuple[bool | None, set[str]]:
    """Does running this stubbed cell raise, and which names does it define that now raise?

    ``known`` holds names from earlier cells that raise when called. Returns (raises, callables):
    ``raises`` is None when the cell cannot be parsed.
    """
    tree = _python(source)
    if tree is None:
        return None, set()
    raising: set[str] = set()
    top_level_stub = False
    for stmt in tree.body:
        if any(_is_stub(n) for n in ast.walk(stmt)):
            if isinstance(stmt, _DEFS):
                raising.add(stmt.name)
            else:
                top_level_stub = True
    # a function of this cell that calls a raising one raises too
    defs = [s for s in tree.body if isinstance(s, _DEFS)]
    changed = True
    while changed:
        changed = False
        for stmt in defs:
            if stmt.name not in raising and _loaded_names(stmt) & (raising | known):
                raising.add(stmt.name)
                changed = True
    raises = top_level_stub or bool(_module_level_calls(tree) & (raising | known))
    return raises, raising


# --------------------------------------------------------------------------------------------
# The notebook


def _note(exercises: list[Exercise]) -> nbformat.NotebookNode:
    numbers = ", ".join(e.number for e in exercises)
    cell = nbformat.v4.new_markdown_cell(
        "> **Student edition.** The solutions of this chapter's exercises"
        + (f" ({numbers})" if numbers else "")
        + " are removed. Where a solution was, a code cell raises `NotImplementedError`: replace"
        " the line `raise NotImplementedError(...)` with your code. The cell after a code"
        " exercise checks your answer and says `correct`, `not solved yet`, or what is wrong."
        " The rest of the notebook runs without your answers."
    )
    cell.metadata["tags"] = [NOTE_TAG]
    return cell


def _clear(cell) -> None:
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)


def _tags(cell) -> list[str]:
    return cell.metadata.setdefault("tags", [])


def _drop_check_output(cell) -> None:
    lines = [line for line in cell.source.split("\n") if line.strip() != CHECK_OUTPUT]
    cell.source = "\n".join(lines)
    tags = cell.metadata.get("tags", [])
    if "nbval-check-output" in tags:
        tags.remove("nbval-check-output")


def make_student_edition(nb: nbformat.NotebookNode, chapter: str | None) -> Edition:
    """Return the student edition of ``nb`` (left unchanged), chapter ``chapter`` ("6" or None)."""
    nb = copy.deepcopy(nb)
    edition = Edition(notebook=nb)
    cells_out = []
    by_label: dict[str, Exercise] = {}
    last: Exercise | None = None
    gated: Exercise | None = None  # inside {solution-start} ... {solution-end}
    gated_has_code = False
    raising_names: set[str] = set()  # defined by stubbed cells, raise when called
    tainted: set[str] = set()  # names whose value differs in the student edition
    position = 0

    def exercise_for(label: str) -> Exercise:
        if label not in by_label:
            raise StudentEditionError(f"solution for unknown exercise '{label}'")
        return by_label[label]

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            kept = []
            for kind, name, arg, lines in _blocks(cell.source):
                if kind == "fence" and name in ("exercise", "exercise-start"):
                    title = arg or ""
                    label = _option(lines, "label")
                    if _option(lines, "nonumber") is None:
                        position += 1
                        number = f"{chapter}.{position}" if chapter else str(position)
                    else:
                        number = label or title
                    last = Exercise(label=label or f"exercise-{position}", number=number, title=title)
                    if label:
                        by_label[label] = last
                    if gated is None:
                        edition.exercises.append(last)
                        kept += lines
                    continue
                if kind == "fence" and name == "solution":
                    exercise_for(arg.split()[0] if arg else "")
                    edition.removed_solutions += 1
                    continue
                if kind == "fence" and name == "solution-start":
                    if gated is not None:
                        raise StudentEditionError(f"solution-start inside the solution of '{gated.label}'")
                    gated, gated_has_code = exercise_for(arg.split()[0] if arg else ""), False
                    continue
                if kind == "fence" and name == "solution-end":
                    if gated is None:
                        raise StudentEditionError("solution-end without solution-start")
                    if not gated_has_code:
                        raise StudentEditionError(
                            f"the solution of '{gated.label}' has no code cell with '{BEGIN}': a gated "
                            "solution needs one, it becomes the learner's workspace"
                        )
                    gated = None
                    continue
                if gated is None:
                    kept += lines
            text = _squeeze("\n".join(kept))
            if text.strip() or not cell.source.strip():
                cell.source = text
                cells_out.append(cell)
            else:
                edition.removed_cells += 1
            continue

        if cell.cell_type != "code":
            if gated is None:
                cells_out.append(cell)
            else:
                edition.removed_cells += 1
            continue

        if BEGIN in cell.source:
            exercise = gated or last
            if exercise is None:
                raise StudentEditionError(f"a solution region before any exercise:\n{cell.source}")
            cell.source, _ = stub_solutions(cell.source, stub_message(exercise))
            gated_has_code = gated_has_code or gated is not None
            _clear(cell)
            _drop_check_output(cell)
            raises, defined = stub_analysis(cell.source, raising_names)
            tree = _python(cell.source)
            if tree is not None:
                tainted |= _defined_names(tree)
            raising_names |= defined
            if raises is None:
                edition.warnings.append(f"cannot parse a stubbed cell, tagged {RAISES}:\n{cell.source}")
                raises = True
            tags = _tags(cell)
            if raises and RAISES not in tags:
                tags.append(RAISES)
            if not raises and RAISES in tags:
                tags.remove(RAISES)
            if not tags:
                del cell.metadata["tags"]
            edition.stubbed_cells.append(len(cells_out))
            if raises:
                edition.raising_cells.append(len(cells_out))
            cells_out.append(cell)
            continue

        if gated is not None:
            edition.removed_cells += 1  # solution code without markers: part of the answer
            continue

        tree = _python(cell.source)
        if tree is not None and _loaded_names(tree) & tainted:
            _clear(cell)
            _drop_check_output(cell)
            tainted |= _defined_names(tree)
            calls = _module_level_calls(tree) & raising_names
            if calls:
                edition.warnings.append(
                    f"this cell calls the learner's {', '.join(sorted(calls))} and will raise in the "
                    "student edition; cells after an exercise should use vi_lib's reference:\n"
                    + cell.source
                )
        cells_out.append(cell)

    if gated is not None:
        raise StudentEditionError(f"solution-start of '{gated.label}' without solution-end")

    # the note goes after the title cell (the first markdown cell that is not removed from the site)
    title = next(
        (
            i
            for i, c in enumerate(cells_out)
            if c.cell_type == "markdown" and "remove-cell" not in c.metadata.get("tags", [])
        ),
        -1,
    )
    cells_out.insert(title + 1, _note(edition.exercises))
    edition.stubbed_cells = [i + (i > title) for i in edition.stubbed_cells]
    edition.raising_cells = [i + (i > title) for i in edition.raising_cells]
    nb.cells = cells_out
    nb.metadata["vi_book"] = {
        **{k: v for k, v in nb.metadata.get("vi_book", {}).items() if k != "execution"},
        "edition": "student",
        "exercises": {e.label: e.number for e in edition.exercises},
    }
    return edition


def generate(path: Path, out_dir: Path) -> Edition:
    nb = nbformat.read(path, as_version=4)
    try:
        edition = make_student_edition(nb, chapter_number(path))
    except StudentEditionError as error:
        raise StudentEditionError(f"{path.name}: {error}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(edition.notebook, out_dir / path.name)
    return edition


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="default: student/")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    failed = 0
    for path in paths:
        try:
            edition = generate(path, args.out)
        except StudentEditionError as error:
            print(f"FAILED {error}", file=sys.stderr)
            failed += 1
            continue
        numbers = ", ".join(e.number for e in edition.exercises) or "none"
        print(
            f"{args.out / path.name}: exercises {numbers}; {len(edition.stubbed_cells)} code cells "
            f"stubbed, {edition.removed_solutions} derivation solutions and "
            f"{edition.removed_cells} solution cells removed"
        )
        for warning in edition.warnings:
            print(f"  warning: {warning}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
