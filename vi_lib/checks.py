"""Self-checks of the code exercises of chapters 1-8: call one on your answer and it says what is wrong.

Each ``check_*`` function takes the learner's function, calls it on cases whose right answer the
library knows and prints one line: ``Exercise N.M: correct.``, ``Exercise N.M: not solved yet``
(the function still raises the student edition's ``NotImplementedError``) or
``Exercise N.M: not yet right.`` followed by what is wrong (wrong shape, wrong sign, off by a
constant, a crash, ...) without printing the solution. It returns ``True`` only when the answer is
correct, so a notebook can also ``assert`` it. Every call of the learner's function goes through
:func:`_call`, so an exception raised by it becomes a verdict that names it.

Contents, in chapter order (exercise: check, the learner's function it checks):

- 1.2: :func:`check_ancestral_sample`, ``ancestral_sample(model, n) -> (x, z)``
- 2.2: :func:`check_gaussian_log_density`, ``gaussian_log_density(x, mean, cov)``
- 3.2: :func:`check_kl_discrete`, ``kl_discrete(p, q)``
- 4.2: :func:`check_linear_gaussian_log_marginal`, ``linear_gaussian_log_marginal(x, weight, bias, noise_std)``
- 5.2: :func:`check_effective_sample_size`, ``ess(log_w)``
- 6.2: :func:`check_importance_log_marginal`, ``importance_log_marginal(log_lik, log_prior, log_q)``
- 7.2: :func:`check_kl_to_standard_normal`, ``kl_to_standard_normal(mean, log_var)``
- 7.4: :func:`check_iwae_bound`, ``iwae_estimate(log_joint, log_q)``
- 8.2: :func:`check_bernoulli_log_likelihood`, ``bernoulli_log_likelihood(logits, x)``
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.distributions import Bernoulli, Independent, MultivariateNormal

from vi_lib.distributions import kl_diagonal_gaussians
from vi_lib.estimation_problem import estimation_problem
from vi_lib.estimators import effective_sample_size, log_mean_exp
from vi_lib.models import LinearGaussianModel
from vi_lib.toy_data import ocean_model

__all__ = [
    "check_ancestral_sample",
    "check_gaussian_log_density",
    "check_kl_discrete",
    "check_linear_gaussian_log_marginal",
    "check_effective_sample_size",
    "check_importance_log_marginal",
    "check_kl_to_standard_normal",
    "check_iwae_bound",
    "check_bernoulli_log_likelihood",
]

# ---------------------------------------------------------------------------------------
# How every check runs, calls the learner's function and reports
# ---------------------------------------------------------------------------------------


class _Verdict(Exception):
    """Raised inside a check to stop at the first problem found; its message says what is wrong."""


def _run(exercise: str, check: Callable[[], None]) -> bool:
    """Run ``check()`` for exercise ``exercise`` ("N.M"), print the one-line verdict, return True if correct."""
    try:
        check()
    except NotImplementedError:
        print(f"Exercise {exercise}: not solved yet (your function still raises NotImplementedError).")
        return False
    except _Verdict as verdict:
        if _raised_while_handling_stub(verdict):  # a check that turned the stub's error into a verdict
            print(f"Exercise {exercise}: not solved yet (your function still raises NotImplementedError).")
            return False
        print(f"Exercise {exercise}: not yet right. {verdict}")
        return False
    print(f"Exercise {exercise}: correct.")
    return True


def _raised_while_handling_stub(error: BaseException) -> bool:
    """Was ``error`` raised while a NotImplementedError (the student edition's stub) was handled?"""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, NotImplementedError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _call(fn: Callable, *args, runtime_error_hint: str | None = None):
    """Return ``fn(*args)``, the learner's function called on one case of a check.

    NotImplementedError (the stub) passes through, so the check says "not solved yet". Any other
    exception becomes a verdict naming it; where ``runtime_error_hint`` is given, a RuntimeError
    (torch's shape errors) becomes that hint followed by the first line of torch's message.
    """
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Exception as error:  # a crash is a wrong answer, explained
        if runtime_error_hint is not None and isinstance(error, RuntimeError):
            first_line = (str(error).splitlines() or [type(error).__name__])[0]
            raise _Verdict(f"{runtime_error_hint} ({first_line})") from None
        raise _Verdict(f"your function raised {type(error).__name__}: {error}") from None


def _expect(condition: bool, message: str) -> None:
    """Stop the check with the verdict ``message`` unless ``condition`` holds."""
    if not condition:
        raise _Verdict(message)


def _is_close(a, b, tol: float = 1e-6) -> bool:
    """Is ``a`` a tensor of ``b``'s shape, equal to it within ``tol`` (absolute and relative)?"""
    return torch.is_tensor(a) and a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=tol, rtol=tol))


