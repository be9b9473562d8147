"""vi_lib._validation: one check per kind of argument; a wrong type is a TypeError, a wrong value a ValueError."""

import math

import numpy as np
import pytest
import torch

from vi_lib import _validation as V


def test_integer_accepts_whole_numbers_and_returns_ints():
    assert V.integer("n", 3) == 3 and type(V.integer("n", np.int64(3))) is int
    assert V.integer("n", 0, minimum=0) == 0 and V.integer("k", 2, minimum=2) == 2


@pytest.mark.parametrize("bad", [2.0, "3", True, None, torch.tensor(3)])
def test_integer_refuses_other_types_with_a_type_error(bad):
    with pytest.raises(TypeError, match=r"n must be a positive integer, got .*\. Try 3\."):
        V.integer("n", bad, hint="Try 3.")


@pytest.mark.parametrize("bad, minimum, wanted", [(0, 1, "a positive integer"), (-1, 0, "an integer >= 0"), (1, 2, "an integer >= 2")])
def test_integer_refuses_values_out_of_range_with_a_value_error(bad, minimum, wanted):
    with pytest.raises(ValueError, match=f"n must be {wanted}, got {bad}"):
        V.integer("n", bad, minimum=minimum)


def test_number():
    assert V.number("lr", 1e-3, positive=True) == 1e-3 and V.number("beta", 0, minimum=0) == 0.0
    for bad in (True, "0.1", None, torch.tensor(0.1)):
        with pytest.raises(TypeError, match="lr must be a positive finite number"):
            V.number("lr", bad, positive=True)
    for bad in (0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="lr must be a positive finite number"):
            V.number("lr", bad, positive=True)
    with pytest.raises(ValueError, match="beta must be a non-negative finite number"):
        V.number("beta", -0.5, minimum=0)


def test_seed_tensor_and_choice():
    assert V.seed(0) == 0
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        V.seed(-1)
    with pytest.raises(TypeError, match="seed must be an integer >= 0"):
        V.seed(1.5)
    x = torch.zeros(2)
    assert V.tensor("x", x) is x
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        V.tensor("x", [0.0])
    with pytest.raises(TypeError, match="x must be a floating-point torch.Tensor, got dtype torch.int64"):
        V.tensor("x", torch.zeros(2, dtype=torch.int64), floating=True)
    assert V.choice("kind", "full", ("full", "diagonal")) == "full"
    with pytest.raises(ValueError, match="kind must be one of 'full', 'diagonal', got 'fulll'"):
        V.choice("kind", "fulll", ("full", "diagonal"))


def test_a_damaged_mnist_file_is_the_same_kind_of_mistake_as_a_damaged_checkpoint(tmp_path):
    from vi_lib.mnist.checkpoints import CheckpointError
    from vi_lib.mnist.data import MNISTCorruptError, MNISTNotFoundError, load_mnist

    assert issubclass(MNISTCorruptError, V.DamagedFileError) and issubclass(CheckpointError, V.DamagedFileError)
    assert issubclass(V.DamagedFileError, ValueError) and issubclass(MNISTNotFoundError, FileNotFoundError)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00" * 10)  # truncated
    with pytest.raises(V.DamagedFileError, match="truncated"):
        load_mnist("test", root=tmp_path, download=False)
