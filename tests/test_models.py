"""Tests for the linear-Gaussian model (chapter 4), against integrals and independent formulas."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch.distributions import Independent, MultivariateNormal

from vi_lib.models import LinearGaussianModel

DTYPE = torch.float64


@pytest.fixture
def model():
    return LinearGaussianModel.random(latent_dim=3, data_dim=5, noise_std=0.7, seed=1)


@pytest.fixture
def model_1d():
    weight = torch.tensor([[1.3], [-0.4]], dtype=DTYPE)  # D = 2, d = 1
    bias = torch.tensor([0.2, -0.5], dtype=DTYPE)
    return LinearGaussianModel(weight, bias, noise_std=0.6)


def _x(model, n, seed):
    return model.sample(n, generator=torch.Generator().manual_seed(seed))[0]


# --- shapes ------------------------------------------------------------------------------


def test_attributes_and_shapes(model):
    assert (model.latent_dim, model.data_dim) == (3, 5)
    assert model.prior.batch_shape == () and model.prior.event_shape == (3,)
    lik = model.likelihood(torch.zeros(7, 4, 3, dtype=DTYPE))
    assert isinstance(lik, Independent)
    assert lik.batch_shape == (7, 4) and lik.event_shape == (5,)
    x = _x(model, 4, seed=0)
    post = model.posterior(x)
    assert isinstance(post, MultivariateNormal)
    assert post.batch_shape == (4,) and post.event_shape == (3,)
    assert model.log_marginal(x).shape == (4,)
    assert "latent_dim=3" in repr(model)


def test_likelihood_mean_and_scale(model):
    z = torch.randn(2, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    lik = model.likelihood(z)
    torch.testing.assert_close(lik.mean, z @ model.weight.T + model.bias)
    torch.testing.assert_close(lik.variance, torch.full((2, 5), 0.7**2, dtype=DTYPE))


# --- exact answers against integrals (d = 1) ---------------------------------------------


def _joint_density_1d(model, x_np):
    w = model.weight[:, 0].numpy()
    b = model.bias.numpy()
    s = model.noise_std

    def joint(z):
        return stats.norm.pdf(z) * np.prod(stats.norm.pdf(x_np, loc=w * z + b, scale=s))

    return joint


def test_log_marginal_matches_numerical_integral_d1(model_1d):
    x = torch.tensor([[0.9, -0.1], [-2.0, 1.5], [3.0, -1.0]], dtype=DTYPE)
    got = model_1d.log_marginal(x)
    for i in range(x.shape[0]):
        joint = _joint_density_1d(model_1d, x[i].numpy())
        p_x, _ = integrate.quad(joint, -np.inf, np.inf, epsabs=0, epsrel=1e-12)
        assert got[i].item() == pytest.approx(math.log(p_x), abs=1e-8)


def test_posterior_matches_bayes_rule_numerically_d1(model_1d):
    x = torch.tensor([[0.9, -0.1], [-2.0, 1.5]], dtype=DTYPE)
    post = model_1d.posterior(x)
    for i in range(x.shape[0]):
        joint = _joint_density_1d(model_1d, x[i].numpy())
        p_x, _ = integrate.quad(joint, -np.inf, np.inf, epsabs=0, epsrel=1e-12)
        m1, _ = integrate.quad(lambda z: z * joint(z), -np.inf, np.inf, epsabs=0, epsrel=1e-12)
        m2, _ = integrate.quad(lambda z: z * z * joint(z), -np.inf, np.inf, epsabs=0, epsrel=1e-12)
        mean, var = m1 / p_x, m2 / p_x - (m1 / p_x) ** 2
        assert post.mean[i, 0].item() == pytest.approx(mean, abs=1e-8)
        assert post.covariance_matrix[i, 0, 0].item() == pytest.approx(var, abs=1e-8)
        # Pointwise Bayes' rule: p(z|x) = p(z) p(x|z) / p(x).
        for z in (-1.0, 0.0, 0.7, 2.0):
            bayes = joint(z) / p_x
            got = post.log_prob(torch.tensor([z], dtype=DTYPE))[i].exp().item()
            assert got == pytest.approx(bayes, rel=1e-8)


# --- exact answers against independent formulas -------------------------------------------


def test_log_marginal_matches_independent_multivariate_normal(model):
    x = _x(model, 6, seed=2)
    w, b, s = model.weight.numpy(), model.bias.numpy(), model.noise_std
    cov = w @ w.T + s**2 * np.eye(5)
    expected = stats.multivariate_normal(b, cov).logpdf(x.numpy())
    np.testing.assert_allclose(model.log_marginal(x).numpy(), expected, rtol=1e-10)


def test_posterior_matches_gaussian_conditioning(model):
    # Independent route: condition the joint Gaussian of (z, x) on x (Schur complement),
    #   E[z|x] = W^T C^{-1} (x - b),  Cov[z|x] = I - W^T C^{-1} W,  C = W W^T + s^2 I.
    x = _x(model, 4, seed=3)
    w, b, s = model.weight.numpy(), model.bias.numpy(), model.noise_std
    c = w @ w.T + s**2 * np.eye(5)
    mean = np.linalg.solve(c, (x.numpy() - b).T).T @ w
    cov = np.eye(3) - w.T @ np.linalg.solve(c, w)
    post = model.posterior(x)
    np.testing.assert_allclose(post.mean.numpy(), mean, atol=1e-10)
    for i in range(4):
        np.testing.assert_allclose(post.covariance_matrix[i].numpy(), cov, atol=1e-10)


def test_bayes_identity_log_joint_minus_posterior_is_log_marginal(model):
    # log p(z) + log p(x|z) - log p(z|x) = log p(x) for every z.
    x = _x(model, 4, seed=4)
    z = torch.randn(10, 4, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(5)) * 2
    lhs = model.prior.log_prob(z) + model.likelihood(z).log_prob(x) - model.posterior(x).log_prob(z)
    torch.testing.assert_close(lhs, model.log_marginal(x).expand(10, 4), rtol=1e-10, atol=1e-10)


# --- sampling and random construction -----------------------------------------------------


def test_sample_moments_match_marginal(model):
    x, z = model.sample(100_000, generator=torch.Generator().manual_seed(6))
    assert x.shape == (100_000, 5) and z.shape == (100_000, 3) and x.dtype == DTYPE
    cov = model.marginal.covariance_matrix
    torch.testing.assert_close(x.mean(0), model.bias, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.05, rtol=0)
    # z is the latent that produced x: the residual x - W z - b has std s.
    resid = x - z @ model.weight.T - model.bias
    torch.testing.assert_close(resid.std(0), torch.full((5,), 0.7, dtype=DTYPE), atol=0.01, rtol=0)


def test_sample_is_reproducible_with_generator(model):
    a = model.sample(5, generator=torch.Generator().manual_seed(7))
    b = model.sample(5, generator=torch.Generator().manual_seed(7))
    c = model.sample(5, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a[0], c[0])


def test_random_is_reproducible_and_scaled():
    a = LinearGaussianModel.random(4, 6, seed=3)
    b = LinearGaussianModel.random(4, 6, seed=3)
    c = LinearGaussianModel.random(4, 6, seed=4)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)
    assert a.weight.dtype == torch.float64
    assert LinearGaussianModel.random(2, 3, dtype=torch.float32).weight.dtype == torch.float32
    # Marginal variance per data dim stays O(1) whatever d: sum_j W_ij^2 ~ 1.
    for d in (1, 10, 500):
        m = LinearGaussianModel.random(d, 200, noise_std=0.5, seed=0)
        signal_var = (m.weight**2).sum(1).mean().item()
        assert 0.7 < signal_var < 1.3, (d, signal_var)


# --- validation ---------------------------------------------------------------------------


def test_constructor_validation():
    w, b = torch.zeros(3, 2, dtype=DTYPE), torch.zeros(3, dtype=DTYPE)
    with pytest.raises(TypeError, match="weight must be a torch.Tensor, got ndarray"):
        LinearGaussianModel(np.zeros((3, 2)), b, 1.0)
    with pytest.raises(ValueError, match=r"weight must be a matrix W of shape \[D, d\]"):
        LinearGaussianModel(torch.zeros(3, dtype=DTYPE), b, 1.0)
    with pytest.raises(ValueError, match=r"bias must have shape \[D\]"):
        LinearGaussianModel(w, torch.zeros(2, dtype=DTYPE), 1.0)
    with pytest.raises(ValueError, match="noise_std must be a positive"):
        LinearGaussianModel(w, b, 0.0)
    with pytest.raises(TypeError, match="noise_std must be a positive finite number"):
        LinearGaussianModel(w, b, torch.tensor(1.0))
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        LinearGaussianModel.random(0, 3)


def test_method_input_validation(model):
    with pytest.raises(ValueError, match=r"z must have shape \[\.\.\., 3\]"):
        model.likelihood(torch.zeros(4, 2, dtype=DTYPE))
    with pytest.raises(ValueError, match=r"x must have shape \[\.\.\., 5\]"):
        model.log_marginal(torch.zeros(4, 3, dtype=DTYPE))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        model.posterior(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample(0)
