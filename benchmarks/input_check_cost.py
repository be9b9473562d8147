"""What refusing non-binary images costs the training loop (issue 13): ConvVAE.check_data on and off.

    python benchmarks/input_check_cost.py [--images 12800] [--rounds 3]

Trains one epoch of chapter 8's ConvVAE on the first ``--images`` training images, alternately with
the check and with it replaced by a no-op, in one process, and prints each time and the ratio.
"""

from vi_lib.mnist import cli  # noqa: F401  first: it sets the CPU's thread policy before torch loads

import argparse
import time

import torch

from vi_lib.mnist.data import binarize_batch, load_mnist
from vi_lib.models import VAE, ConvVAE
from vi_lib.training import adam, train_epoch


def one_epoch(images: torch.Tensor) -> float:
    torch.manual_seed(0)
    model = ConvVAE(latent_dim=32)
    start = time.perf_counter()
    train_epoch(model, adam(model, lr=1e-3), images, 128, torch.Generator().manual_seed(0), binarize_batch)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12800)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    images = load_mnist("train")[0][: args.images].unsqueeze(1)
    checked = VAE.check_data
    times = {"with check": [], "without": []}
    for _ in range(args.rounds):
        VAE.check_data = checked
        times["with check"].append(one_epoch(images))
        VAE.check_data = lambda self, x: None
        times["without"].append(one_epoch(images))
    VAE.check_data = checked
    for name, values in times.items():
        print(f"{name:>10}: " + ", ".join(f"{v:.2f} s" for v in values))
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    print(f"with / without (medians): {median['with check'] / median['without']:.3f}")


if __name__ == "__main__":
    main()
