"""Tests for vi_lib.mixture and vi_lib.toy_data: the Gaussian mixture, ocean sensors, the forest.

Every random test is seeded; statistical checks use tolerances of 5 standard errors
computed from the sample size, so they are deterministic and still fail on a wrong model.
"""

from __future__ import annotations

import gzip
import itertools
import math
import os
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from vi_lib import toy_data
from vi_lib.mixture import GaussianMixture

# ======================================================================================
# Ocean sensors
# ======================================================================================


@pytest.fixture(scope="module")
def big_ocean():
    return toy_data.ocean_sensors(n=40_000, seed=123)


def test_ocean_constants():
    assert toy_data.OCEAN_FEATURES == ("temperature", "salinity", "chlorophyll")
    assert toy_data.OCEAN_UNITS == ("°C", "PSU", "log10 mg m⁻³")
    assert len(toy_data.OCEAN_BIOMES) == 4 and len(set(toy_data.OCEAN_BIOMES)) == 4


def test_ocean_model_shapes_and_validity():
    for dtype in (torch.float32, torch.float64):
        m = toy_data.ocean_model(dtype)
        assert m.weights.shape == (4,) and m.means.shape == (4, 3)
        assert m.covariances.shape == (4, 3, 3)
        assert m.weights.dtype == m.means.dtype == m.covariances.dtype == dtype
    m = toy_data.ocean_model(torch.float64)
    assert torch.all(m.weights > 0)
    assert float(m.weights.sum()) == pytest.approx(1.0, abs=1e-12)
    # Not equal weights: the biomes are not equally common.
    assert float(m.weights.max() - m.weights.min()) > 0.1
    assert torch.allclose(m.covariances, m.covariances.transpose(-1, -2))
    assert torch.all(torch.linalg.eigvalsh(m.covariances) > 0)
    # Full covariances: every biome has clearly non-zero correlations.
    std = torch.sqrt(torch.diagonal(m.covariances, dim1=-2, dim2=-1))
    corr = m.covariances / (std[:, :, None] * std[:, None, :])
    off = corr[:, [0, 0, 1], [1, 2, 2]]
    assert torch.all(off.abs() >= 0.2)
    # Upwelling: colder water, more chlorophyll.
    upwelling = toy_data.OCEAN_BIOMES.index("coastal upwelling")
    assert corr[upwelling, 0, 2] < -0.5


def test_ocean_model_prior_and_likelihood():
    m = toy_data.ocean_model(torch.float64)
    prior = m.prior()
    assert isinstance(prior, torch.distributions.Categorical)
    assert torch.allclose(prior.probs, m.weights)
    z = torch.tensor([[0, 1, 2, 3, 0], [3, 3, 2, 1, 0]])
    lik = m.likelihood(z)
    assert isinstance(lik, torch.distributions.MultivariateNormal)
    assert lik.batch_shape == (2, 5) and lik.event_shape == (3,)
    assert torch.equal(lik.mean, m.means[z])
    assert torch.allclose(lik.covariance_matrix, m.covariances[z])
    assert m.likelihood(torch.tensor(2)).batch_shape == ()
    with pytest.raises(TypeError, match="integer"):
        m.likelihood(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="0..3"):
        m.likelihood(torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="0..3"):
        m.likelihood(torch.tensor([-1]))


def test_log_marginal_matches_brute_force_sum():
    m = toy_data.ocean_model(torch.float64)
    sample = toy_data.ocean_sensors(n=20, seed=5).x.double()
    odd = torch.tensor([[10.0, 35.0, -0.5], [30.0, 30.0, 2.0], [-5.0, 40.0, -3.0]])
    x = torch.cat([sample, odd.double()])
    terms = np.stack(
        [
            math.log(float(m.weights[k]))
            + multivariate_normal(m.means[k].numpy(), m.covariances[k].numpy()).logpdf(x.numpy())
            for k in range(4)
        ],
        axis=-1,
    )
    expected = logsumexp(terms, axis=-1)
    got = m.log_marginal(x)
    assert got.shape == (23,) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)
    # For typical points also the plain (non-log) sum of weighted densities.
    direct = sum(
        float(m.weights[k])
        * multivariate_normal(m.means[k].numpy(), m.covariances[k].numpy()).pdf(sample.numpy())
        for k in range(4)
    )
    np.testing.assert_allclose(got[:20].exp().numpy(), direct, rtol=1e-10)
    # float32 model agrees to float32 accuracy; log_joint is consistent.
    got32 = toy_data.ocean_model().log_marginal(sample.float())
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), expected[:20], rtol=1e-5, atol=1e-4)
    assert torch.allclose(torch.logsumexp(m.log_joint(x), -1), got)
    assert torch.allclose(m.posterior(x).probs.sum(-1), torch.ones(23, dtype=torch.float64))


