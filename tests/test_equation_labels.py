"""The chapters' labels: chapters 5-7 define the equation labels vi_lib cites, and refer by label.

vi_lib's docstrings cite equations by label (``eq-iwae``); these tests check that the chapter
defines each cited label, and that its prose refers to equations, figures and exercises by role
and label ({eq}, {numref}), never by a hard-coded number.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools import exercises

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = {
    5: ROOT / "notebooks" / "05_importance_sampling.ipynb",
    6: ROOT / "notebooks" / "06_learned_proposal.ipynb",
    7: ROOT / "notebooks" / "07_elbo.ipynb",
}
LABELS = {
    5: ["eq-importance-identity", "eq-importance-estimate", "eq-ess"],
    6: ["eq-importance-marginal"],
    7: ["eq-elbo", "eq-reparameterisation", "eq-iwae", "eq-kl-diagonal-gaussians", "eq-gaussian-squared-error"],
}


def _markdown(path: Path) -> str:
    """The markdown cells of the notebook at ``path``, joined, without the exercises' headings.

    A heading ``### Exercise N.M: Title`` is the one place a number is written out; tools.exercises
    checks that it is the number the site gives the exercise.
    """
    nb = nbformat.read(path, as_version=4)
    return exercises.without_headings("\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_chapter_defines_the_labels_vi_lib_cites(chapter):
    text = _markdown(CHAPTERS[chapter])
    defined = set(re.findall(r"\$\$\s*\((eq-[\w-]+)\)", text))
    missing = [label for label in LABELS[chapter] if label not in defined]
    assert not missing, f"chapter {chapter} must define {missing}"


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_chapter_refers_by_role_not_by_number(chapter):
    text = _markdown(CHAPTERS[chapter])
    hard_coded = re.findall(r"(?:Figure|Fig\.|Exercise|eq\.|Equation)\s+\d+\.\d+", text)
    assert not hard_coded, f"use {{numref}} / {{eq}} instead of {hard_coded}"
    for role, target in re.findall(r"\{(eq|numref)\}`([\w-]+)`", text):
        prefix = "eq-" if role == "eq" else ("fig-", "ex-")
        assert target.startswith(prefix), f"{role} reference to {target}"


def test_every_label_vi_lib_cites_is_defined_in_a_chapter():
    """Every ``eq-...`` a vi_lib docstring or comment cites (in any module) is an equation of some chapter."""
    defined = set()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        defined |= set(re.findall(r"\$\$\s*\((eq-[\w-]+)\)", _markdown(path)))
    cited = {
        (label, str(path.relative_to(ROOT)))
        for path in sorted((ROOT / "vi_lib").rglob("*.py"))
        for label in re.findall(r"``(eq-[\w-]+)``", path.read_text())
    }
    assert len(cited) >= 15  # the library cites its equations; an empty scan would prove nothing
    missing = sorted((label, where) for label, where in cited if label not in defined)
    assert not missing, f"cited but defined in no chapter: {missing}"
