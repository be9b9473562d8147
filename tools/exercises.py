"""The book's exercises as cells: one structure for Jupyter, the site, nbgrader and the self-checks.

A chapter notebook is the *instructor edition*. Each exercise is a run of cells, each cell saying
its role in ``metadata.vi_book``, and nothing in its text that only a tool can read:

=================  =========  ======================================  ===============================
role               cell       ``metadata.vi_book``                    nbgrader (written by sync)
=================  =========  ======================================  ===============================
statement          markdown   ``{"exercise": label, "kind": kind}``   read-only (locked)
answer             either     ``{"solution": label}``                 code exercise: autograded
                                                                      answer; derivation and
                                                                      experiment: manually graded
self-check         code       ``{"check": label}``                    read-only (locked)
autograder test    code       ``{"test": label}``                     autograder tests (points)
=================  =========  ======================================  ===============================

``kind`` is ``"derivation"`` (answered in a markdown cell), ``"code"`` (a function between
``### BEGIN SOLUTION`` and ``### END SOLUTION``, then its self-check and its autograder test) or
``"experiment"`` (code cells, then a markdown discussion). A statement starts with the heading
``### Exercise N.M: Title``, where ``N`` is the chapter (the file name's ``NN_`` prefix) and ``M``
the exercise's position in the chapter, as the site numbers them. A markdown answer may start with
``**Solution.**``, which the site leaves out (its dropdown says "Solution to Exercise N.M").

So Jupyter and Colab show plain Markdown: a heading, the question, the answer. The site gets the
``sphinx-exercise`` directives from :func:`to_myst` (the ``book._ext.exercises`` extension calls it
as Sphinx reads a notebook): the statement becomes an ``{exercise}`` with its ``:label:``, a
markdown-only answer a ``{solution}`` dropdown, and an answer with code cells a gated
``{solution-start}`` ... ``{solution-end}`` dropdown around its cells. nbgrader reads the cell
metadata that :func:`nbgrader_metadata` derives from the roles (``python -m tools.sync_notebooks``
writes it; a test checks it is current), with ``grade_id`` ``ex<N>_<M>_<label words>``:
``ex6_2_importance_log_marginal`` for the answer of exercise 6.2 (``:label: ex-importance-log-marginal``),
with the suffix ``_statement``, ``_code`` (an experiment's code), ``_check`` or ``_test``.

Points (``metadata.vi_book.points`` overrides them): a derivation 3, a code exercise's test 3, an
experiment's code cells 1 each and its discussion 2.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROLES = ("exercise", "solution", "check", "test")
KINDS = ("derivation", "code", "experiment")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HEADING = re.compile(r"^#{2,4} +Exercise +(\d+)\.(\d+): *(.+?) *$", re.M)
SOLUTION_LEAD = re.compile(r"^\*\*Solution\.\*\* *")
DEFAULT_POINTS = {("derivation", "markdown"): 3, ("experiment", "code"): 1, ("experiment", "markdown"): 2,
                  ("code", "test"): 3}
NBGRADER_SCHEMA = 3


class ExerciseError(ValueError):
    """A notebook's exercise cells do not follow the conventions of this module."""


@dataclass
class Exercise:
    """One exercise of a chapter: its label, number ("6.2"), title, kind and cell indices."""

    label: str
    number: str
    title: str
    kind: str
    statement: int
    answers: list[int] = field(default_factory=list)
    check: int | None = None
    test: int | None = None

    @property
    def grade_id(self) -> str:
        """nbgrader's id of the exercise's answer: ``ex6_2_importance_log_marginal``."""
        words = re.sub(r"^ex-", "", self.label).replace("-", "_")
        return f"ex{self.number.replace('.', '_')}_{words}"


def chapter_number(path: str | Path) -> str | None:
    """The chapter of a notebook from its file name: ``"6"`` for ``06_learned_proposal.ipynb``."""
    m = re.match(r"^(\d+)", Path(path).name)
    return str(int(m.group(1))) if m else None


def without_headings(text: str) -> str:
    """``text`` with its exercise headings (``### Exercise N.M: Title``) left out.

    The heading is the one place the book writes an exercise's number out (:func:`exercises`
    checks it); prose refers to exercises by label, and the tests that check so read this.
    """
    return HEADING.sub("", text)


def role(cell) -> tuple[str, str] | None:
    """``(role, label)`` of an exercise cell (role one of :data:`ROLES`), None for any other cell."""
    meta = cell.get("metadata", {}).get("vi_book", {})
    found = [(r, meta[r]) for r in ROLES if r in meta]
    if len(found) > 1:
        raise ExerciseError(f"a cell has two exercise roles {found}: give it one of {ROLES}")
    return found[0] if found else None