# ---------------------------------------------------------------------------------------
# The checks, in chapter order
# ---------------------------------------------------------------------------------------


def check_ancestral_sample(ancestral_sample: Callable) -> bool:
    """Exercise 1.2: ``ancestral_sample(model, n) -> (x [n, 3], z [n])`` samples p(z) p(x|z).

    Draws 20,000 samples with a fixed seed and compares the biome frequencies with p(z) and the
    per-biome means and spreads of x with the model's, within five standard errors.
    """

    def check():
        model = ocean_model()
        n = 20_000
        torch.manual_seed(0)
        out = _call(ancestral_sample, model, n)
        _expect(
            isinstance(out, tuple) and len(out) == 2,
            "Return a tuple (x, z): the readings and the biomes they came from.",
        )
        x, z = out
        _expect(torch.is_tensor(x) and torch.is_tensor(z), "x and z should be torch tensors.")
        _expect(tuple(x.shape) == (n, 3), f"x should have shape ({n}, 3), got {tuple(x.shape)}.")
        _expect(tuple(z.shape) == (n,), f"z should have shape ({n},), one biome per reading, got {tuple(z.shape)}.")
        _expect(not z.is_floating_point(), "z should hold biome indices (integers), not floats.")
        k = len(model.weights)
        _expect(bool(((z >= 0) & (z < k)).all()), f"z should be biome indices between 0 and {k - 1}.")
        freq = torch.bincount(z, minlength=k).double() / n
        w = model.weights.double()
        se = (w * (1 - w) / n).sqrt()
        _expect(
            bool(((freq - w).abs() <= 5 * se + 1e-12).all()),
            "The biome frequencies do not match p(z): sample z from the prior's weights, "
            "not uniformly.",
        )
        for b in range(k):
            xb = x[z == b].double()
            mean, cov = model.means[b].double(), model.covariances[b].double()
            sd = cov.diagonal().sqrt()
            _expect(
                bool(((xb.mean(0) - mean).abs() <= 5 * sd / len(xb) ** 0.5).all()),
                f"The readings of biome {b} are not centred on that biome's mean: "
                "sample x from p(x | z) for the z you drew.",
            )
            spread = xb.std(0)
            _expect(
                bool((spread > 0.5 * sd).all()),
                f"The readings of biome {b} hardly vary: sample x from p(x | z), "
                "do not return the biome's mean.",
            )
            _expect(
                bool((spread < 1.5 * sd).all()),
                f"The readings of biome {b} vary too much: use that biome's covariance.",
            )

    return _run("1.2", check)


