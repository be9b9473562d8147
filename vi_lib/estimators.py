"""Chapters 4-7: Monte Carlo estimates of log p(x), the ELBO and the IWAE bound.

This module is a public contract that the later chapters rely on.  The conventions:

- ``x``: a tensor ``[B, *event_x]``: a batch of B data points.
- ``prior``: a ``torch.distributions.Distribution`` over z with batch shape ``()`` and
  event shape ``(d,)``, e.g. :func:`vi_lib.distributions.standard_normal`.
- ``likelihood``: a callable taking z of shape ``[S, B, d]`` and returning a Distribution
  over x with batch shape ``[S, B]`` and event shape ``event_x``, so that
  ``likelihood(z).log_prob(x)`` is ``[S, B]``.
- ``proposal`` / ``posterior``: a Distribution over z with batch shape ``(B,)`` and event
  shape ``(d,)``: one q(z|x) per data point.

Every estimator returns one number per data point, shape ``[B]``, unless said otherwise.

All sums of probabilities are done in log space with ``logsumexp``, and the S samples are
drawn ``chunk_size`` at a time, so memory stays bounded for S in the tens of thousands.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, NamedTuple

import torch
from torch.distributions import Distribution, kl_divergence

from vi_lib import _validation

__all__ = [
    "log_mean_exp",
    "log_importance_weights",
    "log_marginal_naive",
    "log_marginal_importance",
    "ELBOTerms",
    "elbo_terms",
    "elbo",
    "iwae_bound",
    "effective_sample_size",
]

#: A chunk holds at most about this many numbers of log-likelihood work.
_CHUNK_BUDGET = 2**22


# ---------------------------------------------------------------------------------------
# Validation (private). Every message says what was expected, what came, and what to do.
# ---------------------------------------------------------------------------------------


def _check_x(x) -> None:
    _validation.tensor("x", x, hint="Convert it first, e.g. x = torch.as_tensor(x, dtype=torch.float64) [B, *event_x].")
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(
            f"x must have shape [B, *event_x] with a batch dimension B >= 1, got shape "
            f"{tuple(x.shape)}. For a single data point use x.unsqueeze(0)."
        )
    if x.is_floating_point() or x.is_complex():
        # A finite sum proves every entry finite (a NaN or inf would make the sum NaN or inf), and
        # a sum is cheaper than an element-wise test; only a non-finite sum (a bad entry, or an
        # overflow of large but finite values) needs the exact test.
        if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
            n_bad = int((~torch.isfinite(x)).sum())
            raise ValueError(
                f"x contains {n_bad} NaN or inf value(s); the estimators need finite data. "
                "Clean or drop those data points before estimating log p(x)."
            )


def _check_count(name: str, value, *, allow_none: bool = False) -> None:
    if not (allow_none and value is None):
        _validation.integer(name, value, hint=f"Pass a whole number, e.g. {name}=1000.")


def _check_prior(prior) -> int:
    """Check the prior and return its latent dimension d."""
    if not isinstance(prior, Distribution):
        raise TypeError(
            f"prior must be a torch.distributions.Distribution over z, got "
            f"{type(prior).__name__}. Use e.g. vi_lib.distributions.standard_normal(d)."
        )
    if prior.batch_shape != torch.Size([]) or len(prior.event_shape) != 1:
        raise ValueError(
            "prior must have batch shape () and a 1-D event shape (d,), got batch shape "
            f"{tuple(prior.batch_shape)} and event shape {tuple(prior.event_shape)}. "
            "Wrap a per-dimension distribution with "
            "torch.distributions.Independent(base, 1), e.g. "
            "vi_lib.distributions.standard_normal(d)."
        )
    return prior.event_shape[0]


def _check_q(name: str, q, prior: Distribution, batch_size: int) -> None:
    if not isinstance(q, Distribution):
        raise TypeError(
            f"{name} must be a torch.distributions.Distribution over z with batch shape (B,) "
            f"and event shape (d,), got {type(q).__name__}. Use e.g. "
            "vi_lib.distributions.diagonal_gaussian(mean, log_var) with mean of shape [B, d]."
        )
    if q.event_shape != prior.event_shape:
        raise ValueError(
            f"{name} event shape must equal the prior's event shape {tuple(prior.event_shape)}, "
            f"got {tuple(q.event_shape)}. Both must be distributions over the same z "
            "(a diagonal Normal needs torch.distributions.Independent(Normal(...), 1))."
        )
    if q.batch_shape != torch.Size([batch_size]):
        raise ValueError(
            f"{name} batch shape must be (B,) = ({batch_size},), one q(z|x) per data point in x, "
            f"got {tuple(q.batch_shape)}. Build it from the same batch x (x.shape[0] = "
            f"{batch_size})."
        )


def _check_likelihood_callable(likelihood) -> None:
    if not callable(likelihood):
        raise TypeError(
            f"likelihood must be a callable z -> Distribution over x, got "
            f"{type(likelihood).__name__}. Pass e.g. model.likelihood (not model.likelihood(z))."
        )


def _check_inputs(x, prior, likelihood, num_samples, chunk_size, q_name: str | None = None, q=None) -> None:
    """Every estimator's checks, in one order: x, the counts, the prior, q (if ``q_name``), the likelihood."""
    _check_x(x)
    _check_count("num_samples", num_samples)
    _check_count("chunk_size", chunk_size, allow_none=True)
    _check_prior(prior)
    if q_name is not None:
        _check_q(q_name, q, prior, x.shape[0])
    _check_likelihood_callable(likelihood)


