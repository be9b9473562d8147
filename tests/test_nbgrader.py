"""The instructor guide's nbgrader commands, run literally on every chapter, and the scores they give.

The three ``bash`` blocks of ``book/instructor_guide.md`` that start with ``# nbgrader: once``,
``# nbgrader: each chapter`` and ``# nbgrader: grade`` are read from the guide and run line by line
(``cd`` changes the folder of the lines after it), with ``BOOK`` set to this repository and the
guide's example chapter (``ch06``, ``06_learned_proposal``) replaced by each chapter in turn.
Between "each chapter" and "grade" the test collects two submissions, as an instructor would: the
instructor edition (student ``solved``) and the release as handed out (student ``unsolved``).

What is checked, for every chapter: the release exists and holds no line of any solution, written
answer or hidden test; ``validate`` passes on the source and, on the release, fails exactly at
the grade cells (the answers and tests a student has to fill in); ``autograde`` gives ``solved``
every autograded point and ``unsolved`` none (``grades.csv`` from ``export``); the autograded
unsolved submission's self-checks say "not solved yet", and the cells that raised there are the
ones the student edition tags ``raises-exception``. Slow: every command that executes a chapter
runs it whole (chapter 8 in its short nbgrader mode); two course folders work side by side, and
the book takes about 10 minutes on 2 cores.
"""

from __future__ import annotations

import csv
import os
import queue
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from tools import exercises, make_student_editions

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "book" / "instructor_guide.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXAMPLE_ASSIGNMENT, EXAMPLE_NOTEBOOK = "ch06", "06_learned_proposal"
BIN = Path(sys.executable).parent  # nbgrader and its alembic, from this environment

pytestmark = pytest.mark.skipif(shutil.which("nbgrader", path=str(BIN)) is None,
                                reason="nbgrader is not installed (pip install -e '.[test]')")


def guide_block(first_line: str) -> list[str]:
    """The command lines of the guide's ``bash`` block that starts with ``first_line``."""
    for block in re.findall(r"```bash\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S):
        lines = block.strip("\n").split("\n")
        if lines[0].strip() == first_line:
            return [line for line in lines[1:] if line.strip() and not line.lstrip().startswith("#")]
    raise AssertionError(f"the instructor guide has no bash block starting with '{first_line}'")


def run(lines: list[str], cwd: Path, env: dict) -> tuple[Path, dict[str, str]]:
    """Run ``lines`` one by one in bash from ``cwd``; return the folder after any ``cd`` and each output."""
    outputs = {}
    for line in lines:
        if line.startswith("cd "):
            cwd = cwd / line[3:].strip()
            continue
        if line.startswith("export "):
            continue  # the test sets BOOK itself (to this repository)
        done = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
        outputs[line] = done.stdout + done.stderr
        if done.returncode and " validate " not in f" {line} ":
            raise AssertionError(f"`{line}` failed ({done.returncode}):\n{outputs[line][-3000:]}")
    return cwd, outputs


WORKERS = 2  # two course folders graded side by side: most of a chapter's time is one core's Python


def _env() -> dict:
    return {**os.environ, "BOOK": str(ROOT), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "OMP_WAIT_POLICY": "PASSIVE"}


def _grade_chapter(folder: Path, path: Path) -> dict:
    """The guide's "each chapter" block, the two submissions, then its "grade" block, in ``folder``."""
    env = _env()
    assignment, name = f"ch{path.name[:2]}", path.stem
    _, out = run(_for_chapter(guide_block("# nbgrader: each chapter"), assignment, name), folder, env)
    release_path = folder / "release" / assignment / path.name
    for student, source in [("solved", path), ("unsolved", release_path)]:
        target = folder / "submitted" / student / assignment
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target / path.name)
    run(_for_chapter(guide_block("# nbgrader: grade"), assignment, name), folder, env)
    with open(folder / "grades.csv", newline="") as f:
        scores = {row["student_id"]: row for row in csv.DictReader(f) if row["assignment"] == assignment}
    return {"validations": [v for k, v in out.items() if "nbgrader validate" in k], "release": release_path,
            "scores": scores, "graded": folder / "autograded" / "unsolved" / assignment / path.name}


