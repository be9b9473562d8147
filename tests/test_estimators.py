"""Tests for vi_lib.estimators (chapters 4-7) against the exact linear-Gaussian model.

Statistical checks replicate one data point R times along the batch dimension, so one call
gives R independent estimates; all randomness is seeded.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import (
    Distribution,
    Independent,
    MultivariateNormal,
    Normal,
    kl_divergence,
)

from vi_lib import estimators as E
from vi_lib.distributions import diagonal_gaussian, kl_diagonal_gaussians, standard_normal
from vi_lib.models import LinearGaussianModel

DTYPE = torch.float64


@pytest.fixture
def model():
    return LinearGaussianModel.random(latent_dim=2, data_dim=3, noise_std=0.5, seed=0)


@pytest.fixture
def x(model):
    return model.sample(4, generator=torch.Generator().manual_seed(0))[0]


def replicate(model, n):
    """One data point repeated n times: [n, D], and its exact log p(x) (a scalar)."""
    x0 = model.sample(1, generator=torch.Generator().manual_seed(1))[0]
    return x0.expand(n, -1), model.log_marginal(x0)[0]


def shifted_diagonal_q(model, x, shift=0.5, widen=1.5):
    """A diagonal Gaussian q(z|x) that is not the posterior: shifted mean, rescaled stds."""
    post = model.posterior(x)
    var = torch.diagonal(post.covariance_matrix, dim1=-2, dim2=-1)
    return diagonal_gaussian(post.mean + shift, torch.log(widen**2 * var))


def as_mvn(q):
    """The same diagonal Gaussian as a MultivariateNormal (for torch's KL to the posterior)."""
    return MultivariateNormal(q.mean, covariance_matrix=torch.diag_embed(q.variance))


def mean_and_se(t):
    return t.mean().item(), (t.std() / math.sqrt(t.numel())).item()


# --- log_mean_exp ------------------------------------------------------------------------


def test_log_mean_exp_exact_small_cases():
    t = torch.log(torch.tensor([[1.0, 2.0], [3.0, 6.0]], dtype=DTYPE))
    expected_0 = torch.log(torch.tensor([2.0, 4.0], dtype=DTYPE))
    expected_1 = torch.log(torch.tensor([1.5, 4.5], dtype=DTYPE))
    torch.testing.assert_close(E.log_mean_exp(t, dim=0), expected_0)
    torch.testing.assert_close(E.log_mean_exp(t, dim=1), expected_1)
    constant = torch.full((5,), 3.0, dtype=DTYPE)
    torch.testing.assert_close(E.log_mean_exp(constant), torch.tensor(3.0, dtype=DTYPE))


@pytest.mark.parametrize("offset", [-1e4, 1e4])
def test_log_mean_exp_is_stable_far_from_zero(offset):
    t = offset + torch.log(torch.tensor([1.0, 2.0, 3.0, 6.0], dtype=DTYPE))
    got = E.log_mean_exp(t)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(offset + math.log(3.0), abs=1e-9)
    # The naive formula underflows / overflows here, which is why logsumexp is needed.
    assert not torch.isfinite(torch.log(torch.exp(t).mean()))


def test_log_mean_exp_bad_input():
    with pytest.raises(TypeError, match="t must be a torch.Tensor"):
        E.log_mean_exp([0.0, 1.0])
    with pytest.raises(ValueError, match="empty dimension"):
        E.log_mean_exp(torch.zeros(0, 3))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    values=st.lists(st.floats(-50, 50), min_size=1, max_size=30),
    shift=st.floats(-1e4, 1e4),
)
def test_log_mean_exp_shift_equivariance_property(values, shift):
    t = torch.tensor(values, dtype=DTYPE)
    base = E.log_mean_exp(t)
    assert E.log_mean_exp(t + shift).item() == pytest.approx(base.item() + shift, abs=1e-8)
    assert t.min().item() - 1e-12 <= base.item() <= t.max().item() + 1e-12


# --- effective_sample_size -----------------------------------------------------------------


def test_ess_exact_small_cases():
    assert E.effective_sample_size(torch.zeros(17, dtype=DTYPE)).item() == pytest.approx(17.0)
    one_dominant = torch.tensor([0.0, -1e4, -1e4, -1e4], dtype=DTYPE)
    assert E.effective_sample_size(one_dominant).item() == pytest.approx(1.0)
    two_of_four = torch.log(torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=DTYPE))
    assert E.effective_sample_size(two_of_four).item() == pytest.approx(2.0)
    w = torch.tensor([1.0, 2.0, 3.0], dtype=DTYPE)
    assert E.effective_sample_size(torch.log(w)).item() == pytest.approx(36.0 / 14.0)