def exercises(nb, chapter: str | None) -> list[Exercise]:
    """The exercises of ``nb`` (chapter ``chapter``, e.g. "6"), in order, their conventions checked.

    Raises :class:`ExerciseError` saying which cell breaks which rule: a statement whose heading is
    not ``### Exercise N.M: Title`` with the right number, an answer, check or test that does not
    follow its own exercise, a code exercise without its check and test, a code answer without the
    solution markers, or solution markers outside an answer cell.
    """
    found: list[Exercise] = []
    current: Exercise | None = None
    for i, cell in enumerate(nb.cells):
        r = role(cell)
        if r is None:
            if cell.cell_type == "code" and BEGIN in cell.source:
                raise ExerciseError(f"cell {i} has '{BEGIN}' but is not an exercise's answer: give it "
                                    "metadata vi_book.solution = <label> right after the exercise")
            current = None  # an exercise's cells are contiguous
            continue
        name, label = r
        if name == "exercise":
            kind = cell.metadata.vi_book.get("kind")
            if kind not in KINDS:
                raise ExerciseError(f"exercise '{label}' (cell {i}): vi_book.kind must be one of {KINDS}, not {kind!r}")
            if cell.cell_type != "markdown":
                raise ExerciseError(f"exercise '{label}' (cell {i}): a statement is a markdown cell")
            m = HEADING.match(cell.source.split("\n", 1)[0])
            number = f"{chapter}.{len(found) + 1}" if chapter else str(len(found) + 1)
            if not m:
                raise ExerciseError(f"exercise '{label}' (cell {i}) must start with the heading "
                                    f"'### Exercise {number}: <title>'")
            if chapter and f"{m[1]}.{m[2]}" != number:
                raise ExerciseError(f"exercise '{label}' (cell {i}) is headed Exercise {m[1]}.{m[2]} but is "
                                    f"exercise {number} of the chapter: renumber its heading")
            if any(e.label == label for e in found):
                raise ExerciseError(f"two exercises have the label '{label}'")
            current = Exercise(label, number, m[3], kind, i)
            found.append(current)
            continue
        if current is None or current.label != label:
            raise ExerciseError(f"cell {i} is the {name} of '{label}' but does not follow that exercise's "
                                "statement and answers: move it there, or fix its label")
        if name == "solution":
            if current.check is not None:
                raise ExerciseError(f"cell {i}: an answer of '{label}' after its self-check")
            has_markers = cell.cell_type == "code" and BEGIN in cell.source and END in cell.source
            if cell.cell_type == "code" and not has_markers:
                raise ExerciseError(f"cell {i}, an answer of '{label}', has no '{BEGIN}' ... '{END}': "
                                    "nbgrader would hand the code to students as it is")
            current.answers.append(i)
        elif name == "check":
            current.check = i
        else:
            if current.check is None:
                raise ExerciseError(f"cell {i}: the test of '{label}' comes before its self-check")
            current.test = i
    for e in found:
        codes = [nb.cells[i].cell_type == "code" for i in e.answers]
        if not e.answers:
            raise ExerciseError(f"exercise '{e.label}' has no answer cell (vi_book.solution)")
        if e.kind == "derivation" and any(codes):
            raise ExerciseError(f"derivation '{e.label}' is answered in markdown, not code")
        if e.kind in ("code", "experiment") and not any(codes):
            raise ExerciseError(f"{e.kind} exercise '{e.label}' has no code answer cell")
        if e.kind == "code" and (e.check is None or e.test is None):
            raise ExerciseError(f"code exercise '{e.label}' needs a self-check cell and an autograder test cell")
        if e.kind != "code" and (e.check is not None or e.test is not None):
            raise ExerciseError(f"{e.kind} '{e.label}' has a self-check or test: only code exercises do")
    return found


def solution_lines(nb) -> set[str]:
    """The lines (stripped, 8 characters or more) of ``nb`` that only its solutions hold.

    A written answer, a region between the solution or the hidden-test markers, and the outputs of
    an answer cell, less any line that also appears outside them: what must not reach students.
    """
    secret, public = set(), set()
    for cell in nb.cells:
        r = role(cell)
        if r is not None and r[0] == "solution" and cell.cell_type == "markdown":
            secret.update(cell.source.split("\n"))
            continue
        inside = False
        for line in cell.source.split("\n"):
            if line.strip() in (BEGIN, BEGIN_HIDDEN):
                inside = True
            elif line.strip() in (END, END_HIDDEN):
                inside = False
            else:
                (secret if inside else public).add(line)
        if r is not None and r[0] == "solution":  # an answer's outputs show the solution too
            for out in cell.get("outputs", []):
                secret.update(out.get("text", "").split("\n"))

    def norm(lines):
        return {line.strip() for line in lines if len(line.strip()) >= 8}

    return norm(secret) - norm(public)


