"""Tests for the vi_lib code added by Part I (chapters 2-4) and for its exercise self-checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from vi_lib import checks
from vi_lib.distributions import fit_gaussian


# ---------------------------------------------------------------------------------------
# vi_lib.distributions.fit_gaussian (chapters 2 and 3)
# ---------------------------------------------------------------------------------------


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(500, 3, generator=g, dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.5, 0.0], [0.0, 2.0, 0.3], [0.0, 0.0, 0.2]], dtype=torch.float64
    ) + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)


def test_fit_gaussian_full_is_sample_mean_and_biased_covariance(data):
    g = fit_gaussian(data, "full")
    assert isinstance(g, MultivariateNormal)
    assert torch.allclose(g.mean, data.mean(0))
    assert torch.allclose(g.covariance_matrix, torch.cov(data.T, correction=0))


def test_fit_gaussian_diagonal_and_isotropic(data):
    var = data.var(0, unbiased=False)
    assert torch.allclose(fit_gaussian(data, "diagonal").covariance_matrix, torch.diag(var))
    iso = fit_gaussian(data, "isotropic").covariance_matrix
    assert torch.allclose(iso, var.mean() * torch.eye(3, dtype=torch.float64))


def test_fit_gaussian_is_the_maximum_likelihood_fit(data):
    """Perturbing the fitted parameters never increases the average log-likelihood."""
    for kind in ("full", "diagonal", "isotropic"):
        best = fit_gaussian(data, kind)
        ll = best.log_prob(data).mean()
        for shift in (0.05, -0.05):
            moved = MultivariateNormal(best.mean + shift, covariance_matrix=best.covariance_matrix)
            scaled = MultivariateNormal(best.mean, covariance_matrix=best.covariance_matrix * (1 + shift))
            assert moved.log_prob(data).mean() < ll
            assert scaled.log_prob(data).mean() < ll
    lls = [fit_gaussian(data, k).log_prob(data).mean() for k in ("full", "diagonal", "isotropic")]
    assert lls[0] >= lls[1] >= lls[2]


def test_fit_gaussian_rejects_bad_input(data):
    with pytest.raises(ValueError, match="covariance must be one of"):
        fit_gaussian(data, "spherical")
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        fit_gaussian(data[0], "full")
    with pytest.raises(ValueError, match="N >= 2"):
        fit_gaussian(data[:1], "full")
    with pytest.raises(TypeError):
        fit_gaussian(data.numpy(), "full")


# ---------------------------------------------------------------------------------------
# Exercise checks of chapter 2
# ---------------------------------------------------------------------------------------


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


def test_check_gaussian_log_density_accepts_a_right_answer(capsys):
    assert checks.check_gaussian_log_density(_log_density)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (dict(const=0.0), "log(2 pi) constant is missing"),
        (dict(logdet=0.0), "log det(Sigma) term is missing"),
        (dict(logdet=1.0), "counted twice"),
        (dict(quad_inverse=False), "inverse covariance"),
        (dict(sum_dims=False), "shape"),
    ],
)
def test_check_gaussian_log_density_names_the_mistake(capsys, wrong, message):
    assert not checks.check_gaussian_log_density(lambda x, m, c: _log_density(x, m, c, **wrong))
    assert message in capsys.readouterr().out


def test_check_gaussian_log_density_unsolved(capsys):
    def unsolved(x, mean, cov):
        raise NotImplementedError

    assert not checks.check_gaussian_log_density(unsolved)
    assert "not solved yet" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# Exercise checks of chapter 3
# ---------------------------------------------------------------------------------------


def _kl_right(p, q):
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)


def test_check_kl_discrete_accepts_a_right_answer(capsys):
    assert checks.check_kl_discrete(_kl_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda p, q: _kl_right(q, p), "KL(q || p)"),
        (lambda p, q: _kl_right(p, q) / math.log(2), "bits"),
        (lambda p, q: -_kl_right(p, q), "sign"),
        (lambda p, q: (p * torch.log(p / q)).sum(-1), "NaN"),
        (lambda p, q: _kl_right(p, q).sum(), "shape"),
        (lambda p, q: (torch.xlogy(p, p) - torch.xlogy(p, q.clamp_min(1e-12))).sum(-1), "+inf"),
    ],
)
def test_check_kl_discrete_names_the_mistake(capsys, wrong, message):
    assert not checks.check_kl_discrete(wrong)
    assert message in capsys.readouterr().out


def test_check_kl_discrete_unsolved(capsys):
    def unsolved(p, q):
        raise NotImplementedError

    assert not checks.check_kl_discrete(unsolved)
    assert "not solved yet" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# Exercise checks of chapter 4
# ---------------------------------------------------------------------------------------


def _lg_marginal(x, weight, bias, noise_std, *, transpose=False, noise_power=2, no_noise=False, zero_mean=False):
    ww = weight.T @ weight if transpose else weight @ weight.T
    eye = torch.eye(ww.shape[0], dtype=weight.dtype)
    cov = ww + (0.0 if no_noise else noise_std**noise_power) * eye
    if no_noise:
        cov = cov + 1e-300 * eye
    mean = torch.zeros_like(bias) if zero_mean else bias
    return MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)


def test_check_linear_gaussian_log_marginal_accepts_a_right_answer(capsys):
    assert checks.check_linear_gaussian_log_marginal(_lg_marginal)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (dict(transpose=True), "D x D"),
        (dict(noise_power=1), "not the standard deviation"),
        (dict(zero_mean=True), "bias b"),
    ],
)
def test_check_linear_gaussian_log_marginal_names_the_mistake(capsys, wrong, message):
    assert not checks.check_linear_gaussian_log_marginal(lambda *a: _lg_marginal(*a, **wrong))
    assert message in capsys.readouterr().out


def test_check_linear_gaussian_log_marginal_missing_noise(capsys):
    """Without the noise the covariance of the D = d = 3 case is still invertible: named."""

    def no_noise(x, weight, bias, noise_std):
        if weight.shape[0] != weight.shape[1]:
            return _lg_marginal(x, weight, bias, noise_std)  # right on the first cases
        return MultivariateNormal(bias, covariance_matrix=weight @ weight.T).log_prob(x)

    assert not checks.check_linear_gaussian_log_marginal(no_noise)
    assert "noise is missing" in capsys.readouterr().out


def test_check_linear_gaussian_log_marginal_unsolved(capsys):
    def unsolved(x, weight, bias, noise_std):
        raise NotImplementedError

    assert not checks.check_linear_gaussian_log_marginal(unsolved)
    assert "not solved yet" in capsys.readouterr().out