@pytest.fixture(scope="module")
def graded(request, tmp_path_factory):
    """Every selected chapter released, validated and graded: ``{notebook path: Future of its results}``.

    ``WORKERS`` course folders, each made by the guide's "once" block, take the chapters in turn,
    the slowest first.
    """
    selected = [item.callspec.params["path"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_nbgrader_releases_validates_and_grades_the_chapter"]
    folders = queue.Queue()
    for k in range(WORKERS):
        folder, _ = run(guide_block("# nbgrader: once"), tmp_path_factory.mktemp(f"instructor{k}"), _env())
        folders.put(folder)

    def job(path):
        folder = folders.get()
        try:
            return _grade_chapter(folder, path)
        finally:
            folders.put(folder)

    seconds = {p: nbformat.read(p, as_version=4).metadata.get("vi_book", {}).get("execution", {}).get("seconds", 0)
               for p in selected}
    pool = ThreadPoolExecutor(WORKERS)
    futures = {p: pool.submit(job, p) for p in sorted(selected, key=lambda p: -seconds[p])}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def _for_chapter(lines: list[str], assignment: str, name: str) -> list[str]:
    return [line.replace(EXAMPLE_NOTEBOOK, name).replace(EXAMPLE_ASSIGNMENT, assignment) for line in lines]


def _failed_cells(validate_output: str) -> list[str]:
    """The first source line of each cell that ``nbgrader validate`` reports as failed."""
    return [m.strip() for m in re.findall(r"The following cell failed:\n\n +(.*)\n", validate_output)]


def _same_cells(printed: list[str], cells) -> bool:
    """Are the first lines ``printed`` by validate (cut to 83 characters + "...") those of ``cells``?"""
    firsts = [c.source.strip().split("\n")[0].strip() for c in cells]
    return len(printed) == len(firsts) and all(
        p == f or (p.endswith("...") and f.startswith(p[:-3])) for p, f in zip(printed, firsts))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_nbgrader_releases_validates_and_grades_the_chapter(graded, path):
    result = graded[path].result()
    instructor = nbformat.read(path, as_version=4)
    release = nbformat.read(result["release"], as_version=4)

    # no solution text of any kind reaches the release
    released = {line.strip() for c in release.cells for line in c.source.split("\n")}
    leaked = sorted(exercises.solution_lines(instructor) & released)
    assert not leaked, f"{path.name}: solution lines in nbgrader's release: {leaked[:5]}"

    source_check, release_check = result["validations"]
    assert "Success! Your notebook passes all the tests." in source_check, source_check[-3000:]
    grade_cells = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert _same_cells(_failed_cells(release_check), grade_cells), (
        f"{path.name}: the release must fail exactly at its grade cells\n{release_check[-3000:]}")

    scores = result["scores"]
    tests = sum(c.metadata["nbgrader"]["points"] for c in instructor.cells
                if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution"))
    total = sum(c.metadata["nbgrader"]["points"] for c in instructor.cells if c.metadata.get("nbgrader", {}).get("grade"))
    assert tests > 0
    assert float(scores["solved"]["score"]) == tests, scores["solved"]
    assert float(scores["unsolved"]["score"]) == 0, scores["unsolved"]
    assert float(scores["solved"]["max_score"]) == total
    print(f"{path.name}: solved {scores['solved']['score']} of {total}, unsolved {scores['unsolved']['score']}")
    if path.stem == EXAMPLE_NOTEBOOK:  # the numbers the guide quotes for its example
        assert (tests, total) == (3, 9)

    # the unsolved submission, as graded: checks say "not solved yet"; what raised is what the edition tags
    graded_nb = nbformat.read(result["graded"], as_version=4)
    for cell in graded_nb.cells:
        if (exercises.role(cell) or ("",))[0] == "check":
            printed = "".join(o.get("text", "") for o in cell.outputs)
            assert "not solved yet" in printed, f"{path.name}: a self-check printed {printed!r}"
    if path.name.startswith("08_"):  # chapter 8's short nbgrader mode (NBGRADER_EXECUTION) was on
        printed = "".join(o.get("text", "") for c in graded_nb.cells if c.cell_type == "code" for o in c.outputs)
        assert "train: (3200, 1, 28, 28)" in printed, "chapter 8 trained on the full data under nbgrader"
    # (by cell id: quickstart's configuration adds its header cells to every release)
    raised = [c.id for c in graded_nb.cells if any(o.output_type == "error" for o in c.get("outputs", []))]
    edition = make_student_editions.make_student_edition(instructor, exercises.chapter_number(path)).notebook
    tagged = [c.id for c in edition.cells if make_student_editions.RAISES in c.metadata.get("tags", [])]
    assert raised == tagged, f"{path.name}: cells that raised when unsolved {raised}, tagged {tagged}"