def test_log_marginal_bad_input():
    m = toy_data.ocean_model()
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        m.log_marginal(torch.zeros(5, 2))
    with pytest.raises(TypeError, match="floating"):
        m.log_marginal(torch.zeros(5, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        m.log_marginal(np.zeros((5, 3)))


def test_ocean_model_rejects_bad_parameters():
    m = toy_data.ocean_model(torch.float64)
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture(m.weights * 2, m.means, m.covariances)
    bad = m.covariances.clone()
    bad[1] = -torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture(m.weights, m.means, bad)
    with pytest.raises(ValueError, match="same K"):
        GaussianMixture(m.weights[:3], m.means, m.covariances)
    with pytest.raises(TypeError, match="dtype"):
        toy_data.ocean_model(torch.int64)


def test_ocean_sensors_shapes_dtypes_and_reproducibility():
    s = toy_data.ocean_sensors()
    assert s.x.shape == (2000, 3) and s.x.dtype == torch.float32
    assert s.biome.shape == (2000,) and s.biome.dtype == torch.int64
    assert len(s) == 2000
    assert set(s.biome.unique().tolist()) == {0, 1, 2, 3}
    again = toy_data.ocean_sensors(n=2000, seed=0)
    assert torch.equal(s.x, again.x) and torch.equal(s.biome, again.biome)
    other = toy_data.ocean_sensors(n=2000, seed=1)
    assert not torch.equal(s.x, other.x)
    assert not torch.equal(s.biome, other.biome)
    # Same seed -> the same numbers on any machine and torch version: pinned values.
    first = toy_data.ocean_sensors(n=5, seed=0)
    assert first.biome.tolist() == [3, 2, 2, 3, 2]
    expected = torch.tensor(
        [
            [27.660381317138672, 34.61909866333008, -1.0547329187393188],
            [26.12434196472168, 36.74637985229492, -1.2200052738189697],
            [24.831783294677734, 36.97196578979492, -1.4896785020828247],
        ]
    )
    torch.testing.assert_close(first.x[:3], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "bad, error",
    [(0, ValueError), (-3, ValueError), (2.5, TypeError), (100.0, TypeError), ("100", TypeError), (True, TypeError),
     (None, TypeError)],
)
def test_ocean_sensors_rejects_bad_n(bad, error):
    with pytest.raises(error, match="positive integer"):
        toy_data.ocean_sensors(n=bad)


def test_ocean_sensors_rejects_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        toy_data.ocean_sensors(n=10, seed=-1)
    with pytest.raises(TypeError, match="seed"):
        toy_data.ocean_sensors(n=10, seed=1.5)


def test_ocean_biome_frequencies_match_weights(big_ocean):
    m = toy_data.ocean_model(torch.float64)
    n = len(big_ocean)
    freq = torch.bincount(big_ocean.biome, minlength=4).double() / n
    se = torch.sqrt(m.weights * (1 - m.weights) / n)
    assert torch.all((freq - m.weights).abs() < 5 * se), (freq, m.weights)


def test_ocean_per_biome_means_and_covariances_match_model(big_ocean):
    m = toy_data.ocean_model(torch.float64)
    x = big_ocean.x.double()
    for k in range(4):
        xk = x[big_ocean.biome == k]
        nk = xk.shape[0]
        sigma = m.covariances[k]
        mean_se = torch.sqrt(torch.diagonal(sigma) / nk)
        assert torch.all((xk.mean(0) - m.means[k]).abs() < 5 * mean_se), k
        cov = torch.cov(xk.T)
        var = torch.diagonal(sigma)
        cov_se = torch.sqrt((var[:, None] * var[None, :] + sigma**2) / nk)
        assert torch.all((cov - sigma).abs() < 5 * cov_se), (k, cov, sigma)
        # Within-biome correlations are really there in the toy_data.
        corr = torch.corrcoef(xk.T)
        assert torch.all(corr[[0, 0, 1], [1, 2, 2]].abs() > 0.15), (k, corr)


def test_ocean_biomes_distinguishable_in_3d_but_overlapping_in_a_pair(big_ocean):
    m = toy_data.ocean_model(torch.float64)
    x = big_ocean.x.double()
    accuracy_3d = (m.posterior(x).probs.argmax(-1) == big_ocean.biome).double().mean()
    assert accuracy_3d > 0.99
    pair_accuracies = []
    for pair in itertools.combinations(range(3), 2):
        idx = list(pair)
        sub = GaussianMixture(m.weights, m.means[:, idx], m.covariances[:, idx][:, :, idx])
        pred = sub.posterior(x[:, idx]).probs.argmax(-1)
        pair_accuracies.append(float((pred == big_ocean.biome).double().mean()))
    # Some pair of features shows real overlap between biomes...
    assert min(pair_accuracies) < 0.95, pair_accuracies
    # ...and the 3-D view separates them better than any single pair.
    assert accuracy_3d > max(pair_accuracies)


def test_ocean_dataframe():
    s = toy_data.ocean_sensors(n=50, seed=2)
    frame = s.to_dataframe()
    assert list(frame.columns) == [
        "temperature (°C)",
        "salinity (PSU)",
        "chlorophyll (log10 mg m⁻³)",
        "biome",
    ]
    assert len(frame) == 50
    assert str(frame["biome"].dtype) == "category"
    assert list(frame["biome"].cat.categories) == list(toy_data.OCEAN_BIOMES)
    assert frame["biome"].tolist() == [toy_data.OCEAN_BIOMES[k] for k in s.biome.tolist()]
    np.testing.assert_array_equal(frame.iloc[:, :3].to_numpy(), s.x.numpy())
    assert list(s.to_dataframe(with_biome=False).columns) == list(frame.columns[:3])


# ======================================================================================
# The forest
# ======================================================================================


@pytest.fixture(scope="module")
def trees():
    return toy_data.forest()


def test_forest_shapes_and_proportions(trees):
    assert toy_data.ZONES == ("valley", "ridge")
    assert trees.height.shape == (10_000,) and trees.height.dtype == torch.float64
    assert trees.zone.shape == (10_000,) and trees.zone.dtype == torch.int64
    assert len(trees) == 10_000
    assert int((trees.zone == 0).sum()) == 9_000
    assert int((trees.zone == 1).sum()) == 1_000
    assert set(trees.zone.unique().tolist()) == {0, 1}
    # Shuffled: the ridge trees are not all at the end.
    assert int((trees.zone[:9000] == 1).sum()) > 0
    small = toy_data.forest(n=30, seed=3)
    assert int((small.zone == 0).sum()) == 27


def test_forest_height_ranges(trees):
    valley = trees.height[trees.zone == 0]
    ridge = trees.height[trees.zone == 1]
    assert torch.all(valley > 0) and torch.all(valley < 30)
    assert abs(float(valley.median()) - 3.0) < 0.15  # median ~3 ft (SE ~0.016)
    assert torch.all(ridge > 100)
    ridge_se = float(ridge.std()) / math.sqrt(ridge.numel())
    assert abs(float(ridge.mean()) - 130.0) < 5 * ridge_se


def test_forest_mean_is_dominated_by_the_ridge(trees):
    mean = trees.mean_height()
    assert isinstance(mean, float)
    assert mean == pytest.approx(float(trees.height.mean()), rel=1e-15)
    # 0.9 * 3.25 + 0.1 * 130 ~ 15.9 ft
    assert 14.5 < mean < 17.5
    ridge_share = float(trees.height[trees.zone == 1].sum() / trees.height.sum())
    assert ridge_share > 0.75
    # The typical tree is nothing like the mean tree.
    assert float(trees.height.median()) < mean / 3


def test_forest_reproducibility():
    a, b = toy_data.forest(seed=7), toy_data.forest(seed=7)
    assert torch.equal(a.height, b.height) and torch.equal(a.zone, b.zone)
    c = toy_data.forest(seed=8)
    assert not torch.equal(a.height, c.height)
    pinned = toy_data.forest(n=10, seed=0)
    assert pinned.zone.tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    expected = [3.525248843663996, 3.7658921784983446, 121.63961405875452]
    torch.testing.assert_close(
        pinned.height[:3],
        torch.tensor(expected, dtype=torch.float64),
        rtol=1e-9,
        atol=0,
    )


@pytest.mark.parametrize(
    "bad, error", [(0, ValueError), (-10, ValueError), (15, ValueError), (10.0, TypeError), ("100", TypeError), (True, TypeError)]
)
def test_forest_rejects_bad_n(bad, error):
    with pytest.raises(error, match="multiple of 10|positive integer"):
        toy_data.forest(n=bad)
