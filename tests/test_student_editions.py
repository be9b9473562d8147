"""The student editions: nbgrader's preprocessors on small notebooks, then every chapter's edition.

`tools.make_student_editions` turns a chapter notebook (the instructor edition) into its student
edition with nbgrader's own preprocessors. The first tests run it on small synthetic notebooks
written with the cell roles of `tools.exercises`; the next ones check every chapter's edition
without executing it: no solution text, the cells of nbgrader's release, the outputs kept outside
the exercises. (`tests/test_nbgrader.py` executes every release with nbgrader itself, and checks
that what raises there is what the edition tags.)
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tools import exercises
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


def with_role(cell, **role):
    cell.metadata["vi_book"] = role
    return cell


def notebook(*cells, chapter="6", metadata=True):
    """A small chapter ``chapter`` of ``cells``, with their nbgrader metadata unless ``metadata`` is False."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [md("# A chapter\n\nSome text."), code("x = 1", outputs=["figure"]), *cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if metadata:
        exercises.write_nbgrader_metadata(nb, chapter)
    return nb


def derivation(number="6.1", label="ex-pi"):
    return [
        with_role(md(f"### Exercise {number}: Why pi\n\nShow it."), exercise=label, kind="derivation"),
        with_role(md("**Solution.** The secret derivation of pi."), solution=label),
    ]


def code_exercise(number="6.1", label="ex-area"):
    return [
        with_role(md(f"### Exercise {number}: The area of a disc\n\nWrite `area(r)`."), exercise=label, kind="code"),
        with_role(code("import math\n\n\ndef area(r):\n    ### BEGIN SOLUTION\n    return math.pi * r ** 2\n"
                       "    ### END SOLUTION"), solution=label),
        with_role(code("from vi_lib import checks\n\ncheck(area)", outputs=[f"Exercise {number}: correct."],
                       tags=["nbval-check-output"]), check=label),
        with_role(code("assert check(area)\n### BEGIN HIDDEN TESTS\nassert area(2) == 4 * math.pi  # the hidden radius\n"
                       "### END HIDDEN TESTS", tags=["remove-cell"]), test=label),
    ]


def experiment(number="6.2", label="ex-study"):
    return [
        with_role(md(f"### Exercise {number}: A study\n\nMeasure it."), exercise=label, kind="experiment"),
        with_role(code("def study():\n    ### BEGIN SOLUTION\n    print('the secret measurement')\n"
                       "    ### END SOLUTION\n\n\nstudy()", outputs=["the secret measurement"]), solution=label),
        with_role(md("The secret discussion of the study."), solution=label),
    ]


def student(nb, chapter="6"):
    return mse.make_student_edition(nb, chapter)


def sources(nb) -> str:
    return "\n".join(c.source for c in nb.cells)


def test_code_solution_is_nbgraders_stub_at_its_indentation():
    edition = student(notebook(*code_exercise()))
    answer = edition.notebook.cells[edition.stubbed_cells[0]]
    assert answer.source == "import math\n\n\ndef area(r):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert answer.outputs == [] and answer.execution_count is None
    assert "math.pi * r ** 2" not in sources(edition.notebook)


def test_written_answers_become_your_answer_here():
    edition = student(notebook(*derivation(), *experiment(number="6.2")))
    text = sources(edition.notebook)
    assert "secret" not in text
    assert [c.source for c in edition.notebook.cells].count("YOUR ANSWER HERE") == 2
    assert "### Exercise 6.1: Why pi\n\nShow it." in text  # the statement is kept, read-only
    statement = next(c for c in edition.notebook.cells if c.source.startswith("### Exercise 6.1"))
    assert statement.metadata["nbgrader"]["locked"] is True


def test_hidden_tests_are_removed_and_the_check_kept_without_its_output():
    edition = student(notebook(*code_exercise()))
    cells = edition.notebook.cells
    check = next(c for c in cells if (exercises.role(c) or ("",))[0] == "check")
    test = next(c for c in cells if (exercises.role(c) or ("",))[0] == "test")
    assert check.source.endswith("check(area)") and check.outputs == []
    assert "nbval-check-output" not in check.metadata.get("tags", [])
    assert test.source.strip() == "assert check(area)"
    assert "hidden radius" not in sources(edition.notebook)


