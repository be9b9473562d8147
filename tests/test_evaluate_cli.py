"""python -m vi_lib.mnist.evaluate under bad input and faults: one message, a documented exit status, no traceback."""

import errno
import json

import pytest
import torch

from vi_lib.mnist import cli, evaluate
from vi_lib.mnist.checkpoints import save_checkpoint
from vi_lib.mnist.data import mnist_root
from vi_lib.models import ConvVAE

needs_mnist = pytest.mark.skipif(not any(mnist_root().glob("t10k-images-idx3-ubyte*")),
                                 reason="MNIST files not found: set VI_LIB_DATA")


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "run.pt", ConvVAE(latent_dim=2, channels=(2, 2), hidden_dim=8), epoch=1)


def _run(capsys, *argv) -> tuple[int, str]:
    code = evaluate.main([*map(str, argv), "--no-progress"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_missing_mnist_is_a_message_not_a_traceback(checkpoint, tmp_path, capsys, monkeypatch):
    from vi_lib.mnist import data

    def offline(url, timeout):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_fetch", offline)
    code, err = _run(capsys, checkpoint, "--data", tmp_path / "empty", "--limit", 5, "-k", 2)
    assert code == cli.EXIT_USAGE and "error: MNIST file(s)" in err and "VI_LIB_DATA" in err


@needs_mnist
def test_an_output_that_is_a_folder_is_refused_before_any_work(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(evaluate, "elbo_and_log_likelihood", lambda *a, **k: pytest.fail("evaluated anyway"))
    for bad, says in ((tmp_path, "is a folder"), (checkpoint / "eval.json", "is a file, not a folder")):
        code, err = _run(capsys, checkpoint, "--output", bad)
        assert code == cli.EXIT_USAGE and says in err


@needs_mnist
def test_a_full_disk_is_an_environment_error_and_leaves_no_tmp_file(checkpoint, tmp_path, capsys, monkeypatch):
    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(cli.os, "replace", disk_full)
    code, err = _run(capsys, checkpoint, "--limit", 5, "-k", 2, "--output", tmp_path / "eval.json")
    assert code == cli.EXIT_ENVIRONMENT and "No space left on device" in err and "Free some disk space" in err
    assert list(tmp_path.glob("*.tmp")) == [] and not (tmp_path / "eval.json").exists()


@needs_mnist
def test_ctrl_c_is_exit_130_with_a_message(checkpoint, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "elbo_and_log_likelihood", interrupted)
    code, err = _run(capsys, checkpoint, "--limit", 5, "-k", 2)
    assert code == cli.EXIT_INTERRUPTED and "interrupted" in err


def test_a_damaged_checkpoint_is_refused(tmp_path, capsys):
    """Before: 400 flipped bytes in the weights loaded, and evaluate reported a wrong ELBO with exit 0."""
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "run.pt", ConvVAE(latent_dim=32), epoch=1)
    data = bytearray(path.read_bytes())
    for i in torch.randint(len(data) // 4, 3 * len(data) // 4, (400,), generator=torch.Generator().manual_seed(0)).tolist():
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    code, err = _run(capsys, path, "--limit", 5, "-k", 2)
    assert code == cli.EXIT_USAGE and "is damaged" in err


def test_combining_something_that_is_not_a_report_is_refused(tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"checkpoint": "run.pt", ')
    code, err = _run(capsys, "--combine", other, other)
    assert code == cli.EXIT_USAGE and "is not a report" in err and "lacks checkpoint" in err
    code, err = _run(capsys, "--combine", truncated, other)
    assert code == cli.EXIT_USAGE and "cannot read a report" in err
