"""vi_lib.distributions.fit_gaussian (chapters 2 and 3): the maximum-likelihood Gaussian of data."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import MultivariateNormal

from vi_lib.distributions import fit_gaussian


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
