"""Tests for vi_lib.data: ocean sensors, the forest, MNIST, binarize.

Every random test is seeded; statistical checks use tolerances of 5 standard errors
computed from the sample size, so they are deterministic and still fail on a wrong model.
"""

from __future__ import annotations

import gzip
import itertools
import math
import os
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from vi_lib import data

# ======================================================================================
# Ocean sensors
# ======================================================================================


@pytest.fixture(scope="module")
def big_ocean():
    return data.ocean_sensors(n=40_000, seed=123)


def test_ocean_constants():
    assert data.OCEAN_FEATURES == ("temperature", "salinity", "chlorophyll")
    assert data.OCEAN_UNITS == ("°C", "PSU", "log10 mg m⁻³")
    assert len(data.OCEAN_BIOMES) == 4 and len(set(data.OCEAN_BIOMES)) == 4


def test_ocean_model_shapes_and_validity():
    for dtype in (torch.float32, torch.float64):
        m = data.ocean_model(dtype)
        assert m.weights.shape == (4,) and m.means.shape == (4, 3)
        assert m.covariances.shape == (4, 3, 3)
        assert m.weights.dtype == m.means.dtype == m.covariances.dtype == dtype
    m = data.ocean_model(torch.float64)
    assert torch.all(m.weights > 0)
    assert float(m.weights.sum()) == pytest.approx(1.0, abs=1e-12)
    # Not equal weights: the biomes are not equally common.
    assert float(m.weights.max() - m.weights.min()) > 0.1
    assert torch.allclose(m.covariances, m.covariances.transpose(-1, -2))
    assert torch.all(torch.linalg.eigvalsh(m.covariances) > 0)
    # Full covariances: every biome has clearly non-zero correlations.
    std = torch.sqrt(torch.diagonal(m.covariances, dim1=-2, dim2=-1))
    corr = m.covariances / (std[:, :, None] * std[:, None, :])
    off = corr[:, [0, 0, 1], [1, 2, 2]]
    assert torch.all(off.abs() >= 0.2)
    # Upwelling: colder water, more chlorophyll.
    upwelling = data.OCEAN_BIOMES.index("coastal upwelling")
    assert corr[upwelling, 0, 2] < -0.5


def test_ocean_model_prior_and_likelihood():
    m = data.ocean_model(torch.float64)
    prior = m.prior()
    assert isinstance(prior, torch.distributions.Categorical)
    assert torch.allclose(prior.probs, m.weights)
    z = torch.tensor([[0, 1, 2, 3, 0], [3, 3, 2, 1, 0]])
    lik = m.likelihood(z)
    assert isinstance(lik, torch.distributions.MultivariateNormal)
    assert lik.batch_shape == (2, 5) and lik.event_shape == (3,)
    assert torch.equal(lik.mean, m.means[z])
    assert torch.allclose(lik.covariance_matrix, m.covariances[z])
    assert m.likelihood(torch.tensor(2)).batch_shape == ()
    with pytest.raises(TypeError, match="integer"):
        m.likelihood(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="0..3"):
        m.likelihood(torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="0..3"):
        m.likelihood(torch.tensor([-1]))


def test_log_marginal_matches_brute_force_sum():
    m = data.ocean_model(torch.float64)
    sample = data.ocean_sensors(n=20, seed=5).x.double()
    odd = torch.tensor([[10.0, 35.0, -0.5], [30.0, 30.0, 2.0], [-5.0, 40.0, -3.0]])
    x = torch.cat([sample, odd.double()])
    terms = np.stack(
        [
            math.log(float(m.weights[k]))
            + multivariate_normal(m.means[k].numpy(), m.covariances[k].numpy()).logpdf(x.numpy())
            for k in range(4)
        ],
        axis=-1,
    )
    expected = logsumexp(terms, axis=-1)
    got = m.log_marginal(x)
    assert got.shape == (23,) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)
    # For typical points also the plain (non-log) sum of weighted densities.
    direct = sum(
        float(m.weights[k])
        * multivariate_normal(m.means[k].numpy(), m.covariances[k].numpy()).pdf(sample.numpy())
        for k in range(4)
    )
    np.testing.assert_allclose(got[:20].exp().numpy(), direct, rtol=1e-10)
    # float32 model agrees to float32 accuracy; log_joint is consistent.
    got32 = data.ocean_model().log_marginal(sample.float())
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), expected[:20], rtol=1e-5, atol=1e-4)
    assert torch.allclose(torch.logsumexp(m.log_joint(x), -1), got)
    assert torch.allclose(m.posterior(x).probs.sum(-1), torch.ones(23, dtype=torch.float64))


