"""Training a VAE by maximising the ELBO (chapter 7, equation ``eq-elbo``; chapter 8).

One loop serves every model in the book: anything with ``.prior``, ``.encode(x)`` and
``.decode(z)`` (see :class:`vi_lib.models.VAE`). The data set is held as one tensor on the
device and batches are taken by index, which on a CPU is several times faster than a per-item
``DataLoader``. A ``transform`` turns a raw batch into model input (for MNIST: dynamic
binarisation, fresh at every epoch).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import warnings

import torch

with warnings.catch_warnings():
    # In a notebook without ipywidgets tqdm.auto warns once and falls back to text bars; the
    # text bars are fine (and what a static page shows), so the warning is only noise.
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm
from tqdm.std import tqdm as _tqdm_base  # every tqdm bar (text, notebook, auto) is one of these

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class NonFiniteLossError(FloatingPointError):
    """The ELBO became NaN or infinite during training."""


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` gives CUDA when a GPU is present, else the CPU; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'") from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    return chosen


def adam(parameters, lr: float = 1e-3) -> torch.optim.Adam:
    """Adam (Kingma & Ba 2015), the optimiser every VAE of the book trains with (chapters 7 and 8).

    ``parameters``: a model or an iterable of tensors. Where all of them live on the CPU or a
    CUDA GPU this is ``torch.optim.Adam(..., fused=True)``: the same update, computed in one fused
    kernel per step instead of a dozen element-wise passes over each tensor; measured on our 2-core
    CPU, chapter 8's ConvVAE trains about 7% faster than with the default Adam.
    Elsewhere (e.g. Apple's MPS) it is the default ``torch.optim.Adam``.
    """
    if isinstance(parameters, torch.nn.Module):
        parameters = parameters.parameters()
    parameters = list(parameters)
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    fused = bool(parameters) and all(p.device.type in ("cpu", "cuda") for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, fused=fused or None)


@dataclass
class EpochStats:
    """Averages over one pass through the data, in nats per data point."""

    elbo: float
    accuracy: float  # E_q[log p(x|z)]
    complexity: float  # KL(q(z|x) || p(z))
    seconds: float
    items_per_second: float


def _gradients_are_finite(model) -> bool:
    """One check (one synchronisation) for all gradients: their norms are finite iff all entries are."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())


def _batches(n: int, batch_size: int, generator: Optional[torch.Generator], shuffle: bool):
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def train_epoch(
    model,
    optimizer: torch.optim.Optimizer,
    data: torch.Tensor,
    batch_size: int,
    generator: Optional[torch.Generator] = None,
    transform: Optional[Transform] = None,
    num_samples: int = 1,
    progress: bool | tqdm = False,
    kl_weight: float = 1.0,
) -> EpochStats:
    """One pass of stochastic gradient ascent on the ELBO (chapter 7, algorithm "train a VAE").

    ``data``: ``[N, ...]`` on the model's device. Each batch ``data[idx]`` goes through
    ``transform(batch, generator)`` if given, then the loss ``-elbo.mean()`` is minimised.
    ``generator`` (a CPU ``torch.Generator``) fixes the batch order and the transform's randomness.
    Raises :class:`NonFiniteLossError` as soon as the ELBO of a batch is NaN or infinite, before
    the optimiser takes the step, so the parameters stay the last finite ones.

    ``kl_weight`` (beta, default 1) scales the complexity term in the loss,
    ``-(accuracy - beta * complexity)``: a KL warm-up raises it from near 0 to 1 over the first
    epochs (chapter 8). The statistics returned are always of the true ELBO (beta = 1).
    """
    if not (isinstance(kl_weight, (int, float)) and 0 <= kl_weight and math.isfinite(kl_weight)):
        raise ValueError(f"kl_weight must be a non-negative number, got {kl_weight!r}")
    model.train()
    totals = torch.zeros(3, dtype=torch.float64)
    n = len(data)
    bar = progress if isinstance(progress, _tqdm_base) else tqdm(total=n, disable=not progress, unit="img", leave=False)
    start = time.perf_counter()
    seen = 0
    if data.is_floating_point() and not torch.isfinite(data).all():
        raise ValueError("the training data contain NaN or infinite values; remove or fix those rows first")
    for idx in _batches(n, batch_size, generator, shuffle=True):
        x = data[idx.to(data.device)]
        if transform is not None:
            x = transform(x, generator)
        terms = model.elbo_terms(x, num_samples=num_samples)
        elbo = terms.elbo.mean()
        optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(elbo):
            if kl_weight == 1.0:
                (-elbo).backward()
            else:
                (kl_weight * terms.complexity.mean() - terms.accuracy.mean()).backward()
        if not torch.isfinite(elbo) or not _gradients_are_finite(model):
            what = f"the ELBO became {elbo.item()}" if not torch.isfinite(elbo) else "a gradient became NaN or infinite"
            raise NonFiniteLossError(
                f"{what} after {seen} of {n} examples of this epoch; training stopped before the "
                "step, so the model keeps its last finite parameters. Lower the learning rate."
            )
        optimizer.step()
        seen += len(idx)
        with torch.no_grad():
            totals += torch.stack(
                [terms.elbo.sum(), terms.accuracy.sum(), terms.complexity.sum()]
            ).double().cpu()
        bar.update(len(idx))
        bar.set_postfix(elbo=f"{elbo.item():.2f}", refresh=False)
    if not isinstance(progress, _tqdm_base):
        bar.close()
    seconds = time.perf_counter() - start
    means = (totals / n).tolist()
    return EpochStats(*means, seconds=seconds, items_per_second=n / seconds)


@torch.no_grad()
def evaluate_elbo(
    model,
    data: torch.Tensor,
    batch_size: int = 1000,
    transform: Optional[Transform] = None,
    generator: Optional[torch.Generator] = None,
    num_samples: int = 1,
) -> EpochStats:
    """The average ELBO, accuracy and complexity over ``data`` (no gradients, fixed order)."""
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64)
    start = time.perf_counter()
    for idx in _batches(len(data), batch_size, None, shuffle=False):
        x = data[idx.to(data.device)]
        if transform is not None:
            x = transform(x, generator)
        terms = model.elbo_terms(x, num_samples=num_samples)
        totals += torch.stack([terms.elbo.sum(), terms.accuracy.sum(), terms.complexity.sum()]).double().cpu()
    seconds = time.perf_counter() - start
    means = (totals / len(data)).tolist()
    return EpochStats(*means, seconds=seconds, items_per_second=len(data) / seconds)


