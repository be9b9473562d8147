"""Part II (chapters 5-7): the exercise self-checks, the chapters' labels, and the ocean VAE recipe.

nbval re-executes the three notebooks; these tests cover what it does not: that each self-check
accepts a right answer and explains typical wrong ones without giving the solution away, that the
chapters define the equation labels vi_lib cites, and that chapter 7's model and loop (which
chapter 8 reuses) learn the ocean data.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat
import pytest
import torch

from vi_lib import checks
from vi_lib.distributions import kl_diagonal_gaussians
from vi_lib.estimators import effective_sample_size, log_mean_exp

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


def _verdict(capsys, check, fn):
    ok = check(fn)
    out = capsys.readouterr().out
    assert "solution" not in out.lower()
    return ok, out


def _not_solved(*args):
    raise NotImplementedError


# ---------------------------------------------------------------------------------------
# Exercise 5.2: the effective sample size
# ---------------------------------------------------------------------------------------


def test_ess_check_accepts_right_answer(capsys):
    ok, out = _verdict(capsys, checks.check_effective_sample_size, lambda lw: effective_sample_size(lw))
    assert ok and "5.2: correct" in out


def test_ess_check_not_solved(capsys):
    ok, out = _verdict(capsys, checks.check_effective_sample_size, _not_solved)
    assert not ok and "not solved yet" in out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda lw: lw.sum(0) ** 2 / (lw**2).sum(0), "Exponentiate"),  # log weights used as weights
        (lambda lw: effective_sample_size(lw) / lw.shape[0], "ESS / S"),
        (lambda lw: lw.exp().sum(0) ** 2 / lw.exp().pow(2).sum(0), "overflows"),  # not in log space
        (lambda lw: lw.exp().sum(0) / lw.exp().pow(2).sum(0), "square"),
        (lambda lw: effective_sample_size(lw, dim=0).sum(), "shape"),
    ],
)
def test_ess_check_explains_wrong_answers(capsys, wrong, hint):
    ok, out = _verdict(capsys, checks.check_effective_sample_size, wrong)
    assert not ok and hint in out


# ---------------------------------------------------------------------------------------
# Exercise 6.2: the importance estimate of log p(x)
# ---------------------------------------------------------------------------------------


def _right_importance(log_lik, log_prior, log_q):
    return log_mean_exp(log_lik + log_prior - log_q, dim=0)


def test_importance_check_accepts_right_answer(capsys):
    ok, out = _verdict(capsys, checks.check_importance_log_marginal, _right_importance)
    assert ok and "6.2: correct" in out


def test_importance_check_not_solved(capsys):
    ok, out = _verdict(capsys, checks.check_importance_log_marginal, _not_solved)
    assert not ok and "not solved yet" in out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda a, b, c: torch.logsumexp(a + b - c, 0), "log S"),
        (lambda a, b, c: log_mean_exp(a + b + c, 0), "minus sign"),
        (lambda a, b, c: (a + b - c).mean(0), "averaged the log weights"),
        (lambda a, b, c: (a + b - c).exp().mean(0).log(), "logsumexp"),
        (lambda a, b, c: log_mean_exp(a + b - c, 1), "shape"),
        (lambda a, b, c: log_mean_exp(a - c, 0), "Check each term"),
        (lambda a, b, c: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_importance_check_explains_wrong_answers(capsys, wrong, hint):
    ok, out = _verdict(capsys, checks.check_importance_log_marginal, wrong)
    assert not ok and hint in out


# ---------------------------------------------------------------------------------------
# Exercise 7.2: the KL to the standard normal
# ---------------------------------------------------------------------------------------


def test_kl_check_accepts_right_answer(capsys):
    ok, out = _verdict(capsys, checks.check_kl_to_standard_normal, lambda m, lv: kl_diagonal_gaussians(m, lv))
    assert ok and "7.2: correct" in out


def test_kl_check_not_solved(capsys):
    ok, out = _verdict(capsys, checks.check_kl_to_standard_normal, _not_solved)
    assert not ok and "not solved yet" in out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda m, lv: 0.5 * (lv.exp() + m**2 - 1 - lv), "sum over the last dimension"),
        (lambda m, lv: (lv.exp() + m**2 - 1 - lv).sum(-1), "factor 1/2"),
        (lambda m, lv: 0.5 * (lv.exp() + m**2 - lv).sum(-1), "'- 1'"),
        (lambda m, lv: 0.5 * ((0.5 * lv).exp() + m**2 - 1 - lv).sum(-1), "standard deviation"),
        (lambda m, lv: 0.5 * (lv.exp() + m**2 - 1 + lv).sum(-1), "minus sign"),
        (lambda m, lv: 0.5 * (lv.exp() + m - 1 - lv).sum(-1), "Check each term"),
    ],
)
def test_kl_check_explains_wrong_answers(capsys, wrong, hint):
    ok, out = _verdict(capsys, checks.check_kl_to_standard_normal, wrong)
    assert not ok and hint in out


# ---------------------------------------------------------------------------------------
# The chapters
# ---------------------------------------------------------------------------------------


def _markdown(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


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


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_chapter_figures_have_caption_name_and_alt_text(chapter):
    nb = nbformat.read(CHAPTERS[chapter], as_version=4)
    figures = [c for c in nb.cells if c.cell_type == "code" and "plt.show()" in c.source]
    assert figures
    for cell in figures:
        meta = cell.metadata.get("mystnb", {})
        assert meta.get("figure", {}).get("caption") and meta["figure"].get("name", "").startswith("fig-")
        assert meta.get("image", {}).get("alt")
        assert cell.source.count("plt.show()") == 1


def test_chapter_7_recipe_learns_the_ocean():
    """Chapter 7's model and loop (vi_lib.models.MLPVAE, vi_lib.training.fit) on the ocean data."""
    from vi_lib.data import ocean_sensors
    from vi_lib.models import MLPVAE
    from vi_lib.training import fit

    data = ocean_sensors(n=1000, seed=1)
    x = (data.x - data.x.mean(0)) / data.x.std(0)
    torch.manual_seed(0)
    vae = MLPVAE(data_dim=3, latent_dim=2, hidden_dims=(32, 32))
    history = fit(vae, x, x, epochs=8, batch_size=100, lr=3e-3, seed=0, progress=False)
    assert history[-1]["test_elbo"] > history[0]["test_elbo"] + 0.5
    assert all(math.isfinite(row["test_complexity"]) and row["test_complexity"] >= 0 for row in history)
    with torch.no_grad():
        k1 = vae.iwae_bound(x, 1).mean()
        k100 = vae.iwae_bound(x, 100).mean()
    assert k100 > k1  # the importance-weighted bound tightens the ELBO
