"""Chapters 4, 6 and 7: the shared estimation problem, and how an estimator of log p(x) is scored on it.

Chapter 4 asks how many prior samples the naive estimate of log p(x) needs for 0.1-nat accuracy,
chapter 6 asks the same of a learned proposal; both draw :func:`estimation_problem` and count
with :func:`samples_for_accuracy`, so the two numbers are measured the same way and comparable.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import torch

from vi_lib import _validation
from vi_lib.models import LinearGaussianModel

__all__ = ["estimation_problem", "log_estimate_error", "samples_for_accuracy"]

Estimator = Callable[[int], torch.Tensor]


def log_estimate_error(estimator: Estimator, exact: torch.Tensor, num_samples: int, repeats: int = 10) -> dict:
    """Bias, spread and root-mean-square error of a log-likelihood estimator, in nats.

    ``estimator(num_samples)`` returns estimates of log p(x) for a fixed batch of data points,
    shape ``[B]``; ``exact`` is the true log p(x), ``[B]``. The estimator is run ``repeats``
    times; the errors ``estimate - exact`` (``[repeats, B]``) are summarised over all entries:
    ``bias`` (mean error: negative for log of an unbiased estimate, by Jensen), ``std`` (spread
    across repeats, averaged over data points) and ``rmse``.
    """
    repeats = _validation.integer("repeats", repeats, minimum=2, hint="Two runs at least, to measure a spread.")
    exact = _validation.tensor("exact", exact, hint="The true log p(x), one per data point [B].").detach().double()
    errors = torch.stack([estimator(num_samples).detach().double() - exact for _ in range(repeats)])
    if errors.shape[1:] != exact.shape:
        raise ValueError(
            f"the estimator returned shape {tuple(errors.shape[1:])}, but exact has shape {tuple(exact.shape)}"
        )
    return {
        "num_samples": num_samples,
        "bias": errors.mean().item(),
        "std": errors.std(dim=0).mean().item(),
        "rmse": errors.pow(2).mean().sqrt().item(),
    }


def samples_for_accuracy(
    estimator: Estimator,
    exact: torch.Tensor,
    tolerance: float = 0.1,
    sample_sizes: Optional[Iterable[int]] = None,
    repeats: int = 10,
) -> tuple[Optional[int], list[dict]]:
    """The smallest number of samples whose estimates of log p(x) are within ``tolerance`` nats.

    "Within" means a root-mean-square error (over data points and ``repeats`` runs, see
    :func:`log_estimate_error`) of at most ``tolerance``. Sample sizes are tried in increasing
    order (default: powers of 2 up to 2^20) and the search stops at the first that is accurate
    enough. Returns ``(num_samples or None if none was, the measurements made)``.
    """
    tolerance = _validation.number("tolerance", tolerance, positive=True, hint="It is in nats, e.g. 0.1.")
    sizes = list(sample_sizes) if sample_sizes is not None else [2**k for k in range(21)]
    sizes = [_validation.integer("sample_sizes[i]", s) for s in sizes]
    if not sizes or sizes != sorted(sizes):
        raise ValueError(f"sample_sizes must be increasing positive ints, got {sizes!r}")
    measured = []
    for s in sizes:
        row = log_estimate_error(estimator, exact, s, repeats)
        measured.append(row)
        if row["rmse"] <= tolerance:
            return s, measured
    return None, measured


def estimation_problem(
    latent_dim: int, num_points: int = 20, noise_std: float = 0.5, seed: int = 0
) -> tuple[LinearGaussianModel, torch.Tensor]:
    """The problem on which chapters 4 and 6 count samples for 0.1-nat accuracy.

    A linear-Gaussian model with ``data_dim = latent_dim`` whose weight is a random rotation
    (W^T W = I), so that every latent dimension is pinned down by the data equally: the exact
    posterior has variance s^2 / (1 + s^2) in every direction (0.2 for s = 0.5), whatever d, and
    any change in difficulty with d is the dimension alone. The bias is N(0, I) and ``num_points``
    data points are sampled from the model; everything is drawn from a generator seeded by ``seed``.
    Returns ``(model, x)`` with x ``[num_points, latent_dim]``, float64. Using this one function in
    both chapters makes their sample counts comparable.
    """
    latent_dim = _validation.integer("latent_dim", latent_dim)
    num_points = _validation.integer("num_points", num_points)
    g = torch.Generator().manual_seed(_validation.seed(seed))
    rotation, _ = torch.linalg.qr(torch.randn(latent_dim, latent_dim, generator=g, dtype=torch.float64))
    bias = torch.randn(latent_dim, generator=g, dtype=torch.float64)
    model = LinearGaussianModel(rotation, bias, noise_std)
    x, _ = model.sample(num_points, generator=g)
    return model, x