def fit(
    model,
    train_data: torch.Tensor,
    test_data: Optional[torch.Tensor] = None,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    transform: Optional[Transform] = None,
    progress: bool = True,
) -> list[dict]:
    """Train ``model`` with Adam for ``epochs`` passes; return one dict of metrics per epoch.

    Each dict holds ``epoch``, ``train_elbo``, ``train_accuracy``, ``train_complexity``,
    ``seconds`` and, with ``test_data``, ``test_elbo``, ``test_accuracy``, ``test_complexity``.
    Everything random (initial batches, binarisation) is drawn from a generator seeded by
    ``seed``, so the same call gives the same history on the same machine.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    optimizer = adam(model, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    test_generator = torch.Generator()
    history = []
    bar = tqdm(range(1, epochs + 1), disable=not progress, unit="epoch")
    for epoch in bar:
        stats = train_epoch(model, optimizer, train_data, batch_size, generator, transform)
        row = {
            "epoch": epoch,
            "train_elbo": stats.elbo,
            "train_accuracy": stats.accuracy,
            "train_complexity": stats.complexity,
            "seconds": stats.seconds,
        }
        if test_data is not None:
            test_generator.manual_seed(seed + 1)  # the same binarisation of the test set every epoch
            test = evaluate_elbo(model, test_data, transform=transform, generator=test_generator)
            row.update(test_elbo=test.elbo, test_accuracy=test.accuracy, test_complexity=test.complexity)
        history.append(row)
        bar.set_postfix(train_elbo=f"{stats.elbo:.2f}", refresh=False)
    return history


def kl_warmup_weight(epoch: int, warmup_epochs: int) -> float:
    """The KL warm-up of chapter 8: beta = epoch / warmup_epochs for epochs 1..warmup_epochs, then 1.

    Pass it as ``train_epoch(..., kl_weight=beta)``; ``warmup_epochs = 0`` means no warm-up.
    """
    return 1.0 if warmup_epochs == 0 else min(1.0, epoch / warmup_epochs)


def decayed_learning_rate(lr: float, lr_final: float, progress: float) -> float:
    """Exponential decay from ``lr`` (progress 0) to ``lr_final`` (progress 1): lr * (lr_final / lr) ** progress."""
    return lr * (lr_final / lr) ** progress


def binarize_batch(images: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Dynamic binarisation of a batch on any device, as a ``transform`` for :func:`train_epoch`.

    Same protocol as :func:`vi_lib.data.binarize` (each pixel ~ Bernoulli(grey level / 255),
    drawn afresh at every call), which it calls on the CPU. On a GPU the uniform numbers are drawn
    on the CPU from ``generator`` and compared on the GPU, so one CPU generator fixes the result
    wherever it runs. Returns ``float32`` 0/1 of the same shape, on the images' device.
    """
    if images.device.type == "cpu":
        from vi_lib.data import binarize

        return binarize(images, generator)
    probs = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    uniform = torch.rand(images.shape, generator=generator).to(images.device, non_blocking=True)
    return (uniform < probs).float()
