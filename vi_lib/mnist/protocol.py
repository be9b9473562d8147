"""Chapter 8's evaluation protocol: per-image test ELBO and log p(x), summarised and pooled over parts.

The results page reports a VAE of MNIST by its average test log-likelihood, estimated by
importance sampling with K samples from q(z|x) (chapter 6; :func:`elbo_and_log_likelihood`),
with its standard error (:func:`mean_and_stderr`); an evaluation split over several processes
or machines is combined exactly by :func:`pool_mean_and_stderr`.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from vi_lib import _validation
from vi_lib._progress import tqdm

__all__ = ["elbo_and_log_likelihood", "mean_and_stderr", "pool_mean_and_stderr"]


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
    num_samples = _validation.integer("num_samples", num_samples)
    batch_size = _validation.integer("batch_size", batch_size)
    chunk_samples = _validation.integer("chunk_samples", chunk_samples)
    _validation.tensor("images", images, hint="The binarised test images as one tensor [N, 1, 28, 28].")
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
    values = _validation.tensor("values", values, hint="One value per image, e.g. result['log_px'].")
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