def test_ess_reduces_over_dim_and_is_stable_at_large_magnitudes():
    log_w = torch.log(torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]], dtype=DTYPE))  # [B, S]
    expected = torch.tensor([36.0 / 14.0, 3.0], dtype=DTYPE)
    torch.testing.assert_close(E.effective_sample_size(log_w, dim=1), expected)
    for offset in (-1e4, 1e4):
        torch.testing.assert_close(E.effective_sample_size(log_w + offset, dim=1), expected)
    assert E.effective_sample_size(log_w.T).shape == (2,)


def test_ess_bad_input():
    with pytest.raises(TypeError, match="log_weights must be a torch.Tensor"):
        E.effective_sample_size([0.0])
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        E.effective_sample_size(torch.tensor([0.0, float("nan")]))


# --- exactness with the true posterior -----------------------------------------------------


@pytest.mark.parametrize("num_samples", [1, 2, 37])
def test_importance_with_exact_posterior_is_exact(model, x, num_samples):
    torch.manual_seed(0)
    post = model.posterior(x)
    got = E.log_marginal_importance(x, model.prior, model.likelihood, post, num_samples)
    torch.testing.assert_close(got, model.log_marginal(x), rtol=0, atol=1e-8)


def test_importance_is_stable_for_log_weights_near_minus_1e4(model):
    # A data point far from the model: every log p(x|z), log w is about -1e4; exp underflows.
    x_far = model.bias + torch.tensor([[100.0, -100.0, 100.0]], dtype=DTYPE)
    log_p = model.log_marginal(x_far)
    assert -2e4 < log_p.item() < -5e3
    torch.manual_seed(0)
    post = model.posterior(x_far)
    log_w = E.log_importance_weights(x_far, model.prior, model.likelihood, post, 50)
    assert bool((log_w < -5e3).all())
    assert torch.exp(log_w).sum() == 0  # the naive sum of weights underflows ...
    got = E.log_marginal_importance(x_far, model.prior, model.likelihood, post, 50)
    torch.testing.assert_close(got, log_p, rtol=1e-12, atol=1e-8)  # ... but the estimate does not.
    naive = E.log_marginal_naive(x_far, model.prior, model.likelihood, 1000)
    assert torch.isfinite(naive).all() and bool((naive <= log_p).all())


def test_elbo_with_exact_posterior_equals_log_marginal_per_sample(model, x):
    # With analytic_kl=False every sample gives log p(x,z) - log p(z|x) = log p(x) exactly.
    torch.manual_seed(0)
    for num_samples in (1, 5):
        post = model.posterior(x)
        got = E.elbo(x, model.prior, model.likelihood, post, num_samples, analytic_kl=False)
        torch.testing.assert_close(got, model.log_marginal(x), rtol=0, atol=1e-8)


def test_elbo_with_exact_posterior_and_analytic_kl_matches_statistically(model):
    # torch has KL(MultivariateNormal || MultivariateNormal), so use an MVN prior N(0, I).
    x_rep, log_p = replicate(model, 20_000)
    prior = MultivariateNormal(torch.zeros(2, dtype=DTYPE), torch.eye(2, dtype=DTYPE))
    torch.manual_seed(1)
    values = E.elbo(x_rep, prior, model.likelihood, model.posterior(x_rep), 1, analytic_kl=True)
    mean, se = mean_and_se(values)
    assert abs(mean - log_p.item()) < 4 * se, (mean, log_p, se)


def test_elbo_analytic_kl_without_closed_form_raises(model, x):
    # MultivariateNormal posterior vs Independent(Normal) prior: torch has no closed form.
    with pytest.raises(ValueError, match="analytic_kl=False"):
        E.elbo(x, model.prior, model.likelihood, model.posterior(x), analytic_kl=True)


# --- ELBO below log p(x), and the gap is KL(q || p(z|x)) ----------------------------------


