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


def _library_cases():
    """Bad calls across vi_lib's public functions: (id, call, exception type, what the message must name)."""
    import vi_lib.mnist.data as mdata
    from vi_lib import diagnostics, distributions as dist, estimators as est, plotting, toy_data, training
    from vi_lib.estimation_problem import estimation_problem, log_estimate_error
    from vi_lib.mnist.protocol import elbo_and_log_likelihood, mean_and_stderr
    from vi_lib.models import ConvVAE, LinearGaussianModel, MLPVAE

    torch.manual_seed(0)
    mlp, conv = MLPVAE(data_dim=3), ConvVAE(latent_dim=2, channels=(2, 2), hidden_dim=8)
    x = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3), generator=torch.Generator().manual_seed(0))
    model, data = estimation_problem(2)
    return [
        ("MLPVAE-data_dim", lambda: MLPVAE(data_dim="3"), TypeError, "data_dim"),
        ("MLPVAE-likelihood", lambda: MLPVAE(data_dim=3, likelihood=1), TypeError, "likelihood"),
        ("MLPVAE.encode-numpy", lambda: mlp.encode(np.zeros((2, 3))), TypeError, "x must be a torch.Tensor"),
        ("VAE.sample-n", lambda: mlp.sample("3"), TypeError, "n must be"),
        ("ConvVAE.elbo-grey", lambda: conv.elbo(x * 0.5), ValueError, "binary"),
        ("fit-numpy", lambda: training.fit(mlp, np.zeros((8, 3)), epochs=1, progress=False), TypeError, "data must be"),
        ("fit-progress", lambda: training.fit(mlp, torch.zeros(8, 3), epochs=1, progress=None), TypeError, "progress"),
        ("pick_device-int", lambda: training.pick_device(3), TypeError, "device"),
        ("fit_gaussian-int", lambda: dist.fit_gaussian(torch.zeros(5, 2, dtype=torch.int64)), TypeError, "x must be"),
        ("fit_gaussian-covariance", lambda: dist.fit_gaussian(torch.randn(5, 2), covariance=1), TypeError, "covariance"),
        ("isotropic-std", lambda: dist.isotropic_gaussian_log_likelihood(torch.zeros(2, 3), torch.zeros(2, 3), "1"),
         TypeError, "std"),
        ("naive-num_samples", lambda: est.log_marginal_naive(data, model.prior, model.likelihood, 2.5), TypeError,
         "num_samples"),
        ("ocean_model-dtype", lambda: toy_data.ocean_model(torch.int64), TypeError, "dtype"),
        ("random-dtype", lambda: LinearGaussianModel.random(2, 3, dtype=torch.int64), TypeError, "dtype"),
        ("estimation_problem-num_points", lambda: estimation_problem(2, num_points=0), ValueError, "num_points"),
        ("log_estimate_error-exact", lambda: log_estimate_error(lambda s: torch.zeros(2), np.zeros(2), 4), TypeError,
         "exact"),
        ("active_units-threshold", lambda: diagnostics.active_units(conv, x, threshold="0.01"), TypeError, "threshold"),
        ("protocol-batch_size", lambda: elbo_and_log_likelihood(conv, x, 2, batch_size=0), ValueError, "batch_size"),
        ("mean_and_stderr-list", lambda: mean_and_stderr([1.0, 2.0]), TypeError, "values"),
        ("load_mnist-split", lambda: mdata.load_mnist(1), TypeError, "split"),
        ("binarize_batch-numpy", lambda: mdata.binarize_batch(np.zeros((2, 1, 28, 28), dtype=np.uint8)), TypeError,
         "images"),
        ("palette-str", lambda: plotting.palette("3"), TypeError, "n must be"),
    ]


@pytest.mark.parametrize("index", range(22))
def test_every_public_function_names_the_bad_argument(index):
    """Before issues 12-13 several of these ended in AttributeError or torch's internal errors."""
    name, call, error, names = _library_cases()[index]
    with pytest.raises(error, match=names):
        call()
