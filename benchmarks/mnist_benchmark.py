"""Chapter 8's MNIST benchmark: speed of the training loop, memory of the evaluation, quality of the run.

    python benchmarks/mnist_benchmark.py                 # speed + memory + the committed results
    python benchmarks/mnist_benchmark.py --full-run      # also redo the 30-minute run (about 1 hour)

What it prints:

1. **Speed.** ``vi_lib.training.train_epoch`` (the loop behind ``python -m vi_lib.mnist.train``, with
   dynamic binarisation, the ELBO through ``vi_lib.estimators`` and its NaN checks), with the model
   and optimiser as vi_lib builds them (``ConvVAE``'s channels-last weights, ``training.adam``'s
   fused Adam), against a plain hand-written PyTorch loop over the *same* ConvVAE architecture,
   batch size and data tensor, with PyTorch's defaults (contiguous weights, ``torch.optim.Adam``):
   encoder, the reparameterisation, decoder, binary cross-entropy and the closed-form KL written
   out, nothing else. All run in this one process, alternating in rounds so that a change in the
   load of a shared machine hits them alike; the ratio library / plain must be >= 1. The plain loop
   is also timed with the library's settings, which isolates what the library's checks and
   ``torch.distributions`` cost, and the library loop once more with ``torch.compile`` (unless
   ``--no-compile``), to see whether compiling pays on this machine.
2. **Memory.** Peak resident memory of ``python -m vi_lib.mnist.evaluate CHECKPOINT --num-samples 5000``
   on ``--memory-images`` test images (the chunked evaluation must stay under 3 GB).
3. **Quality.** The committed results of the 30-minute run (``book/results/*.json``, written by
   ``vi_lib.mnist.train`` and ``vi_lib.mnist.evaluate``): test NLL with K = 1000 on all 10,000 test images and
   the training minutes. ``--full-run`` first reruns training and evaluation into ``runs/``.
"""

from __future__ import annotations

from vi_lib.mnist import cli  # noqa: F401  first: it sets the CPU's thread policy before torch loads

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vi_lib.mnist.data import binarize_batch, load_mnist
from vi_lib.models import ConvVAE
from vi_lib.training import adam, train_epoch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "results"
TRAIN_COMMAND = [
    "-m", "vi_lib.mnist.train", "--out", "runs/mnist_conv_vae.pt", "--latent-dim", "32", "--epochs", "1000",
    "--max-minutes", "30", "--schedule", "time", "--batch-size", "128", "--lr", "1e-3", "--lr-final", "1e-4",
    "--warmup-epochs", "5", "--seed", "0", "--threads", "2",
]


def plain_step(model, optimizer, x_uint8, generator):
    """One step of a hand-written VAE loop: nothing but the model and the ELBO's formulas."""
    x = torch.bernoulli(x_uint8.float() / 255.0, generator=generator)
    h = model.encoder(x)
    mean, log_var = h.chunk(2, dim=-1)
    z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
    logits = model.decoder(z)
    accuracy = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)
    loss = (kl - accuracy).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure_speed(images: torch.Tensor, batch_size: int, per_round: int, rounds: int, compile_: bool = True) -> dict:

    def fresh(plain: bool):
        torch.manual_seed(0)
        model = ConvVAE(latent_dim=32)
        if plain:  # PyTorch's defaults, as a hand-written loop would have them
            return model.to(memory_format=torch.contiguous_format), torch.optim.Adam(model.parameters(), lr=1e-3)
        return model, adam(model, lr=1e-3)  # as vi_lib builds them: channels-last, fused Adam

    data = images[:per_round].unsqueeze(1).contiguous()  # [N, 1, 28, 28] uint8, one tensor
    lib_model, lib_opt = fresh(plain=False)
    plain_model, plain_opt = fresh(plain=True)
    tuned_model, tuned_opt = fresh(plain=False)
    generator = torch.Generator().manual_seed(0)

    def run_library():
        train_epoch(lib_model, lib_opt, data, batch_size, generator, binarize_batch)

    def run_plain(model, opt):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), batch_size):
            plain_step(model, opt, data[order[start : start + batch_size]], generator)

    loops = {
        "library": run_library,
        "plain": lambda: run_plain(plain_model, plain_opt),
        "plain_with_library_settings": lambda: run_plain(tuned_model, tuned_opt),
    }
    compile_report = None
    if compile_:  # the library loop once more, with encoder and decoder compiled by torch.compile
        compiled_model, compiled_opt = fresh(plain=False)
        try:
            compiled_model.encoder = torch.compile(compiled_model.encoder)
            compiled_model.decoder = torch.compile(compiled_model.decoder)
            start = time.perf_counter()
            train_epoch(compiled_model, compiled_opt, data[: 2 * batch_size], batch_size, generator, binarize_batch)
            compile_report = {"first_two_batches_seconds": time.perf_counter() - start}
            loops["library_torch_compile"] = lambda: train_epoch(
                compiled_model, compiled_opt, data, batch_size, generator, binarize_batch
            )
        except Exception as error:  # no C++ compiler, an unsupported platform, ...
            compile_report = {"error": f"{type(error).__name__}: {error}"[:300]}
    timings = {name: [] for name in loops}
    for fn in loops.values():  # warm-up (allocator, oneDNN kernels), not timed
        fn()
    for round_ in range(rounds):
        # alternate the order, so that neither loop always runs first after the other
        for name in (list(loops) if round_ % 2 == 0 else list(loops)[::-1]):
            start = time.perf_counter()
            loops[name]()
            timings[name].append(time.perf_counter() - start)
    speed = {name: len(data) * rounds / sum(t) for name, t in timings.items()}
    best = {name: len(data) / min(t) for name, t in timings.items()}
    return {
        "images_per_round": len(data), "rounds": rounds, "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "images_per_second": speed, "best_round_images_per_second": best,
        "ratio_library_over_plain": speed["library"] / speed["plain"],
        "ratio_best_rounds": best["library"] / best["plain"],
        "ratio_library_over_plain_with_library_settings": speed["library"] / speed["plain_with_library_settings"],
        "torch_compile": compile_report,
    }