@pytest.mark.parametrize("analytic_kl", [True, False])
def test_elbo_gap_is_kl_to_true_posterior(model, analytic_kl):
    x_rep, log_p = replicate(model, 10_000)
    q = shifted_diagonal_q(model, x_rep)
    torch.manual_seed(2)
    values = E.elbo(x_rep, model.prior, model.likelihood, q, 1, analytic_kl=analytic_kl)
    mean, se = mean_and_se(values)
    kl_to_posterior = kl_divergence(as_mvn(q), model.posterior(x_rep))[0].item()
    assert kl_to_posterior > 0.1  # q really differs from p(z|x)
    assert mean < log_p.item() - kl_to_posterior / 2  # strictly below log p(x)
    gap = mean - log_p.item()
    assert abs(gap - (-kl_to_posterior)) < 4 * se, (gap, kl_to_posterior, se)


def test_elbo_terms_split(model, x):
    q = shifted_diagonal_q(model, x)
    torch.manual_seed(3)
    terms = E.elbo_terms(x, model.prior, model.likelihood, q, num_samples=3)
    assert isinstance(terms, E.ELBOTerms)
    assert terms.accuracy.shape == terms.complexity.shape == (4,)
    # Analytic complexity is the closed-form KL(q || N(0, I)) of chapter 7.
    closed_form = kl_diagonal_gaussians(q.mean, torch.log(q.variance))
    torch.testing.assert_close(terms.complexity, closed_form)
    torch.testing.assert_close(terms.elbo, terms.accuracy - terms.complexity)
    # elbo() goes through elbo_terms(): same seed, same value.
    torch.manual_seed(3)
    again = E.elbo(x, model.prior, model.likelihood, q, num_samples=3)
    torch.testing.assert_close(again, terms.elbo)
    # Same samples (same seed): the accuracy term does not depend on how the KL is computed.
    torch.manual_seed(3)
    mc_terms = E.elbo_terms(x, model.prior, model.likelihood, q, num_samples=3, analytic_kl=False)
    torch.testing.assert_close(mc_terms.accuracy, terms.accuracy)
    assert not torch.allclose(mc_terms.complexity, terms.complexity)


# --- unbiasedness for p(x), Jensen bias for log p(x) ---------------------------------------


@pytest.mark.parametrize("estimator", ["naive", "importance"])
def test_estimators_are_unbiased_for_p_not_log_p(model, estimator):
    x_rep, log_p = replicate(model, 4000)
    torch.manual_seed(4)
    if estimator == "naive":
        est = E.log_marginal_naive(x_rep, model.prior, model.likelihood, 10)
    else:
        q = shifted_diagonal_q(model, x_rep, shift=0.5, widen=1.5)
        est = E.log_marginal_importance(x_rep, model.prior, model.likelihood, q, 10)
    ratio_mean, ratio_se = mean_and_se(torch.exp(est - log_p))
    assert abs(ratio_mean - 1.0) < 4 * ratio_se, (ratio_mean, ratio_se)
    log_mean, log_se = mean_and_se(est)
    assert log_mean + 4 * log_se < log_p.item(), (log_mean, log_se, log_p)  # Jensen


# --- IWAE ------------------------------------------------------------------------------------


def test_iwae_increases_with_k_towards_log_marginal(model):
    x_rep, log_p = replicate(model, 1000)
    q = shifted_diagonal_q(model, x_rep, shift=0.5, widen=0.7)
    torch.manual_seed(5)
    means = []
    for k in (1, 10, 100, 1000):
        mean, se = mean_and_se(E.iwae_bound(x_rep, model.prior, model.likelihood, q, k))
        assert mean + 4 * se < log_p.item(), (k, mean, se)  # a lower bound
        if means:
            assert mean > means[-1] + 4 * se, (k, mean, means)  # increasing in k
        means.append(mean)
    assert log_p.item() - means[-1] < 0.25 * (log_p.item() - means[0])  # approaching log p(x)


def test_iwae_with_one_sample_equals_mc_elbo_on_same_samples(model, x):
    q = shifted_diagonal_q(model, x)
    torch.manual_seed(6)
    iwae = E.iwae_bound(x, model.prior, model.likelihood, q, 1)
    torch.manual_seed(6)
    elbo = E.elbo(x, model.prior, model.likelihood, q, 1, analytic_kl=False)
    torch.testing.assert_close(iwae, elbo, rtol=0, atol=1e-12)
    torch.manual_seed(7)
    assert not torch.allclose(E.iwae_bound(x, model.prior, model.likelihood, q, 1), elbo)


