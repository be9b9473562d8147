"""Chapters 7 and 8: training a VAE by stochastic gradient ascent on the ELBO (equation ``eq-elbo``).

One epoch loop, :func:`fit`, serves every model and every caller in the book: chapter 7's ocean
VAE, chapter 8's convolutional VAE, and chapter 8's command line ``python -m vi_lib.mnist.train``
(which adds checkpoints and a time budget through ``on_epoch`` and ``state``). It trains anything
with ``.prior``, ``.encode(x)`` and ``.decode(z)`` (see :class:`vi_lib.models.VAE`) with Adam,
optionally with chapter 8's KL warm-up (:func:`kl_warmup_weight`) and learning-rate decay
(:func:`decayed_learning_rate`). The data set is held as one tensor on the device and batches are
taken by index, which on a CPU is several times faster than a per-item ``DataLoader``. A
``transform`` turns a raw batch into model input (for MNIST: dynamic binarisation, fresh at every
epoch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from vi_lib import _validation
from vi_lib._progress import Bar, tqdm

__all__ = [
    "NonFiniteLossError", "pick_device", "adam", "EpochStats", "train_epoch", "evaluate_elbo",
    "kl_warmup_weight", "decayed_learning_rate", "SCHEDULES", "TrainingState", "fit",
]

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
SCHEDULES = ("epochs", "time")
_SAME = object()  # fit's default test_transform: the training transform


class NonFiniteLossError(FloatingPointError):
    """The ELBO became NaN or infinite during training."""


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` gives CUDA when a GPU is present, else the CPU; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', 'cpu', 'cuda' or a torch.device, got {device!r} ({type(device).__name__})")
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
    lr = _validation.number("lr", lr, positive=True, hint="Adam's usual learning rate is 1e-3.")
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
    batch_size = _validation.integer("batch_size", batch_size)
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
    progress: bool | Bar = False,
    kl_weight: float = 1.0,
) -> EpochStats:
    """One pass of stochastic gradient ascent on the ELBO (chapter 7, algorithm ``alg-train-vae``).

    ``data``: ``[N, ...]`` on the model's device. Each batch ``data[idx]`` goes through
    ``transform(batch, generator)`` if given, then the loss ``-elbo.mean()`` is minimised.
    ``generator`` (a CPU ``torch.Generator``) fixes the batch order and the transform's randomness.
    Raises :class:`NonFiniteLossError` as soon as the ELBO of a batch is NaN or infinite, before
    the optimiser takes the step, so the parameters stay the last finite ones.

    ``kl_weight`` (beta, default 1) scales the complexity term in the loss,
    ``-(accuracy - beta * complexity)``: a KL warm-up raises it from near 0 to 1 over the first
    epochs (chapter 8). The statistics returned are always of the true ELBO (beta = 1).
    """
    kl_weight = _validation.number("kl_weight", kl_weight, minimum=0, hint="beta = 1 is the ELBO.")
    _validation.tensor("data", data, hint="Hold the data set as one tensor [N, ...], e.g. torch.as_tensor(x).")
    model.train()
    totals = torch.zeros(3, dtype=torch.float64)
    n = len(data)
    bar = progress if isinstance(progress, Bar) else tqdm(total=n, disable=not progress, unit="img", leave=False)
    start = time.perf_counter()
    seen = 0
    if data.is_floating_point() and not torch.isfinite(data).all():
        raise ValueError("the training data contain NaN or infinite values; remove or fix those rows first")
    for idx in _batches(n, batch_size, generator, shuffle=True):
        x = data[idx.to(data.device)]
        if transform is not None:
            x = transform(x, generator)
        try:
            terms = model.elbo_terms(x, num_samples=num_samples)
        except ValueError as error:  # torch.distributions refusing NaN or infinite parameters
            if "invalid values" not in str(error):
                raise
            raise NonFiniteLossError(
                f"the encoder or decoder produced NaN or infinite parameters after {seen} of {n} examples of "
                "this epoch (the weights diverged); training stopped before the step, so the model keeps its "
                "last parameters. Lower the learning rate."
            ) from None
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
    if not isinstance(progress, Bar):
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


def kl_warmup_weight(epoch: int, warmup_epochs: int) -> float:
    """The KL warm-up of chapter 8: beta = epoch / warmup_epochs for epochs 1..warmup_epochs, then 1.

    Pass it as ``train_epoch(..., kl_weight=beta)``; ``warmup_epochs = 0`` means no warm-up.
    """
    return 1.0 if warmup_epochs == 0 else min(1.0, epoch / warmup_epochs)


def decayed_learning_rate(lr: float, lr_final: float, progress: float) -> float:
    """Exponential decay from ``lr`` (progress 0) to ``lr_final`` (progress 1): lr * (lr_final / lr) ** progress."""
    return lr * (lr_final / lr) ** progress


@dataclass
class TrainingState:
    """Everything :func:`fit` changes besides the model, so that a run can stop and continue exactly.

    ``optimizer`` (Adam, with its moment estimates), ``generator`` (the CPU generator of batch
    order and binarisation), ``epoch`` (epochs done), ``training_seconds`` (time in training
    epochs) and ``wall_seconds`` (training plus the test ELBO after each epoch: what a time budget
    limits). The global torch RNG (the reparameterisation noise) is the caller's to save.
    """

    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    epoch: int = 0
    training_seconds: float = 0.0
    wall_seconds: float = 0.0


def _schedule_progress(schedule: str, epoch: int, epochs: int, wall_seconds: float, max_minutes) -> float:
    """How far through its schedule a run is at the start of ``epoch``, from 0 to 1."""
    if schedule == "time":
        return min(1.0, wall_seconds / (60.0 * max_minutes))
    return (epoch - 1) / max(1, epochs - 1)


def fit(
    model,
    train_data: torch.Tensor,
    test_data: Optional[torch.Tensor] = None,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    transform: Optional[Transform] = None,
    progress: bool | str = True,
    *,
    lr_final: Optional[float] = None,
    schedule: str = "epochs",
    max_minutes: Optional[float] = None,
    warmup_epochs: int = 0,
    test_transform=_SAME,
    test_seed: Optional[int] = None,
    state: Optional[TrainingState] = None,
    on_epoch: Optional[Callable[[dict, TrainingState], None]] = None,
) -> list[dict]:
    """Train ``model`` with Adam up to epoch ``epochs``; return one dict of metrics per epoch run.

    Each epoch: the KL weight beta = :func:`kl_warmup_weight` (epoch, ``warmup_epochs``) (1 when
    ``warmup_epochs = 0``), the learning rate :func:`decayed_learning_rate` from ``lr`` to
    ``lr_final`` (default ``lr``: constant) over the epochs (``schedule="epochs"``) or over the time
    budget ``max_minutes`` (``schedule="time"``), one :func:`train_epoch`, then, with ``test_data``,
    the test ELBO (:func:`evaluate_elbo`; ``test_transform``, default ``transform``, drawn afresh
    from a generator seeded by ``test_seed``, default ``seed + 1``, so every epoch sees the same
    test set). Then ``on_epoch(row, state)`` if given (to save a checkpoint, print a line).
    With ``max_minutes``, training stops (resumably) when the next epoch would end past the budget.

    Everything random (batch order, binarisation) is drawn from a generator seeded by ``seed``,
    so the same call gives the same history on the same machine. ``state`` continues a run that
    :class:`TrainingState` describes (from epoch ``state.epoch + 1``); without it a fresh Adam and
    generator are made. ``progress``: ``True`` a bar over epochs, ``"images"`` a bar over each
    epoch's images, ``False`` none. Raises :class:`NonFiniteLossError` if the ELBO or a gradient
    becomes NaN or infinite (the model keeps its last finite parameters).

    Each dict holds ``epoch``, ``train_elbo``, ``train_accuracy``, ``train_complexity``,
    ``kl_weight``, ``lr``, ``seconds``, ``images_per_second``, ``training_seconds_total``,
    ``wall_seconds_total`` and, with ``test_data``, ``test_elbo``, ``test_accuracy``,
    ``test_complexity`` and ``test_seconds`` (averages in nats per data point).
    """
    epochs = _validation.integer("epochs", epochs)
    warmup_epochs = _validation.integer("warmup_epochs", warmup_epochs, minimum=0)
    _validation.choice("schedule", schedule, SCHEDULES)
    _validation.choice("progress", progress, (True, False, "images"))
    lr_final = lr if lr_final is None else _validation.number("lr_final", lr_final, positive=True)
    if max_minutes is not None:
        max_minutes = _validation.number("max_minutes", max_minutes, positive=True)
    elif schedule == "time":
        raise ValueError("schedule='time' decays the learning rate over a time budget: give max_minutes too")
    seed = _validation.seed(seed)
    test_seed = seed + 1 if test_seed is None else _validation.seed(test_seed)
    test_transform = transform if test_transform is _SAME else test_transform
    if state is None:
        state = TrainingState(adam(model, lr=lr), torch.Generator().manual_seed(seed))
    test_generator = torch.Generator()
    history = []
    epoch_bar = tqdm(range(state.epoch + 1, epochs + 1), disable=progress is not True, unit="epoch", ncols=90)
    for epoch in epoch_bar:
        epoch_start = time.perf_counter()
        beta = kl_warmup_weight(epoch, warmup_epochs)
        lr_now = decayed_learning_rate(
            lr, lr_final, _schedule_progress(schedule, epoch, epochs, state.wall_seconds, max_minutes)
        )
        for group in state.optimizer.param_groups:
            group["lr"] = lr_now
        images_bar = tqdm(total=len(train_data), unit="img", disable=progress != "images", leave=False,
                          desc=f"epoch {epoch}/{epochs}")
        try:
            stats = train_epoch(model, state.optimizer, train_data, batch_size, state.generator, transform,
                                progress=images_bar, kl_weight=beta)
        finally:
            images_bar.close()
        row = {
            "epoch": epoch,
            "train_elbo": stats.elbo,
            "train_accuracy": stats.accuracy,
            "train_complexity": stats.complexity,
        }
        if test_data is not None:
            test_generator.manual_seed(test_seed)
            test = evaluate_elbo(model, test_data, transform=test_transform, generator=test_generator)
            row.update(test_elbo=test.elbo, test_accuracy=test.accuracy, test_complexity=test.complexity,
                       test_seconds=test.seconds)
        state.epoch = epoch
        state.training_seconds += stats.seconds
        state.wall_seconds += time.perf_counter() - epoch_start
        row.update(kl_weight=beta, lr=lr_now, seconds=stats.seconds, images_per_second=stats.items_per_second,
                   training_seconds_total=state.training_seconds, wall_seconds_total=state.wall_seconds)
        history.append(row)
        if on_epoch is not None:
            on_epoch(row, state)
        shown = {"train_elbo": f"{stats.elbo:.1f}"}
        if test_data is not None:
            shown["test_elbo"] = f"{row['test_elbo']:.1f}"
        epoch_bar.set_postfix(shown, refresh=False)
        this_epoch = time.perf_counter() - epoch_start
        if max_minutes is not None and epoch < epochs and state.wall_seconds + this_epoch > 60 * max_minutes:
            break  # the next epoch would end past the budget; fit(..., state=state) continues
    epoch_bar.close()
    return history