@pytest.mark.parametrize(
    "source, raises",
    [
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION", False),  # stub in a body
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n\n\nf()", True),  # and called
        ("### BEGIN SOLUTION\ny = 2\n### END SOLUTION", True),  # a stub that runs with the cell
    ],
)
def test_cells_that_now_raise_are_tagged(source, raises):
    nb = notebook(with_role(md("### Exercise 6.1: A study\n\nDo it."), exercise="ex-a", kind="experiment"),
                  with_role(code(source), solution="ex-a"), with_role(md("Discussion."), solution="ex-a"))
    edition = student(nb)
    tagged = mse.RAISES in edition.notebook.cells[edition.stubbed_cells[0]].metadata.get("tags", [])
    assert tagged is raises


def test_the_test_cell_is_tagged_and_a_later_use_of_the_learners_function_is_cleared():
    nb = notebook(*code_exercise(), code("print(area(1))", outputs=["3.14159"]))
    edition = student(nb)
    cells = edition.notebook.cells
    test = next(c for c in cells if (exercises.role(c) or ("",))[0] == "test")
    assert mse.RAISES in test.metadata["tags"] and "remove-cell" in test.metadata["tags"]
    assert cells[-1].outputs == [] and mse.RAISES in cells[-1].metadata["tags"]


def test_everything_else_is_kept_and_a_note_follows_the_title():
    nb = notebook(*derivation())
    edition = student(nb)
    cells = edition.notebook.cells
    assert cells[0].source == nb.cells[0].source
    assert cells[1].metadata["tags"] == [mse.NOTE_TAG] and "(6.1)" in cells[1].source
    assert cells[2].outputs == nb.cells[1].outputs  # the chapter's own outputs stay
    assert edition.notebook.metadata["vi_book"]["edition"] == "student"
    assert edition.notebook.metadata["vi_book"]["exercises"] == {"ex-pi": "6.1"}
    assert [e.number for e in edition.exercises] == ["6.1"]


def test_stale_nbgrader_metadata_is_reported():
    nb = notebook(*code_exercise())
    nb.cells[-1].metadata["nbgrader"]["points"] = 7
    with pytest.raises(mse.StudentEditionError, match="run `python -m tools.sync_notebooks`"):
        student(nb)


def test_notebooks_that_break_the_conventions_are_reported():
    nb = notebook(code("### BEGIN SOLUTION\nx = 2\n### END SOLUTION"), metadata=False)
    with pytest.raises(mse.StudentEditionError, match="not an exercise's answer"):
        student(nb)