def test_iwae_with_exact_posterior_is_exact(model, x):
    torch.manual_seed(8)
    got = E.iwae_bound(x, model.prior, model.likelihood, model.posterior(x), 5)
    torch.testing.assert_close(got, model.log_marginal(x), rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    "bound",
    [
        lambda x, m, q: E.iwae_bound(x, m.prior, m.likelihood, q, 8),
        lambda x, m, q: E.elbo(x, m.prior, m.likelihood, q, 2, analytic_kl=True),
        lambda x, m, q: E.elbo(x, m.prior, m.likelihood, q, 2, analytic_kl=False),
    ],
    ids=["iwae", "elbo-analytic", "elbo-mc"],
)
def test_bounds_are_differentiable_in_q_parameters(model, x, bound):
    mean = torch.zeros(4, 2, dtype=DTYPE, requires_grad=True)
    log_var = torch.zeros(4, 2, dtype=DTYPE, requires_grad=True)
    torch.manual_seed(9)
    bound(x, model, diagonal_gaussian(mean, log_var)).sum().backward()
    for param in (mean, log_var):
        assert param.grad is not None
        assert torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0


def test_elbo_gradient_ascent_moves_q_towards_posterior(model, x):
    # The gradient is the right one, not just some gradient: stochastic gradient ascent on
    # the ELBO finds the true posterior mean (reverse KL to a Gaussian matches its mean).
    mean = torch.zeros(4, 2, dtype=DTYPE, requires_grad=True)
    log_var = torch.zeros(4, 2, dtype=DTYPE, requires_grad=True)
    optimiser = torch.optim.Adam([mean, log_var], lr=0.05)
    torch.manual_seed(10)
    for _ in range(200):
        optimiser.zero_grad()
        loss = -E.elbo(x, model.prior, model.likelihood, diagonal_gaussian(mean, log_var), 4).sum()
        loss.backward()
        optimiser.step()
    torch.testing.assert_close(mean.detach(), model.posterior(x).mean, atol=0.1, rtol=0)


# --- chunking --------------------------------------------------------------------------------


class Replay(Distribution):
    """Wraps a distribution but replays pre-drawn samples in order, so that chunked and
    unchunked runs see exactly the same z's (torch's RNG does not promise that)."""

    def __init__(self, base, pool):
        self.base, self.pool, self.position = base, pool, 0
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    has_rsample = True

    def rsample(self, sample_shape=torch.Size()):
        n = sample_shape[0]
        out = self.pool[self.position : self.position + n]
        assert out.shape == torch.Size(sample_shape) + self.batch_shape + self.event_shape
        self.position += n
        return out

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value):
        return self.base.log_prob(value)


class SpyLikelihood:
    """Records the shape of every z the estimator asks about."""

    def __init__(self, likelihood):
        self.likelihood, self.shapes = likelihood, []

    def __call__(self, z):
        self.shapes.append(tuple(z.shape))
        return self.likelihood(z)


@pytest.mark.parametrize("estimator", ["naive", "importance", "weights"])
def test_chunk_size_does_not_change_the_result_for_the_same_samples(model, x, estimator):
    num_samples = 100
    pool = torch.randn(num_samples, 4, 2, dtype=DTYPE, generator=torch.Generator().manual_seed(11))
    q_base = shifted_diagonal_q(model, x)

    def run(chunk_size):
        spy = SpyLikelihood(model.likelihood)
        if estimator == "naive":
            prior = Replay(model.prior, pool)
            return E.log_marginal_naive(x, prior, spy, num_samples, chunk_size), spy
        q = Replay(q_base, q_base.mean + q_base.stddev * pool)
        if estimator == "importance":
            return E.log_marginal_importance(x, model.prior, spy, q, num_samples, chunk_size), spy
        log_w = E.log_importance_weights(x, model.prior, spy, q, num_samples, chunk_size=chunk_size)
        return log_w, spy

    whole, spy_whole = run(None)
    chunked, spy_chunked = run(7)
    assert [s[0] for s in spy_whole.shapes] == [100]
    assert [s[0] for s in spy_chunked.shapes] == [7] * 14 + [2]
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-12)


def test_chunked_estimates_agree_statistically_with_real_sampling(model):
    x_rep, _ = replicate(model, 2000)
    torch.manual_seed(12)
    a = E.log_marginal_naive(x_rep, model.prior, model.likelihood, 50, chunk_size=7)
    b = E.log_marginal_naive(x_rep, model.prior, model.likelihood, 50)
    diff, se = mean_and_se(a - b)
    assert abs(diff) < 4 * se


