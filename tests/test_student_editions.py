"""The student editions: the generator on small notebooks, then every chapter's edition executed.

`tools.make_student_editions` turns a chapter notebook (the instructor edition, with solutions)
into its student edition. The first tests run it on small synthetic notebooks; the last ones
generate the student edition of every notebook in notebooks/, execute each one once (a
module-level cache shared by the tests that need the outputs), and check that only the exercise
cells fail, with NotImplementedError, that the self-checks say "not solved yet", and that no
solution text is left.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tools import make_student_editions as mse

ROOT = Path(__file__).resolve().parents[1]

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]

md = nbformat.v4.new_markdown_cell


def code(source, outputs=(), count=7, tags=()):
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in outputs]
    cell.execution_count = count
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [md("# A chapter\n\nSome text."), *cells]
    return nb


def exercise(label, title="A title", body="Do something."):
    return f"```{{exercise}} {title}\n:label: {label}\n\n{body}\n```"


def solution(label, body="The secret derivation."):
    return f"```{{solution}} {label}\n:class: dropdown\n\n{body}\n```"


START = "```{{solution-start}} {}\n:class: dropdown\n```"
END_CELL = "```{solution-end}\n```"

GATED_CODE = """\
import math


def area(r):
    ### BEGIN SOLUTION
    return math.pi * r**2
    ### END SOLUTION
