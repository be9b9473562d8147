"""tools.exercises: the exercise cells' roles, their nbgrader metadata, and the site's directives."""

from __future__ import annotations

import nbformat
import pytest

from tools import exercises as X

md = nbformat.v4.new_markdown_cell


def code(source):
    return nbformat.v4.new_code_cell(source)


def role(cell, **meta):
    cell.metadata["vi_book"] = meta
    return cell


def nb(*cells):
    out = nbformat.v4.new_notebook()
    out.cells = [md("# Chapter"), *cells]
    return out


ANSWER = "def area(r):\n    ### BEGIN SOLUTION\n    return 3.14 * r * r\n    ### END SOLUTION"


def derivation(n="6.1", label="ex-pi", body="**Solution.** Because.\n\n```python\nx = 1\n```"):
    return [role(md(f"### Exercise {n}: Why pi\n\nShow it."), exercise=label, kind="derivation"),
            role(md(body), solution=label)]


def code_exercise(n="6.2", label="ex-area"):
    return [role(md(f"### Exercise {n}: The area\n\nWrite it."), exercise=label, kind="code"),
            role(code(ANSWER), solution=label),
            role(code("check(area)"), check=label),
            role(code("assert check(area)"), test=label)]


def experiment(n="6.3", label="ex-study"):
    return [role(md(f"### Exercise {n}: A study\n\nMeasure."), exercise=label, kind="experiment"),
            role(code("### BEGIN SOLUTION\nprint(1)\n### END SOLUTION"), solution=label),
            role(code("### BEGIN SOLUTION\nprint(2)\n### END SOLUTION"), solution=label),
            role(md("It is 1."), solution=label)]


def chapter():
    return nb(*derivation(), *code_exercise(), *experiment())


def test_exercises_are_found_with_their_numbers_kinds_and_cells():
    found = X.exercises(chapter(), "6")
    assert [(e.number, e.kind, e.title) for e in found] == [
        ("6.1", "derivation", "Why pi"), ("6.2", "code", "The area"), ("6.3", "experiment", "A study")]
    area = found[1]
    assert (area.statement, area.answers, area.check, area.test) == (3, [4], 5, 6)
    assert area.grade_id == "ex6_2_area"


def test_nbgrader_metadata_follows_the_roles():
    book = chapter()
    X.write_nbgrader_metadata(book, "6")
    meta = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"] for c in book.cells if "nbgrader" in c.metadata}
    assert meta["ex6_1_pi_statement"]["locked"] and not meta["ex6_1_pi_statement"]["solution"]
    assert meta["ex6_1_pi"] == {"grade": True, "grade_id": "ex6_1_pi", "locked": False, "points": 3,
                                "schema_version": 3, "solution": True, "task": False}
    assert meta["ex6_2_area"]["solution"] and not meta["ex6_2_area"]["grade"]  # autograded answer
    assert meta["ex6_2_area_check"]["locked"] and not meta["ex6_2_area_check"]["grade"]
    assert meta["ex6_2_area_test"]["grade"] and meta["ex6_2_area_test"]["points"] == 3
    assert [meta[g]["points"] for g in ("ex6_3_study_code", "ex6_3_study_code_2", "ex6_3_study")] == [1, 1, 2]
    assert "nbgrader" not in book.cells[0].metadata
    assert not X.write_nbgrader_metadata(book, "6")  # already current


def test_points_can_be_overridden():
    book = chapter()
    book.cells[2].metadata["vi_book"]["points"] = 5
    assert X.nbgrader_metadata(book, "6")[2]["points"] == 5


def test_site_gets_the_sphinx_exercise_directives():
    site = X.to_myst(chapter(), "6")
    sources = [c.source for c in site.cells]
    assert sources[1] == "```{exercise} Why pi\n:label: ex-pi\n\nShow it.\n```"
    # a solution holding a fenced block gets a longer fence; the lead-in "Solution." is left out
    assert sources[2] == "````{solution} ex-pi\n:class: dropdown\n\nBecause.\n\n```python\nx = 1\n```\n````"
    assert sources[4] == "```{solution-start} ex-area\n:class: dropdown\n```"
    assert sources[5] == "def area(r):\n    return 3.14 * r * r"  # nbgrader's markers left out
    assert sources[6] == "```{solution-end}\n```"
    assert sources[7:9] == ["check(area)", "assert check(area)"]  # after the dropdown
    assert sources[10] == "```{solution-start} ex-study\n:class: dropdown\n```"
    assert sources[13:15] == ["It is 1.", "```{solution-end}\n```"]
    assert len({c.id for c in site.cells}) == len(site.cells)
    assert chapter().cells[1].source.startswith("### Exercise 6.1")  # the input is left as it is


@pytest.mark.parametrize(
    "cells, message",
    [
        ([*derivation(n="6.2")], "is headed Exercise 6.2 but is exercise 6.1"),
        ([role(md("Exercise 6.1, why pi"), exercise="ex-pi", kind="derivation")], "must start with the heading"),
        ([role(md("### Exercise 6.1: X"), exercise="ex-pi", kind="essay")], "vi_book.kind must be one of"),
        ([code(ANSWER)], "is not an exercise's answer"),
        ([role(md("### Exercise 6.1: X"), exercise="ex-a", kind="code"), role(code("area = 1"), solution="ex-a"),
          role(code("check(area)"), check="ex-a"), role(code("assert check(area)"), test="ex-a")],
         "has no '### BEGIN SOLUTION'"),
        ([*code_exercise(n="6.1")[:3]], "needs a self-check cell and an autograder test cell"),
        ([*derivation(n="6.1"), md("Some text."), role(md("More."), solution="ex-pi")], "does not follow that exercise"),
        ([role(md("### Exercise 6.1: X"), exercise="ex-a", kind="derivation")], "has no answer cell"),
        ([role(md("### Exercise 6.1: X"), exercise="ex-a", kind="experiment"), role(md("Talk."), solution="ex-a")],
         "has no code answer cell"),
        ([*derivation(n="6.1"), *derivation(n="6.2")], "two exercises have the label 'ex-pi'"),
    ],
)
def test_broken_conventions_are_reported(cells, message):
    with pytest.raises(X.ExerciseError, match=message):
        X.exercises(nb(*cells), "6")
