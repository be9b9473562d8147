"""The exercise self-checks of vi_lib.checks, in chapter order.

Each check accepts a right answer, says "not solved yet" for the student edition's stub, turns a
crash of the learner's function into a verdict, and names the typical wrong answers without giving
the solution away. (Exercise 8.2's check is tested with the convolutional VAE, in
tests/test_conv_vae.py.)
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from torch.distributions import MultivariateNormal

from vi_lib import checks
from vi_lib.distributions import kl_diagonal_gaussians
from vi_lib.estimators import effective_sample_size, log_mean_exp

#: The checks tested here, in chapter order: (exercise, check).
CHECKS = [
    ("1.2", checks.check_ancestral_sample),
    ("2.2", checks.check_gaussian_log_density),
    ("3.2", checks.check_kl_discrete),
    ("4.2", checks.check_linear_gaussian_log_marginal),
    ("5.2", checks.check_effective_sample_size),
    ("6.2", checks.check_importance_log_marginal),
    ("7.2", checks.check_kl_to_standard_normal),
    ("7.4", checks.check_iwae_bound),
]
CHECK = dict(CHECKS)


def _verdict(capsys, check, fn):
    """Run ``check(fn)``; return whether it passed and what it printed (which never gives the solution)."""
    ok = check(fn)
    out = capsys.readouterr().out
    assert "solution" not in out.lower()
    return ok, out


# ---------------------------------------------------------------------------------------
# Right answers, and wrong ones written as a right answer with one slip, by exercise
# ---------------------------------------------------------------------------------------


def right_ancestral_sample(model, n):
    z = torch.multinomial(model.weights, n, replacement=True)
    return MultivariateNormal(model.means[z], model.covariances[z]).sample(), z


def uniform_biomes(model, n):
    z = torch.randint(len(model.weights), (n,))
    return MultivariateNormal(model.means[z], model.covariances[z]).sample(), z


def means_only(model, n):
    z = torch.multinomial(model.weights, n, replacement=True)
    return model.means[z], z


def transposed(model, n):
    x, z = right_ancestral_sample(model, n)
    return x.T, z


def shuffled_labels(model, n):
    x, z = right_ancestral_sample(model, n)
    return x, z[torch.randperm(n)]


def _log_density(x, mean, cov, *, const=1.0, logdet=0.5, quad_inverse=True, sum_dims=True):
    L = torch.linalg.cholesky(cov)
    diff = (x - mean).T
    if quad_inverse:
        quadratic = torch.linalg.solve_triangular(L, diff, upper=False).pow(2).sum(0)
    else:
        quadratic = (diff * (cov @ diff)).sum(0)
    log_det = 2 * torch.log(torch.diagonal(L)).sum()
    out = -0.5 * quadratic - logdet * log_det - const * 0.5 * x.shape[-1] * math.log(2 * math.pi)
    return out if sum_dims else out[:, None].expand(-1, x.shape[-1])


def _kl_right(p, q):
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)


def _lg_marginal(x, weight, bias, noise_std, *, transpose=False, noise_power=2, no_noise=False, zero_mean=False):
    ww = weight.T @ weight if transpose else weight @ weight.T
    eye = torch.eye(ww.shape[0], dtype=weight.dtype)
    cov = ww + (0.0 if no_noise else noise_std**noise_power) * eye
    if no_noise:
        cov = cov + 1e-300 * eye
    mean = torch.zeros_like(bias) if zero_mean else bias
    return MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)


def _lg_marginal_without_noise_when_square(x, weight, bias, noise_std):
    """Without the noise the covariance of the D = d = 3 case is still invertible: named."""
    if weight.shape[0] != weight.shape[1]:
        return _lg_marginal(x, weight, bias, noise_std)  # right on the first cases
    return MultivariateNormal(bias, covariance_matrix=weight @ weight.T).log_prob(x)


def _right_importance(log_lik, log_prior, log_q):
    return log_mean_exp(log_lik + log_prior - log_q, dim=0)


def right_iwae_estimate(log_joint, log_q):
    log_w = log_joint - log_q  # [K, B]
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


RIGHT_ANSWERS = [
    pytest.param("1.2", right_ancestral_sample, id="1.2"),
    pytest.param("2.2", _log_density, id="2.2"),
    pytest.param("3.2", _kl_right, id="3.2"),
    pytest.param("4.2", _lg_marginal, id="4.2"),
    pytest.param("5.2", lambda lw: effective_sample_size(lw), id="5.2"),
    pytest.param("6.2", _right_importance, id="6.2"),
    pytest.param("7.2", lambda m, lv: kl_diagonal_gaussians(m, lv), id="7.2"),
    pytest.param("7.4", right_iwae_estimate, id="7.4"),
    pytest.param("7.4", lambda a, b: log_mean_exp(a - b, dim=0), id="7.4-log_mean_exp"),
]


def _wrong(exercise, cases):
    """pytest params (exercise, wrong answer, a phrase its verdict must contain), ids "N.M-name"."""
    return [pytest.param(exercise, wrong, hint, id=f"{exercise}-{name}") for name, wrong, hint in cases]


WRONG_ANSWERS = [
    *_wrong("1.2", [
        ("uniform-biomes", uniform_biomes, "frequencies"),
        ("returns-means", means_only, "hardly vary"),
        ("wrong-shape", transposed, "shape"),
        ("mixed-up-biomes", shuffled_labels, "centred"),
    ]),
    *_wrong("2.2", [
        ("no-constant", partial(_log_density, const=0.0), "log(2 pi) constant is missing"),
        ("no-logdet", partial(_log_density, logdet=0.0), "log det(Sigma) term is missing"),
        ("logdet-twice", partial(_log_density, logdet=1.0), "counted twice"),
        ("covariance-not-inverse", partial(_log_density, quad_inverse=False), "inverse covariance"),
        ("no-sum", partial(_log_density, sum_dims=False), "shape"),
    ]),
    *_wrong("3.2", [
        ("swapped", lambda p, q: _kl_right(q, p), "KL(q || p)"),
        ("bits", lambda p, q: _kl_right(p, q) / math.log(2), "bits"),
        ("sign", lambda p, q: -_kl_right(p, q), "sign"),
        ("nan-at-zero", lambda p, q: (p * torch.log(p / q)).sum(-1), "NaN"),
        ("summed-rows", lambda p, q: _kl_right(p, q).sum(), "shape"),
        ("clamped-q", lambda p, q: (torch.xlogy(p, p) - torch.xlogy(p, q.clamp_min(1e-12))).sum(-1), "+inf"),
    ]),
    *_wrong("4.2", [
        ("WtW", partial(_lg_marginal, transpose=True), "D x D"),
        ("std-not-variance", partial(_lg_marginal, noise_power=1), "not the standard deviation"),
        ("zero-mean", partial(_lg_marginal, zero_mean=True), "bias b"),
        ("missing-noise", _lg_marginal_without_noise_when_square, "noise is missing"),
    ]),
    *_wrong("5.2", [
        ("log-weights-as-weights", lambda lw: lw.sum(0) ** 2 / (lw**2).sum(0), "Exponentiate"),
        ("fraction", lambda lw: effective_sample_size(lw) / lw.shape[0], "ESS / S"),
        ("not-log-space", lambda lw: lw.exp().sum(0) ** 2 / lw.exp().pow(2).sum(0), "overflows"),
        ("no-square", lambda lw: lw.exp().sum(0) / lw.exp().pow(2).sum(0), "square"),
        ("summed", lambda lw: effective_sample_size(lw, dim=0).sum(), "shape"),
    ]),
    *_wrong("6.2", [
        ("summed", lambda a, b, c: torch.logsumexp(a + b - c, 0), "log S"),
        ("plus-log-q", lambda a, b, c: log_mean_exp(a + b + c, 0), "minus sign"),
        ("mean-of-logs", lambda a, b, c: (a + b - c).mean(0), "averaged the log weights"),
        ("unstable-exp", lambda a, b, c: (a + b - c).exp().mean(0).log(), "logsumexp"),
        ("wrong-dim", lambda a, b, c: log_mean_exp(a + b - c, 1), "shape"),
        ("no-prior", lambda a, b, c: log_mean_exp(a - c, 0), "Check each term"),
        ("crash", lambda a, b, c: 1 / 0, "ZeroDivisionError"),
    ]),
    *_wrong("7.2", [
        ("no-sum", lambda m, lv: 0.5 * (lv.exp() + m**2 - 1 - lv), "sum over the last dimension"),
        ("no-half", lambda m, lv: (lv.exp() + m**2 - 1 - lv).sum(-1), "factor 1/2"),
        ("no-minus-one", lambda m, lv: 0.5 * (lv.exp() + m**2 - lv).sum(-1), "'- 1'"),
        ("std-not-variance", lambda m, lv: 0.5 * ((0.5 * lv).exp() + m**2 - 1 - lv).sum(-1), "standard deviation"),
        ("plus-log-var", lambda m, lv: 0.5 * (lv.exp() + m**2 - 1 + lv).sum(-1), "minus sign"),
        ("mean-not-squared", lambda m, lv: 0.5 * (lv.exp() + m - 1 - lv).sum(-1), "Check each term"),
    ]),
    *_wrong("7.4", [
        ("mean-of-logs", lambda a, b: (a - b).mean(0), "averaged the log weights"),  # the ELBO for every K
        ("unstable-exp", lambda a, b: (a - b).exp().mean(0).log(), "underflows"),
        ("no-log-K", lambda a, b: torch.logsumexp(a - b, 0), "off by log K"),
        ("plus-log-q", lambda a, b: log_mean_exp(a + b, 0), "minus sign"),
        ("wrong-dim", lambda a, b: log_mean_exp(a - b, 1), "shape"),
        ("offset", lambda a, b: log_mean_exp(a - b, 0) + 0.1, "Check each term"),
        ("clamped", lambda a, b: log_mean_exp(a - b, 0).clamp(max=500.0), "overflows"),
        ("crash", lambda a, b: 1 / 0, "ZeroDivisionError"),
    ]),
]


# ---------------------------------------------------------------------------------------
# Every check: a right answer, the stub, a crash, the typical wrong answers
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("exercise, right", RIGHT_ANSWERS)
def test_check_accepts_a_right_answer(capsys, exercise, right):
    ok, out = _verdict(capsys, CHECK[exercise], right)
    assert ok and f"Exercise {exercise}: correct." in out


@pytest.mark.parametrize("exercise, check", CHECKS, ids=[e for e, _ in CHECKS])
def test_check_says_not_solved_yet_for_the_stub(capsys, exercise, check):
    def stub(*args):
        raise NotImplementedError(f"Exercise {exercise}: the student edition's stub")

    ok, out = _verdict(capsys, check, stub)
    assert not ok and f"Exercise {exercise}: not solved yet" in out


@pytest.mark.parametrize("exercise, check", CHECKS, ids=[e for e, _ in CHECKS])
def test_check_turns_a_crash_into_a_verdict(capsys, exercise, check):
    """An exception of the learner's function is a wrong answer that the verdict names."""

    def crash(*args):
        raise KeyError("a typo in the learner's code")

    ok, out = _verdict(capsys, check, crash)
    assert not ok and f"Exercise {exercise}: not yet right. your function raised KeyError" in out


