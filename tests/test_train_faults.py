"""Fault injection: ``python -m vi_lib.mnist.train`` killed (SIGINT, SIGKILL) at random moments, resumed each time.

After every kill the checkpoint loads (or none was written yet), the metrics file agrees with the
checkpoint's copy of the metrics row for row (at most the row of the epoch being saved missing),
no temporary files accumulate, and the run, resumed until it finishes, ends with exactly the
weights of an uninterrupted run.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from vi_lib.mnist.checkpoints import load_checkpoint
from vi_lib.mnist.data import MNISTNotFoundError, load_mnist
from vi_lib.mnist.train import metrics_path

try:
    load_mnist("test", download=False)
    HAVE_MNIST = True
except MNISTNotFoundError:
    HAVE_MNIST = False

FLAGS = ["--limit-train", "512", "--limit-test", "256", "--epochs", "6", "--batch-size", "128", "--latent-dim", "2",
         "--channels", "4", "8", "--hidden-dim", "16", "--no-progress", "--threads", "1"]
KILLS = 6
TMP_NAMES = {"run.pt.tmp", "run.metrics.json.tmp"}


def _command(out, resume: bool) -> list[str]:
    data = ["--data", os.environ["VI_LIB_DATA"]] if os.environ.get("VI_LIB_DATA") else []
    return [sys.executable, "-m", "vi_lib.mnist.train", "--out", str(out), *FLAGS, *data,
            *(["--resume"] if resume else [])]


def _env():
    return dict(os.environ, OMP_WAIT_POLICY="PASSIVE")


def _run_and_kill(out, sig, moment: float, epoch_seconds: float) -> subprocess.CompletedProcess:
    """Start (or resume) the run and send ``sig`` ``moment`` epochs after training starts; wait for the end.

    ``moment`` = whole epochs to wait for (their lines in the output) + a fraction of an epoch's time
    (as the last epoch of this process took, or ``epoch_seconds`` before the first), so the signal
    lands at a random point of training, evaluation or saving whatever the machine's speed.
    """
    process = subprocess.Popen(_command(out, resume=out.exists()), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=_env())
    whole, lines, seen, last = int(moment), [], 0, None
    for line in process.stdout:  # interpreter start-up (before "training ConvVAE") is not under test
        lines.append(line)
        now = time.perf_counter()
        if line.startswith("epoch") and last is not None:
            epoch_seconds, seen = now - last, seen + 1
        last = now if line.startswith(("training ConvVAE", "epoch")) else last
        if last is not None and seen == whole or line.startswith("error"):
            break
    try:
        process.wait(timeout=(moment - whole) * epoch_seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(lines) + stdout, stderr)


def _check_consistent(out) -> int:
    """The run's files after a kill are consistent; returns the checkpoint's epoch (0: none yet)."""
    on_disk = json.loads(metrics_path(out).read_text())["epochs"] if metrics_path(out).exists() else []
    if not out.exists():
        assert on_disk == []
        return 0
    _, state = load_checkpoint(out)  # never a half-written checkpoint
    rows = state["metrics"]["epochs"]
    assert [r["epoch"] for r in rows] == list(range(1, state["epoch"] + 1))
    assert on_disk == rows[: len(on_disk)] and len(on_disk) >= state["epoch"] - 1, "metrics disagree with checkpoint"
    return state["epoch"]


@pytest.mark.skipif(not HAVE_MNIST, reason="MNIST files not found (set VI_LIB_DATA)")
def test_training_killed_at_random_moments_and_resumed_ends_like_an_uninterrupted_run(tmp_path):
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    straight_dir.mkdir()
    killed_dir.mkdir()
    straight, out = straight_dir / "run.pt", killed_dir / "run.pt"
    done = subprocess.run(_command(straight, resume=False), capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr

    # Kill at a random moment 0.3 to 2 epochs into each run: the signals land in training, in
    # evaluation and in saving, and the run moves on about 0.8 epoch a kill.
    epoch_seconds = json.loads(metrics_path(straight).read_text())["epochs"][-1]["wall_seconds_total"] / 6
    rng = random.Random(int(os.environ.get("VI_LIB_FAULT_SEED", "13")))  # another seed: other moments
    kills = {signal.SIGINT: 0, signal.SIGKILL: 0}
    history = []  # (signal, exit status, checkpoint epoch after it), shown with pytest -s
    for attempt in range(KILLS):
        sig = (signal.SIGINT, signal.SIGKILL)[attempt % 2]
        result = _run_and_kill(out, sig, rng.uniform(0.3, 2.0), epoch_seconds)
        if result.returncode == 0:  # it finished before the signal came
            break
        kills[sig] += 1
        if sig == signal.SIGINT:
            assert result.returncode == 130, result.stderr
            assert "Traceback" not in result.stderr and result.stderr.startswith("error: interrupted")
            assert "--resume continues" in result.stderr or "before this run saved a checkpoint" in result.stderr
            assert not [p for p in killed_dir.iterdir() if p.name.endswith(".tmp")]
        else:
            assert result.returncode == -signal.SIGKILL
            assert {p.name for p in killed_dir.iterdir() if p.name.endswith(".tmp")} <= TMP_NAMES
        history.append((sig.name, result.returncode, _check_consistent(out)))
    print(history)
    assert kills[signal.SIGINT] >= 2 and kills[signal.SIGKILL] >= 1, history
    assert any(epoch > 0 for *_, epoch in history), history  # some kills hit a run with a checkpoint to resume

    while _check_consistent(out) < 6:  # resume to the end
        done = subprocess.run(_command(out, resume=out.exists()), capture_output=True, text=True, env=_env(),
                              timeout=120)
        assert done.returncode == 0, done.stderr
    assert not [p for p in killed_dir.iterdir() if p.name.endswith(".tmp")]
    (a, _), (b, state_b) = load_checkpoint(straight), load_checkpoint(out)
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    rows = json.loads(metrics_path(out).read_text())["epochs"]
    assert rows == state_b["metrics"]["epochs"]
    straight_rows = json.loads(metrics_path(straight).read_text())["epochs"]
    assert [r["test_elbo"] for r in rows] == [r["test_elbo"] for r in straight_rows]


@pytest.mark.skipif(not HAVE_MNIST, reason="MNIST files not found (set VI_LIB_DATA)")
def test_sigterm_stops_training_like_ctrl_c(tmp_path):
    """A scheduler's SIGTERM: exit 130, the message that --resume continues, the last checkpoint intact."""
    out = tmp_path / "run.pt"
    done = _run_and_kill(out, signal.SIGTERM, 1.5, epoch_seconds=2.0)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "--resume continues" in done.stderr
    assert _check_consistent(out) >= 1
