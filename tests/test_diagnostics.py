"""Tests for vi_lib.diagnostics (chapter 8): KL per dimension and active units."""

import math

import pytest
import torch


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

    from vi_lib.diagnostics import kl_per_dimension

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
    from vi_lib.diagnostics import active_units

    encoder, x = _HandEncoder(), _hand_data()
    result = active_units(encoder, x, batch_size=1000)
    assert result.count == 1 and result.mask.tolist() == [True, False, False, False]
    want = torch.stack([x[:, 0], 0.05 * x[:, 1]], -1).var(0)  # sample variances of the two moving means
    assert torch.allclose(result.activity[:2], want, rtol=1e-12)
    assert result.activity[2:].abs().max().item() < 1e-20  # constant means: no variance at all
    # dim 1's variance is 0.0025: active only below that threshold; a model or a function both work
    assert active_units(encoder.encode, x, threshold=0.001).count == 2


def test_active_units_and_kl_on_a_conv_vae_batch_do_not_depend_on_batch_size():
    from vi_lib.diagnostics import active_units, kl_per_dimension
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
    from vi_lib import diagnostics

    with pytest.raises(error, match=match):
        call(getattr(diagnostics, name), _HandEncoder(), _hand_data(10))


@pytest.mark.parametrize(
    "threshold, error", [(0, ValueError), (-0.01, ValueError), (float("nan"), ValueError), (True, TypeError), ("0.01", TypeError)]
)
def test_active_units_bad_threshold(threshold, error):
    from vi_lib.diagnostics import active_units

    with pytest.raises(error, match="threshold"):
        active_units(_HandEncoder(), _hand_data(10), threshold=threshold)