def test_fifty_thousand_samples_run_in_bounded_chunks():
    # B = 100 data points, d = 10 latents, S = 50_000: never a [50000, 100, 10] tensor at once.
    # (D = 1 keeps the test fast and the naive estimator accurate enough to check.)
    model = LinearGaussianModel.random(latent_dim=10, data_dim=1, noise_std=0.5, seed=2)
    x = model.sample(100, generator=torch.Generator().manual_seed(13))[0]
    spy = SpyLikelihood(model.likelihood)
    torch.manual_seed(14)
    got = E.log_marginal_naive(x, model.prior, spy, 50_000)
    assert sum(s[0] for s in spy.shapes) == 50_000
    assert len(spy.shapes) > 1
    assert max(math.prod(s) for s in spy.shapes) <= 2**22
    # A wrong way of combining chunks (e.g. a missing log(#chunks)) would be off by > 1.
    assert (got - model.log_marginal(x)).abs().max() < 0.1


# --- shapes (property-based) --------------------------------------------------------------


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    batch=st.integers(1, 5),
    latent_dim=st.integers(1, 4),
    data_dim=st.integers(1, 4),
    num_samples=st.integers(1, 20),
    chunk_size=st.one_of(st.none(), st.integers(1, 25)),
)
def test_output_shapes_property(batch, latent_dim, data_dim, num_samples, chunk_size):
    model = LinearGaussianModel.random(latent_dim, data_dim, seed=batch)
    x = model.sample(batch, generator=torch.Generator().manual_seed(0))[0]
    zeros = torch.zeros(batch, latent_dim, dtype=DTYPE)
    q = diagonal_gaussian(zeros, zeros)
    args = (x, model.prior, model.likelihood)
    assert E.log_marginal_naive(*args, num_samples, chunk_size).shape == (batch,)
    assert E.log_marginal_importance(*args, q, num_samples, chunk_size).shape == (batch,)
    log_w = E.log_importance_weights(*args, q, num_samples, chunk_size=chunk_size)
    assert log_w.shape == (num_samples, batch)
    assert E.effective_sample_size(log_w).shape == (batch,)
    ess = E.effective_sample_size(log_w)
    assert bool(((ess >= 1 - 1e-9) & (ess <= num_samples + 1e-9)).all())
    assert E.elbo(*args, q, num_samples).shape == (batch,)
    terms = E.elbo_terms(*args, q, num_samples, analytic_kl=False)
    assert terms.accuracy.shape == terms.complexity.shape == (batch,)
    assert E.iwae_bound(*args, q, num_samples).shape == (batch,)


def test_non_vector_data_shapes(x):
    # event_x may be multi-dimensional (images): [B, 2, 3] with an Independent(..., 2) likelihood.
    prior = standard_normal(2, dtype=DTYPE)
    weight = torch.randn(6, 2, dtype=DTYPE, generator=torch.Generator().manual_seed(15))

    def likelihood(z):
        return Independent(Normal((z @ weight.T).unflatten(-1, (2, 3)), 1.0), 2)

    images = torch.randn(4, 2, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(16))
    q = diagonal_gaussian(torch.zeros(4, 2, dtype=DTYPE), torch.zeros(4, 2, dtype=DTYPE))
    torch.manual_seed(17)
    assert E.log_marginal_importance(images, prior, likelihood, q, 9, chunk_size=4).shape == (4,)
    assert E.iwae_bound(images, prior, likelihood, q, 3).shape == (4,)


# --- validation ------------------------------------------------------------------------------

ESTIMATORS = {
    "naive": lambda x, prior, lik, q, s: E.log_marginal_naive(x, prior, lik, s),
    "importance": lambda x, prior, lik, q, s: E.log_marginal_importance(x, prior, lik, q, s),
    "weights": lambda x, prior, lik, q, s: E.log_importance_weights(x, prior, lik, q, s),
    "elbo": lambda x, prior, lik, q, s: E.elbo(x, prior, lik, q, s, analytic_kl=False),
    "elbo_terms": lambda x, prior, lik, q, s: E.elbo_terms(x, prior, lik, q, s),
    "iwae": lambda x, prior, lik, q, s: E.iwae_bound(x, prior, lik, q, s),
}
WITH_Q = [name for name in ESTIMATORS if name != "naive"]


