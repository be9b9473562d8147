"""Tests for vi_lib.distributions (chapters 2 and 7), checked against scipy and torch."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import Independent, Normal, kl_divergence

from vi_lib.distributions import (
    diagonal_gaussian,
    isotropic_gaussian_log_likelihood,
    kl_diagonal_gaussians,
    standard_normal,
)

DTYPE = torch.float64


def _rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)


# --- diagonal_gaussian -------------------------------------------------------------------


def test_diagonal_gaussian_shapes_and_moments():
    mean, log_var = _rand(4, 3, 2, seed=0), _rand(4, 3, 2, seed=1)
    q = diagonal_gaussian(mean, log_var)
    assert isinstance(q, Independent)
    assert q.batch_shape == (4, 3) and q.event_shape == (2,)
    torch.testing.assert_close(q.mean, mean)
    torch.testing.assert_close(q.variance, torch.exp(log_var))
    assert q.sample((5,)).shape == (5, 4, 3, 2)


def test_diagonal_gaussian_log_prob_matches_scipy():
    mean, log_var, z = _rand(5, 3, seed=2), _rand(5, 3, seed=3), _rand(5, 3, seed=4)
    got = diagonal_gaussian(mean, log_var).log_prob(z)
    expected = [
        stats.multivariate_normal(mean[i].numpy(), np.diag(np.exp(log_var[i].numpy()))).logpdf(
            z[i].numpy()
        )
        for i in range(5)
    ]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_diagonal_gaussian_bad_input():
    with pytest.raises(TypeError, match="mean must be a torch.Tensor"):
        diagonal_gaussian([0.0, 1.0], torch.zeros(2))
    with pytest.raises(ValueError, match="broadcastable shapes"):
        diagonal_gaussian(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="at least one dimension"):
        diagonal_gaussian(torch.tensor(0.0), torch.tensor(0.0))


# --- standard_normal ---------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 3])
def test_standard_normal_is_the_prior(d):
    p = standard_normal(d, dtype=DTYPE)
    assert p.batch_shape == () and p.event_shape == (d,)
    assert p.sample((7, 2)).shape == (7, 2, d)
    assert p.mean.dtype == DTYPE
    z = _rand(6, d, seed=5)
    expected = stats.multivariate_normal(np.zeros(d), np.eye(d)).logpdf(z.numpy())
    np.testing.assert_allclose(p.log_prob(z).numpy(), np.atleast_1d(expected), rtol=1e-12)


def test_standard_normal_default_dtype_and_bad_input():
    assert standard_normal(2).mean.dtype == torch.get_default_dtype()
    with pytest.raises(TypeError, match="latent_dim must be a positive int"):
        standard_normal(2.0)
    with pytest.raises(ValueError, match="latent_dim must be a positive int"):
        standard_normal(0)


# --- kl_diagonal_gaussians ---------------------------------------------------------------


def test_kl_closed_form_matches_torch_general_p():
    mq, lq, mp, lp = (_rand(6, 4, seed=s) for s in (10, 11, 12, 13))
    got = kl_diagonal_gaussians(mq, lq, mp, lp)
    expected = kl_divergence(diagonal_gaussian(mq, lq), diagonal_gaussian(mp, lp))
    assert got.shape == (6,)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_kl_closed_form_default_p_is_standard_normal():
    mq, lq = _rand(6, 4, seed=14), _rand(6, 4, seed=15)
    got = kl_diagonal_gaussians(mq, lq)
    expected = kl_divergence(diagonal_gaussian(mq, lq), standard_normal(4, dtype=DTYPE))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    # The VAE form of chapter 7.
    vae_form = 0.5 * (torch.exp(lq) + mq**2 - 1 - lq).sum(-1)
    torch.testing.assert_close(got, vae_form, rtol=1e-12, atol=1e-12)


def test_kl_closed_form_is_zero_iff_equal_and_positive_otherwise():
    mq, lq = _rand(3, 2, seed=16), _rand(3, 2, seed=17)
    torch.testing.assert_close(kl_diagonal_gaussians(mq, lq, mq, lq), torch.zeros(3, dtype=DTYPE))
    assert bool((kl_diagonal_gaussians(mq, lq, mq + 0.1, lq) > 0).all())


def test_kl_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    mq, lq, mp, lp = (_rand(2, 3, seed=s) for s in (20, 21, 22, 23))
    q, p = diagonal_gaussian(mq, lq), diagonal_gaussian(mp, lp)
    z = q.sample((200_000,))
    log_ratio = q.log_prob(z) - p.log_prob(z)  # [S, 2]
    mc = log_ratio.mean(0)
    se = log_ratio.std(0) / math.sqrt(z.shape[0])
    closed = kl_diagonal_gaussians(mq, lq, mp, lp)
    assert bool(((mc - closed).abs() < 4 * se).all()), (mc, closed, se)


def test_kl_bad_input():
    with pytest.raises(TypeError, match="mean_q must be a torch.Tensor"):
        kl_diagonal_gaussians(np.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="broadcastable"):
        kl_diagonal_gaussians(torch.zeros(2), torch.zeros(2), torch.zeros(3), torch.zeros(3))


# --- isotropic_gaussian_log_likelihood ---------------------------------------------------


@pytest.mark.parametrize("std", [0.1, 1.0, 3.0])
def test_isotropic_log_likelihood_equals_normal_log_prob(std):
    x, mean = _rand(5, 7, seed=30), _rand(5, 7, seed=31)
    got = isotropic_gaussian_log_likelihood(x, mean, std)
    expected = Normal(mean, std).log_prob(x).sum(-1)
    assert got.shape == (5,)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_isotropic_log_likelihood_is_squared_error_plus_constants():
    # Changing the mean only changes the squared-error term, with slope -1 / (2 std^2).
    x = _rand(1, 4, seed=32)
    std = 0.5
    a = isotropic_gaussian_log_likelihood(x, x, std)
    b = isotropic_gaussian_log_likelihood(x, x + 1.0, std)  # ||x - mean||^2 = 4
    torch.testing.assert_close(a - b, torch.tensor([4 / (2 * std**2)], dtype=DTYPE))
    torch.testing.assert_close(
        a, torch.tensor([-4 * math.log(std) - 2 * math.log(2 * math.pi)], dtype=DTYPE)
    )


def test_isotropic_log_likelihood_broadcasts_over_samples_and_per_item_std():
    x, mean = _rand(3, 4, seed=33), _rand(6, 3, 4, seed=34)
    std = torch.tensor([0.5, 1.0, 2.0], dtype=DTYPE)
    got = isotropic_gaussian_log_likelihood(x, mean, std)
    expected = Normal(mean, std[:, None]).log_prob(x).sum(-1)
    assert got.shape == (6, 3)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_isotropic_log_likelihood_bad_input():
    with pytest.raises(ValueError, match="same last dimension"):
        isotropic_gaussian_log_likelihood(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)
    with pytest.raises(ValueError, match="std must be a positive finite number"):
        isotropic_gaussian_log_likelihood(torch.zeros(2, 3), torch.zeros(2, 3), 0.0)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        isotropic_gaussian_log_likelihood([0.0], torch.zeros(1), 1.0)
