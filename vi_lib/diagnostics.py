"""Chapter 8: which latent dimensions a VAE uses: the KL per dimension and the active units.

A dimension whose average KL(q(z_j|x) || p(z_j)) is (almost) zero has collapsed onto the prior,
and one whose encoder mean does not vary across the data tells the decoder nothing: chapter 8's
section on posterior collapse measures both (equations ``eq-kl-per-dimension`` and
``eq-active-units``) for any VAE with a diagonal-Gaussian encoder.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.distributions import Independent, Normal, kl_divergence

from vi_lib import _validation

__all__ = ["ActiveUnits", "kl_per_dimension", "active_units"]


class ActiveUnits(NamedTuple):
    """What :func:`active_units` measured: ``count`` of ``d`` dimensions, the ``[d]`` bool ``mask``
    of the active ones and their ``[d]`` ``activity`` (the variance over images of the encoder mean)."""

    count: int
    mask: torch.Tensor
    activity: torch.Tensor


def _encoder_moments(model, images: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of a diagonal-Gaussian q(z|x) for every image: two ``[N, d]`` float64 CPU tensors."""
    encode = getattr(model, "encode", model)
    if not callable(encode):
        raise TypeError(f"model must be a VAE (with .encode) or a function x -> q(z|x), got {type(model).__name__}")
    _validation.tensor("images", images, hint="Pass the model inputs as one tensor [N, ...].")
    if images.dim() < 2:
        shape = tuple(images.shape)
        raise ValueError(f"images must be a tensor [N, ...] of N >= 2 model inputs, got {shape}")
    if len(images) < 2:
        raise ValueError(f"need at least 2 images to measure how the encoder varies across them, got {len(images)}")
    batch_size = _validation.integer("batch_size", batch_size)
    means, variances = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size]
            q = encode(x)
            if isinstance(q, Independent):
                base = q.base_dist
                diagonal = q.reinterpreted_batch_ndims == 1 and tuple(q.batch_shape) == (len(x),)
            else:
                base = q
                diagonal = len(getattr(q, "batch_shape", ())) == 2 and q.batch_shape[0] == len(x)
            if not (diagonal and isinstance(base, Normal)):
                raise ValueError(
                    "the encoder must return a diagonal Gaussian q(z|x) over a vector z, one per image: "
                    f"Independent(Normal, 1) with batch shape ({len(x)},) (or a Normal with batch shape "
                    f"[{len(x)}, d]); for a batch of {len(x)} images it returned {q!r}"
                )
            means.append(base.mean.double().cpu())
            variances.append(base.variance.double().cpu())
    return torch.cat(means), torch.cat(variances)


def kl_per_dimension(model, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The average KL of each latent dimension, ``[d]`` in nats (chapter 8, equation ``eq-kl-per-dimension``).

    For a diagonal-Gaussian encoder q(z|x) = N(mu(x), diag sigma^2(x)) and the prior N(0, I), the
    KL term of the ELBO splits into one term per dimension,
    ``KL_j(x) = 0.5 * (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)``; this returns each term averaged
    over the images, so its sum is the average of ``KL(q(z|x) || N(0, I))``. A dimension with
    (almost) zero average KL has collapsed: q(z_j|x) = p(z_j) for every image.

    Args:
        model: a VAE (anything with ``.encode(x)``) or a function ``x -> q(z|x)`` returning
            ``Independent(Normal, 1)`` with batch shape ``(B,)`` and event ``(d,)``.
        images: ``[N, *event_x]`` model inputs, N >= 2 (for MNIST, binary ``[N, 1, 28, 28]``).
        batch_size: images encoded at a time (memory only; the result does not depend on it).

    Returns:
        ``[d]`` CPU float64 tensor, non-negative.
    """
    mean, var = _encoder_moments(model, images, batch_size)
    prior = Normal(torch.zeros_like(mean), torch.ones_like(mean))
    return kl_divergence(Normal(mean, var.sqrt()), prior).mean(0)


def active_units(model, images: torch.Tensor, threshold: float = 0.01, batch_size: int = 1000) -> ActiveUnits:
    """Which latent dimensions are active (chapter 8, equation ``eq-active-units``).

    The definition of Burda, Grosse & Salakhutdinov (2015), *Importance weighted autoencoders*: dimension j is active if the mean of q(z_j|x)
    varies across the data, ``Cov_x(E_q[z_j | x]) > threshold`` with ``threshold = 0.01`` by default.
    The variance over the N images is the sample variance (divided by N - 1). A dimension whose
    encoder mean is (nearly) the same for every image tells the decoder nothing about the image.

    Args:
        model, images, batch_size: as for :func:`kl_per_dimension`.
        threshold: a positive number; the default 0.01 is Burda et al.'s.

    Returns:
        ``ActiveUnits(count, mask, activity)``: the number of active dimensions (an int), a ``[d]``
        bool mask, and the ``[d]`` float64 variances over images of the encoder means (CPU).
    """
    threshold = _validation.number("threshold", threshold, positive=True, hint="Burda et al. use 0.01.")
    mean, _ = _encoder_moments(model, images, batch_size)
    activity = mean.var(dim=0)
    mask = activity > threshold
    return ActiveUnits(int(mask.sum()), mask, activity)