def check_gaussian_log_density(gaussian_log_density: Callable) -> bool:
    """Exercise 2.2: ``gaussian_log_density(x [N, D], mean [D], cov [D, D]) -> [N]``.

    Compares with ``torch.distributions.MultivariateNormal`` on a 1-D, a 3-D and a 40-D case,
    and names the usual slips: a missing constant, a missing or doubled log-determinant, a
    wrong sign, a covariance used where its inverse belongs.
    """

    def cases():
        g = torch.Generator().manual_seed(0)
        for n, d in ((7, 1), (50, 3), (20, 40)):
            a = torch.randn(d, d, generator=g, dtype=torch.float64)
            cov = a @ a.T / d + 0.5 * torch.eye(d, dtype=torch.float64)
            mean = torch.randn(d, generator=g, dtype=torch.float64)
            x = mean + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
            yield x, mean, cov

    def check():
        for x, mean, cov in cases():
            n, d = x.shape
            out = _call(gaussian_log_density, x, mean, cov)
            _expect(torch.is_tensor(out), "Return a torch tensor of log-densities.")
            _expect(
                tuple(out.shape) == (n,),
                f"For x of shape {tuple(x.shape)} the result should have shape ({n},), one "
                f"log-density per row; got {tuple(out.shape)}. Sum over the D coordinates only.",
            )
            out = out.detach().double()
            want = MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)
            _expect(bool(torch.isfinite(out).all()), "Some log-densities are NaN or inf.")
            if torch.allclose(out, want, atol=1e-6, rtol=1e-6):
                continue
            diff = out - want
            if float(diff.std()) < 1e-6:
                offset = float(diff.mean())
                log_det = float(torch.logdet(cov))
                hints = {
                    0.5 * d * math.log(2 * math.pi): "the -D/2 log(2 pi) constant is missing",
                    -0.5 * d * math.log(2 * math.pi): "the D/2 log(2 pi) constant is counted twice",
                    0.5 * log_det: "the -1/2 log det(Sigma) term is missing",
                    -0.5 * log_det: "the log-determinant is counted twice (log det(Sigma) = 2 sum log L_jj, times -1/2)",
                }
                for value, hint in hints.items():
                    _expect(abs(offset - value) > 1e-6, f"Off by a constant: {hint} (case D = {d}).")
                _expect(False, f"Off by a constant that depends on Sigma or D (case D = {d}): "
                               "check the normalising terms.")
            _expect(False, f"The values differ from the Gaussian log-density by more than a "
                           f"constant (case D = {d}): check the quadratic form; it uses the "
                           "inverse covariance, (x - mu)^T Sigma^{-1} (x - mu), with a factor -1/2.")

    return _run("2.2", check)


def check_kl_discrete(kl_discrete: Callable) -> bool:
    """Exercise 3.2: ``kl_discrete(p [..., K], q [..., K]) -> [...]``, KL(p || q) in nats.

    Checks a batch of random distributions, zeros in p (the term is 0, no NaN), a zero in q where
    p is positive (the KL is infinite), and names the usual slips: arguments swapped, log base 2,
    a wrong sign, summing over the wrong dimension.
    """

    def want(p, q):
        return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)

    def check():
        g = torch.Generator().manual_seed(0)
        p = torch.softmax(2 * torch.randn(5, 4, generator=g, dtype=torch.float64), -1)
        q = torch.softmax(2 * torch.randn(5, 4, generator=g, dtype=torch.float64), -1)
        out = _call(kl_discrete, p, q)
        _expect(torch.is_tensor(out), "Return a torch tensor.")
        _expect(
            tuple(out.shape) == (5,),
            f"For p and q of shape (5, 4) the result should have shape (5,): one KL per row, "
            f"summed over the last dimension; got {tuple(out.shape)}.",
        )
        out = out.detach().double()
        right = want(p, q)
        if not torch.allclose(out, right, atol=1e-8):
            _expect(not torch.allclose(out, want(q, p), atol=1e-8),
                    "You computed KL(q || p): the average is taken under the first argument, p.")
            _expect(not torch.allclose(out, right / math.log(2), atol=1e-8),
                    "Your KL is in bits: use the natural logarithm (nats).")
            _expect(not torch.allclose(out, -right, atol=1e-8), "Wrong sign: it is p log(p / q).")
            _expect(False, "The values differ from sum_x p(x) log(p(x) / q(x)).")
        _expect(bool((out >= 0).all()), "A KL divergence is never negative.")
        same = _call(kl_discrete, p, p)
        _expect(torch.allclose(same.detach().double(), torch.zeros(5, dtype=torch.float64), atol=1e-10),
                "KL(p || p) should be 0.")
        p0 = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
        q0 = torch.tensor([0.25, 0.75, 0.0], dtype=torch.float64)
        zero_term = torch.as_tensor(_call(kl_discrete, p0, q0)).detach().double()
        _expect(not bool(torch.isnan(zero_term)),
                "A term with p(x) = 0 gives NaN: 0 log 0 must count as 0 (torch.xlogy does this).")
        _expect(torch.allclose(zero_term, want(p0, q0)), "A term with p(x) = 0 must contribute nothing.")
        q_bad = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        infinite = torch.as_tensor(_call(kl_discrete, p0, q_bad)).detach().double()
        _expect(bool(torch.isposinf(infinite)),
                "Where p(x) > 0 and q(x) = 0 the KL is +inf; you returned "
                f"{float(infinite)}.")

    return _run("3.2", check)


