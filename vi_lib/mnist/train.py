"""Chapter 8's training run from the command line: a convolutional VAE on MNIST, for the results page.

    python -m vi_lib.mnist.train --out runs/mnist.pt --epochs 100 --latent-dim 32
    python -m vi_lib.mnist.train --out runs/mnist.pt --resume      # continue an interrupted run

An existing ``--out`` is never replaced unless ``--overwrite`` says so.

Protocol: dynamic binarisation (every training image is re-binarised each time it is used), the
test ELBO on one fixed binarisation of the 10,000 test images (seed ``--test-seed``), Adam with a
learning rate decayed exponentially from ``--lr`` to ``--lr-final``, and a KL warm-up whose weight
rises linearly from ``1 / warmup_epochs`` to 1 over the first ``--warmup-epochs`` epochs.

After every epoch the checkpoint (model, optimiser and RNG states) is written
atomically to ``--out`` and one row (train ELBO, test ELBO, seconds, ...) is appended to
``<out without .pt>.metrics.json``. ``--resume`` continues from the checkpoint with the same
settings, optimiser state and random numbers, so an interrupted run loses at most the epoch that
was under way, and 1 + 1 epochs give the same weights as 2. A NaN or infinite ELBO stops training
with a message (exit status 3); the checkpoint of the last good epoch is kept.
"""

from __future__ import annotations

from vi_lib.mnist import cli  # first: it sets the CPU's thread policy before torch loads

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

from vi_lib.mnist.checkpoints import CheckpointError, CheckpointNotFoundError, load_checkpoint, save_checkpoint
from vi_lib.mnist.data import binarize_batch, load_mnist
from vi_lib.models import ConvVAE
from vi_lib.training import SCHEDULES, NonFiniteLossError, TrainingState, adam, fit

__all__ = ["SETTINGS", "EXIT_NON_FINITE", "metrics_path", "build_parser", "main"]

#: Settings stored in the checkpoint; on --resume they are taken from it.
SETTINGS = (
    "latent_dim", "likelihood", "hidden_dim", "channels", "epochs", "batch_size", "lr", "lr_final",
    "warmup_epochs", "schedule", "max_minutes", "seed", "test_seed", "limit_train", "limit_test",
)
EXIT_NON_FINITE = 3


