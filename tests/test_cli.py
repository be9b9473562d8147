"""The command-line contract of ``python -m vi_lib.mnist.train`` and ``python -m vi_lib.mnist.evaluate``.

Everything runs on tiny subsets of MNIST (``--limit-train``, ``--limit-test``, ``--limit``), so
the whole file takes seconds; the real run is measured by benchmarks/mnist_benchmark.py.
"""

import errno
import json
import os
import subprocess
import sys

import pytest
import torch

from vi_lib.mnist import cli, evaluate, train
from vi_lib.mnist.data import MNISTCorruptError, MNISTNotFoundError, load_mnist
from vi_lib.mnist.checkpoints import load_checkpoint
from vi_lib.models import ConvVAE

try:
    load_mnist("test", download=False)
    HAVE_MNIST = True
except MNISTNotFoundError:
    HAVE_MNIST = False

needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="MNIST files not found (set VI_LIB_DATA)")

TINY = ["--limit-train", "256", "--limit-test", "64", "--batch-size", "64", "--latent-dim", "4",
        "--hidden-dim", "16", "--channels", "4", "8", "--no-progress"]


def _weights(path):
    model, state = load_checkpoint(path)
    return [p.clone() for p in model.state_dict().values()], state


@needs_mnist
def test_train_writes_a_checkpoint_and_per_epoch_metrics(tmp_path, capsys):
    out = tmp_path / "run.pt"
    assert train.main(["--out", str(out), "--epochs", "2", "--warmup-epochs", "2", "--lr-final", "5e-4", *TINY]) == 0
    model, state = load_checkpoint(out)
    assert isinstance(model, ConvVAE) and model.latent_dim == 4 and state["epoch"] == 2
    metrics = json.loads(train.metrics_path(out).read_text())
    assert train.metrics_path(out).name == "run.metrics.json"
    assert [row["epoch"] for row in metrics["epochs"]] == [1, 2]
    for row in metrics["epochs"]:
        assert {"train_elbo", "test_elbo", "seconds"} <= set(row)
        assert row["train_elbo"] < 0 and row["test_elbo"] < 0 and row["seconds"] > 0
    assert [row["kl_weight"] for row in metrics["epochs"]] == [0.5, 1.0]
    assert [row["lr"] for row in metrics["epochs"]] == pytest.approx([1e-3, 5e-4])
    assert metrics["command"].startswith("python -m vi_lib.mnist.train --out")
    assert metrics["settings"]["limit_train"] == 256
    assert "test ELBO" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.metrics.json", "run.pt"]


@needs_mnist
def test_a_new_run_never_replaces_a_saved_one_unless_asked(tmp_path, capsys):
    out = tmp_path / "run.pt"
    assert train.main(["--out", str(out), "--epochs", "1", *TINY]) == 0
    saved = out.read_bytes(), train.metrics_path(out).read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--out", str(out), "--epochs", "1", "--seed", "1", *TINY])
    assert exit_info.value.code == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out.read_bytes(), train.metrics_path(out).read_bytes()) == saved  # untouched
    assert train.main(["--out", str(out), "--epochs", "1", "--seed", "1", "--overwrite", *TINY]) == 0
    assert out.read_bytes() != saved[0]
    assert json.loads(train.metrics_path(out).read_text())["settings"]["seed"] == 1


@needs_mnist
def test_resume_gives_the_same_weights_as_one_uninterrupted_run(tmp_path):
    straight, interrupted = tmp_path / "straight.pt", tmp_path / "interrupted.pt"
    args = ["--epochs", "2", "--lr-final", "3e-4", "--warmup-epochs", "2", *TINY]
    assert train.main(["--out", str(straight), *args]) == 0
    # A budget too small for a second epoch stops the run after epoch 1, as an interruption would.
    assert train.main(["--out", str(interrupted), *args, "--max-minutes", "1e-9"]) == 0
    assert load_checkpoint(interrupted)[1]["epoch"] == 1
    torch.manual_seed(12345)  # resuming must not depend on the state of the global RNG
    assert train.main(["--out", str(interrupted), "--resume", "--max-minutes", "1000", "--no-progress"]) == 0
    (a, state_a), (b, state_b) = _weights(straight), _weights(interrupted)
    assert state_b["epoch"] == 2
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    rows_a = json.loads(train.metrics_path(straight).read_text())["epochs"]
    rows_b = json.loads(train.metrics_path(interrupted).read_text())["epochs"]
    assert [r["train_elbo"] for r in rows_a] == [r["train_elbo"] for r in rows_b]
    assert [r["test_elbo"] for r in rows_a] == [r["test_elbo"] for r in rows_b]
    # Resuming a finished run does nothing.
    assert train.main(["--out", str(straight), "--resume", "--no-progress"]) == 0


