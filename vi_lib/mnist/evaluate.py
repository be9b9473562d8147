"""Chapter 8's evaluation from the command line: a trained VAE's test ELBO and log p(x) on MNIST.

    python -m vi_lib.mnist.evaluate runs/mnist.pt --num-samples 1000            # all 10,000 test images
    python -m vi_lib.mnist.evaluate runs/mnist.pt --num-samples 5000 --limit 200
    python -m vi_lib.mnist.evaluate runs/mnist.pt --offset 5000 --limit 5000 --output b.json   # in pieces
    python -m vi_lib.mnist.evaluate --combine a.json b.json                                    # then pooled

Prints one JSON object: the test ELBO and the importance-sampled estimate of log p(x) with K
samples from q(z|x) (chapter 6; chapter 8), each as a mean over images with its standard error,
the number of images, the seed of the test set's binarisation and the protocol. Protocol: each
test image is binarised once (pixel ~ Bernoulli(grey level / 255), generator seeded by
``--seed``; the same seed gives the same binary test set as ``python -m vi_lib.mnist.train
--test-seed``), and both numbers are computed on those binary images. The K samples are drawn in
chunks of about ``--chunk-samples`` decoder passes, so memory stays bounded whatever K is.
"""

from __future__ import annotations

from vi_lib.mnist import cli  # first: it sets the CPU's thread policy before torch loads

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

from vi_lib.mnist.checkpoints import CheckpointError, CheckpointNotFoundError, load_checkpoint
from vi_lib.mnist.data import MNISTCorruptError, MNISTNotFoundError, binarize_batch, load_mnist
from vi_lib.mnist.protocol import elbo_and_log_likelihood, mean_and_stderr, pool_mean_and_stderr

__all__ = ["PROTOCOL", "build_parser", "main"]

PROTOCOL = (
    "dynamic binarisation (Burda et al. 2015): each test pixel ~ Bernoulli(grey level / 255), "
    "drawn once per image from a generator with the given seed; log p(x) estimated by importance "
    "sampling with K samples from q(z|x)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vi_lib.mnist.evaluate",
        description="Test ELBO and importance-sampled log p(x) of a VAE checkpoint on binarised MNIST.",
    )
    parser.add_argument("checkpoint", nargs="?", help="a checkpoint written by python -m vi_lib.mnist.train")
    parser.add_argument("--num-samples", "-k", type=cli.positive_int, default=1000, help="K, importance samples per image")
    parser.add_argument("--limit", type=cli.positive_int, default=None, help="only N test images (default: all 10,000)")
    parser.add_argument("--offset", type=cli.non_negative_int, default=0,
                        help="start at this test image (evaluate in pieces, then --combine their JSON files)")
    parser.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                        help="instead of evaluating, pool the reports of disjoint pieces into one")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0, help="seed of the test set's binarisation (and of the samples)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=100, help="images per batch")
    parser.add_argument("--chunk-samples", type=cli.positive_int, default=1000,
                        help="decoder passes at a time (images x samples); bounds the memory")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    parser.add_argument("--threads", type=cli.positive_int, default=None, help="torch CPU threads")
    parser.add_argument("--data", default=None, help="MNIST folder (default: $VI_LIB_DATA or the cache)")
    parser.add_argument("--output", default=None, help="also write the JSON to this file")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a user's mistake or a fault of the machine is one message and an exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.output:
            cli.check_writable_file("--output", args.output)
        return _combine(args) if args.combine else _evaluate(parser, args)
    except cli.UserError as error:
        return cli.fail(str(error), error.code)
    except (CheckpointError, CheckpointNotFoundError, MNISTNotFoundError, MNISTCorruptError) as error:
        return cli.fail(str(error), cli.EXIT_USAGE)
    except KeyboardInterrupt:
        return cli.fail("interrupted; nothing was written (run the command again to evaluate)", cli.EXIT_INTERRUPTED)
    except OSError as error:
        return cli.environment_error(error)