def test_command_line_writes_the_out_folder(tmp_path, capsys):
    src = tmp_path / "06_small.ipynb"
    nbformat.write(notebook(*code_exercise()), src)
    assert mse.main(["--out", str(tmp_path / "student"), str(src)]) == 0
    out = nbformat.read(tmp_path / "student" / src.name, as_version=4)
    assert "raise NotImplementedError()" in sources(out)
    assert "exercises 6.1" in capsys.readouterr().out
    broken = tmp_path / "07_broken.ipynb"
    nbformat.write(notebook(code("### BEGIN SOLUTION\nx = 2\n### END SOLUTION"), metadata=False), broken)
    assert mse.main(["--out", str(tmp_path / "student"), str(broken)]) == 1
    assert "FAILED 07_broken.ipynb" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Every chapter, without executing it


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_student_edition_leaks_no_solution(path):
    instructor = nbformat.read(path, as_version=4)
    secret = exercises.solution_lines(instructor)
    assert len(secret) > 20, f"{path.name}: the test found almost no solution text to look for"
    edition = mse.make_student_edition(instructor, exercises.chapter_number(path))
    for name, nb in [("student edition", edition.notebook), ("nbgrader release", mse.nbgrader_release(instructor))]:
        present = {line.strip() for c in nb.cells for line in c.source.split("\n")}
        present |= {line.strip() for c in nb.cells if c.cell_type == "code" for o in c.outputs
                    for line in o.get("text", "").split("\n")}
        leaked = sorted(secret & present)
        assert not leaked, f"{path.name}: solution text in the {name}:\n" + "\n".join(leaked)
        metadata = "\n".join(json.dumps(c.metadata, ensure_ascii=False) for c in nb.cells)  # captions, alt text
        in_metadata = sorted(line for line in secret if len(line) >= 30 and json.dumps(line)[1:-1] in metadata)
        assert not in_metadata, f"{path.name}: solution text in the {name}'s cell metadata:\n" + "\n".join(in_metadata)
    assert len(edition.exercises) == len(exercises.exercises(instructor, exercises.chapter_number(path)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_student_edition_is_nbgraders_release_with_the_chapters_outputs(path):
    instructor = nbformat.read(path, as_version=4)
    edition = mse.make_student_edition(instructor, exercises.chapter_number(path)).notebook
    release = mse.nbgrader_release(instructor, keep_outputs=True)
    cells = [c for c in edition.cells if c.get("id") != mse.NOTE_TAG]
    assert len(cells) == len(release.cells) == len(instructor.cells)
    for mine, theirs, original in zip(cells, release.cells, instructor.cells):
        assert mine.source == theirs.source
        assert mine.metadata.get("nbgrader") == theirs.metadata.get("nbgrader")
        if mine.cell_type == "code" and not mine.outputs:
            continue
        assert mine.get("outputs") == original.get("outputs")  # kept as they are where not cleared
    kept = sum(bool(c.get("outputs")) for c in cells)
    assert kept > len(cells) // 4, f"{path.name}: the edition should keep the chapter's figures and numbers"


def test_site_build_publishes_and_links_the_student_editions(tmp_path):
    from sphinx.application import Sphinx

    src = tmp_path / "src"
    (src / "notebooks").mkdir(parents=True)
    (src / "book").mkdir()
    nb = notebook(md("## Exercises"), *code_exercise())
    nbformat.write(nb, src / "notebooks" / "06_small.ipynb")
    (src / "book" / "instructor_guide.md").write_text(
        "# Instructor guide\n\n:::{container} student-editions-list\nfallback text\n:::\n"
    )
    (src / "index.md").write_text(
        "# Book\n\n```{toctree}\nnotebooks/06_small\nbook/instructor_guide\n```\n"
    )
    (src / "conf.py").write_text(
        # found as in the book's build, from the repository root (pytest's pythonpath)
        "extensions = ['myst_nb', 'sphinx_exercise', 'book._ext.student_editions', 'book._ext.exercises']\n"
        "myst_enable_extensions = ['colon_fence', 'dollarmath']\n"
        "nb_execution_mode = 'off'\n"
        "exclude_patterns = ['_build']\n"
        "html_theme = 'sphinx_book_theme'\n"
        "html_theme_options = {'repository_url': 'https://github.com/org/book'}\n"
        "student_editions_colab_branch = 'student-editions'\n"
        "exercise_style = 'solution_follow_exercise'\n"
    )
    out = tmp_path / "html"
    app = Sphinx(src, src, out, tmp_path / "doctrees", "html", status=None, warningiserror=True)
    app.build()

    edition = nbformat.read(out / "student" / "06_small.ipynb", as_version=4)
    assert "raise NotImplementedError()" in sources(edition)
    page = (out / "notebooks" / "06_small.html").read_text()
    assert 'href="../student/06_small.ipynb"' in page
    colab = "https://colab.research.google.com/github/org/book/blob/student-editions/student/06_small.ipynb"
    assert colab in page
    assert "instructor_guide.html" in page
    guide = (out / "book" / "instructor_guide.html").read_text()
    assert 'href="../student/06_small.ipynb"' in guide and "fallback text" not in guide
    # book._ext.exercises made the exercise and its dropdown solution; the test cell is not on the page
    assert 'class="exercise admonition"' in page and "solution dropdown" in page
    assert "The area of a disc" in page and "hidden radius" not in page


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
        raise NotImplementedError()

    assert not checks._run("9.9", check_of(stub))
    assert "Exercise 9.9: not solved yet" in capsys.readouterr().out

    def wrong():
        raise RuntimeError("shape mismatch")

    assert not checks._run("9.9", check_of(wrong))
    assert "not yet right. Your function raised a shape error." in capsys.readouterr().out