def nbgrader_metadata(nb, chapter: str | None) -> dict[int, dict]:
    """The nbgrader cell metadata of every exercise cell of ``nb``: ``{cell index: metadata}``."""
    out = {}

    def points(i, default):
        return nb.cells[i].metadata.vi_book.get("points", default)

    def meta(grade_id, *, grade=False, solution=False, locked=False, pts=None):
        d = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": NBGRADER_SCHEMA,
             "solution": solution, "task": False}
        if grade:
            d["points"] = pts
        return d

    for e in exercises(nb, chapter):
        out[e.statement] = meta(f"{e.grade_id}_statement", locked=True)
        code_cells = [i for i in e.answers if nb.cells[i].cell_type == "code"]
        for i in e.answers:
            cell_type = nb.cells[i].cell_type
            if e.kind == "code":
                if cell_type == "markdown":  # a note after the code: read-only text of the solution
                    raise ExerciseError(f"code exercise '{e.label}': put remarks on the solution in the statement"
                                        " or the check, not in a markdown answer cell")
                gid = e.grade_id if i == code_cells[0] else f"{e.grade_id}_{code_cells.index(i) + 1}"
                out[i] = meta(gid, solution=True)
            elif cell_type == "code":
                n = code_cells.index(i)
                gid = f"{e.grade_id}_code" + (f"_{n + 1}" if n else "")
                out[i] = meta(gid, grade=True, solution=True, pts=points(i, DEFAULT_POINTS[(e.kind, "code")]))
            else:
                markdown = [j for j in e.answers if nb.cells[j].cell_type == "markdown"]
                n = markdown.index(i)
                gid = e.grade_id + (f"_{n + 1}" if n else "")
                out[i] = meta(gid, grade=True, solution=True, pts=points(i, DEFAULT_POINTS[(e.kind, "markdown")]))
        if e.check is not None:
            out[e.check] = meta(f"{e.grade_id}_check", locked=True)
        if e.test is not None:
            out[e.test] = meta(f"{e.grade_id}_test", grade=True, locked=True,
                               pts=points(e.test, DEFAULT_POINTS[("code", "test")]))
    return out


def write_nbgrader_metadata(nb, chapter: str | None) -> bool:
    """Set every exercise cell's ``metadata.nbgrader`` from its role (and remove it elsewhere).

    Returns True if anything changed.
    """
    wanted = nbgrader_metadata(nb, chapter)
    changed = False
    for i, cell in enumerate(nb.cells):
        new = wanted.get(i)
        if cell.metadata.get("nbgrader") != new:
            changed = True
            if new is None:
                del cell.metadata["nbgrader"]
            else:
                cell.metadata["nbgrader"] = new
    return changed


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks at the start of a line of ``text``."""
    runs = [len(m) for m in re.findall(r"(?m)^ {0,3}(`{3,})", text)]
    return "`" * max([3, *[n + 1 for n in runs]])


def _directive(name: str, argument: str, options: dict[str, str], body: str) -> str:
    fence = _fence(body)
    lines = [f"{fence}{{{name}}} {argument}".rstrip()] + [f":{k}: {v}" for k, v in options.items()]
    return "\n".join(lines + ["", body, fence] if body.strip() else lines + [fence])


def to_myst(nb, chapter: str | None):
    """A copy of ``nb`` with its exercises written as sphinx-exercise directives, for the site.

    The statement ``### Exercise N.M: Title`` + question becomes ``{exercise} Title`` with its
    ``:label:``; a markdown-only answer becomes ``{solution} label`` (a dropdown, its lead-in
    ``**Solution.**`` left out); answers with code cells are wrapped in ``{solution-start} label``
    (a dropdown) ... ``{solution-end}`` marker cells, their ``### BEGIN/END SOLUTION`` lines left
    out. Other cells are left as they are.
    """
    found = exercises(nb, chapter)
    out = copy.deepcopy(nb)
    by_index = {}
    for e in found:
        by_index[e.statement] = ("statement", e)
        for i in e.answers:
            by_index[i] = ("answer", e)
    cells = []
    for i, cell in enumerate(out.cells):
        what, e = by_index.get(i, (None, None))
        if what == "statement":
            body = cell.source.split("\n", 1)[1].strip("\n") if "\n" in cell.source else ""
            cell.source = _directive("exercise", e.title, {"label": e.label}, body)
        elif what == "answer" and all(out.cells[j].cell_type == "markdown" for j in e.answers):
            cell.source = _directive("solution", e.label, {"class": "dropdown"}, SOLUTION_LEAD.sub("", cell.source))
        elif what == "answer":
            if i == e.answers[0]:
                start = _directive("solution-start", e.label, {"class": "dropdown"}, "")
                cells.append(nbformat.v4.new_markdown_cell(start, id=f"{cell.get('id', i)}-start"))
            if cell.cell_type == "markdown":
                cell.source = SOLUTION_LEAD.sub("", cell.source)
            else:  # the solution markers are for nbgrader; the dropdown says what the code is
                cell.source = "\n".join(line for line in cell.source.split("\n") if line.strip() not in (BEGIN, END))
            cells.append(cell)
            if i == e.answers[-1]:
                cells.append(nbformat.v4.new_markdown_cell(_directive("solution-end", "", {}, ""),
                                                           id=f"{cell.get('id', i)}-end"))
            continue
        cells.append(cell)
    out.cells = cells
    return out