def check_linear_gaussian_log_marginal(linear_gaussian_log_marginal: Callable) -> bool:
    """Exercise 4.2: ``linear_gaussian_log_marginal(x [B, D], weight [D, d], bias [D], noise_std) -> [B]``.

    Compares with :meth:`vi_lib.models.LinearGaussianModel.log_marginal` on models with D != d,
    and names the usual slips: W^T W for W W^T, a missing noise term, s instead of s^2.
    """

    def check():
        for latent_dim, data_dim, noise_std in ((1, 3, 0.5), (4, 6, 0.3), (3, 3, 2.0)):
            model = LinearGaussianModel.random(latent_dim, data_dim, noise_std=noise_std, seed=latent_dim)
            x, _ = model.sample(8, generator=torch.Generator().manual_seed(0))
            shape_hint = (
                f"Your function raised a shape error for W of shape {tuple(model.weight.shape)} "
                f"(D = {data_dim}, d = {latent_dim}): the covariance of x is D x D, W W^T + s^2 I_D."
            )
            out = _call(linear_gaussian_log_marginal, x, model.weight, model.bias, noise_std,
                        runtime_error_hint=shape_hint)
            _expect(torch.is_tensor(out), "Return a torch tensor.")
            _expect(tuple(out.shape) == (8,),
                    f"For x of shape (8, {data_dim}) return shape (8,), got {tuple(out.shape)}.")
            out = out.detach().double()
            want = model.log_marginal(x)
            if torch.allclose(out, want, atol=1e-6):
                continue
            eye = torch.eye(data_dim, dtype=x.dtype)
            ww = model.weight @ model.weight.T
            no_noise_ok = bool(torch.linalg.eigvalsh(ww).min() > 1e-9)
            if no_noise_ok:
                no_noise = MultivariateNormal(model.bias, ww).log_prob(x)
                _expect(not torch.allclose(out, no_noise, atol=1e-6),
                        "The noise is missing: the covariance is W W^T + s^2 I.")
            with_s = MultivariateNormal(model.bias, ww + noise_std * eye).log_prob(x)
            _expect(not torch.allclose(out, with_s, atol=1e-6),
                    "Use the noise variance s^2, not the standard deviation s, on the diagonal.")
            no_bias = MultivariateNormal(torch.zeros_like(model.bias), ww + noise_std**2 * eye).log_prob(x)
            _expect(not torch.allclose(out, no_bias, atol=1e-6), "The mean of x is the bias b, not 0.")
            _expect(False, f"The values differ from log N(x; b, W W^T + s^2 I) (case D = {data_dim}, d = {latent_dim}).")

    return _run("4.2", check)


