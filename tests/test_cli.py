"""The command-line contract of ``python -m vi_lib.mnist.train`` and ``python -m vi_lib.mnist.evaluate``.

Everything runs on tiny subsets of MNIST (``--limit-train``, ``--limit-test``, ``--limit``), so
the whole file takes seconds; the real run is measured by benchmarks/mnist_benchmark.py.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from vi_lib.mnist import evaluate, train
from vi_lib.mnist.data import MNISTNotFoundError, load_mnist
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
