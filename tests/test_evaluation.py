"""samples_for_accuracy, checked where the answer is known in closed form."""

import math

import pytest
import torch

from vi_lib import estimators
from vi_lib.evaluation import log_estimate_error, samples_for_accuracy
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


def test_benchmark_problem_is_reproducible_and_shaped():
    from vi_lib.evaluation import benchmark_problem

    (m1, x1), (m2, x2) = benchmark_problem(3), benchmark_problem(3)
    assert x1.shape == (20, 3) and x1.dtype == torch.float64
    assert torch.equal(x1, x2) and torch.equal(m1.weight, m2.weight)
    assert m1.latent_dim == m1.data_dim == 3


def test_benchmark_problem_posterior_is_equally_narrow_in_every_direction():
    from vi_lib.evaluation import benchmark_problem

    model, x = benchmark_problem(4, noise_std=0.5)
    cov = model.posterior(x).covariance_matrix[0]
    assert torch.allclose(cov, 0.2 * torch.eye(4, dtype=torch.float64), atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Chapter 8: KL per dimension and active units, on hand-built encoders whose answer is known


class _HandEncoder:
    """q(z|x) = N(mu(x), diag sigma^2(x)) for x [N, 3]: dims 0 and 1 follow x, dims 2 and 3 ignore it.

    mu = (x_0, 0.05 * x_1, 0.3, 0) (variances over x ~ N(0, I): 1, 0.0025, 0, 0 -> active: only
    dim 0 at threshold 0.01), log sigma^2 = (-1 + 0.1 * x_2, -0.5, 0.2, 0): dim 3 is the prior itself.
    """

    def encode(self, x):
        from vi_lib.distributions import diagonal_gaussian

        zero = torch.zeros_like(x[:, 0])
        mean = torch.stack([x[:, 0], 0.05 * x[:, 1], zero + 0.3, zero], dim=-1)
        log_var = torch.stack([-1 + 0.1 * x[:, 2], zero - 0.5, zero + 0.2, zero], dim=-1)
        return diagonal_gaussian(mean, log_var)


def _hand_data(n=4000):
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_kl_per_dimension_matches_torch_kl_divergence():
    from torch.distributions import Normal, kl_divergence

    from vi_lib.evaluation import kl_per_dimension

    encoder, x = _HandEncoder(), _hand_data()
    kl = kl_per_dimension(encoder, x, batch_size=300)  # several batches, the last one short
    assert kl.shape == (4,) and kl.dtype == torch.float64
    q = encoder.encode(x)
    prior = Normal(torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64))
    per_dim = kl_divergence(q.base_dist, prior)  # [N, 4], one KL per image and dimension
    assert torch.allclose(kl, per_dim.mean(0), atol=1e-12)
    full = kl_divergence(q, torch.distributions.Independent(prior, 1))  # [N]: the ELBO's KL term
    assert kl.sum().item() == pytest.approx(full.mean().item(), abs=1e-10)
    assert kl[3].item() == pytest.approx(0.0, abs=1e-12)  # q(z_3|x) = p(z_3) for every x
    # dim 2: q = N(0.3, e^0.2) for every x, KL = 0.5 (0.09 + e^0.2 - 1 - 0.2) in closed form
    assert kl[2].item() == pytest.approx(0.5 * (0.09 + math.exp(0.2) - 1 - 0.2), rel=1e-12)


def test_active_units_counts_dimensions_whose_mean_varies_with_x():
    from vi_lib.evaluation import active_units

    encoder, x = _HandEncoder(), _hand_data()
    result = active_units(encoder, x, batch_size=1000)
    assert result.count == 1 and result.mask.tolist() == [True, False, False, False]
    want = torch.stack([x[:, 0], 0.05 * x[:, 1]], -1).var(0)  # sample variances of the two moving means
    assert torch.allclose(result.activity[:2], want, rtol=1e-12)
    assert result.activity[2:].abs().max().item() < 1e-20  # constant means: no variance at all
    # dim 1's variance is 0.0025: active only below that threshold; a model or a function both work
    assert active_units(encoder.encode, x, threshold=0.001).count == 2


def test_active_units_and_kl_on_a_conv_vae_batch_do_not_depend_on_batch_size():
    from vi_lib.evaluation import active_units, kl_per_dimension
    from vi_lib.models import ConvVAE

    torch.manual_seed(0)
    model = ConvVAE(latent_dim=4)
    x = torch.bernoulli(torch.full((10, 1, 28, 28), 0.2, dtype=torch.float32))
    q = model.encode(x)
    assert torch.allclose(kl_per_dimension(model, x, batch_size=3), kl_per_dimension(model, x, batch_size=10))
    assert torch.allclose(active_units(model, x, batch_size=4).activity, q.mean.double().var(0), rtol=1e-5)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda f, enc, x: f(enc, x[:1]), ValueError, "at least 2 images"),
        (lambda f, enc, x: f(enc, x[:, 0]), ValueError, r"tensor \[N, \.\.\.\]"),
        (lambda f, enc, x: f(enc, x, batch_size=0), ValueError, "batch_size"),
        (lambda f, enc, x: f(lambda x: torch.distributions.Bernoulli(logits=x), x), ValueError, "diagonal Gaussian"),
        (lambda f, enc, x: f(lambda x: torch.distributions.Normal(x[:, 0], 1.0), x), ValueError, "diagonal Gaussian"),
        (lambda f, enc, x: f(42, x), TypeError, "function x -> q"),
    ],
    ids=["one-image", "no-batch-dim", "batch-size", "not-gaussian", "scalar-latent", "not-a-model"],
)
@pytest.mark.parametrize("name", ["kl_per_dimension", "active_units"])
def test_latent_usage_bad_input(name, call, error, match):
    from vi_lib import evaluation

    with pytest.raises(error, match=match):
        call(getattr(evaluation, name), _HandEncoder(), _hand_data(10))


@pytest.mark.parametrize("threshold", [0, -0.01, float("nan"), True, "0.01"])
def test_active_units_bad_threshold(threshold):
    from vi_lib.evaluation import active_units

    with pytest.raises(ValueError, match="threshold"):
        active_units(_HandEncoder(), _hand_data(10), threshold=threshold)