def check_effective_sample_size(ess: Callable) -> bool:
    """Exercise 5.2: ``ess(log_w)`` -> the effective sample size over dim 0 of ``[S, ...]`` log weights.

    Checks equal weights (ESS = S), one dominant weight (ESS near 1), random weights of a
    ``[S, B]`` tensor against the library, log weights near +-1000 (whose exp overflows or
    underflows), and that adding a constant to every log weight changes nothing.
    """

    def check():
        out = _call(ess, torch.full((8,), 0.7, dtype=torch.float64))
        _expect(torch.is_tensor(out), f"return a torch tensor, got {type(out).__name__}.")
        _expect(out.dim() == 0, f"for log weights of shape [8] the ESS is one number (shape ()), got shape {tuple(out.shape)}: reduce over dim 0.")
        _expect(
            abs(float(out) - 1) > 1e-6,
            "with 8 equal weights the ESS must be 8, got 1. Return the ESS itself, not the fraction "
            "ESS / S, and check the formula: the square of the sum over the sum of squares.",
        )
        _expect(abs(float(out) - 8) < 1e-6, f"with 8 equal weights the ESS must be 8, got {float(out):.4g}. Check the formula: the square of the sum over the sum of squares, (sum w)^2 / sum w^2.")
        one_big = torch.tensor([0.0, -30.0, -30.0, -30.0], dtype=torch.float64)
        got = float(_call(ess, one_big))
        _expect(abs(got - 1) < 1e-3, f"when one weight is e^30 times the others the ESS must be about 1, got {got:.4g}. Exponentiate the log weights: w = exp(log w).")
        g = torch.Generator().manual_seed(0)
        log_w = 2.0 * torch.randn(50, 3, generator=g, dtype=torch.float64)
        got = _call(ess, log_w)
        want = effective_sample_size(log_w)
        _expect(torch.is_tensor(got) and got.shape == want.shape, f"for log weights [S, B] = [50, 3] return one ESS per column, shape (3,), got {tuple(got.shape) if torch.is_tensor(got) else type(got).__name__}.")
        ratio = (got / want).mean().item()
        _expect(abs(ratio * 50 - 1) > 1e-3, "you returned ESS / S (a fraction); return the ESS itself, a number between 1 and S.")
        _expect(_is_close(got, want), "on random log weights your ESS differs from (sum w)^2 / sum w^2. Check the square: the numerator is the square of the sum, the denominator the sum of squares.")
        shifted = _call(ess, log_w + 1000.0)
        _expect(bool(torch.isfinite(shifted).all()), "with log weights near +1000 your ESS is inf or NaN: exp(1000) overflows. Work in log space (torch.logsumexp) or subtract the largest log weight first.")
        _expect(_is_close(shifted, want), "adding the same constant to every log weight must not change the ESS (it cancels in the ratio), but yours changed.")
        tiny = _call(ess, log_w - 1000.0)
        _expect(bool(torch.isfinite(tiny).all()) and _is_close(tiny, want), "with log weights near -1000 your ESS is wrong or NaN: exp(-1000) underflows to 0. Work in log space or subtract the largest log weight first.")

    return _run("5.2", check)


def check_importance_log_marginal(importance_log_marginal: Callable) -> bool:
    """Exercise 6.2: ``importance_log_marginal(log_lik, log_prior, log_q)`` -> ``[B]``.

    The three arguments are ``[S, B]`` tensors of log p(x|z_s), log p(z_s) and log q(z_s|x) for
    z_s ~ q(z|x); the answer is log (1/S) sum_s p(x|z_s) p(z_s) / q(z_s|x). Checks the shape, the
    sign of each term, averaging rather than summing, and stability for log-densities near -1000.
    """

    def check():
        g = torch.Generator().manual_seed(1)
        S, B = 64, 5
        log_lik = torch.randn(S, B, generator=g, dtype=torch.float64) - 3.0
        log_prior = torch.randn(S, B, generator=g, dtype=torch.float64) - 2.0
        log_q = torch.randn(S, B, generator=g, dtype=torch.float64) - 1.0
        want = log_mean_exp(log_lik + log_prior - log_q, dim=0)
        got = _call(importance_log_marginal, log_lik, log_prior, log_q)
        _expect(torch.is_tensor(got), f"return a torch tensor, got {type(got).__name__}.")
        _expect(got.shape == want.shape, f"return one log p(x) per data point, shape (B,) = ({B},), got {tuple(got.shape)}: average over the S samples, dim 0.")
        diff = (got - want).double()
        _expect(not _is_close(diff, torch.full_like(diff, math.log(S))), "off by log S: you summed the weights; average them (divide by S, i.e. subtract log S).")
        wrong_sign = log_mean_exp(log_lik + log_prior + log_q, dim=0)
        _expect(not _is_close(got, wrong_sign), "the weight divides by q: log w = log p(x|z) + log p(z) - log q(z|x), with a minus sign on log q.")
        mean_of_logs = (log_lik + log_prior - log_q).mean(dim=0)
        _expect(not _is_close(got, mean_of_logs), "you averaged the log weights; p(x) is the average of the weights themselves: take the log of the mean of exp(log w).")
        _expect(_is_close(got, want), "your estimate differs from log (1/S) sum_s p(x|z_s) p(z_s) / q(z_s|x). Check each term.")
        far = _call(importance_log_marginal, log_lik - 1000.0, log_prior, log_q)
        _expect(bool(torch.isfinite(far).all()), "with log-likelihoods near -1000 your answer is -inf or NaN: exp(-1000) underflows. Use torch.logsumexp.")
        _expect(_is_close(far, want - 1000.0), "with log-likelihoods near -1000 your answer is wrong: use torch.logsumexp rather than exp and log.")

    return _run("6.2", check)