@pytest.mark.parametrize("exercise, wrong, hint", WRONG_ANSWERS)
def test_check_names_the_mistake(capsys, exercise, wrong, hint):
    ok, out = _verdict(capsys, CHECK[exercise], wrong)
    assert not ok and f"Exercise {exercise}: not yet right." in out and hint in out


# ---------------------------------------------------------------------------------------
# Exercise 7.4: beyond random inputs, the ground truths of a linear-Gaussian model
# ---------------------------------------------------------------------------------------


def test_iwae_check_uses_ground_truth_beyond_random_inputs(capsys):
    """An answer right on the random inputs but wrong on real log-densities is caught."""
    calls = []

    def right_only_at_first(log_joint, log_q):
        calls.append(1)
        out = right_iwae_estimate(log_joint, log_q)
        return out if len(calls) <= 4 else out - 0.01  # wrong from the linear-Gaussian case on

    ok, out = _verdict(capsys, checks.check_iwae_bound, right_only_at_first)
    assert not ok and "exact posterior" in out

    def not_rising(log_joint, log_q):  # right for K <= 50, too low for larger K
        out = right_iwae_estimate(log_joint, log_q)
        return out if log_joint.shape[0] <= 50 else out - 1.0

    ok, out = _verdict(capsys, checks.check_iwae_bound, not_rising)
    assert not ok and "rise with K" in out


