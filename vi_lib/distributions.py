"""Chapters 2, 3, 6 and 7: Gaussians, the maximum-likelihood Gaussian, and the KL divergence between Gaussians.

The Gaussians are thin, named wrappers around :mod:`torch.distributions`, so that the book
can say "the diagonal Gaussian of chapter 2" and mean one line of code.  Three formulas are
written out by hand, each the one a chapter derives: the closed-form KL between diagonal
Gaussians (chapter 7, which shows it equals ``torch.distributions.kl_divergence``), the isotropic
Gaussian log-likelihood as a scaled squared error (chapter 7), and the maximum-likelihood mean
and covariance (chapters 2 and 3).

Shapes: ``d`` is the dimension of the vector the Gaussian is over (its *event*); any
leading dimensions ``...`` are independent copies (its *batch*).
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Independent, MultivariateNormal, Normal

from vi_lib import _validation

__all__ = [
    "diagonal_gaussian",
    "standard_normal",
    "kl_diagonal_gaussians",
    "isotropic_gaussian_log_likelihood",
    "fit_gaussian",
]


def _require_tensor(name: str, value) -> torch.Tensor:
    hint = f"Convert it first, e.g. torch.as_tensor({name}, dtype=torch.float64)."
    return _validation.tensor(name, value, hint=hint)


def _require_vector_shape(name: str, value: torch.Tensor) -> None:
    if value.dim() < 1:
        raise ValueError(
            f"{name} must have at least one dimension [..., d] (the last one is the "
            f"Gaussian's dimension d), got a 0-d tensor. Use {name}.reshape(1) for d = 1."
        )


def diagonal_gaussian(mean: torch.Tensor, log_var: torch.Tensor) -> Independent:
    """The diagonal Gaussian N(mean, diag(exp(log_var))) over the last dimension.

    Chapter 2, equation ``eq-diagonal-gaussian``: a Gaussian with a diagonal covariance is a product of d
    independent 1-D Gaussians; chapter 6 and 7 use it as the proposal / encoder
    q(z|x) = N(mu(x), diag(sigma^2(x))).

    Args:
        mean: ``[..., d]`` the mean mu.
        log_var: ``[..., d]`` the log-variances log sigma^2 (any real number; the standard
            deviation is ``exp(0.5 * log_var)``).  Must broadcast with ``mean``.

    Returns:
        ``Independent(Normal(mean, exp(0.5 * log_var)), 1)`` with batch shape ``[...]`` and
        event shape ``(d,)``, so ``log_prob(z)`` of a ``[..., d]`` tensor is ``[...]``.
    """
    _require_tensor("mean", mean)
    _require_tensor("log_var", log_var)
    _require_vector_shape("mean", mean)
    _require_vector_shape("log_var", log_var)
    try:
        torch.broadcast_shapes(mean.shape, log_var.shape)
    except RuntimeError:
        raise ValueError(
            f"mean and log_var must have broadcastable shapes [..., d], got "
            f"{tuple(mean.shape)} and {tuple(log_var.shape)}. Give one log-variance per "
            f"dimension of the mean."
        ) from None
    return Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)


def standard_normal(
    latent_dim: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Independent:
    """The prior p(z) = N(0, I_d) used throughout the book.

    Chapters 2 and 7: the standard normal prior over a ``d``-dimensional latent.

    Args:
        latent_dim: ``d``, a positive int.
        device, dtype: where and in which precision the zeros and ones live
            (``dtype=None`` means ``torch.get_default_dtype()``).

    Returns:
        ``Independent(Normal(0, 1), 1)`` with batch shape ``()`` and event shape ``(d,)``:
        ``sample((S, B))`` is ``[S, B, d]`` and ``log_prob`` of ``[..., d]`` is ``[...]``.
    """
    latent_dim = _validation.integer("latent_dim", latent_dim, hint="Pass e.g. latent_dim=2.")
    if dtype is None:
        dtype = torch.get_default_dtype()
    zeros = torch.zeros(latent_dim, device=device, dtype=dtype)
    ones = torch.ones(latent_dim, device=device, dtype=dtype)
    return Independent(Normal(zeros, ones), 1)


def kl_diagonal_gaussians(
    mean_q: torch.Tensor,
    log_var_q: torch.Tensor,
    mean_p: torch.Tensor | None = None,
    log_var_p: torch.Tensor | None = None,
) -> torch.Tensor:
    """Closed-form KL(q || p) between two diagonal Gaussians, written out by hand.

    Chapter 7, equation ``eq-kl-diagonal-gaussians``::

        KL( N(mu_q, diag var_q) || N(mu_p, diag var_p) )
          = 0.5 * sum_j [ log var_p - log var_q + (var_q + (mu_q - mu_p)^2) / var_p - 1 ]

    With ``mean_p`` and ``log_var_p`` left out, p is the prior N(0, I) and the formula
    becomes the VAE's ``0.5 * sum(var_q + mu_q^2 - 1 - log var_q)``.

    Args:
        mean_q, log_var_q: ``[..., d]`` mean and log-variance of q.
        mean_p, log_var_p: ``[..., d]`` (broadcastable) mean and log-variance of p;
            ``None`` means 0 (mean) and 0 (log-variance, i.e. variance 1).

    Returns:
        ``[...]``: one KL per batch element, summed over the last dimension ``d``.
        It equals ``torch.distributions.kl_divergence(diagonal_gaussian(mean_q, log_var_q),
        diagonal_gaussian(mean_p, log_var_p))``.
    """
    for name, value in (("mean_q", mean_q), ("log_var_q", log_var_q)):
        _require_tensor(name, value)
        _require_vector_shape(name, value)
    if mean_p is None:
        mean_p = torch.zeros_like(mean_q)
    if log_var_p is None:
        log_var_p = torch.zeros_like(log_var_q)
    for name, value in (("mean_p", mean_p), ("log_var_p", log_var_p)):
        _require_tensor(name, value)
        _require_vector_shape(name, value)
    try:
        torch.broadcast_shapes(mean_q.shape, log_var_q.shape, mean_p.shape, log_var_p.shape)
    except RuntimeError:
        raise ValueError(
            "mean_q, log_var_q, mean_p, log_var_p must have broadcastable shapes [..., d], got "
            f"{tuple(mean_q.shape)}, {tuple(log_var_q.shape)}, {tuple(mean_p.shape)}, "
            f"{tuple(log_var_p.shape)}. Make their last dimensions equal."
        ) from None
    var_q = torch.exp(log_var_q)
    var_p = torch.exp(log_var_p)
    per_dim = log_var_p - log_var_q + (var_q + (mean_q - mean_p) ** 2) / var_p - 1.0
    return 0.5 * per_dim.sum(dim=-1)


def isotropic_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, std: float | torch.Tensor
) -> torch.Tensor:
    """log N(x; mean, std^2 I): a squared error plus constants.

    Chapter 7, equation ``eq-gaussian-squared-error``: for a D-dimensional x,

        log N(x; mean, std^2 I) = -||x - mean||^2 / (2 std^2) - D log(std) - (D/2) log(2 pi).

    Args:
        x: ``[..., D]`` data.
        mean: ``[..., D]`` (broadcastable with ``x``) the decoder's mean.
        std: a positive float, or a tensor broadcastable to ``[...]`` (one standard
            deviation per item, shared over the D dimensions).

    Returns:
        ``[...]``: the log density, summed over the last dimension D. It equals
        ``Normal(mean, std).log_prob(x).sum(-1)``.
    """
    _require_tensor("x", x)
    _require_tensor("mean", mean)
    _require_vector_shape("x", x)
    _require_vector_shape("mean", mean)
    if x.shape[-1] != mean.shape[-1]:
        raise ValueError(
            f"x and mean must have the same last dimension D, got x {tuple(x.shape)} and mean "
            f"{tuple(mean.shape)}. Flatten images first, e.g. x.flatten(1)."
        )
    if not isinstance(std, torch.Tensor):
        std = _validation.number("std", std, positive=True, hint="Pass a standard deviation > 0.")
    std_t = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    if not torch.all(std_t > 0):
        raise ValueError(f"std must be positive, got {std!r}. Pass a standard deviation > 0.")
    num_dims = x.shape[-1]
    squared_error = ((x - mean) ** 2).sum(dim=-1)
    return (
        -0.5 * squared_error / std_t**2
        - num_dims * torch.log(std_t)
        - 0.5 * num_dims * math.log(2.0 * math.pi)
    )


_COVARIANCE_KINDS = ("full", "diagonal", "isotropic")


def fit_gaussian(x: torch.Tensor, covariance: str = "full"):
    """The maximum-likelihood Gaussian for data ``x`` with a full, diagonal or isotropic covariance.

    Chapter 2 (counting parameters: what each covariance can represent) and chapter 3 (these are
    the maximum-likelihood estimates): the mean is the sample mean, and the covariance is

    - ``"full"``: the sample covariance (1/N) sum_n (x_n - mu)(x_n - mu)^T, D(D+1)/2 numbers;
    - ``"diagonal"``: its diagonal, the per-dimension variances, D numbers;
    - ``"isotropic"``: sigma^2 I with sigma^2 the average of those variances, one number.

    Args:
        x: ``[N, D]`` data, N >= 2, floating point.
        covariance: ``"full"``, ``"diagonal"`` or ``"isotropic"``.

    Returns:
        ``torch.distributions.MultivariateNormal`` with event shape ``(D,)`` (batch shape ``()``).
    """
    _validation.tensor("x", x, floating=True, hint="Use x.double().")
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(
            f"x must be a floating-point tensor [N, D] with N >= 2 data points, got shape "
            f"{tuple(x.shape)}. For one feature use x.reshape(-1, 1)."
        )
    _validation.choice("covariance", covariance, _COVARIANCE_KINDS)
    mean = x.mean(dim=0)
    centred = x - mean
    if covariance == "full":
        cov = centred.T @ centred / x.shape[0]
        cov = 0.5 * (cov + cov.T)
    elif covariance == "diagonal":
        cov = torch.diag(centred.pow(2).mean(dim=0))
    else:
        cov = centred.pow(2).mean() * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    return MultivariateNormal(mean, covariance_matrix=cov)

