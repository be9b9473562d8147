"""The exercise self-checks accept a right answer and explain a wrong one."""

import torch
from torch.distributions import MultivariateNormal

from vi_lib import checks


def right_ancestral_sample(model, n):
    z = torch.multinomial(model.weights, n, replacement=True)
    return MultivariateNormal(model.means[z], model.covariances[z]).sample(), z


def test_ancestral_sample_correct(capsys):
    assert checks.check_ancestral_sample(right_ancestral_sample)
    assert "correct" in capsys.readouterr().out


def test_ancestral_sample_not_solved(capsys):
    def stub(model, n):
        raise NotImplementedError("Exercise 1.2")

    assert not checks.check_ancestral_sample(stub)
    assert "not solved yet" in capsys.readouterr().out


def test_ancestral_sample_uniform_biomes(capsys):
    def uniform(model, n):
        z = torch.randint(len(model.weights), (n,))
        return MultivariateNormal(model.means[z], model.covariances[z]).sample(), z

    assert not checks.check_ancestral_sample(uniform)
    assert "frequencies" in capsys.readouterr().out


def test_ancestral_sample_returns_means(capsys):
    def means_only(model, n):
        z = torch.multinomial(model.weights, n, replacement=True)
        return model.means[z], z

    assert not checks.check_ancestral_sample(means_only)
    assert "hardly vary" in capsys.readouterr().out


def test_ancestral_sample_wrong_shape(capsys):
    def transposed(model, n):
        x, z = right_ancestral_sample(model, n)
        return x.T, z

    assert not checks.check_ancestral_sample(transposed)
    out = capsys.readouterr().out
    assert "shape" in out and "solution" not in out.lower()


def test_ancestral_sample_mixed_up_biomes(capsys):
    def shuffled_labels(model, n):
        x, z = right_ancestral_sample(model, n)
        return x, z[torch.randperm(n)]

    assert not checks.check_ancestral_sample(shuffled_labels)
    assert "centred" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# Exercise 7.4: the importance-weighted bound from log-densities
# ---------------------------------------------------------------------------------------

import math  # noqa: E402

import pytest  # noqa: E402

from vi_lib.estimators import log_mean_exp  # noqa: E402


def _iwae_verdict(capsys, fn):
    ok = checks.check_iwae_bound(fn)
    out = capsys.readouterr().out
    assert "solution" not in out.lower()
    return ok, out


def right_iwae_estimate(log_joint, log_q):
    log_w = log_joint - log_q  # [K, B]
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def test_iwae_check_accepts_right_answers(capsys):
    for right in (right_iwae_estimate, lambda a, b: log_mean_exp(a - b, dim=0)):
        ok, out = _iwae_verdict(capsys, right)
        assert ok and "Exercise 7.4: correct." in out


def test_iwae_check_not_solved(capsys):
    def stub(log_joint, log_q):
        raise NotImplementedError("Exercise 7.4: The importance-weighted bound")

    ok, out = _iwae_verdict(capsys, stub)
    assert not ok and "7.4: not solved yet" in out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda a, b: (a - b).mean(0), "averaged the log weights"),  # mean of logs: the ELBO for every K
        (lambda a, b: (a - b).exp().mean(0).log(), "underflows"),  # unstable exp
        (lambda a, b: torch.logsumexp(a - b, 0), "off by log K"),  # missing -log K
        (lambda a, b: log_mean_exp(a + b, 0), "minus sign"),
        (lambda a, b: log_mean_exp(a - b, 1), "shape"),
        (lambda a, b: log_mean_exp(a - b, 0) + 0.1, "Check each term"),
        (lambda a, b: log_mean_exp(a - b, 0).clamp(max=500.0), "overflows"),
        (lambda a, b: 1 / 0, "ZeroDivisionError"),
    ],
    ids=["mean-of-logs", "unstable-exp", "no-log-K", "plus-log-q", "wrong-dim", "offset", "clamped", "crash"],
)
def test_iwae_check_explains_wrong_answers(capsys, wrong, hint):
    ok, out = _iwae_verdict(capsys, wrong)
    assert not ok and hint in out


def test_iwae_check_uses_ground_truth_beyond_random_inputs(capsys):
    """An answer right on the random inputs but wrong on real log-densities is caught."""
    calls = []

    def right_only_at_first(log_joint, log_q):
        calls.append(1)
        out = right_iwae_estimate(log_joint, log_q)
        return out if len(calls) <= 4 else out - 0.01  # wrong from the linear-Gaussian case on

    ok, out = _iwae_verdict(capsys, right_only_at_first)
    assert not ok and "exact posterior" in out

    def not_rising(log_joint, log_q):  # right for K <= 50, too low for larger K
        out = right_iwae_estimate(log_joint, log_q)
        return out if log_joint.shape[0] <= 50 else out - 1.0

    ok, out = _iwae_verdict(capsys, not_rising)
    assert not ok and "rise with K" in out