@needs_mnist
def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run.pt"
    real = ConvVAE.elbo_terms
    calls = {"n": 0}

    def blows_up_in_epoch_2(self, x, num_samples=1, analytic_kl=True):
        terms = real(self, x, num_samples, analytic_kl)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 6:  # 4 batches per epoch: the second batch of epoch 2
                return type(terms)(terms.accuracy * float("nan"), terms.complexity)
        return terms

    monkeypatch.setattr(ConvVAE, "elbo_terms", blows_up_in_epoch_2)
    assert train.main(["--out", str(out), "--epochs", "3", *TINY]) == train.EXIT_NON_FINITE
    err = capsys.readouterr().err
    assert "training stopped in epoch 2" in err and "ELBO became nan" in err
    assert f"checkpoint of epoch 1 is kept at {out}" in err
    model, state = load_checkpoint(out)
    assert state["epoch"] == 1 and all(torch.isfinite(p).all() for p in model.parameters())
    assert len(json.loads(train.metrics_path(out).read_text())["epochs"]) == 1


@needs_mnist
def test_bad_checkpoints_give_clear_errors(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert evaluate.main([str(bad), "--limit", "2", "--no-progress"]) == 2
    assert "not a readable vi_lib checkpoint" in capsys.readouterr().err
    assert train.main(["--out", str(bad), "--resume", "--no-progress"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert evaluate.main([str(tmp_path / "missing.pt"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--out", "x.pt", "--epochs", "0"], "positive integer"),
        (["--out", "x.pt", "--lr", "-1"], "positive"),
        (["--out", "x.pt", "--lr", "nan"], "positive finite"),
        (["--out", "x.pt", "--batch-size", "ten"], "positive integer"),
        (["--out", "x.pt", "--likelihood", "poisson"], "invalid choice"),
        (["--out", "x.pt", "--device", "tpu-of-dreams"], "device"),
        (["--out", "x.pt", "--schedule", "time"], "--max-minutes"),
        (["--epochs", "3"], "--out"),
        (["--out", "nowhere/x.pt", "--resume"], "no checkpoint"),
        (["--out", "x.pt", "--resume", "--overwrite"], "give one of them"),
    ],
)
def test_train_rejects_bad_flags(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def _tmp_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _main_interrupted(argv):
    """``train.main(argv)``, failing the test (not ending pytest) if a KeyboardInterrupt escapes it."""
    try:
        return train.main(argv)
    except KeyboardInterrupt:
        pytest.fail("a KeyboardInterrupt escaped train.main: Ctrl-C must end in a message and exit status 130")


def _interrupt_on_call(monkeypatch, n):
    """Make the ``n``-th training batch's ELBO raise KeyboardInterrupt, as Ctrl-C would (4 batches an epoch)."""
    real = ConvVAE.elbo_terms
    calls = {"n": 0}

    def interrupted(self, x, num_samples=1, analytic_kl=True):
        if self.training:
            calls["n"] += 1
            if calls["n"] == n:
                raise KeyboardInterrupt
        return real(self, x, num_samples, analytic_kl)

    monkeypatch.setattr(ConvVAE, "elbo_terms", interrupted)


@needs_mnist
def test_ctrl_c_keeps_the_last_checkpoint_and_says_how_to_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run.pt"
    _interrupt_on_call(monkeypatch, 6)  # the second batch of epoch 2
    assert _main_interrupted(["--out", str(out), "--epochs", "3", *TINY]) == cli.EXIT_INTERRUPTED == 130
    err = capsys.readouterr().err
    assert "interrupted in epoch 2" in err and f"checkpoint of epoch 1, the last finished one, is kept at {out}" in err
    assert "--resume continues" in err
    assert load_checkpoint(out)[1]["epoch"] == 1 and _tmp_files(tmp_path) == []
    monkeypatch.undo()
    assert train.main(["--out", str(out), "--resume", "--no-progress"]) == 0
    assert [r["epoch"] for r in json.loads(train.metrics_path(out).read_text())["epochs"]] == [1, 2, 3]


@needs_mnist
def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_saved(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run.pt"
    _interrupt_on_call(monkeypatch, 1)
    assert _main_interrupted(["--out", str(out), "--epochs", "2", *TINY]) == 130
    assert "interrupted in epoch 1, before this run saved a checkpoint" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@needs_mnist
def test_an_interrupt_between_checkpoint_and_metrics_loses_no_row(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run.pt"
    real = cli.write_json_atomic
    calls = {"n": 0}

    def interrupted_mid_write(path, data):
        calls["n"] += 1
        if calls["n"] == 2:  # epoch 2's metrics: the checkpoint of epoch 2 is already written
            path.with_name(path.name + ".tmp").write_text('{"epochs": [')
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(cli, "write_json_atomic", interrupted_mid_write)
    assert _main_interrupted(["--out", str(out), "--epochs", "3", *TINY]) == 130
    assert "checkpoint of epoch 2" in capsys.readouterr().err
    assert _tmp_files(tmp_path) == []
    assert len(json.loads(train.metrics_path(out).read_text())["epochs"]) == 1  # the file is behind...
    assert load_checkpoint(out)[1]["epoch"] == 2
    monkeypatch.undo()
    assert train.main(["--out", str(out), "--resume", "--no-progress"]) == 0
    assert "had 1 epoch rows, the checkpoint 2" in capsys.readouterr().out  # ...and restored from the checkpoint
    rows = json.loads(train.metrics_path(out).read_text())["epochs"]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert load_checkpoint(out)[1]["metrics"]["epochs"] == rows


@needs_mnist
@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_resume_restores_a_damaged_or_missing_metrics_file_from_the_checkpoint(damage, tmp_path, capsys):
    out = tmp_path / "run.pt"
    assert train.main(["--out", str(out), "--epochs", "2", *TINY, "--max-minutes", "1e-9"]) == 0
    metrics = train.metrics_path(out)
    saved_rows = json.loads(metrics.read_text())["epochs"]
    if damage == "truncated":
        metrics.write_text(metrics.read_text()[:40])
    elif damage == "garbage":
        metrics.write_bytes(b"\x00\xff not json")
    else:
        metrics.unlink()
    capsys.readouterr()
    assert train.main(["--out", str(out), "--resume", "--max-minutes", "1000", "--no-progress"]) == 0
    assert "restored its 1 epoch rows from the checkpoint" in capsys.readouterr().out
    rows = json.loads(metrics.read_text())["epochs"]
    assert rows[:1] == saved_rows and [r["epoch"] for r in rows] == [1, 2]


@needs_mnist
def test_resume_refuses_flags_that_would_change_the_run(tmp_path, capsys):
    out = tmp_path / "run.pt"
    assert train.main(["--out", str(out), "--epochs", "2", *TINY]) == 0
    saved = out.read_bytes()
    capsys.readouterr()
    assert train.main(["--out", str(out), "--resume", "--lr", "0.01", "--latent-dim", "8", "--channels", "4", "16",
                       "--seed", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--lr 0.01 (saved: 0.001)" in err and "--latent-dim 8 (saved: 4)" in err
    assert "--channels 4 16 (saved: 4 8)" in err and "--seed" not in err  # an unchanged value is no conflict
    assert train.main(["--out", str(out), "--resume", "--epochs", "1", "--no-progress"]) == 2
    assert "not shortened" in capsys.readouterr().err
    assert train.main(["--out", str(out), "--resume", "--max-minutes", "5", "--no-progress"]) == 2
    assert "no time budget" in capsys.readouterr().err
    assert out.read_bytes() == saved
    # Flags that only say how to run (device, threads, data, progress) are fine.
    assert train.main(["--out", str(out), "--resume", "--device", "cpu", "--threads", "1", "--no-progress"]) == 0
    assert "already finished its 2 epochs" in capsys.readouterr().out


@needs_mnist
def test_resume_extends_a_finished_run(tmp_path, capsys):
    out, straight = tmp_path / "run.pt", tmp_path / "straight.pt"
    assert train.main(["--out", str(out), "--epochs", "1", *TINY]) == 0
    capsys.readouterr()
    assert train.main(["--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert "extending the run: --epochs 1 -> 2" in capsys.readouterr().out
    model, state = load_checkpoint(out)
    assert state["epoch"] == 2 and state["settings"]["epochs"] == 2
    metrics = json.loads(train.metrics_path(out).read_text())
    assert [r["epoch"] for r in metrics["epochs"]] == [1, 2] and metrics["settings"]["epochs"] == 2
    assert metrics["resumed"][-1]["extended"] == ["--epochs 1 -> 2"]
    # With a constant learning rate, 1 epoch extended to 2 is the same run as 2 epochs straight.
    assert train.main(["--out", str(straight), "--epochs", "2", *TINY]) == 0
    assert all(torch.equal(a, b) for a, b in zip(_weights(out)[0], _weights(straight)[0]))


@needs_mnist
def test_out_that_is_a_folder_is_refused_before_training(tmp_path, capsys):
    folder = tmp_path / "runs"
    folder.mkdir()
    assert train.main(["--out", str(folder), "--epochs", "1", *TINY]) == 2
    captured = capsys.readouterr()
    assert f"--out {folder} is a folder" in captured.err and "training ConvVAE" not in captured.out
    assert train.main(["--out", str(folder), "--resume", "--no-progress"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_unwritable_out_is_refused_before_training(tmp_path, monkeypatch, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert train.main(["--out", str(a_file / "run.pt"), "--epochs", "1", *TINY]) == 2
    assert f"{a_file} is a file, not a folder" in capsys.readouterr().err

    def no_permission(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(train, "open", no_permission, raising=False)  # root ignores chmod; this does not
    assert train.main(["--out", str(tmp_path / "run.pt"), "--epochs", "1", *TINY]) == cli.EXIT_ENVIRONMENT == 4
    err = capsys.readouterr().err
    assert f"cannot write the checkpoint in {tmp_path}: Permission denied" in err and "training" not in err


@needs_mnist
@pytest.mark.parametrize("failing_call, kept", [(1, "Nothing of this run was saved"),
                                                (3, "The checkpoint of epoch 1 at")])
def test_a_full_disk_ends_with_a_message_and_keeps_the_last_checkpoint(failing_call, kept, tmp_path, monkeypatch,
                                                                       capsys):
    out = tmp_path / "run.pt"
    real = os.replace
    calls = {"n": 0}

    def disk_full(src, dst):
        calls["n"] += 1  # two renames an epoch: the checkpoint's, then the metrics'
        if calls["n"] >= failing_call:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(src, dst)

    monkeypatch.setattr(os, "replace", disk_full)
    assert train.main(["--out", str(out), "--epochs", "3", *TINY]) == 4
    err = capsys.readouterr().err
    assert "No space left on device" in err and kept in err and "Free some disk space" in err
    assert _tmp_files(tmp_path) == []
    if failing_call > 1:
        assert load_checkpoint(out)[1]["epoch"] == 1


@pytest.mark.parametrize("error", [MNISTNotFoundError("the MNIST files are not in /nowhere: put them there"),
                                   MNISTCorruptError("/x/train-images-idx3-ubyte.gz is truncated: delete it")])
def test_mnist_missing_or_damaged_is_a_message(error, tmp_path, monkeypatch, capsys):
    def load_mnist(*args, **kwargs):
        raise error

    monkeypatch.setattr(train, "load_mnist", load_mnist)
    assert train.main(["--out", str(tmp_path / "run.pt"), "--epochs", "1", *TINY]) == 2
    assert capsys.readouterr().err == f"error: {error}\n"
    assert list(tmp_path.iterdir()) == []


@needs_mnist
def test_divergence_is_the_documented_message_and_exit_status(tmp_path, capsys):
    out = tmp_path / "run.pt"
    assert train.main(["--out", str(out), "--epochs", "2", "--lr", "1e6", *TINY]) == cli.EXIT_NON_FINITE == 3
    err = capsys.readouterr().err
    assert "training stopped in epoch" in err and "smaller --lr" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["x.pt", "--num-samples", "0"], "positive integer"),
        (["x.pt", "--limit", "-5"], "positive integer"),
        (["x.pt", "--seed", "-1"], ">= 0"),
        ([], "checkpoint"),
    ],
)
def test_evaluate_rejects_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@needs_mnist
def test_evaluate_prints_the_promised_json(tmp_path, capsys):
    out = tmp_path / "run.pt"
    assert train.main(["--out", str(out), "--epochs", "1", *TINY]) == 0
    capsys.readouterr()
    report_file = tmp_path / "eval.json"
    assert evaluate.main([str(out), "--num-samples", "50", "--limit", "20", "--seed", "3",
                          "--chunk-samples", "64", "--output", str(report_file), "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(report_file.read_text())
    assert report["num_images"] == 20 and report["num_samples"] == 50 and report["binarization_seed"] == 3
    assert "dynamic binarisation" in report["protocol"]
    for key in ("test_elbo", "log_px"):
        assert set(report[key]) == {"mean", "stderr", "n"} and report[key]["stderr"] > 0
    # ELBO <= log p(x) on average (this barely trained model has q(z|x) close to p(z): a tiny gap)
    assert report["test_elbo"]["mean"] < report["log_px"]["mean"] + 0.5 and report["log_px"]["mean"] < 0
    assert report["nll"] == -report["log_px"]["mean"]
    assert report["peak_resident_memory_mb"] > 0
    # The same seed gives the same binarised images and samples: the same numbers.
    assert evaluate.main([str(out), "--num-samples", "50", "--limit", "20", "--seed", "3",
                          "--chunk-samples", "64", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["log_px"] == report["log_px"]


@needs_mnist
def test_the_modules_run_as_scripts(tmp_path):
    out = tmp_path / "run.pt"
    env = dict(os.environ, PYTHONWARNINGS="error::DeprecationWarning")
    done = subprocess.run([sys.executable, "-m", "vi_lib.mnist.train", "--out", str(out), "--epochs", "1", *TINY],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "vi_lib.mnist.evaluate", str(out), "-k", "5", "--limit", "3", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["num_images"] == 3


@needs_mnist
def test_evaluation_in_pieces_combines_into_one_report(tmp_path, capsys):
    out = tmp_path / "run.pt"
    assert train.main(["--out", str(out), "--epochs", "1", *TINY]) == 0
    pieces = []
    for offset, limit in ((0, 6), (6, 9)):
        pieces.append(tmp_path / f"piece{offset}.json")
        assert evaluate.main([str(out), "-k", "8", "--offset", str(offset), "--limit", str(limit),
                              "--output", str(pieces[-1]), "--no-progress"]) == 0
    capsys.readouterr()
    assert evaluate.main(["--combine", *map(str, pieces)]) == 0
    combined = json.loads(capsys.readouterr().out)
    a, b = (json.loads(p.read_text()) for p in pieces)
    assert b["images"] == [6, 15] and combined["num_images"] == 15 and combined["pieces"] == [[0, 6], [6, 15]]
    assert combined["log_px"]["mean"] == pytest.approx((6 * a["log_px"]["mean"] + 9 * b["log_px"]["mean"]) / 15)
    assert combined["nll"] == -combined["log_px"]["mean"]
    assert evaluate.main(["--combine", str(pieces[0]), str(pieces[0])]) == 2
    assert "overlap" in capsys.readouterr().err