def _likelihood_log_prob(likelihood: Callable, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) for z ``[S, B, d]``: checks the returned Distribution, returns ``[S, B]``."""
    p_x_given_z = likelihood(z)
    if not isinstance(p_x_given_z, Distribution):
        raise TypeError(
            "likelihood(z) must return a torch.distributions.Distribution over x, got "
            f"{type(p_x_given_z).__name__}. Return e.g. "
            "Independent(Normal(mean, std), 1) rather than the mean itself."
        )
    expected_batch = z.shape[:-1]
    if p_x_given_z.batch_shape != expected_batch:
        raise ValueError(
            f"likelihood(z) for z of shape {tuple(z.shape)} must have batch shape [S, B] = "
            f"{tuple(expected_batch)}, got {tuple(p_x_given_z.batch_shape)}. Make it accept "
            "any leading dimensions of z, and wrap per-pixel distributions with "
            "Independent(..., len(event_x)) so the data dimensions become the event."
        )
    if p_x_given_z.event_shape != x.shape[1:]:
        raise ValueError(
            f"likelihood(z) must have event shape equal to x.shape[1:] = {tuple(x.shape[1:])}, "
            f"got {tuple(p_x_given_z.event_shape)}. Use Independent(base, n) with n = "
            f"{x.dim() - 1} data dimensions, or reshape x to match the decoder's output."
        )
    return p_x_given_z.log_prob(x)


def _default_chunk_size(x: torch.Tensor, latent_dim: int) -> int:
    """Samples per chunk so one chunk holds about 2^22 numbers of log-likelihood work."""
    numel_per_item = max(1, math.prod(x.shape[1:])) + latent_dim
    return max(1, _CHUNK_BUDGET // (x.shape[0] * numel_per_item))


def _chunk_sizes(num_samples: int, chunk_size: int) -> Iterator[int]:
    done = 0
    while done < num_samples:
        size = min(chunk_size, num_samples - done)
        yield size
        done += size


def _sample_chunks(
    x: torch.Tensor,
    prior: Distribution,
    likelihood: Callable,
    proposal: Distribution | None,
    num_samples: int,
    chunk_size: int | None,
    reparameterize: bool,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(z [s, B, d], log p(x|z) [s, B])`` chunk by chunk (inputs already checked).

    With ``proposal=None`` the samples come from the prior, else from the proposal.
    """
    latent_dim = prior.event_shape[0]
    if chunk_size is None:
        chunk_size = _default_chunk_size(x, latent_dim)
    batch_size = x.shape[0]
    for size in _chunk_sizes(num_samples, chunk_size):
        if proposal is None:
            z = prior.sample((size, batch_size))  # [s, B, d]
        elif reparameterize:
            z = proposal.rsample((size,))  # [s, B, d]
        else:
            z = proposal.sample((size,))
        yield z, _likelihood_log_prob(likelihood, z, x)


def _log_weight_chunks(x, prior, likelihood, proposal, *args) -> Iterator[torch.Tensor]:
    """Yield log importance weights ``[s, B]`` chunk by chunk, from :func:`_sample_chunks` (same arguments).

    With ``proposal=None`` the samples come from the prior and the weight is p(x|z).
    """
    for z, log_lik in _sample_chunks(x, prior, likelihood, proposal, *args):
        if proposal is None:
            yield log_lik
        else:
            yield log_lik + prior.log_prob(z) - proposal.log_prob(z)


