"""Self-checks for the code exercises: call one on your answer and it tells you what is wrong.

Each ``check_*`` function takes the learner's function (or value), runs it on cases whose right
answer the library knows, and prints one line: ``correct``, ``not solved yet``, or what is wrong
(wrong shape, wrong sign, off by a constant, ...) without printing the solution. It returns
``True`` only when the answer is correct, so a notebook can also ``assert`` it.
"""

from __future__ import annotations

from typing import Callable

import torch


class _Verdict(Exception):
    """Raised inside a check to stop at the first problem found."""


def _run(exercise: str, check: Callable[[], None]) -> bool:
    try:
        check()
    except NotImplementedError:
        print(f"Exercise {exercise}: not solved yet (your function still raises NotImplementedError).")
        return False
    except _Verdict as verdict:
        print(f"Exercise {exercise}: not yet right. {verdict}")
        return False
    print(f"Exercise {exercise}: correct.")
    return True


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _Verdict(message)


def check_ancestral_sample(ancestral_sample: Callable) -> bool:
    """Exercise 1.2: ``ancestral_sample(model, n) -> (x [n, 3], z [n])`` samples p(z) p(x|z).

    Draws 20,000 samples with a fixed seed and compares the biome frequencies with p(z) and the
    per-biome means and spreads of x with the model's, within five standard errors.
    """
    from vi_lib.data import ocean_model

    def check():
        model = ocean_model()
        n = 20_000
        torch.manual_seed(0)
        out = ancestral_sample(model, n)
        _expect(
            isinstance(out, tuple) and len(out) == 2,
            "Return a tuple (x, z): the readings and the biomes they came from.",
        )
        x, z = out
        _expect(torch.is_tensor(x) and torch.is_tensor(z), "x and z should be torch tensors.")
        _expect(tuple(x.shape) == (n, 3), f"x should have shape ({n}, 3), got {tuple(x.shape)}.")
        _expect(tuple(z.shape) == (n,), f"z should have shape ({n},), one biome per reading, got {tuple(z.shape)}.")
        _expect(not z.is_floating_point(), "z should hold biome indices (integers), not floats.")
        k = len(model.weights)
        _expect(bool(((z >= 0) & (z < k)).all()), f"z should be biome indices between 0 and {k - 1}.")
        freq = torch.bincount(z, minlength=k).double() / n
        w = model.weights.double()
        se = (w * (1 - w) / n).sqrt()
        _expect(
            bool(((freq - w).abs() <= 5 * se + 1e-12).all()),
            "The biome frequencies do not match p(z): sample z from the prior's weights, "
            "not uniformly.",
        )
        for b in range(k):
            xb = x[z == b].double()
            mean, cov = model.means[b].double(), model.covariances[b].double()
            sd = cov.diagonal().sqrt()
            _expect(
                bool(((xb.mean(0) - mean).abs() <= 5 * sd / len(xb) ** 0.5).all()),
                f"The readings of biome {b} are not centred on that biome's mean: "
                "sample x from p(x | z) for the z you drew.",
            )
            spread = xb.std(0)
            _expect(
                bool((spread > 0.5 * sd).all()),
                f"The readings of biome {b} hardly vary: sample x from p(x | z), "
                "do not return the biome's mean.",
            )
            _expect(
                bool((spread < 1.5 * sd).all()),
                f"The readings of biome {b} vary too much: use that biome's covariance.",
            )

    return _run("1.2", check)