def check_kl_to_standard_normal(kl_to_standard_normal: Callable) -> bool:
    """Exercise 7.2: ``kl_to_standard_normal(mean, log_var)`` -> KL(N(mean, diag e^log_var) || N(0, I)).

    Inputs ``[B, d]``, output ``[B]`` (summed over d). Checks against the closed form and
    recognises the usual slips: no sum over d, a missing 1/2, a missing -1, the standard
    deviation in place of the variance, the wrong sign of the log-variance.
    """

    def check():
        g = torch.Generator().manual_seed(2)
        B, d = 6, 3
        mean = torch.randn(B, d, generator=g, dtype=torch.float64)
        log_var = 0.8 * torch.randn(B, d, generator=g, dtype=torch.float64)
        want = kl_diagonal_gaussians(mean, log_var)
        got = _call(kl_to_standard_normal, mean, log_var)
        _expect(torch.is_tensor(got), f"return a torch tensor, got {type(got).__name__}.")
        _expect(got.shape == want.shape, f"return one KL per row, shape (B,) = ({B},), got {tuple(got.shape)}: sum over the last dimension d.")
        zero = _call(kl_to_standard_normal, torch.zeros(2, d, dtype=torch.float64), torch.zeros(2, d, dtype=torch.float64))
        _expect(_is_close(zero, torch.zeros(2, dtype=torch.float64)), f"KL(N(0, I) || N(0, I)) must be 0, got {zero.tolist()}: is the '- 1' in each term there?")
        _expect(not _is_close(got, 2 * want), "your KL is twice too large: the formula has a factor 1/2.")
        _expect(not _is_close(got, 0.5 * want), "your KL is half the right value: the factor is 1/2 once, not twice.")
        wrong_std = 0.5 * (torch.exp(0.5 * log_var) + mean**2 - 1 - log_var).sum(-1)
        _expect(not _is_close(got, wrong_std), "you used the standard deviation exp(log_var / 2) where the variance exp(log_var) belongs.")
        wrong_sign = 0.5 * (torch.exp(log_var) + mean**2 - 1 + log_var).sum(-1)
        _expect(not _is_close(got, wrong_sign), "the log-variance enters with a minus sign: - log sigma^2.")
        _expect(_is_close(got, want), "your KL differs from the closed form 1/2 sum_j (sigma_j^2 + mu_j^2 - 1 - log sigma_j^2). Check each term.")
        _expect(bool((got >= 0).all()), "a KL divergence is never negative.")

    return _run("7.2", check)