# ---------------------------------------------------------------------------------------
# Exercise 8.2: the Bernoulli log-likelihood from logits, each typical mistake named
# ---------------------------------------------------------------------------------------


F = torch.nn.functional
_RIGHT_8_2 = lambda l, x: (x * l - F.softplus(l)).sum((-3, -2, -1))  # noqa: E731


@pytest.mark.parametrize(
    "answer, verdict",
    [
        (_RIGHT_8_2, "correct"),
        (lambda l, x: (_ for _ in ()).throw(NotImplementedError), "not solved yet"),
        (lambda l, x: -_RIGHT_8_2(l, x), "wrong sign"),
        (lambda l, x: _RIGHT_8_2(l, x).sum(), "summed over the batch"),
        (lambda l, x: (x * l - F.softplus(l)), "sum over the last three"),
        (lambda l, x: (x * l - F.softplus(l)).sum((1, 2, 3)), "whatever comes before"),
        (lambda l, x: _RIGHT_8_2(torch.sigmoid(l), x), "sigmoid"),
        (lambda l, x: _RIGHT_8_2(l, 1 - x), "swapped"),
        (lambda l, x: (x * torch.sigmoid(l).log() + (1 - x) * (1 - torch.sigmoid(l)).log()).sum((-3, -2, -1)), "softplus"),
    ],
)
def test_check_bernoulli_log_likelihood(answer, verdict, capsys):
    assert checks.check_bernoulli_log_likelihood(answer) == (verdict == "correct")
    out = capsys.readouterr().out
    assert out.startswith("Exercise 8.2:") and verdict in out
