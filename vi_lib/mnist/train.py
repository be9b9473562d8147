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
was under way, and 1 + 1 epochs give the same weights as 2. The checkpoint also holds a copy of
the metrics: it is the authority, and ``--resume`` restores a metrics file that is behind, damaged or
missing from it (and says so).

With ``--resume``, flags that define the run (``--latent-dim``, ``--lr``, ``--seed``, ...) must
equal the saved settings or be left out: a difference is refused, naming each flag and its saved
value. A larger ``--epochs`` or ``--max-minutes`` extends the run, even a finished one; runtime flags
(``--device``, ``--threads``, ``--data``, ``--no-progress``) may change freely.

Exit statuses (:mod:`vi_lib.mnist.cli`): 0 done; 2 a user's mistake (a bad flag, ``--out`` a folder,
a damaged checkpoint, conflicting ``--resume`` flags, MNIST missing or damaged); 3 training
diverged (a NaN or infinite ELBO; the checkpoint of the last good epoch is kept); 4 the machine
refused (disk full, no permission; the last checkpoint is kept); 130 interrupted by Ctrl-C (the
checkpoint of the last finished epoch is kept and ``--resume`` continues). Each ends in one
``error: ...`` paragraph, not a traceback; leftover ``.tmp`` files of an interrupted save are removed.
"""

from __future__ import annotations

from vi_lib.mnist import cli  # first: it sets the CPU's thread policy before torch loads

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import signal
import sys
from pathlib import Path

import torch

from vi_lib.mnist.checkpoints import CheckpointError, CheckpointNotFoundError, load_checkpoint, save_checkpoint
from vi_lib.mnist.data import MNISTCorruptError, MNISTNotFoundError, binarize_batch, load_mnist
from vi_lib.models import ConvVAE
from vi_lib.training import SCHEDULES, NonFiniteLossError, TrainingState, adam, fit

__all__ = ["SETTINGS", "EXIT_NON_FINITE", "metrics_path", "build_parser", "main"]

#: Settings stored in the checkpoint; on --resume they are taken from it.
SETTINGS = (
    "latent_dim", "likelihood", "hidden_dim", "channels", "epochs", "batch_size", "lr", "lr_final",
    "warmup_epochs", "schedule", "max_minutes", "seed", "test_seed", "limit_train", "limit_test",
)
EXIT_NON_FINITE = cli.EXIT_NON_FINITE


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


def _given_flags(argv) -> set[str]:
    """The destinations of the flags the user typed (not those left at their defaults)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(sys.argv[1:] if argv is None else argv)))


def _temporary_files(out: Path) -> list[Path]:
    """The ``.tmp`` files that :func:`save_checkpoint` and :func:`cli.write_json_atomic` write before a rename."""
    return [out.with_name(out.name + ".tmp"), metrics_path(out).with_name(metrics_path(out).name + ".tmp")]


def _remove_temporary_files(out: Path) -> None:
    """Remove what an interrupted save left behind (``<out>.tmp``, ``<metrics>.tmp``)."""
    for tmp in _temporary_files(out):
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # pragma: no cover - a tmp we cannot remove does no harm
            pass


def _check_out(out: Path) -> None:
    """Before any work: ``--out`` and its metrics file must be files we can write (``UserError`` if not)."""
    cli.check_writable_file("--out", out, example="mnist.pt")
    if metrics_path(out).is_dir():
        raise cli.UserError(f"the metrics file of --out {metrics_path(out)} is a folder; remove it or choose another --out")
    probe = _temporary_files(out)[0]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"probe")
        probe.unlink()
    except OSError as error:
        _remove_temporary_files(out)
        raise cli.UserError(
            f"cannot write the checkpoint in {out.parent}: {error.strerror or error}. Choose an --out in a "
            "folder you can write to (with free space)", cli.EXIT_ENVIRONMENT,
        ) from None


def _read_metrics_file(path: Path):
    """The metrics file's content, or ``None`` and a word on why it is unusable (missing, damaged)."""
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        return None, "is missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None, "is truncated or damaged"
    if not isinstance(metrics, dict) or not isinstance(metrics.get("epochs"), list):
        return None, "is not a metrics file (no list of epochs)"
    return metrics, None