def metrics_path(checkpoint: str | os.PathLike) -> Path:
    """Where the per-epoch metrics of a checkpoint live: ``runs/x.pt`` -> ``runs/x.metrics.json``."""
    checkpoint = Path(checkpoint)
    stem = checkpoint.name[:-3] if checkpoint.name.endswith(".pt") else checkpoint.name
    return checkpoint.with_name(stem + ".metrics.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vi_lib.mnist.train",
        description="Train a convolutional VAE on dynamically binarised MNIST.",
    )
    parser.add_argument("--out", required=True, help="checkpoint path, e.g. runs/mnist.pt")
    parser.add_argument("--resume", action="store_true", help="continue the run saved at --out (its settings are used)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh even if --out exists, replacing that checkpoint and its metrics")
    parser.add_argument("--latent-dim", type=cli.positive_int, default=32)
    parser.add_argument("--likelihood", choices=ConvVAE.LIKELIHOODS, default="bernoulli")
    parser.add_argument("--hidden-dim", type=cli.positive_int, default=256)
    parser.add_argument("--channels", type=cli.positive_int, nargs=2, default=[32, 64], metavar=("C1", "C2"))
    parser.add_argument("--epochs", type=cli.positive_int, default=20, help="total number of epochs of the run")
    parser.add_argument("--batch-size", type=cli.positive_int, default=128)
    parser.add_argument("--lr", type=cli.positive_float, default=1e-3, help="initial learning rate of Adam")
    parser.add_argument("--lr-final", type=cli.positive_float, default=None, help="learning rate at the last epoch (default: --lr, no decay)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="epochs",
                        help="decay the learning rate over the epochs, or over the --max-minutes time budget")
    parser.add_argument("--warmup-epochs", type=cli.non_negative_int, default=0, help="KL warm-up length in epochs (0: none)")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0, help="seeds initial weights, batches and binarisation")
    parser.add_argument("--test-seed", type=cli.non_negative_int, default=0, help="seed of the test set's one binarisation")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    parser.add_argument("--threads", type=cli.positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--max-minutes", type=cli.positive_float, default=None, help="time budget: stop (resumably) when the next epoch would end past it")
    parser.add_argument("--limit-train", type=cli.positive_int, default=None, help="use only the first N training images (tests)")
    parser.add_argument("--limit-test", type=cli.positive_int, default=None, help="use only the first N test images (tests)")
    parser.add_argument("--data", default=None, help="MNIST folder (default: $VI_LIB_DATA or the cache)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _environment(device: torch.device) -> dict:
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    try:
        env["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every OS
        pass
    return env


def _load_data(settings: dict, device: torch.device, root) -> tuple[torch.Tensor, torch.Tensor]:
    train, _ = load_mnist("train", root=root)
    test, _ = load_mnist("test", root=root)
    if settings["limit_train"]:
        train = train[: settings["limit_train"]]
    if settings["limit_test"]:
        test = test[: settings["limit_test"]]
    # One uint8 tensor each, [N, 1, 28, 28], on the device; binarised batch by batch.
    return train.unsqueeze(1).to(device), test.unsqueeze(1).to(device)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.out)
    device = cli.device_and_threads(parser, args)

    if args.resume and args.overwrite:
        parser.error("--resume continues the run at --out and --overwrite replaces it: give one of them")
    if args.resume:
        if not out.exists():
            parser.error(f"--resume: there is no checkpoint at {out} to resume from")
        try:
            model, state = load_checkpoint(out, map_location=device)
        except (CheckpointError, CheckpointNotFoundError) as error:
            print(f"error: cannot resume: {error}", file=sys.stderr)
            return 2
        if "settings" not in state:
            print(f"error: cannot resume: {out} holds a model but no training state", file=sys.stderr)
            return 2
        settings = state["settings"]
        start_epoch = state["epoch"]
        metrics = json.loads(metrics_path(out).read_text()) if metrics_path(out).exists() else None
        if metrics is None:
            print(f"error: cannot resume: the metrics file {metrics_path(out)} is missing", file=sys.stderr)
            return 2
        metrics["epochs"] = metrics["epochs"][:start_epoch]
        metrics.setdefault("resumed", []).append({"at_epoch": start_epoch, "command": _command(argv)})
        if start_epoch >= settings["epochs"]:
            print(f"{out} already finished its {settings['epochs']} epochs; nothing to do")
            return 0
    else:
        if (out.exists() or metrics_path(out).exists()) and not args.overwrite:
            parser.error(
                f"{out} already holds a run (checkpoint or metrics): pass --resume to continue it, "
                "--overwrite to start afresh and replace it, or choose another --out"
            )
        if args.lr_final is None:
            args.lr_final = args.lr
        if args.schedule == "time" and args.max_minutes is None:
            parser.error("--schedule time needs --max-minutes (the budget the learning rate decays over)")
        settings = {k: getattr(args, k) for k in SETTINGS}
        settings["channels"] = list(settings["channels"])
        start_epoch = 0
        state = None
        torch.manual_seed(settings["seed"])
        model = ConvVAE(
            latent_dim=settings["latent_dim"], likelihood=settings["likelihood"],
            channels=tuple(settings["channels"]), hidden_dim=settings["hidden_dim"],
        ).to(device)
        metrics = {
            "command": _command(argv),
            "settings": settings,
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "environment": _environment(device),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "protocol": "dynamic binarisation for training; test ELBO on one fixed binarisation (test_seed)",
            "epochs": [],
        }

    train, test = _load_data(settings, device, args.data)
    run = TrainingState(adam(model, lr=settings["lr"]), torch.Generator().manual_seed(settings["seed"]), start_epoch)
    if state is not None:
        run.optimizer.load_state_dict(state["optimizer"])
        run.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        run.training_seconds = state.get("training_seconds", 0.0)
        run.wall_seconds = state.get("wall_seconds", run.training_seconds)
    budget = args.max_minutes if args.max_minutes is not None else settings.get("max_minutes")

    def save(row: dict, run: TrainingState) -> None:
        """After every epoch: the checkpoint, then the metrics row, then one line of output."""
        save_checkpoint(
            out, model,
            settings=settings, epoch=run.epoch, optimizer=run.optimizer.state_dict(),
            generator=run.generator.get_state(), torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            training_seconds=run.training_seconds, wall_seconds=run.wall_seconds,
        )
        metrics["epochs"].append(row)
        metrics["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        cli.write_json_atomic(metrics_path(out), metrics)
        print(
            f"epoch {row['epoch']:3d}  train ELBO {row['train_elbo']:8.2f}  test ELBO {row['test_elbo']:8.2f}  "
            f"KL {row['test_complexity']:6.2f}  beta {row['kl_weight']:.2f}  lr {row['lr']:.2e}  "
            f"{row['seconds']:5.1f} s ({row['images_per_second']:,.0f} img/s)",
            flush=True,
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"training ConvVAE (d={settings['latent_dim']}, {sum(p.numel() for p in model.parameters()):,} parameters) "
        f"on {len(train):,} images, epochs {start_epoch + 1}..{settings['epochs']}, device {device}, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    try:
        fit(
            model, train, test, epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
            seed=settings["seed"], transform=binarize_batch, progress=False if args.no_progress else "images",
            lr_final=settings["lr_final"], schedule=settings.get("schedule", "epochs"), max_minutes=budget,
            warmup_epochs=settings["warmup_epochs"], test_seed=settings["test_seed"], state=run, on_epoch=save,
        )
    except NonFiniteLossError as error:
        epoch = run.epoch + 1
        kept = f"the checkpoint of epoch {run.epoch} is kept at {out}" if run.epoch else "no checkpoint was written"
        print(f"error: training stopped in epoch {epoch}: {error}\n{kept}.", file=sys.stderr)
        return EXIT_NON_FINITE
    if run.epoch < settings["epochs"]:
        print(f"stopping after epoch {run.epoch}: {run.wall_seconds / 60:.1f} min of training; another epoch would pass "
              f"--max-minutes {budget}; --resume continues the run", flush=True)
    return 0


def _command(argv) -> str:
    words = sys.argv[1:] if argv is None else list(argv)
    return "python -m vi_lib.mnist.train " + " ".join(shlex.quote(w) for w in words)


if __name__ == "__main__":
    sys.exit(main())
