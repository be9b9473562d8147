"""What chapter 8's two command lines share: the CPU's thread policy, flag types, device, JSON files.

Import this module before torch (``python -m vi_lib.mnist.train`` and ``python -m
vi_lib.mnist.evaluate`` do, and so does ``benchmarks/mnist_benchmark.py``): on a CPU shared with
other jobs, OpenMP threads that spin while they wait for each other collapse throughput
(measured on our 2-core machine under load: 70 images/s with spinning threads, about 1,000 with
sleeping ones), and ``OMP_WAIT_POLICY=PASSIVE`` only takes effect if set before torch loads.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from vi_lib.training import pick_device  # noqa: E402

__all__ = [
    "EXIT_OK", "EXIT_USAGE", "EXIT_NON_FINITE", "EXIT_ENVIRONMENT", "EXIT_INTERRUPTED", "UserError", "fail",
    "positive_int", "non_negative_int", "positive_float", "device_and_threads", "write_json_atomic",
    "check_writable_file", "environment_error",
]

#: Exit statuses of both command lines (the README lists them).
EXIT_OK = 0  # done
EXIT_USAGE = 2  # the user's mistake: a bad flag, a missing, damaged or foreign file, conflicting --resume flags
EXIT_NON_FINITE = 3  # training diverged (NaN or infinite ELBO); the last good checkpoint is kept
EXIT_ENVIRONMENT = 4  # the machine refused: disk full, no permission, a read or write failed
EXIT_INTERRUPTED = 130  # interrupted (Ctrl-C / SIGINT); the last checkpoint is kept, --resume continues


class UserError(Exception):
    """A mistake the user can fix; the command line prints ``error: <message>`` and exits ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print ``error: message`` (one paragraph, no traceback) on stderr and return ``code``."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def _flag_type(convert, ok, wanted: str):
    """An argparse ``type``: ``convert`` the text, then require ``ok(value)``; errors say ``wanted``."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        return value

    return parse


positive_int = _flag_type(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _flag_type(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _flag_type(float, lambda v: v > 0 and math.isfinite(v), "a positive finite number")


def device_and_threads(parser: argparse.ArgumentParser, args) -> torch.device:
    """The device of ``--device`` (a parser error if unavailable); applies ``--threads``."""
    try:
        device = pick_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    if args.threads:
        torch.set_num_threads(args.threads)
    return device


def write_json_atomic(path: Path, data) -> None:
    """Write JSON to ``path`` via a temporary file and a rename (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, path)
    except BaseException:  # a full disk, a directory in the way, an interrupt: no stray .tmp file
        tmp.unlink(missing_ok=True)
        raise


def check_writable_file(flag: str, path, example: str = "out.json") -> Path:
    """Before any work: a :class:`UserError` if ``path`` (given as ``flag``) is a folder or under a file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name inside it, e.g. {path / example}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{flag} {path}: {parent} is a file, not a folder")
    return path


def environment_error(error: OSError, next_step: str = "Then run the command again.") -> int:
    """The message and exit status for an operating-system failure (disk full, no permission, ...)."""
    where = f" ({error.filename})" if error.filename else ""
    return fail(f"a read or write failed: {error.strerror or error}{where}. Free some disk space, fix the "
                f"permissions or choose another path. {next_step}", EXIT_ENVIRONMENT)
