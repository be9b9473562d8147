"""Measuring estimators and models against the truth (chapters 4, 6 and 8).

Chapter 4 asks how many prior samples the naive estimate of log p(x) needs, chapter 6 asks the
same of a learned proposal; both use :func:`samples_for_accuracy`, so the two numbers are
measured the same way and can be compared. Chapter 8 evaluates a VAE of MNIST by its test
log-likelihood and asks which latent dimensions it uses (:func:`kl_per_dimension`,
:func:`active_units`).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, NamedTuple, Optional

import torch
from torch.distributions import Independent, Normal, kl_divergence

from vi_lib.models import LinearGaussianModel

Estimator = Callable[[int], torch.Tensor]


def log_estimate_error(estimator: Estimator, exact: torch.Tensor, num_samples: int, repeats: int = 10) -> dict:
    """Bias, spread and root-mean-square error of a log-likelihood estimator, in nats.

    ``estimator(num_samples)`` returns estimates of log p(x) for a fixed batch of data points,
    shape ``[B]``; ``exact`` is the true log p(x), ``[B]``. The estimator is run ``repeats``
    times; the errors ``estimate - exact`` (``[repeats, B]``) are summarised over all entries:
    ``bias`` (mean error: negative for log of an unbiased estimate, by Jensen), ``std`` (spread
    across repeats, averaged over data points) and ``rmse``.
    """
    if not isinstance(repeats, int) or repeats < 2:
        raise ValueError(f"repeats must be an int of at least 2 (to measure a spread), got {repeats!r}")
    exact = exact.detach().double()
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
    if not (isinstance(tolerance, (int, float)) and tolerance > 0 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance must be a positive number of nats, got {tolerance!r}")
    sizes = list(sample_sizes) if sample_sizes is not None else [2**k for k in range(21)]
    if not sizes or any(not isinstance(s, int) or s < 1 for s in sizes) or sizes != sorted(sizes):
        raise ValueError(f"sample_sizes must be increasing positive ints, got {sizes!r}")
    measured = []
    for s in sizes:
        row = log_estimate_error(estimator, exact, s, repeats)
        measured.append(row)
        if row["rmse"] <= tolerance:
            return s, measured
    return None, measured


def benchmark_problem(
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
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
    g = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(latent_dim, latent_dim, generator=g, dtype=torch.float64))
    bias = torch.randn(latent_dim, generator=g, dtype=torch.float64)
    model = LinearGaussianModel(rotation, bias, noise_std)
    x, _ = model.sample(num_points, generator=g)
    return model, x


# ---------------------------------------------------------------------------------------
# Chapter 8: evaluating a VAE of MNIST by its test log-likelihood
# ---------------------------------------------------------------------------------------


@torch.no_grad()
def elbo_and_log_likelihood(
    model,
    images: torch.Tensor,
    num_samples: int,
    batch_size: int = 100,
    chunk_samples: int = 1000,
    progress: bool = False,
) -> dict:
    """Per-image ELBO and importance-sampled log p(x) of a VAE (chapter 8; chapter 6).

    ``images``: ``[N, *event_x]`` model inputs (for MNIST, binary ``[N, 1, 28, 28]``). The ELBO uses
    one sample and the analytic KL; log p(x) uses ``num_samples`` samples from q(z|x) as proposal
    (:meth:`vi_lib.models.VAE.log_marginal`), drawn about ``chunk_samples`` decoder passes at a time
    (``chunk_samples // batch`` samples per chunk), so peak memory does not grow with K.

    Returns:
        ``{"elbo": [N], "log_px": [N]}``, CPU float64 tensors.
    """
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    from vi_lib.training import tqdm

    model.eval()
    elbos, log_px = [], []
    with tqdm(total=len(images), unit="img", disable=not progress, leave=False) as bar:
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size]
            elbos.append(model.elbo(x).double().cpu())
            chunk = max(1, chunk_samples // len(x))
            log_px.append(model.log_marginal(x, num_samples, chunk_size=chunk).double().cpu())
            bar.update(len(x))
    return {"elbo": torch.cat(elbos), "log_px": torch.cat(log_px)}


def mean_and_stderr(values: torch.Tensor) -> dict:
    """``{"mean", "stderr", "n"}`` of per-image values: the standard error is std / sqrt(n)."""
    values = values.detach().double().flatten()
    n = values.numel()
    if n == 0:
        raise ValueError("no values to summarise")
    stderr = values.std().item() / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": values.mean().item(), "stderr": stderr, "n": n}


def pool_mean_and_stderr(parts: Iterable[dict]) -> dict:
    """Combine ``mean_and_stderr`` summaries of disjoint sets of images into the summary of their union.

    Exact (up to rounding): each part's sum and sum of squares are recovered from its n, mean and
    standard error (sample std with n - 1), so evaluating 10,000 images in chunks gives the same
    mean and standard error as evaluating them at once.
    """
    parts = list(parts)
    if not parts or any(p["n"] < 2 for p in parts):
        raise ValueError("pooling needs at least one part, each of at least 2 images")
    n = sum(p["n"] for p in parts)
    total = sum(p["mean"] * p["n"] for p in parts)
    squares = sum((p["stderr"] ** 2 * p["n"]) * (p["n"] - 1) + p["n"] * p["mean"] ** 2 for p in parts)
    mean = total / n
    variance = max(0.0, (squares - n * mean**2) / (n - 1))
    return {"mean": mean, "stderr": math.sqrt(variance / n), "n": n}


# ---------------------------------------------------------------------------------------
# Chapter 8: which latent dimensions a VAE uses (KL per dimension, active units)
# ---------------------------------------------------------------------------------------


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
    if not isinstance(images, torch.Tensor) or images.dim() < 2:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor [N, ...] of N >= 2 model inputs, got {shape}")
    if len(images) < 2:
        raise ValueError(f"need at least 2 images to measure how the encoder varies across them, got {len(images)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
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

    The definition of Burda, Grosse & Salakhutdinov (2016), *Importance weighted autoencoders*: dimension j is active if the mean of q(z_j|x)
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
    if isinstance(threshold, bool) or not (isinstance(threshold, (int, float)) and threshold > 0 and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a positive number (Burda et al. use 0.01), got {threshold!r}")
    mean, _ = _encoder_moments(model, images, batch_size)
    activity = mean.var(dim=0)
    mask = activity > threshold
    return ActiveUnits(int(mask.sum()), mask, activity)