def check_iwae_bound(iwae_estimate: Callable) -> bool:
    """Exercise 7.4: ``iwae_estimate(log_joint, log_q)`` -> ``[B]``, one sample of the bound L_K.

    ``log_joint`` and ``log_q`` are ``[K, B]`` tensors of log p(x, z_j) and log q(z_j|x) for
    z_1, ..., z_K ~ q(z|x) (K samples for each of B data points); the answer is
    log (1/K) sum_j p(x, z_j) / q(z_j|x), the quantity inside the expectation of chapter 7's
    equation ``eq-iwae``. Checks the shape, the minus sign on log q, averaging rather than summing
    (the -log K), taking the log of the mean rather than the mean of the logs, log-weights near
    +-1000 (whose exp overflows or underflows), that K = 1 gives the one-sample ELBO, and two
    ground truths on a linear-Gaussian model: with the exact posterior as q every estimate equals
    log p(x), whatever K; with the prior as q the average over repetitions rises with K and stays
    below log p(x).
    """

    def check():
        g = torch.Generator().manual_seed(7)
        K, B = 16, 5
        log_joint = torch.randn(K, B, generator=g, dtype=torch.float64) - 4.0
        log_q = torch.randn(K, B, generator=g, dtype=torch.float64) - 1.0
        want = log_mean_exp(log_joint - log_q, dim=0)
        got = _call(iwae_estimate, log_joint, log_q)
        _expect(torch.is_tensor(got), f"return a torch tensor, got {type(got).__name__}.")
        _expect(got.shape == want.shape, f"for [K, B] = [{K}, {B}] inputs return one bound per data point, shape (B,) = ({B},), got {tuple(got.shape)}: reduce over the K samples, dim 0.")
        got = got.double()
        _expect(not _is_close(got - want, torch.full_like(want, math.log(K))), "off by log K: you summed the weights; L_K averages them (subtract log K after the logsumexp).")
        _expect(not _is_close(got, log_mean_exp(log_joint + log_q, dim=0)), "the weight divides by q: log w = log p(x, z) - log q(z|x), with a minus sign on log q.")
        _expect(not _is_close(got, (log_joint - log_q).mean(dim=0)), "you averaged the log weights: that is the ELBO estimate, for every K. L_K is the log of the average of the weights: logsumexp(log w) - log K.")
        _expect(_is_close(got, want), "your estimate differs from log (1/K) sum_j p(x, z_j) / q(z_j|x). Check each term.")
        one = _call(iwae_estimate, log_joint[:1], log_q[:1])
        _expect(torch.is_tensor(one) and _is_close(one.double(), log_joint[0] - log_q[0]), "with K = 1 the bound must be the one-sample ELBO estimate, log p(x, z_1) - log q(z_1|x), shape (B,).")
        low = _call(iwae_estimate, log_joint - 1000.0, log_q)
        _expect(bool(torch.isfinite(low).all()), "with log p(x, z) near -1000 (an image's log-likelihood is of that size) your bound is -inf or NaN: exp(-1000) underflows to 0. Use torch.logsumexp instead of exp, mean and log.")
        _expect(_is_close(low.double(), want - 1000.0), "with log p(x, z) near -1000 your bound is wrong: use torch.logsumexp rather than exp and log.")
        high = _call(iwae_estimate, log_joint + 1000.0, log_q)
        _expect(bool(torch.isfinite(high).all()) and _is_close(high.double(), want + 1000.0), "with log-weights near +1000 your bound is inf or NaN: exp(1000) overflows. Use torch.logsumexp.")

        model, x = estimation_problem(2)
        x = x[:4]
        log_px = model.log_marginal(x)
        gen = torch.Generator().manual_seed(0)

        def log_densities(q, k, reps=1):
            eps = torch.randn(k, reps * len(x), model.latent_dim, generator=gen, dtype=torch.float64)
            loc = q.mean.repeat(reps, 1)
            chol = q.scale_tril.expand(len(x), -1, -1).repeat(reps, 1, 1)
            z = loc + (chol @ eps.unsqueeze(-1)).squeeze(-1)  # [k, reps * B, d], z ~ q
            xs = x.repeat(reps, 1)
            joint = model.prior.log_prob(z) + model.likelihood(z).log_prob(xs)
            q_rep = torch.distributions.MultivariateNormal(loc, scale_tril=chol)
            return joint, q_rep.log_prob(z)

        posterior = model.posterior(x)
        for k in (1, 3, 50):
            out = _call(iwae_estimate, *log_densities(posterior, k))
            _expect(torch.is_tensor(out) and _is_close(out.double(), log_px), f"on a linear-Gaussian model with the exact posterior as q every weight equals p(x), so L_K = log p(x) for every K; with K = {k} yours differs.")
        prior_q = torch.distributions.MultivariateNormal(
            torch.zeros_like(posterior.mean), scale_tril=torch.eye(model.latent_dim, dtype=torch.float64)
        )
        reps, averages = 400, []
        for k in (1, 4, 16, 64):
            out = _call(iwae_estimate, *log_densities(prior_q, k, reps))
            averages.append(out.double().reshape(reps, len(x)).mean(0))
        rising = all(bool((b > a).all()) for a, b in zip(averages, averages[1:]))
        _expect(rising, "with the prior as q the average of your estimates over repetitions should rise with K (L_1 <= L_4 <= L_16 <= L_64), but it does not.")
        _expect(bool((averages[-1] < log_px + 0.05).all()), "with the prior as q the average of your estimates with K = 64 is above log p(x): L_K is a lower bound.")

    return _run("7.4", check)