def test_log_marginal_bad_input():
    m = data.ocean_model()
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        m.log_marginal(torch.zeros(5, 2))
    with pytest.raises(TypeError, match="floating"):
        m.log_marginal(torch.zeros(5, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        m.log_marginal(np.zeros((5, 3)))


def test_ocean_model_rejects_bad_parameters():
    m = data.ocean_model(torch.float64)
    with pytest.raises(ValueError, match="sum to 1"):
        data.OceanModel(m.weights * 2, m.means, m.covariances)
    bad = m.covariances.clone()
    bad[1] = -torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="positive definite"):
        data.OceanModel(m.weights, m.means, bad)
    with pytest.raises(ValueError, match="same K"):
        data.OceanModel(m.weights[:3], m.means, m.covariances)
    with pytest.raises(TypeError, match="dtype"):
        data.ocean_model(torch.int64)


def test_ocean_sensors_shapes_dtypes_and_reproducibility():
    s = data.ocean_sensors()
    assert s.x.shape == (2000, 3) and s.x.dtype == torch.float32
    assert s.biome.shape == (2000,) and s.biome.dtype == torch.int64
    assert len(s) == 2000
    assert set(s.biome.unique().tolist()) == {0, 1, 2, 3}
    again = data.ocean_sensors(n=2000, seed=0)
    assert torch.equal(s.x, again.x) and torch.equal(s.biome, again.biome)
    other = data.ocean_sensors(n=2000, seed=1)
    assert not torch.equal(s.x, other.x)
    assert not torch.equal(s.biome, other.biome)
    # Same seed -> the same numbers on any machine and torch version: pinned values.
    first = data.ocean_sensors(n=5, seed=0)
    assert first.biome.tolist() == [3, 2, 2, 3, 2]
    expected = torch.tensor(
        [
            [27.660381317138672, 34.61909866333008, -1.0547329187393188],
            [26.12434196472168, 36.74637985229492, -1.2200052738189697],
            [24.831783294677734, 36.97196578979492, -1.4896785020828247],
        ]
    )
    torch.testing.assert_close(first.x[:3], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("bad", [0, -3, 2.5, 100.0, "100", True, None])
def test_ocean_sensors_rejects_bad_n(bad):
    with pytest.raises(ValueError, match="positive integer"):
        data.ocean_sensors(n=bad)


def test_ocean_sensors_rejects_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        data.ocean_sensors(n=10, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        data.ocean_sensors(n=10, seed=1.5)


def test_ocean_biome_frequencies_match_weights(big_ocean):
    m = data.ocean_model(torch.float64)
    n = len(big_ocean)
    freq = torch.bincount(big_ocean.biome, minlength=4).double() / n
    se = torch.sqrt(m.weights * (1 - m.weights) / n)
    assert torch.all((freq - m.weights).abs() < 5 * se), (freq, m.weights)


def test_ocean_per_biome_means_and_covariances_match_model(big_ocean):
    m = data.ocean_model(torch.float64)
    x = big_ocean.x.double()
    for k in range(4):
        xk = x[big_ocean.biome == k]
        nk = xk.shape[0]
        sigma = m.covariances[k]
        mean_se = torch.sqrt(torch.diagonal(sigma) / nk)
        assert torch.all((xk.mean(0) - m.means[k]).abs() < 5 * mean_se), k
        cov = torch.cov(xk.T)
        var = torch.diagonal(sigma)
        cov_se = torch.sqrt((var[:, None] * var[None, :] + sigma**2) / nk)
        assert torch.all((cov - sigma).abs() < 5 * cov_se), (k, cov, sigma)
        # Within-biome correlations are really there in the data.
        corr = torch.corrcoef(xk.T)
        assert torch.all(corr[[0, 0, 1], [1, 2, 2]].abs() > 0.15), (k, corr)


def test_ocean_biomes_distinguishable_in_3d_but_overlapping_in_a_pair(big_ocean):
    m = data.ocean_model(torch.float64)
    x = big_ocean.x.double()
    accuracy_3d = (m.posterior(x).probs.argmax(-1) == big_ocean.biome).double().mean()
    assert accuracy_3d > 0.99
    pair_accuracies = []
    for pair in itertools.combinations(range(3), 2):
        idx = list(pair)
        sub = data.OceanModel(m.weights, m.means[:, idx], m.covariances[:, idx][:, :, idx])
        pred = sub.posterior(x[:, idx]).probs.argmax(-1)
        pair_accuracies.append(float((pred == big_ocean.biome).double().mean()))
    # Some pair of features shows real overlap between biomes...
    assert min(pair_accuracies) < 0.95, pair_accuracies
    # ...and the 3-D view separates them better than any single pair.
    assert accuracy_3d > max(pair_accuracies)


def test_ocean_dataframe():
    s = data.ocean_sensors(n=50, seed=2)
    frame = s.to_dataframe()
    assert list(frame.columns) == [
        "temperature (°C)",
        "salinity (PSU)",
        "chlorophyll (log10 mg m⁻³)",
        "biome",
    ]
    assert len(frame) == 50
    assert str(frame["biome"].dtype) == "category"
    assert list(frame["biome"].cat.categories) == list(data.OCEAN_BIOMES)
    assert frame["biome"].tolist() == [data.OCEAN_BIOMES[k] for k in s.biome.tolist()]
    np.testing.assert_array_equal(frame.iloc[:, :3].to_numpy(), s.x.numpy())
    assert list(s.to_dataframe(with_biome=False).columns) == list(frame.columns[:3])


# ======================================================================================
# The forest
# ======================================================================================


@pytest.fixture(scope="module")
def trees():
    return data.forest()


def test_forest_shapes_and_proportions(trees):
    assert data.ZONES == ("valley", "ridge")
    assert trees.height.shape == (10_000,) and trees.height.dtype == torch.float64
    assert trees.zone.shape == (10_000,) and trees.zone.dtype == torch.int64
    assert len(trees) == 10_000
    assert int((trees.zone == 0).sum()) == 9_000
    assert int((trees.zone == 1).sum()) == 1_000
    assert set(trees.zone.unique().tolist()) == {0, 1}
    # Shuffled: the ridge trees are not all at the end.
    assert int((trees.zone[:9000] == 1).sum()) > 0
    small = data.forest(n=30, seed=3)
    assert int((small.zone == 0).sum()) == 27


def test_forest_height_ranges(trees):
    valley = trees.height[trees.zone == 0]
    ridge = trees.height[trees.zone == 1]
    assert torch.all(valley > 0) and torch.all(valley < 30)
    assert abs(float(valley.median()) - 3.0) < 0.15  # median ~3 ft (SE ~0.016)
    assert torch.all(ridge > 100)
    ridge_se = float(ridge.std()) / math.sqrt(ridge.numel())
    assert abs(float(ridge.mean()) - 130.0) < 5 * ridge_se


def test_forest_mean_is_dominated_by_the_ridge(trees):
    mean = trees.mean_height()
    assert isinstance(mean, float)
    assert mean == pytest.approx(float(trees.height.mean()), rel=1e-15)
    # 0.9 * 3.25 + 0.1 * 130 ~ 15.9 ft
    assert 14.5 < mean < 17.5
    ridge_share = float(trees.height[trees.zone == 1].sum() / trees.height.sum())
    assert ridge_share > 0.75
    # The typical tree is nothing like the mean tree.
    assert float(trees.height.median()) < mean / 3


def test_forest_reproducibility():
    a, b = data.forest(seed=7), data.forest(seed=7)
    assert torch.equal(a.height, b.height) and torch.equal(a.zone, b.zone)
    c = data.forest(seed=8)
    assert not torch.equal(a.height, c.height)
    pinned = data.forest(n=10, seed=0)
    assert pinned.zone.tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    expected = [3.525248843663996, 3.7658921784983446, 121.63961405875452]
    torch.testing.assert_close(
        pinned.height[:3],
        torch.tensor(expected, dtype=torch.float64),
        rtol=1e-9,
        atol=0,
    )


@pytest.mark.parametrize("bad", [0, -10, 15, 10.0, "100", True])
def test_forest_rejects_bad_n(bad):
    with pytest.raises(ValueError, match="multiple of 10|positive integer"):
        data.forest(n=bad)


# ======================================================================================
# MNIST with the real files
# ======================================================================================


def _real_mnist_root() -> Path | None:
    env = os.environ.get("VI_LIB_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist")
    for root in candidates:
        files = [root / f"{name}{sfx}" for name in data.MNIST_FILES for sfx in ("", ".gz")]
        if any(path.is_file() for path in files):
            return root
    return None


REAL_ROOT = _real_mnist_root()
needs_mnist = pytest.mark.skipif(
    REAL_ROOT is None,
    reason="MNIST files not found: set VI_LIB_DATA to a folder with the four MNIST IDX files "
    "or put them in ../shared/data/mnist relative to the repository root",
)


def _real_bytes(name: str) -> bytes:
    """The original (decompressed) bytes of one real MNIST file."""
    raw = REAL_ROOT / name
    if raw.is_file():
        return raw.read_bytes()
    return gzip.decompress((REAL_ROOT / f"{name}.gz").read_bytes())


@pytest.fixture(scope="module")
def test_bytes():
    """Decompressed bytes of the real t10k files (small: 7.8 MB + 10 kB)."""
    return {name: _real_bytes(name) for name in data.MNIST_FILES if name.startswith("t10k")}


IMAGES, LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_mnist
def test_mnist_train_real_files():
    images, labels = data.load_mnist("train", root=REAL_ROOT, download=False)
    assert images.shape == (60_000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (60_000,) and labels.dtype == torch.int64
    pixels = images.double() / 255
    assert round(float(pixels.mean()), 3) == 0.131  # 0.1307
    assert round(float(pixels.std()), 3) == 0.308  # 0.3081
    assert abs(float(pixels.mean()) - 0.1307) < 5e-5
    assert abs(float(pixels.std()) - 0.3081) < 5e-5
    assert labels.min() == 0 and labels.max() == 9


@needs_mnist
def test_mnist_test_real_files():
    images, labels = data.load_mnist("test", root=REAL_ROOT, download=False)
    assert images.shape == (10_000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10_000,) and labels.dtype == torch.int64
    assert torch.bincount(labels, minlength=10).tolist() == TEST_COUNTS
    assert images.max() == 255 and images.min() == 0


@needs_mnist
def test_mnist_default_root_from_environment(monkeypatch):
    monkeypatch.setenv("VI_LIB_DATA", str(REAL_ROOT))
    assert data.mnist_root() == REAL_ROOT
    _, labels = data.load_mnist("test", download=False)
    assert torch.bincount(labels, minlength=10).tolist() == TEST_COUNTS


def test_mnist_root_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("VI_LIB_DATA", str(tmp_path / "mine"))
    assert data.mnist_root() == tmp_path / "mine"
    monkeypatch.delenv("VI_LIB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.mnist_root() == tmp_path / "xdg" / "vi_lib" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.mnist_root() == tmp_path / "home" / ".cache" / "vi_lib" / "mnist"


def _write(path: Path, content: bytes, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        content = gzip.compress(content, compresslevel=1)
    path.write_bytes(content)
    return path


@needs_mnist
@pytest.mark.parametrize("torchvision_layout", [False, True])
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_found_raw_or_gz_in_either_layout(tmp_path, test_bytes, gz, torchvision_layout):
    folder = tmp_path / "MNIST" / "raw" if torchvision_layout else tmp_path
    for name, content in test_bytes.items():
        _write(folder / name, content, gz)
    images, labels = data.load_mnist("test", root=tmp_path, download=False)
    assert images.shape == (10_000, 28, 28)
    assert torch.bincount(labels, minlength=10).tolist() == TEST_COUNTS
    assert images.numpy().tobytes() == test_bytes[IMAGES][16:]


def test_mnist_bad_split_and_root():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load_mnist("valid", root="/nonexistent", download=False)
    with pytest.raises(TypeError, match="root"):
        data.load_mnist("test", root=3, download=False)


def _assert_not_found_message(message: str, root: Path):
    for name in data.MNIST_FILES:
        assert name in message
    assert str(root) in message
    assert "VI_LIB_DATA" in message


def test_mnist_missing_files_download_false(tmp_path, monkeypatch):
    def no_network(url, timeout):
        raise AssertionError("download=False must not touch the network")

    monkeypatch.setattr(data, "_fetch", no_network)
    with pytest.raises(data.MNISTNotFoundError) as info:
        data.load_mnist("test", root=tmp_path, download=False)
    assert isinstance(info.value, FileNotFoundError)
    _assert_not_found_message(str(info.value), tmp_path)
    assert "download=False" in str(info.value)


def test_mnist_missing_files_offline(tmp_path, monkeypatch):
    calls = []

    def offline(url, timeout):
        calls.append(url)
        assert timeout > 0
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(data, "_fetch", offline)
    root = tmp_path / "cache"
    with pytest.raises(data.MNISTNotFoundError) as info:
        data.load_mnist("train", root=root, download=True)
    message = str(info.value)
    _assert_not_found_message(message, root)
    assert "no route to host" in message
    # Every mirror was tried, and nothing was left behind.
    assert calls == [f"{m}train-images-idx3-ubyte.gz" for m in data.MNIST_MIRRORS]
    assert not root.exists() or not any(root.rglob("*"))


@needs_mnist
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_truncated_file(tmp_path, test_bytes, gz):
    _write(tmp_path / IMAGES, test_bytes[IMAGES], gz=False)
    if gz:
        compressed = gzip.compress(test_bytes[LABELS])
        (tmp_path / f"{LABELS}.gz").write_bytes(compressed[: len(compressed) // 2])
        expected = r"t10k-labels-idx1-ubyte\.gz is not a complete gzip file \(truncated"
    else:
        (tmp_path / LABELS).write_bytes(test_bytes[LABELS][:5000])
        expected = r"t10k-labels-idx1-ubyte is truncated: expected 10008 bytes, got 5000"
    with pytest.raises(data.MNISTCorruptError, match=expected):
        data.load_mnist("test", root=tmp_path, download=False)


@needs_mnist
def test_mnist_header_only_and_garbage_gz(tmp_path, test_bytes):
    (tmp_path / IMAGES).write_bytes(test_bytes[IMAGES][:10])
    with pytest.raises(data.MNISTCorruptError, match="truncated: expected 7840016 bytes, got 10"):
        data.load_mnist("test", root=tmp_path, download=False)
    (tmp_path / IMAGES).unlink()
    (tmp_path / f"{IMAGES}.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(data.MNISTCorruptError, match="not a complete gzip file"):
        data.load_mnist("test", root=tmp_path, download=False)


@needs_mnist
def test_mnist_wrong_md5(tmp_path, test_bytes):
    _write(tmp_path / IMAGES, test_bytes[IMAGES], gz=True)
    labels = bytearray(test_bytes[LABELS])
    labels[100] = (labels[100] + 1) % 10  # one label changed: same size, valid header
    _write(tmp_path / LABELS, bytes(labels), gz=True)
    expected = "expected md5 27ae3e4e09519cfbb04c329615203637"
    with pytest.raises(data.MNISTCorruptError, match=expected):
        data.load_mnist("test", root=tmp_path, download=False)


@needs_mnist
def test_mnist_wrong_magic_number_and_dimensions(tmp_path, test_bytes):
    # The labels file under the images file's name: wrong magic number.
    _write(tmp_path / IMAGES, test_bytes[LABELS], gz=False)
    expected = r"wrong magic number: expected 2051.*got 2049"
    with pytest.raises(data.MNISTCorruptError, match=expected):
        data.load_mnist("test", root=tmp_path, download=False)
    # Right magic number, wrong dimensions in the header.
    images = bytearray(test_bytes[IMAGES])
    images[4:8] = (5000).to_bytes(4, "big")
    _write(tmp_path / IMAGES, bytes(images), gz=False)
    expected = r"wrong dimensions: expected \(10000, 28, 28\), got \(5000, 28, 28\)"
    with pytest.raises(data.MNISTCorruptError, match=expected):
        data.load_mnist("test", root=tmp_path, download=False)


@pytest.fixture
def real_gz(test_bytes):
    """What a mirror serves: the gzipped original files."""
    return {name: gzip.compress(content, compresslevel=1) for name, content in test_bytes.items()}


@needs_mnist
def test_mnist_download_falls_back_to_the_next_mirror(tmp_path, monkeypatch, real_gz, test_bytes):
    calls = []

    def fetch(url, timeout):
        calls.append(url)
        if url.startswith(data.MNIST_MIRRORS[0]):
            raise urllib.error.URLError("403 Forbidden")
        assert url.startswith(data.MNIST_MIRRORS[1])
        return real_gz[url.rsplit("/", 1)[1].removesuffix(".gz")]

    monkeypatch.setattr(data, "_fetch", fetch)
    root = tmp_path / "cache" / "mnist"
    images, labels = data.load_mnist("test", root=root, download=True)
    assert len(calls) == 4
    assert torch.bincount(labels, minlength=10).tolist() == TEST_COUNTS
    assert sorted(p.name for p in root.iterdir()) == [f"{IMAGES}.gz", f"{LABELS}.gz"]
    assert (root / f"{LABELS}.gz").read_bytes() == real_gz[LABELS]

    # The saved files are used next time, without any download.
    def no_network(url, timeout):
        raise AssertionError("files are on disk; nothing should be downloaded")

    monkeypatch.setattr(data, "_fetch", no_network)
    images2, labels2 = data.load_mnist("test", root=root, download=True)
    assert torch.equal(images, images2) and torch.equal(labels, labels2)


@needs_mnist
def test_mnist_download_rejects_corrupt_mirrors(tmp_path, monkeypatch, real_gz, test_bytes):
    calls = []
    wrong = bytearray(test_bytes[LABELS])
    wrong[200] = (wrong[200] + 1) % 10

    def fetch(url, timeout):
        calls.append(url)
        good = real_gz[url.rsplit("/", 1)[1].removesuffix(".gz")]
        if url.startswith(data.MNIST_MIRRORS[0]):
            return good[: len(good) // 3]  # cut short
        if url.startswith(data.MNIST_MIRRORS[1]):
            return gzip.compress(bytes(wrong))  # valid gzip, wrong content
        return good

    monkeypatch.setattr(data, "_fetch", fetch)
    _write(tmp_path / IMAGES, test_bytes[IMAGES], gz=True)  # only the labels are missing
    _, labels = data.load_mnist("test", root=tmp_path, download=True)
    assert calls == [f"{m}{LABELS}.gz" for m in data.MNIST_MIRRORS]
    assert torch.bincount(labels, minlength=10).tolist() == TEST_COUNTS
    assert gzip.decompress((tmp_path / f"{LABELS}.gz").read_bytes()) == test_bytes[LABELS]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{IMAGES}.gz", f"{LABELS}.gz"]


@needs_mnist
def test_mnist_download_all_mirrors_corrupt_leaves_nothing(tmp_path, monkeypatch, real_gz):
    def fetch(url, timeout):
        good = real_gz[url.rsplit("/", 1)[1].removesuffix(".gz")]
        return good[:-20]

    monkeypatch.setattr(data, "_fetch", fetch)
    root = tmp_path / "cache"
    with pytest.raises(data.MNISTNotFoundError) as info:
        data.load_mnist("test", root=root, download=True)
    _assert_not_found_message(str(info.value), root)
    assert "not a complete gzip file" in str(info.value)
    assert not root.exists() or not any(root.rglob("*"))


@needs_mnist
def test_mnist_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, real_gz):
    monkeypatch.setattr(data, "_fetch", lambda url, timeout: real_gz[url.rsplit("/", 1)[1][:-3]])

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        data.load_mnist("test", root=tmp_path, download=True)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


# ======================================================================================
# binarize
# ======================================================================================


def _grey_images(seed=0, shape=(64, 28, 28)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


def test_binarize_values_shape_and_mean():
    images = _grey_images()
    out = data.binarize(images, generator=torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.float32
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    p = images.double() / 255
    se = float(torch.sqrt((p * (1 - p)).sum())) / p.numel()
    assert abs(float(out.double().mean() - p.mean())) < 5 * se
    # Black pixels stay 0, white pixels become 1.
    assert torch.all(out[images == 0] == 0) and torch.all(out[images == 255] == 1)
    # Per grey level: a half-grey image is about half on.
    half = data.binarize(torch.full((100_000,), 0.5), generator=torch.Generator().manual_seed(2))
    assert abs(float(half.mean()) - 0.5) < 5 * 0.5 / math.sqrt(100_000)


@needs_mnist
def test_binarize_real_digits_mean(test_bytes):
    images = torch.from_numpy(np.frombuffer(test_bytes[IMAGES], np.uint8, offset=16).copy())
    out = data.binarize(images.reshape(-1, 28, 28), generator=torch.Generator().manual_seed(0))
    p = images.double() / 255
    se = float(torch.sqrt((p * (1 - p)).sum())) / p.numel()
    assert abs(float(out.double().mean() - p.mean())) < 5 * se


def test_binarize_seeded_reproducibility():
    images = _grey_images()
    a = data.binarize(images, generator=torch.Generator().manual_seed(3))
    b = data.binarize(images, generator=torch.Generator().manual_seed(3))
    c = data.binarize(images, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Float probabilities give the same draws as the uint8 grey levels they came from.
    d = data.binarize(images.float() / 255, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, d)
    # float64 input is accepted, output is float32.
    assert data.binarize(images.double() / 255).dtype == torch.float32


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.tensor([0.2, 1.5]), r"\[0, 1\]"),
        (torch.tensor([-0.1, 0.5]), r"\[0, 1\]"),
        (torch.tensor([0.2, float("nan")]), "NaN"),
        (torch.tensor([255.0, 0.0]), "divide by 255"),
    ],
)
def test_binarize_float_range_errors(bad, match):
    before = bad.clone()
    with pytest.raises(ValueError, match=match):
        data.binarize(bad)
    assert torch.equal(bad, before) or torch.isnan(before).any()


def test_binarize_type_errors():
    with pytest.raises(TypeError, match="uint8"):
        data.binarize(torch.tensor([0, 255]))  # int64
    with pytest.raises(TypeError, match="torch.Tensor"):
        data.binarize(np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(TypeError, match="Generator"):
        data.binarize(_grey_images(shape=(2,)), generator=0)