def measure_memory(checkpoint: Path, images: int, num_samples: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "vi_lib.mnist.evaluate", str(checkpoint), "--num-samples", str(num_samples),
         "--limit", str(images), "--no-progress"],
        capture_output=True, text=True, cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"evaluation failed:\n{done.stderr}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = json.loads(done.stdout)
    return {
        "num_samples": num_samples, "num_images": images,
        "peak_resident_memory_mb": round(max(peak_kb, before) / 1024, 1),
        "peak_reported_by_evaluate_mb": report["peak_resident_memory_mb"],
        "seconds": round(time.perf_counter() - start, 1),
        "nll_on_these_images": report["nll"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "runs" / "mnist_conv_vae.pt"))
    parser.add_argument("--per-round", type=int, default=6400, help="training images per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory-images", type=int, default=50, help="test images for the K = 5000 memory run")
    parser.add_argument("--full-run", action="store_true", help="rerun the 30-minute training and the evaluation first")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--no-compile", action="store_true", help="skip timing the library loop under torch.compile")
    parser.add_argument("--save", default=None, help="write the speed and memory figures to this JSON file")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.full_run:
        earlier = ROOT / "runs" / "mnist_conv_vae.pt"
        if earlier.exists():
            raise SystemExit(f"--full-run trains into {earlier.relative_to(ROOT)}, which holds an earlier run: "
                             "move it elsewhere (or delete it) first, so that it is not lost")
        subprocess.run([sys.executable, *TRAIN_COMMAND], cwd=ROOT, check=True)
        subprocess.run([sys.executable, "-m", "vi_lib.mnist.evaluate", "runs/mnist_conv_vae.pt", "--num-samples", "1000",
                        "--output", "runs/evaluation.json"], cwd=ROOT, check=True)

    out = {"machine": {"cpu_count": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
                       "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                       "torch": torch.__version__}}
    images, _ = load_mnist("train")
    speed = measure_speed(images, 128, args.per_round, args.rounds, compile_=not args.no_compile)
    out["speed"] = speed
    ips = speed["images_per_second"]
    print(f"speed (batch 128, {speed['threads']} threads, {speed['rounds']} rounds of {speed['images_per_round']:,} images, "
          f"load average at start {out['machine']['load_average']}):")
    print(f"  library loop (vi_lib.training.train_epoch):  {ips['library']:8,.0f} images/s")
    print(f"  plain hand-written loop:                     {ips['plain']:8,.0f} images/s")
    print(f"  plain loop with the library's settings:      {ips['plain_with_library_settings']:8,.0f} images/s")
    if "library_torch_compile" in ips:
        print(f"  library loop, torch.compile'd networks:      {ips['library_torch_compile']:8,.0f} images/s "
              f"(compiling + first 2 batches: {speed['torch_compile']['first_two_batches_seconds']:.0f} s)")
    elif speed["torch_compile"]:
        print(f"  torch.compile failed: {speed['torch_compile']['error']}")
    print(f"  ratio library / plain: {speed['ratio_library_over_plain']:.3f} (best rounds: {speed['ratio_best_rounds']:.3f})")
    print(f"  ratio library / plain with the library's settings (the cost of the library's checks): "
          f"{speed['ratio_library_over_plain_with_library_settings']:.3f}")

    checkpoint = Path(args.checkpoint)
    if checkpoint.exists():
        memory = measure_memory(checkpoint, args.memory_images, 5000)
        out["memory_k5000"] = memory
        print(f"evaluation with K = 5000 on {memory['num_images']} test images: peak resident memory "
              f"{memory['peak_resident_memory_mb']:,.0f} MB (limit 3,000 MB), {memory['seconds']:.0f} s")
    else:
        print(f"no checkpoint at {checkpoint}: memory of the K = 5000 evaluation not measured")

    metrics_file, evaluation_file = RESULTS / "metrics.json", RESULTS / "evaluation.json"
    if args.full_run:
        metrics_file, evaluation_file = ROOT / "runs" / "mnist_conv_vae.metrics.json", ROOT / "runs" / "evaluation.json"
    if metrics_file.exists() and evaluation_file.exists():
        metrics = json.loads(metrics_file.read_text())
        evaluation = json.loads(evaluation_file.read_text())
        last = metrics["epochs"][-1]
        print(f"quality ({evaluation_file.relative_to(ROOT)}): test NLL {evaluation['nll']:.2f} ± "
              f"{evaluation['log_px']['stderr']:.2f} nats (K = {evaluation['num_samples']}, {evaluation['num_images']:,} "
              f"test images), test ELBO {evaluation['test_elbo']['mean']:.2f}")
        target = json.loads((RESULTS / "notes.json").read_text())["target"]  # the book's, also on the results page
        met = evaluation["nll"] <= target["test_nll_nats"] and last["wall_seconds_total"] <= 60 * target["training_minutes"]
        print(f"training: {len(metrics['epochs'])} epochs in {last['wall_seconds_total'] / 60:.1f} min "
              f"({last['training_seconds_total'] / 60:.1f} min in training steps); target NLL <= "
              f"{target['test_nll_nats']} from <= {target['training_minutes']} min: {'met' if met else 'NOT met'}")
    if args.save:
        Path(args.save).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