"""


def gated_exercise(label="ex-area", title="The area of a disc", discussion="Why pi: secret reasons."):
    return [
        md(exercise(label, title, "Write `area(r)`.")),
        md(START.format(label)),
        code(GATED_CODE, outputs=["hidden"]),
        md(discussion),
        md(END_CELL),
        code("# NBVAL_CHECK_OUTPUT\nfrom vi_lib import checks\n\ncheck(area)", outputs=["Exercise 6.2: correct."]),
    ]


def student(nb, chapter="6"):
    return mse.make_student_edition(nb, chapter)


def sources(nb) -> str:
    return "\n".join(c.source for c in nb.cells)


# ---------------------------------------------------------------------------------------------
# The generator on small notebooks


def test_stub_keeps_indentation_and_names_the_exercise():
    source, regions = mse.stub_solutions(GATED_CODE, "Exercise 6.2: The area of a disc")
    assert regions == 1
    assert "import math" in source and "def area(r):" in source
    assert '    raise NotImplementedError("Exercise 6.2: The area of a disc")' in source.split("\n")
    assert "math.pi" not in source and "SOLUTION" not in source
    compile(source, "<cell>", "exec")


def test_stub_at_module_level_and_several_regions():
    source = "a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\nif a:\n    ### BEGIN SOLUTION\n    c = 3\n    ### END SOLUTION\n"
    out, regions = mse.stub_solutions(source, 'Exercise 1.1: say "hi"')
    assert regions == 2
    lines = out.split("\n")
    assert lines[2] == 'raise NotImplementedError("Exercise 1.1: say \\"hi\\"")'
    assert lines[5].startswith("    raise NotImplementedError(")
    compile(out, "<cell>", "exec")


@pytest.mark.parametrize(
    "source",
    ["### BEGIN SOLUTION\nx = 1\n", "x = 1\n### END SOLUTION\n", "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n"],
    ids=["unterminated", "end-without-begin", "nested"],
)
def test_broken_markers_are_reported(source):
    with pytest.raises(mse.StudentEditionError):
        mse.stub_solutions(source, "Exercise 1.1")


def test_derivation_solution_removed_and_exercise_kept():
    nb = notebook(md("## Exercises\n\n" + exercise("ex-d", "Derive it") + "\n\n" + solution("ex-d") + "\n\nAfter."))
    edition = student(nb)
    text = sources(edition.notebook)
    assert "Derive it" in text and ":label: ex-d" in text and "After." in text
    assert "secret derivation" not in text and "{solution}" not in text
    assert edition.removed_solutions == 1
    assert [(e.label, e.number) for e in edition.exercises] == [("ex-d", "6.1")]


def test_solution_in_its_own_cell_removes_the_cell():
    nb = notebook(md(exercise("ex-d")), md(solution("ex-d")), md("Next section."))
    edition = student(nb)
    assert [c.source for c in edition.notebook.cells][-2:] == [exercise("ex-d"), "Next section."]
    assert edition.removed_cells == 1


def test_nested_fences_and_colon_fences_are_removed_whole():
    nested = "````{solution} ex-a\n:class: dropdown\n\n```python\nsecret_code = 1\n```\n\nsecret tail\n````"
    colon = ":::{solution} ex-b\n:class: dropdown\nsecret colon\n:::"
    nb = notebook(md(exercise("ex-a") + "\n\n" + nested), md(exercise("ex-b") + "\n" + colon + "\nkept"))
    text = sources(student(nb).notebook)
    assert "secret" not in text and "kept" in text and "ex-b" in text


def test_gated_solution_becomes_the_workspace():
    nb = notebook(md(exercise("ex-d")), md(solution("ex-d")), *gated_exercise())
    edition = student(nb)
    cells = edition.notebook.cells
    text = sources(edition.notebook)
    assert "solution-start" not in text and "solution-end" not in text
    assert "secret reasons" not in text and "math.pi" not in text
    (work,) = [c for c in cells if "def area" in c.source]
    assert 'raise NotImplementedError("Exercise 6.2: The area of a disc")' in work.source
    assert work.outputs == [] and work.execution_count is None
    assert "raises-exception" not in work.metadata.get("tags", [])  # defining area() does not raise
    check = cells[-1]
    assert "check(area)" in check.source and "NBVAL_CHECK_OUTPUT" not in check.source
    assert check.outputs == [] and check.execution_count is None
    assert edition.stubbed_cells == [cells.index(work)] and edition.raising_cells == []


def test_unmarked_code_inside_a_gated_solution_is_removed():
    cells = gated_exercise()
    cells.insert(3, code("plot(area(2.0))  # part of the shown solution"))
    text = sources(student(notebook(*cells)).notebook)
    assert "part of the shown solution" not in text


@pytest.mark.parametrize(
    "source, raises",
    [
        ("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n", False),
        ("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n\nprint(f(1))", True),
        ("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n\ndef g():\n    return f(2)\n\n\nresult = g()", True),
        ("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n\nhelper = lambda: f(1)", False),
        ("import torch\n### BEGIN SOLUTION\nvalue = torch.ones(3).sum()\n### END SOLUTION\n", True),
        ("for seed in range(3):\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION\n", True),
        ("%matplotlib inline\ndef f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n", False),
    ],
    ids=["def", "def-and-call", "called-through-helper", "lambda", "module-level", "loop", "magic"],
)
def test_cells_that_now_raise_are_tagged(source, raises):
    nb = notebook(md(exercise("ex-c")), md(START.format("ex-c")), code(source), md(END_CELL))
    edition = student(nb)
    (cell,) = [c for c in edition.notebook.cells if c.cell_type == "code" and "NotImplementedError" in c.source]
    assert ("raises-exception" in cell.metadata.get("tags", [])) is raises
    assert (edition.raising_cells != []) is raises


def test_numbering_follows_the_book():
    nb = notebook(
        md(exercise("ex-a", "First")),
        md("```{exercise} Unnumbered\n:label: ex-x\n:nonumber:\n\nno number\n```"),
        md(exercise("ex-b", "Second")),
        md(START.format("ex-b")),
        code("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
        md(END_CELL),
        md(exercise("ex-c", "Third") + "\n\n" + solution("ex-c")),
    )
    edition = mse.make_student_edition(nb, mse.chapter_number("notebooks/06_learned_proposal.ipynb"))
    assert [e.number for e in edition.exercises if e.label != "ex-x"] == ["6.1", "6.2", "6.3"]
    assert 'NotImplementedError("Exercise 6.2: Second")' in sources(edition.notebook)
    assert edition.notebook.metadata["vi_book"]["exercises"]["ex-c"] == "6.3"


def test_everything_else_is_kept():
    setup = code('import sys\n\nif "google.colab" in sys.modules:\n    %pip install --quiet "vi_lib @ git+https://x/y@main"', tags=["book-setup"])
    figure = code("plt.plot([1, 2])\nplt.show()", outputs=["a figure"])
    figure.metadata["mystnb"] = {"figure": {"caption": "c", "name": "fig-x"}}
    checked = code("# NBVAL_CHECK_OUTPUT\nprint(round(1 / 3, 3))", outputs=["0.333"])
    nb = notebook(setup, figure, checked, *gated_exercise())
    before = nbformat.writes(nb)
    out = student(nb).notebook
    assert nbformat.writes(nb) == before, "the instructor notebook must not change"
    assert out.cells[1].metadata["tags"] == [mse.NOTE_TAG]  # the note, after the title
    for cell in (setup, figure, checked):
        (same,) = [c for c in out.cells if c.source == cell.source]
        assert same.outputs == cell.outputs and same.metadata == cell.metadata
    assert "checks" in sources(out)


@pytest.mark.parametrize(
    "cells, message",
    [
        ([md(exercise("ex-a")), md(START.format("ex-a")), code("x = 1"), md(END_CELL)], "no code cell"),
        ([md(exercise("ex-a")), md(START.format("ex-a")), code("### BEGIN SOLUTION\n### END SOLUTION")], "without solution-end"),
        ([md(solution("ex-zzz"))], "unknown exercise"),
        ([code("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")], "before any exercise"),
    ],
    ids=["gated-without-markers", "unclosed", "unknown-label", "no-exercise"],
)
def test_notebooks_that_break_the_conventions_are_reported(cells, message):
    with pytest.raises(mse.StudentEditionError, match=message):
        student(notebook(*cells))


def test_command_line_writes_the_out_folder(tmp_path, capsys):
    src = tmp_path / "06_small.ipynb"
    nbformat.write(notebook(*gated_exercise()), src)
    assert mse.main(["--out", str(tmp_path / "student"), str(src)]) == 0
    out = nbformat.read(tmp_path / "student" / src.name, as_version=4)
    assert 'NotImplementedError("Exercise 6.1: The area of a disc")' in sources(out)
    assert "exercises 6.1" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Every chapter: generate, execute once, check


def _solution_lines(nb) -> tuple[set[str], set[str]]:
    """Lines of the instructor notebook that are solution text, and all other lines."""
    secret, public = set(), set()
    gated = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for name, _, lines in mse._blocks(cell.source):
                if name == "solution-start":
                    gated = True
                elif name == "solution-end":
                    gated = False
                elif name == "solution" or gated:
                    secret.update(lines[1:-1] if name == "solution" else lines)
                else:
                    public.update(lines)
            continue
        inside = False
        for line in cell.source.split("\n"):
            if line.strip().startswith(mse.BEGIN):
                inside = True
            elif line.strip().startswith(mse.END):
                inside = False
            elif inside or (gated and mse.BEGIN not in cell.source):
                secret.add(line)
            else:
                public.add(line)
    norm = lambda lines: {line.strip() for line in lines if len(line.strip()) >= 8}  # noqa: E731
    return norm(secret) - norm(public), norm(public)


_EXECUTED: dict[Path, tuple] = {}


def _executed(path: Path):
    """The student edition of ``path`` and the notebook after one execution (cached)."""
    if path not in _EXECUTED:
        edition = mse.make_student_edition(nbformat.read(path, as_version=4), mse.chapter_number(path))
        error = None
        for attempt in range(2):
            ran = nbformat.reads(nbformat.writes(edition.notebook), as_version=4)
            client = NotebookClient(
                ran, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
            )
            try:
                client.execute()
                error = None
                break
            except CellExecutionError as exc:  # a cell raised: recorded, the tests report it
                error = exc
                break
            except Exception as exc:  # the kernel died or did not start (a busy machine): once more
                error = exc
        _EXECUTED[path] = (edition, ran, error)
    return _EXECUTED[path]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_student_edition_leaks_no_solution(path):
    instructor = nbformat.read(path, as_version=4)
    secret, _ = _solution_lines(instructor)
    edition = mse.make_student_edition(instructor, mse.chapter_number(path))
    text = "\n".join(
        [c.source for c in edition.notebook.cells]
        + [o.get("text", "") for c in edition.notebook.cells if c.cell_type == "code" for o in c.outputs]
    )
    present = {line.strip() for line in text.split("\n")}
    leaked = sorted(secret & present)
    assert not leaked, f"{path.name}: solution text in the student edition:\n" + "\n".join(leaked)
    assert mse.BEGIN not in text and mse.END not in text
    assert not re.search(r"\{solution(-start|-end)?\}", text)
    n_exercises = len(re.findall(r"```\{exercise(?:-start)?\}", sources(instructor)))
    assert len(edition.exercises) == n_exercises


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_student_edition_runs_with_only_the_exercises_failing(path):
    edition, nb, error = _executed(path)
    assert error is None, (
        f"{path.name}: the student edition stopped at a cell that is not an exercise "
        f"(cells after an exercise must use vi_lib, not the learner's answer):\n{str(error)[-3000:]}"
    )
    failing = {
        i: o for i, c in enumerate(nb.cells) if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    }
    assert set(failing) == set(edition.raising_cells), (
        f"{path.name}: cells {sorted(failing)} raised, cells {edition.raising_cells} were expected to"
    )
    numbers = {e.number for e in edition.exercises}
    for i, output in failing.items():
        assert output.ename == "NotImplementedError", f"{path.name} cell {i}: {output.ename}: {output.evalue}"
        m = re.match(r"Exercise (\S+?):", output.evalue)
        assert m and m.group(1) in numbers, f"{path.name} cell {i}: {output.evalue}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_student_edition_checks_say_not_solved_yet(path):
    edition, nb, error = _executed(path)
    if error is not None:
        pytest.skip("the notebook did not run to the end (reported by the test above)")
    stubbed_numbers = {
        m.group(1)
        for i in edition.stubbed_cells
        for m in re.finditer(r'NotImplementedError\("Exercise (\S+?):', nb.cells[i].source)
    }
    check_cells = [c for c in nb.cells if c.cell_type == "code" and re.search(r"\bchecks\.check_\w+\(", c.source)]
    assert len(check_cells) >= len(edition.stubbed_cells) - len(edition.raising_cells), (
        f"{path.name}: every code exercise needs its self-check cell (checks.check_...)"
    )
    for cell in check_cells:
        out = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        m = re.search(r"Exercise (\S+): not solved yet", out)
        assert m, f"{path.name}: the check cell\n{cell.source}\nprinted {out!r}, not 'not solved yet'"
        assert m.group(1) in stubbed_numbers, (
            f"{path.name}: the check calls itself exercise {m.group(1)}, but the book numbers the "
            f"code exercises {sorted(stubbed_numbers)} (fix the number passed to _run in vi_lib/checks.py)"
        )


# ---------------------------------------------------------------------------------------------
# The site: book/_ext/student_editions.py publishes and links the editions


def test_site_build_publishes_and_links_the_student_editions(tmp_path):
    from sphinx.application import Sphinx

    src = tmp_path / "src"
    (src / "notebooks").mkdir(parents=True)
    (src / "book").mkdir()
    nb = notebook(md("## Exercises"), *gated_exercise())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src / "notebooks" / "06_small.ipynb")
    (src / "book" / "instructor_guide.md").write_text(
        "# Instructor guide\n\n:::{container} student-editions-list\nfallback text\n:::\n"
    )
    (src / "index.md").write_text(
        "# Book\n\n```{toctree}\nnotebooks/06_small\nbook/instructor_guide\n```\n"
    )
    (src / "conf.py").write_text(
        # found as in the book's build, from the repository root (pytest's pythonpath)
        "extensions = ['myst_nb', 'sphinx_exercise', 'book._ext.student_editions']\n"
        "myst_enable_extensions = ['colon_fence', 'dollarmath']\n"
        "nb_execution_mode = 'off'\n"
        "exclude_patterns = ['_build']\n"
        "html_theme = 'sphinx_book_theme'\n"
        "html_theme_options = {'repository_url': 'https://github.com/org/book'}\n"
        "student_editions_colab_branch = 'student-editions'\n"
    )
    out = tmp_path / "html"
    app = Sphinx(src, src, out, tmp_path / "doctrees", "html", status=None, warningiserror=True)
    app.build()

    edition = nbformat.read(out / "student" / "06_small.ipynb", as_version=4)
    assert 'NotImplementedError("Exercise 6.1: The area of a disc")' in sources(edition)
    page = (out / "notebooks" / "06_small.html").read_text()
    assert 'href="../student/06_small.ipynb"' in page
    colab = "https://colab.research.google.com/github/org/book/blob/student-editions/student/06_small.ipynb"
    assert colab in page
    assert "instructor_guide.html" in page
    guide = (out / "book" / "instructor_guide.html").read_text()
    assert 'href="../student/06_small.ipynb"' in guide and "fallback text" not in guide


def test_a_check_that_turns_the_stub_into_a_verdict_still_says_not_solved_yet(capsys):
    """NotImplementedError is a RuntimeError, which checks may catch to explain torch's errors."""
    from vi_lib import checks

    def check_of(learner):
        """A check that turns the learner's RuntimeError into a verdict about shapes."""

        def check():
            try:
                learner()
            except RuntimeError as error:
                raise checks._Verdict("Your function raised a shape error.") from error

        return check

    def stub():
        raise NotImplementedError("Exercise 9.9: a stub")

    assert not checks._run("9.9", check_of(stub))
    assert "Exercise 9.9: not solved yet" in capsys.readouterr().out

    def wrong():
        raise RuntimeError("shape mismatch")

    assert not checks._run("9.9", check_of(wrong))
    assert "not yet right. Your function raised a shape error." in capsys.readouterr().out