@pytest.fixture
def q4():
    return diagonal_gaussian(torch.zeros(4, 2, dtype=DTYPE), torch.zeros(4, 2, dtype=DTYPE))


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_validation_x(model, x, q4, name):
    fn = ESTIMATORS[name]
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        fn(x.tolist(), model.prior, model.likelihood, q4, 3)
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        fn(bad, model.prior, model.likelihood, q4, 3)
    bad[1, 2] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        fn(bad, model.prior, model.likelihood, q4, 3)
    bad[1, 2], bad[0, 0] = float("inf"), float("-inf")  # the sum is NaN, not inf
    with pytest.raises(ValueError, match="2 NaN or inf"):
        fn(bad, model.prior, model.likelihood, q4, 3)


def test_large_finite_x_whose_sum_overflows_is_accepted():
    """The finiteness check sums x first; a sum that overflows must not be taken for a bad entry."""
    x = torch.full((2, 3), 3e38, dtype=torch.float32)
    assert not torch.isfinite(x.sum())
    E._check_x(x)  # no error: every entry is finite
    x[1, 1] = float("nan")
    with pytest.raises(ValueError, match="1 NaN or inf"):
        E._check_x(x)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_validation_num_samples(model, x, q4, name):
    fn = ESTIMATORS[name]
    for bad in (10.0, "10", True):
        with pytest.raises(TypeError, match="num_samples must be a positive integer"):
            fn(x, model.prior, model.likelihood, q4, bad)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="num_samples must be a positive integer"):
            fn(x, model.prior, model.likelihood, q4, bad)


def test_validation_chunk_size(model, x):
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        E.log_marginal_naive(x, model.prior, model.likelihood, 10, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be a positive integer"):
        E.log_marginal_naive(x, model.prior, model.likelihood, 10, chunk_size=2.5)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_validation_prior(model, x, q4, name):
    fn = ESTIMATORS[name]
    with pytest.raises(TypeError, match="prior must be a torch.distributions.Distribution"):
        fn(x, lambda z: None, model.likelihood, q4, 3)
    per_dim = Normal(torch.zeros(2, dtype=DTYPE), 1.0)  # batch (2,), event (): forgot Independent
    with pytest.raises(ValueError, match=r"prior must have batch shape \(\) and a 1-D event shape"):
        fn(x, per_dim, model.likelihood, q4, 3)
    batched = standard_normal(2, dtype=DTYPE).expand((4,))
    with pytest.raises(ValueError, match=r"prior must have batch shape \(\)"):
        fn(x, batched, model.likelihood, q4, 3)


@pytest.mark.parametrize("name", WITH_Q)
def test_validation_proposal(model, x, name):
    fn = ESTIMATORS[name]
    with pytest.raises(TypeError, match="must be a torch.distributions.Distribution over z"):
        fn(x, model.prior, model.likelihood, torch.zeros(4, 2), 3)
    wrong_event = diagonal_gaussian(torch.zeros(4, 3, dtype=DTYPE), torch.zeros(4, 3, dtype=DTYPE))
    with pytest.raises(ValueError, match="event shape must equal the prior's event shape"):
        fn(x, model.prior, model.likelihood, wrong_event, 3)
    wrong_batch = diagonal_gaussian(torch.zeros(5, 2, dtype=DTYPE), torch.zeros(5, 2, dtype=DTYPE))
    with pytest.raises(ValueError, match=r"batch shape must be \(B,\) = \(4,\)"):
        fn(x, model.prior, model.likelihood, wrong_batch, 3)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_validation_likelihood(model, x, q4, name):
    fn = ESTIMATORS[name]
    with pytest.raises(TypeError, match="likelihood must be a callable"):
        fn(x, model.prior, model.likelihood(torch.zeros(2, dtype=DTYPE)), q4, 3)
    with pytest.raises(TypeError, match=r"likelihood\(z\) must return a torch.distributions"):
        fn(x, model.prior, lambda z: model.likelihood(z).mean, q4, 3)
    with pytest.raises(ValueError, match=r"must have batch shape \[S, B\]"):
        fn(x, model.prior, lambda z: model.likelihood(z).base_dist, q4, 3)
    with pytest.raises(ValueError, match=r"must have event shape equal to x.shape\[1:\]"):
        fn(x[:, :2], model.prior, model.likelihood, q4, 3)


def test_validation_posterior_without_rsample(model, x):
    class NoRsample(Independent):
        has_rsample = False

    q = NoRsample(Normal(torch.zeros(4, 2, dtype=DTYPE), 1.0), 1)
    with pytest.raises(ValueError, match="no reparameterised sampler"):
        E.elbo(x, model.prior, model.likelihood, q)
    with pytest.raises(ValueError, match="no reparameterised sampler"):
        E.iwae_bound(x, model.prior, model.likelihood, q, 2)