def check_bernoulli_log_likelihood(bernoulli_log_likelihood: Callable) -> bool:
    """Exercise 8.2: ``bernoulli_log_likelihood(logits [..., 1, 28, 28], x) -> [...]``.

    log p(x|z) = sum_j x_j l_j - log(1 + e^{l_j}) over the pixels (chapter 8, equation
    ``eq-bernoulli-log-likelihood``). Compared with ``torch.distributions.Bernoulli`` on
    ``[B, 1, 28, 28]`` and ``[S, B, 1, 28, 28]`` inputs; names the usual slips: no sum over the
    pixels, a sum over the batch too, the wrong sign, probabilities used as logits, x and 1 - x
    swapped, and logits of +-1000 giving inf or NaN.
    """

    def reference(logits, x):
        return Independent(Bernoulli(logits=logits), 3).log_prob(x)

    def check():
        g = torch.Generator().manual_seed(8)
        logits = 3.0 * torch.randn(4, 1, 28, 28, generator=g, dtype=torch.float64)
        x = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3, dtype=torch.float64), generator=g)
        want = reference(logits, x)
        got = _call(bernoulli_log_likelihood, logits, x)
        _expect(torch.is_tensor(got), f"return a torch tensor, got {type(got).__name__}.")
        _expect(got.numel() != 1 or want.numel() == 1, "you summed over the batch too: return one log-likelihood per image, shape [B].")
        _expect(got.shape == want.shape, f"for images [4, 1, 28, 28] return one number per image, shape (4,), got {tuple(got.shape)}: sum over the last three dimensions (channel, height, width) only.")
        got = got.double()
        _expect(not _is_close(got, -want, 1e-5), "wrong sign: a log-likelihood of binary pixels is at most 0 (it is minus the binary cross-entropy).")
        probs = torch.sigmoid(logits)
        as_probs = reference(torch.logit(torch.sigmoid(probs)), x)
        _expect(not _is_close(got, as_probs, 1e-5), "you applied the sigmoid twice: the decoder's outputs are already logits.")
        swapped = reference(logits, 1 - x)
        _expect(not _is_close(got, swapped, 1e-5), "x and 1 - x are swapped: a pixel that is on (x = 1) contributes log sigma(l).")
        _expect(_is_close(got, want, 1e-5), "your values differ from sum_j [x_j l_j - log(1 + exp(l_j))]. Check each term.")
        batch = 2.0 * torch.randn(3, 2, 1, 28, 28, generator=g, dtype=torch.float64)
        xb = torch.bernoulli(torch.full((3, 2, 1, 28, 28), 0.5, dtype=torch.float64), generator=g)
        got = _call(bernoulli_log_likelihood, batch, xb)
        _expect(torch.is_tensor(got) and got.shape == (3, 2), f"for logits [S, B, 1, 28, 28] = [3, 2, 1, 28, 28] return shape (3, 2), got {tuple(got.shape) if torch.is_tensor(got) else type(got).__name__}: sum over the last three dimensions, whatever comes before.")
        big = torch.zeros(2, 1, 28, 28, dtype=torch.float64)
        big[0, 0, 0, 0], big[1, 0, 0, 0] = 1000.0, -1000.0
        xs = torch.zeros(2, 1, 28, 28, dtype=torch.float64)
        xs[1, 0, 0, 0] = 1.0
        got = _call(bernoulli_log_likelihood, big, xs)
        _expect(bool(torch.isfinite(got).all()), "with logits of +-1000 your result is inf or NaN: sigmoid(1000) rounds to 1 and log(1 - 1) = -inf. Work with the logits: x l - softplus(l).")
        _expect(_is_close(got.double(), reference(big, xs), 1e-6), "with logits of +-1000 your result is wrong: use torch.nn.functional.softplus(l) for log(1 + e^l).")

    return _run("8.2", check)
