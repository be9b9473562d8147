"""Argument checks for every vi_lib module: one function per kind of argument (no chapter's idea).

One kind of mistake, one exception type, everywhere in vi_lib:

- an argument of the wrong *type*: ``TypeError`` (the checks below);
- a value of the right type but wrong (out of range, wrong shape, not one of the options):
  ``ValueError`` (the checks below);
- a file that is not there: ``FileNotFoundError`` (``MNISTNotFoundError``, ``CheckpointNotFoundError``),
  an ``OSError``, never a ``ValueError``;
- a file that is there but damaged, truncated or of another kind: :class:`DamagedFileError`
  (``MNISTCorruptError``, ``CheckpointError``), a ``ValueError``;
- training that produced NaN or infinity: ``NonFiniteLossError``, a ``FloatingPointError``.

Every message names the argument, says what it got and what it must be, and ends with ``hint``
(what to pass instead).
Each check returns the value in its plain Python form (``int``/``float``), so a numpy integer is
accepted where an int is meant.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["integer", "number", "seed", "tensor", "choice", "flag", "floating_dtype", "DamagedFileError"]


class DamagedFileError(ValueError):
    """A file is there, but its content is not what it should be: truncated, corrupt, or another kind of file."""


def _ending(hint: str) -> str:
    return f" {hint}" if hint else ""


def integer(name: str, value, *, minimum: int = 1, hint: str = "") -> int:
    """``value`` as an ``int`` >= ``minimum``; a bool or a non-integer is a ``TypeError``."""
    wanted = {0: "an integer >= 0", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {wanted}, got {value!r} ({type(value).__name__}).{_ending(hint)}")
    if value < minimum:
        raise ValueError(f"{name} must be {wanted}, got {value}.{_ending(hint)}")
    return int(value)


def number(name: str, value, *, positive: bool = False, minimum: float | None = None, hint: str = "") -> float:
    """``value`` as a finite ``float``; ``positive`` asks for > 0, ``minimum`` for >= minimum.

    A bool, a string or a tensor is a ``TypeError``; NaN, an infinity
    or a value out of range is a ``ValueError``.
    """
    if positive:
        wanted = "a positive finite number"
    elif minimum is not None:
        wanted = "a non-negative finite number" if minimum == 0 else f"a finite number >= {minimum}"
    else:
        wanted = "a finite number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {wanted}, got {value!r} ({type(value).__name__}).{_ending(hint)}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0) or (minimum is not None and value < minimum):
        raise ValueError(f"{name} must be {wanted}, got {value!r}.{_ending(hint)}")
    return value


def seed(value) -> int:
    """A random seed: an ``int`` >= 0 (the same seed always gives the same numbers)."""
    return integer("seed", value, minimum=0, hint="Use e.g. seed=0; the same seed always gives the same result.")


def tensor(name: str, value, *, floating: bool = False, hint: str = "") -> torch.Tensor:
    """``value`` if it is a ``torch.Tensor`` (floating-point if ``floating``), else a ``TypeError``."""
    kind = "a floating-point torch.Tensor" if floating else "a torch.Tensor"
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__}.{_ending(hint or 'Use torch.as_tensor(...).')}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be {kind}, got dtype {value.dtype}.{_ending(hint or 'Use .float() or .double().')}")
    return value


def choice(name: str, value, options):
    """``value`` if it is one of ``options``: a ``TypeError`` for a value of another type than the
    options (e.g. a number where a string is meant), else a ``ValueError`` listing them."""
    listed = ", ".join(repr(o) for o in options)
    if not any(type(value) is type(o) for o in options):
        raise TypeError(f"{name} must be one of {listed}, got {value!r} ({type(value).__name__}).")
    if value not in options:
        raise ValueError(f"{name} must be one of {listed}, got {value!r}.")
    return value


def flag(name: str, value) -> bool:
    """``value`` if it is a ``bool`` (``True``/``False``), else a ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__}).")
    return value


def floating_dtype(name: str, value) -> torch.dtype:
    """``value`` if it is a floating ``torch.dtype`` (e.g. ``torch.float64``), else a ``TypeError``."""
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise TypeError(
            f"{name} must be a floating torch.dtype (torch.float32 or torch.float64), got {value!r}."
        )
    return value