def _restore_metrics(out: Path, state: dict) -> tuple[dict, bool]:
    """On --resume: ``(metrics, behind)``, the checkpoint's metrics (the authority) and whether the file lacked them.

    Checkpoints hold the whole metrics record (``state["metrics"]``); one written before they did
    falls back to the metrics file, cut to the checkpoint's epoch.
    """
    epoch = state["epoch"]
    on_disk, problem = _read_metrics_file(metrics_path(out))
    saved = state.get("metrics")
    if saved is None:  # a checkpoint from before metrics were kept in it
        if on_disk is None:
            raise cli.UserError(f"cannot resume: the metrics file {metrics_path(out)} {problem}, and this older "
                                "checkpoint holds no copy of the metrics; start afresh with --overwrite")
        on_disk["epochs"] = on_disk["epochs"][:epoch]
        return on_disk, False
    metrics = dict(saved, epochs=list(saved["epochs"]))
    if on_disk is None:
        print(f"note: the metrics file {metrics_path(out)} {problem}; restored its {epoch} epoch rows "
              "from the checkpoint", flush=True)
    elif on_disk["epochs"] != metrics["epochs"]:
        print(f"note: the metrics file {metrics_path(out)} had {len(on_disk['epochs'])} epoch rows, the checkpoint "
              f"{epoch}; the checkpoint's rows are kept", flush=True)
    return metrics, on_disk is None or on_disk["epochs"] != metrics["epochs"]


#: Settings that define a run: --resume refuses a different value.
RUN_DEFINING = (
    "latent_dim", "likelihood", "hidden_dim", "channels", "batch_size", "lr", "lr_final", "warmup_epochs",
    "schedule", "seed", "test_seed", "limit_train", "limit_test",
)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _resume_settings(args, given: set[str], settings: dict, done: int) -> list[str]:
    """Apply the flags given with --resume to the saved ``settings``; return what was extended.

    Run-defining flags (:data:`RUN_DEFINING`) must equal the saved values; ``--epochs`` and
    ``--max-minutes`` may grow (extend the run), never shrink. Raises ``UserError`` naming each conflict.
    """
    conflicts = []
    for name in RUN_DEFINING:
        if name in given:
            value = list(getattr(args, name)) if name == "channels" else getattr(args, name)
            if value != settings.get(name):
                shown = " ".join(map(str, value)) if name == "channels" else value
                saved = settings.get(name)
                saved = " ".join(map(str, saved)) if isinstance(saved, list) else saved
                conflicts.append(f"{_flag(name)} {shown} (saved: {saved})")
    if conflicts:
        raise cli.UserError(
            "--resume continues the saved run with its own settings, and these flags differ from them: "
            + ", ".join(conflicts) + ". Leave them out to continue the run, or start a new run with them "
            "(another --out, or --overwrite to replace this one)"
        )
    extended = []
    for name in ("epochs", "max_minutes"):
        if name not in given or getattr(args, name) == settings.get(name):
            continue
        new, old = getattr(args, name), settings.get(name)
        if old is None:
            raise cli.UserError(f"{_flag(name)} {new}: the saved run has no time budget, and --resume cannot add "
                                "one (that would shorten the run). Leave it out to continue the run")
        if new < old:
            raise cli.UserError(
                f"{_flag(name)} {new} would shorten the saved run ({_flag(name)} {old}; epochs done: {done}): a run "
                f"can be extended with a larger {_flag(name)}, not shortened. Leave it out to continue the run"
            )
        settings[name] = new
        extended.append(f"{_flag(name)} {old} -> {new}")
    return extended


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return its exit status (``cli.EXIT_*``).

    User mistakes and faults of the machine end in one ``error: ...`` paragraph, never a traceback:
    exit 2 (a bad flag or file, conflicting --resume flags, MNIST missing or damaged), 3 (training
    diverged), 4 (a write failed: disk full, no permission), 130 (Ctrl-C; --resume continues).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.out)
    device = cli.device_and_threads(parser, args)
    if args.resume and args.overwrite:
        parser.error("--resume continues the run at --out and --overwrite replaces it: give one of them")
    progress = {"epoch": None, "saved": 0}  # the epoch under way (None: not training yet), the last one saved
    try:
        return _run(parser, args, _given_flags(argv), argv, device, progress)
    except cli.UserError as error:
        return cli.fail(str(error), error.code)
    except (MNISTNotFoundError, MNISTCorruptError) as error:
        return cli.fail(str(error), cli.EXIT_USAGE)
    except KeyboardInterrupt:
        _remove_temporary_files(out)
        return cli.fail(_interrupted_message(out, progress), cli.EXIT_INTERRUPTED)
    except OSError as error:
        _remove_temporary_files(out)
        kept = (f"The checkpoint of epoch {progress['saved']} at {out} is intact; once fixed, --resume continues."
                if progress["saved"] else "Nothing of this run was saved; once fixed, run the command again.")
        return cli.environment_error(error, kept)


def _interrupted_message(out: Path, progress: dict) -> str:
    """What Ctrl-C stopped and what was kept, for the ``error:`` line."""
    if progress["epoch"] is None:
        where = "before training started"
    elif progress["epoch"] > progress.get("last", progress["epoch"]):
        where = "after the last epoch"
    else:
        where = f"in epoch {progress['epoch']}"
    if progress["saved"]:
        return (f"interrupted {where}; the checkpoint of epoch {progress['saved']}, the last finished one, is kept "
                f"at {out}: python -m vi_lib.mnist.train --out {shlex.quote(str(out))} --resume continues the run")
    return f"interrupted {where}, before this run saved a checkpoint; run the command again to start it"


