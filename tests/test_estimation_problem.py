"""Tests for vi_lib.estimation_problem (chapters 4-6): the shared problem and how estimators are scored on it."""

import math

import pytest
import torch

from vi_lib import estimators
from vi_lib.estimation_problem import log_estimate_error, samples_for_accuracy
from vi_lib.models import LinearGaussianModel


def test_noise_free_estimator_needs_one_sample():
    exact = torch.tensor([-1.0, -2.0])
    n, rows = samples_for_accuracy(lambda s: exact.clone(), exact)
    assert n == 1 and rows[0]["rmse"] == 0


def test_gaussian_noise_shrinking_like_one_over_root_s():
    """Errors N(0, 1/S): RMSE = 1/sqrt(S), so 0.1 nats needs S = 100 (first power of 2: 128)."""
    g = torch.Generator().manual_seed(0)
    exact = torch.zeros(200)
    n, rows = samples_for_accuracy(lambda s: torch.randn(200, generator=g) / math.sqrt(s), exact, repeats=20)
    assert n == 128
    assert rows[-2]["rmse"] > 0.1  # 64 was not enough
    assert rows[-1]["rmse"] == pytest.approx(1 / math.sqrt(128), rel=0.1)


def test_naive_estimate_is_biased_low_and_improves_with_samples():
    torch.manual_seed(0)
    model = LinearGaussianModel.random(latent_dim=2, data_dim=3, noise_std=0.5, seed=0)
    x, _ = model.sample(20, generator=torch.Generator().manual_seed(1))
    exact = model.log_marginal(x)
    est = lambda s: estimators.log_marginal_naive(x, model.prior, model.likelihood, s)  # noqa: E731
    few, many = log_estimate_error(est, exact, 4, 20), log_estimate_error(est, exact, 4096, 20)
    assert few["bias"] < 0 and few["rmse"] > many["rmse"]
    n, _ = samples_for_accuracy(est, exact, tolerance=0.1)
    assert n is not None and 4 < n <= 2**16


def test_exact_posterior_proposal_needs_one_sample():
    model = LinearGaussianModel.random(latent_dim=3, data_dim=4, noise_std=0.5, seed=0)
    x, _ = model.sample(10, generator=torch.Generator().manual_seed(1))
    est = lambda s: estimators.log_marginal_importance(x, model.prior, model.likelihood, model.posterior(x), s)  # noqa: E731
    assert samples_for_accuracy(est, model.log_marginal(x))[0] == 1


def test_unreachable_accuracy_returns_none():
    exact = torch.zeros(3)
    n, rows = samples_for_accuracy(lambda s: exact + 1.0, exact, sample_sizes=[1, 2, 4])
    assert n is None and len(rows) == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(tolerance=0), "tolerance"), (dict(sample_sizes=[4, 2]), "increasing"), (dict(repeats=1), "repeats")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        samples_for_accuracy(lambda s: torch.zeros(2), torch.zeros(2), **kwargs)


def test_estimation_problem_is_reproducible_and_shaped():
    from vi_lib.estimation_problem import estimation_problem

    (m1, x1), (m2, x2) = estimation_problem(3), estimation_problem(3)
    assert x1.shape == (20, 3) and x1.dtype == torch.float64
    assert torch.equal(x1, x2) and torch.equal(m1.weight, m2.weight)
    assert m1.latent_dim == m1.data_dim == 3


def test_estimation_problem_posterior_is_equally_narrow_in_every_direction():
    from vi_lib.estimation_problem import estimation_problem

    model, x = estimation_problem(4, noise_std=0.5)
    cov = model.posterior(x).covariance_matrix[0]
    assert torch.allclose(cov, 0.2 * torch.eye(4, dtype=torch.float64), atol=1e-10)