def _evaluate(parser: argparse.ArgumentParser, args) -> int:
    if args.checkpoint is None:
        parser.error("the checkpoint argument is required (or --combine JSON files)")
    device = cli.device_and_threads(parser, args)
    model, state = load_checkpoint(args.checkpoint, map_location=device)
    if getattr(model, "likelihood", None) != "bernoulli":
        return cli.fail("this evaluation is for Bernoulli decoders on binarised MNIST", cli.EXIT_USAGE)

    images, _ = load_mnist("test", root=args.data)
    generator = torch.Generator().manual_seed(args.seed)
    binary = binarize_batch(images.unsqueeze(1), generator)  # all 10,000, so a piece is the same wherever it is cut
    if args.offset >= len(binary):
        parser.error(f"--offset {args.offset} is past the last of the {len(binary)} test images")
    end = len(binary) if args.limit is None else min(len(binary), args.offset + args.limit)
    binary = binary[args.offset : end].to(device)
    torch.manual_seed(args.seed * 100_003 + args.offset)  # the samples of a piece do not depend on the others
    start = time.perf_counter()
    result = elbo_and_log_likelihood(model, binary, args.num_samples, args.batch_size, args.chunk_samples,
                                     progress=not args.no_progress)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    log_px = mean_and_stderr(result["log_px"])
    report = {
        "checkpoint": str(args.checkpoint),
        "checkpoint_epoch": state.get("epoch"),
        "model": {"class": type(model).__name__, "config": model.config(),
                  "num_parameters": sum(p.numel() for p in model.parameters())},
        "num_samples": args.num_samples,
        "num_images": len(binary),
        "images": [args.offset, end],
        "binarization_seed": args.seed,
        "protocol": PROTOCOL,
        "test_elbo": mean_and_stderr(result["elbo"]),
        "log_px": log_px,
        "nll": -log_px["mean"],
        "seconds": round(seconds, 1),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "chunk_samples": args.chunk_samples,
        "batch_size": args.batch_size,
        "peak_resident_memory_mb": round(peak_mb, 1),
    }
    _emit(report, args.output)
    return 0


def _emit(report: dict, output: str | None) -> None:
    text = json.dumps(report, indent=1)
    print(text)
    if output:
        cli.write_json_atomic(Path(output), report)


REPORT_KEYS = ("checkpoint", "checkpoint_epoch", "model", "num_samples", "num_images", "images", "binarization_seed",
               "protocol", "test_elbo", "log_px", "seconds", "device", "torch_threads", "chunk_samples", "batch_size",
               "peak_resident_memory_mb")


def _combine(args) -> int:
    """Pool reports of disjoint pieces of the test set (same checkpoint, K and seed) into one."""
    try:
        reports = [json.loads(Path(f).read_text()) for f in args.combine]
    except (OSError, ValueError) as error:
        return cli.fail(f"cannot read a report to combine: {error}", cli.EXIT_USAGE)
    for name, report in zip(args.combine, reports):
        missing = [k for k in REPORT_KEYS if not isinstance(report, dict) or k not in report]
        if missing:
            return cli.fail(f"{name} is not a report of python -m vi_lib.mnist.evaluate (it lacks {', '.join(missing)}); "
                            "combine only the JSON files that --output wrote", cli.EXIT_USAGE)
    keys = ("checkpoint", "num_samples", "binarization_seed", "model")
    for key in keys:
        if len({json.dumps(r.get(key), sort_keys=True) for r in reports}) != 1:
            return cli.fail(f"the reports differ in {key!r}; only pieces of one evaluation can be combined")
    spans = sorted(tuple(r["images"]) for r in reports)
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
        return cli.fail(f"the pieces overlap: {spans}")
    combined = {k: reports[0][k] for k in ("checkpoint", "checkpoint_epoch", "model", "num_samples", "binarization_seed", "protocol")}
    combined["num_images"] = sum(r["num_images"] for r in reports)
    combined["pieces"] = [list(s) for s in spans]
    for key in ("test_elbo", "log_px"):
        pooled = pool_mean_and_stderr({**r[key], "n": r["num_images"]} for r in reports)
        combined[key] = {"mean": pooled["mean"], "stderr": pooled["stderr"], "n": pooled["n"]}
    combined["nll"] = -combined["log_px"]["mean"]
    combined["seconds"] = round(sum(r["seconds"] for r in reports), 1)
    for key in ("device", "torch_threads", "chunk_samples", "batch_size"):
        combined[key] = reports[0][key]
    combined["peak_resident_memory_mb"] = max(r["peak_resident_memory_mb"] for r in reports)
    _emit(combined, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