def _run(parser, args, given: set[str], argv, device: torch.device, progress: dict) -> int:
    """The body of :func:`main` (``progress`` is updated as epochs finish and are saved)."""
    out = Path(args.out)
    if args.resume and not out.exists():
        parser.error(f"--resume: there is no checkpoint at {out} to resume from")
    leftovers = [tmp for tmp in _temporary_files(out) if tmp.is_file()]
    _check_out(out)
    _remove_temporary_files(out)
    if leftovers:
        print(f"note: removed {', '.join(map(str, leftovers))}, left by an earlier run stopped mid-save", flush=True)
    if args.resume:
        try:
            model, state = load_checkpoint(out, map_location=device)
        except (CheckpointError, CheckpointNotFoundError) as error:
            raise cli.UserError(f"cannot resume: {error}") from None
        if "settings" not in state:
            raise cli.UserError(f"cannot resume: {out} holds a model but no training state")
        settings = state["settings"]
        start_epoch = progress["saved"] = state["epoch"]
        extended = _resume_settings(args, given, settings, start_epoch)
        metrics, behind = _restore_metrics(out, state)
        if behind:
            cli.write_json_atomic(metrics_path(out), metrics)
        if extended:
            print(f"extending the run: {', '.join(extended)}", flush=True)
        if start_epoch >= settings["epochs"]:
            print(f"{out} already finished its {settings['epochs']} epochs; nothing to do "
                  "(a larger --epochs extends the run)")
            return cli.EXIT_OK
        metrics["settings"] = settings
        resumed = {"at_epoch": start_epoch, "command": _command(argv)}
        if extended:
            resumed["extended"] = extended
        metrics.setdefault("resumed", []).append(resumed)
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
    budget = settings.get("max_minutes")

    def save(row: dict, run: TrainingState) -> None:
        """After every epoch: the checkpoint (with all metrics rows), then the metrics file, then one line."""
        metrics["epochs"].append(row)
        metrics["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        save_checkpoint(
            out, model,
            settings=settings, epoch=run.epoch, optimizer=run.optimizer.state_dict(),
            generator=run.generator.get_state(), torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            training_seconds=run.training_seconds, wall_seconds=run.wall_seconds,
            metrics=json.loads(json.dumps(metrics)),  # plain types only, as torch.load(weights_only=True) wants
        )
        progress["saved"] = run.epoch
        cli.write_json_atomic(metrics_path(out), metrics)
        progress["epoch"] = run.epoch + 1
        print(
            f"epoch {row['epoch']:3d}  train ELBO {row['train_elbo']:8.2f}  test ELBO {row['test_elbo']:8.2f}  "
            f"KL {row['test_complexity']:6.2f}  beta {row['kl_weight']:.2f}  lr {row['lr']:.2e}  "
            f"{row['seconds']:5.1f} s ({row['images_per_second']:,.0f} img/s)",
            flush=True,
        )

    print(
        f"training ConvVAE (d={settings['latent_dim']}, {sum(p.numel() for p in model.parameters()):,} parameters) "
        f"on {len(train):,} images, epochs {start_epoch + 1}..{settings['epochs']}, device {device}, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    progress["epoch"], progress["last"] = start_epoch + 1, settings["epochs"]
    try:
        fit(
            model, train, test, epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
            seed=settings["seed"], transform=binarize_batch, progress=False if args.no_progress else "images",
            lr_final=settings["lr_final"], schedule=settings.get("schedule", "epochs"), max_minutes=budget,
            warmup_epochs=settings["warmup_epochs"], test_seed=settings["test_seed"], state=run, on_epoch=save,
        )
    except NonFiniteLossError as error:
        kept = (f"the checkpoint of epoch {progress['saved']} is kept at {out}" if progress["saved"]
                else "no checkpoint was written")
        print(f"error: training stopped in epoch {progress['epoch']}: {error}\n{kept}. The learning rate is "
              f"probably too large (--lr {settings['lr']:g}): start again with a smaller --lr (the default is 0.001) "
              "and --overwrite, or with another --out.", file=sys.stderr, flush=True)
        return EXIT_NON_FINITE
    if run.epoch < settings["epochs"]:
        print(f"stopping after epoch {run.epoch}: {run.wall_seconds / 60:.1f} min of training; another epoch would pass "
              f"--max-minutes {budget}; --resume continues the run (with a larger --max-minutes to extend the budget)",
              flush=True)
    return cli.EXIT_OK


def _command(argv) -> str:
    words = sys.argv[1:] if argv is None else list(argv)
    return "python -m vi_lib.mnist.train " + " ".join(shlex.quote(w) for w in words)


def _terminate(signum, frame) -> None:
    """SIGTERM (a job scheduler, ``kill``) stops training like Ctrl-C: the last checkpoint is kept."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    status = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # done: a late Ctrl-C must not turn the exit into a traceback
    sys.exit(status)
