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
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from vi_lib.training import pick_device  # noqa: E402

__all__ = ["positive_int", "non_negative_int", "positive_float", "device_and_threads", "write_json_atomic"]


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
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