def _streaming_log_mean_exp(chunks: Iterator[torch.Tensor], num_samples: int) -> torch.Tensor:
    """log (1/S) sum_s exp(w_s) over chunks ``[s, B]``, combined with logsumexp."""
    total = None
    for chunk in chunks:
        chunk_lse = torch.logsumexp(chunk, dim=0)
        total = chunk_lse if total is None else torch.logaddexp(total, chunk_lse)
    return total - math.log(num_samples)


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


def log_mean_exp(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log( mean( exp(t) ) ) along ``dim``, computed stably.

    Chapter 4, equation ``eq-log-mean-exp``: averaging probabilities given as log-probabilities,
    ``log (1/S) sum_s exp(t_s) = logsumexp(t) - log S``; no exp of t is ever formed, so
    values like -1e4 (whose exp underflows to 0) are fine.

    Args:
        t: a tensor ``[..., S, ...]`` of log-values.
        dim: the dimension of length S to average over.

    Returns:
        ``t`` reduced over ``dim``.
    """
    _validation.tensor("t", t, hint="Use torch.as_tensor(t) first (a tensor of log-values).")
    if t.dim() == 0:
        raise ValueError("t must have at least one dimension to average over, got a 0-d tensor.")
    n = t.shape[dim]
    if n == 0:
        raise ValueError(
            f"cannot average over an empty dimension: t.shape[{dim}] == 0 (shape "
            f"{tuple(t.shape)}). Pass at least one sample."
        )
    return torch.logsumexp(t, dim=dim) - math.log(n)


def log_importance_weights(
    x: torch.Tensor,
    prior: Distribution,
    likelihood: Callable,
    proposal: Distribution,
    num_samples: int,
    reparameterize: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Log importance weights log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x), z_s ~ q.

    Chapter 5, equation ``eq-importance-identity`` and chapter 6, equation ``eq-importance-marginal``: the weights whose average estimates p(x);
    also what effective sample sizes and weight histograms are made of.

    Args:
        x: ``[B, *event_x]`` data.
        prior: p(z), batch shape ``()``, event shape ``(d,)``.
        likelihood: z ``[S, B, d]`` -> Distribution over x with batch ``[S, B]``.
        proposal: q(z|x), batch shape ``(B,)``, event shape ``(d,)``.
        num_samples: S, the number of samples per data point (int >= 1).
        reparameterize: draw with ``rsample`` so gradients flow to q's parameters.
        chunk_size: samples drawn at a time (``None``: chosen from the size of x).

    Returns:
        ``[S, B]`` log weights.
    """
    _check_inputs(x, prior, likelihood, num_samples, chunk_size, "proposal", proposal)
    chunks = _log_weight_chunks(
        x, prior, likelihood, proposal, num_samples, chunk_size, reparameterize
    )
    return torch.cat(list(chunks), dim=0)


def log_marginal_naive(
    x: torch.Tensor,
    prior: Distribution,
    likelihood: Callable,
    num_samples: int,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Naive Monte Carlo estimate of log p(x): sample z from the prior.

    Chapter 4, equation ``eq-naive-mc``: p(x) = E_{p(z)}[p(x|z)] ~ (1/S) sum_s p(x|z_s), z_s ~ p(z).
    The estimate of p(x) is unbiased; its log is biased low (Jensen), and in high
    dimensions almost no prior sample lands where p(x|z) is large (the curse of
    dimensionality, chapter 4).

    Args:
        x: ``[B, *event_x]`` data.
        prior: p(z), batch shape ``()``, event shape ``(d,)``.
        likelihood: z ``[S, B, d]`` -> Distribution over x with batch ``[S, B]``.
        num_samples: S (int >= 1).
        chunk_size: samples drawn at a time (``None``: at most ~2^22 numbers per chunk).

    Returns:
        ``[B]``: log of (1/S) sum_s p(x|z_s), one per data point.
    """
    _check_inputs(x, prior, likelihood, num_samples, chunk_size)
    chunks = _log_weight_chunks(x, prior, likelihood, None, num_samples, chunk_size, False)
    return _streaming_log_mean_exp(chunks, num_samples)


def log_marginal_importance(
    x: torch.Tensor,
    prior: Distribution,
    likelihood: Callable,
    proposal: Distribution,
    num_samples: int,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Importance-sampling estimate of log p(x) with proposal q(z|x).

    Chapter 5, equation ``eq-importance-estimate`` and chapter 6:
    p(x) = E_{q(z|x)}[p(x|z) p(z) / q(z|x)] ~ (1/S) sum_s p(x|z_s) p(z_s) / q(z_s|x),
    z_s ~ q(z|x). Unbiased for p(x); exact for every S when q is the true posterior.

    Args:
        x: ``[B, *event_x]`` data.
        prior: p(z), batch shape ``()``, event shape ``(d,)``.
        likelihood: z ``[S, B, d]`` -> Distribution over x with batch ``[S, B]``.
        proposal: q(z|x), batch shape ``(B,)``, event shape ``(d,)``.
        num_samples: S (int >= 1).
        chunk_size: samples drawn at a time (``None``: at most ~2^22 numbers per chunk).

    Returns:
        ``[B]``: log of the importance-weighted average, one per data point.
    """
    _check_inputs(x, prior, likelihood, num_samples, chunk_size, "proposal", proposal)
    chunks = _log_weight_chunks(x, prior, likelihood, proposal, num_samples, chunk_size, False)
    return _streaming_log_mean_exp(chunks, num_samples)


class ELBOTerms(NamedTuple):
    """The two terms of the ELBO, one value per data point (chapter 7, equation ``eq-elbo``).

    Attributes:
        accuracy: ``[B]`` E_q[log p(x|z)], the expected reconstruction log-likelihood.
        complexity: ``[B]`` KL(q(z|x) || p(z)), analytic or Monte Carlo.
    """

    accuracy: torch.Tensor
    complexity: torch.Tensor

    @property
    def elbo(self) -> torch.Tensor:
        """``[B]`` the ELBO = accuracy - complexity."""
        return self.accuracy - self.complexity


def elbo_terms(
    x: torch.Tensor,
    prior: Distribution,
    likelihood: Callable,
    posterior: Distribution,
    num_samples: int = 1,
    analytic_kl: bool = True,
) -> ELBOTerms:
    """The ELBO split into accuracy and complexity, with reparameterised samples.

    Chapter 7, equation ``eq-elbo``: ELBO(x) = E_{q(z|x)}[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x),
    with equality iff q(z|x) = p(z|x). The expectation uses S samples z_s = rsample() so
    the result is differentiable in q's parameters (the reparameterisation trick, equation ``eq-reparameterisation``).

    Args:
        x: ``[B, *event_x]`` data.
        prior: p(z), batch shape ``()``, event shape ``(d,)``.
        likelihood: z ``[S, B, d]`` -> Distribution over x with batch ``[S, B]``.
        posterior: q(z|x), batch shape ``(B,)``, event shape ``(d,)``; must support rsample.
        num_samples: S (int >= 1).
        analytic_kl: ``True``: the KL is ``torch.distributions.kl_divergence(posterior, prior)``
            (a ValueError if torch has no closed form for the pair); ``False``: the KL is the
            Monte Carlo average of log q(z_s|x) - log p(z_s) over the same samples.

    Returns:
        :class:`ELBOTerms` ``(accuracy [B], complexity [B])``; ``.elbo`` is ``[B]``.
    """
    _check_inputs(x, prior, likelihood, num_samples, None, "posterior", posterior)
    _validation.flag("analytic_kl", analytic_kl)
    if not posterior.has_rsample:
        raise ValueError(
            f"posterior ({type(posterior).__name__}) has no reparameterised sampler "
            "(has_rsample is False), so the ELBO would not be differentiable. Use a "
            "reparameterisable q such as vi_lib.distributions.diagonal_gaussian."
        )

    complexity = None
    if analytic_kl:
        try:
            complexity = kl_divergence(posterior, prior)
        except NotImplementedError:
            raise ValueError(
                "torch.distributions has no closed-form KL for posterior "
                f"{type(posterior).__name__} and prior {type(prior).__name__}. Pass "
                "analytic_kl=False to use the Monte Carlo estimate of the KL instead, or make "
                "the two distributions the same family."
            ) from None
        complexity = complexity.expand(x.shape[0]) if complexity.dim() == 0 else complexity

    # Chunked like the other estimators; with S = 1 this is a single posterior.rsample((1,)).
    sum_log_lik = 0.0
    sum_log_ratio = 0.0
    for z, log_lik in _sample_chunks(x, prior, likelihood, posterior, num_samples, None, True):
        sum_log_lik = sum_log_lik + log_lik.sum(dim=0)
        if not analytic_kl:
            sum_log_ratio = sum_log_ratio + (posterior.log_prob(z) - prior.log_prob(z)).sum(dim=0)
    accuracy = sum_log_lik / num_samples
    if not analytic_kl:
        complexity = sum_log_ratio / num_samples
    return ELBOTerms(accuracy=accuracy, complexity=complexity)


def elbo(
    x: torch.Tensor,
    prior: Distribution,
    likelihood: Callable,
    posterior: Distribution,
    num_samples: int = 1,
    analytic_kl: bool = True,
) -> torch.Tensor:
    """The evidence lower bound, ``[B]``: E_q[log p(x|z)] - KL(q(z|x) || p(z)).

    Chapter 7, equation ``eq-elbo``. Same arguments as :func:`elbo_terms`; this is
    ``elbo_terms(...).elbo``. Differentiable in q's parameters (reparameterised samples).
    """
    return elbo_terms(x, prior, likelihood, posterior, num_samples, analytic_kl).elbo


def iwae_bound(
    x: torch.Tensor,
    prior: Distribution,
    likelihood: Callable,
    posterior: Distribution,
    num_samples: int,
) -> torch.Tensor:
    """The importance-weighted bound L_k (Burda et al. 2015), ``[B]``, differentiable.

    Chapter 7, equation ``eq-iwae``: L_k(x) = E[ log (1/k) sum_{j=1}^k p(x, z_j) / q(z_j|x) ],
    z_j ~ q(z|x) reparameterised. L_1 is the ELBO, L_k <= L_{k+1} <= log p(x), and
    L_k -> log p(x) as k -> infinity. This returns one sample of the quantity inside E.

    Args:
        x: ``[B, *event_x]`` data.
        prior: p(z), batch shape ``()``, event shape ``(d,)``.
        likelihood: z ``[k, B, d]`` -> Distribution over x with batch ``[k, B]``.
        posterior: q(z|x), batch shape ``(B,)``, event shape ``(d,)``; must support rsample.
        num_samples: k (int >= 1).

    Returns:
        ``[B]``: log (1/k) sum_j exp(log w_j).
    """
    _check_inputs(x, prior, likelihood, num_samples, None, "posterior", posterior)
    if not posterior.has_rsample:
        raise ValueError(
            f"posterior ({type(posterior).__name__}) has no reparameterised sampler "
            "(has_rsample is False), so the bound would not be differentiable. Use a "
            "reparameterisable q such as vi_lib.distributions.diagonal_gaussian."
        )
    # Chunked like the other estimators (so k = 1 draws exactly what elbo(num_samples=1)
    # draws); gradients flow through every chunk.
    chunks = _log_weight_chunks(x, prior, likelihood, posterior, num_samples, None, True)
    return _streaming_log_mean_exp(chunks, num_samples)


def effective_sample_size(log_weights: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Effective sample size (sum w)^2 / sum w^2 of importance weights, from log weights.

    Chapter 5, equation ``eq-ess``: ESS = (sum_s w_s)^2 / sum_s w_s^2, between 1 (one weight
    dominates) and S (all weights equal). Computed in log space as
    exp(2 logsumexp(log w) - logsumexp(2 log w)), so weights like exp(-1e4) are fine.

    Args:
        log_weights: a tensor ``[..., S, ...]`` of log importance weights (any common
            additive constant cancels).
        dim: the dimension of length S.

    Returns:
        ``log_weights`` reduced over ``dim``: the ESS, a number in [1, S].
    """
    _validation.tensor("log_weights", log_weights, hint="Use e.g. log_importance_weights(...), which returns [S, B].")
    if log_weights.dim() == 0 or log_weights.shape[dim] == 0:
        raise ValueError(
            f"log_weights needs a non-empty dimension {dim} of samples, got shape "
            f"{tuple(log_weights.shape)}."
        )
    if bool(torch.isnan(log_weights).any()) or bool(torch.isposinf(log_weights).any()):
        raise ValueError(
            "log_weights contains NaN or +inf; the ESS is undefined. Check the model and "
            "proposal produce finite log densities (-inf, a zero weight, is allowed)."
        )
    log_ess = 2.0 * torch.logsumexp(log_weights, dim=dim) - torch.logsumexp(
        2.0 * log_weights, dim=dim
    )
    return torch.exp(log_ess)
