"""Tests for vi_lib.mnist.data: the MNIST files (found, checked, downloaded) and binarisation."""

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

from vi_lib.mnist import data as mnist_data

# ======================================================================================
# MNIST with the real files
# ======================================================================================


def _real_mnist_root() -> Path | None:
    env = os.environ.get("VI_LIB_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist")
    for root in candidates:
        files = [root / f"{name}{sfx}" for name in mnist_data.MNIST_FILES for sfx in ("", ".gz")]
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
    return {name: _real_bytes(name) for name in mnist_data.MNIST_FILES if name.startswith("t10k")}


IMAGES, LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_mnist
def test_mnist_train_real_files():
    images, labels = mnist_data.load_mnist("train", root=REAL_ROOT, download=False)
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
    images, labels = mnist_data.load_mnist("test", root=REAL_ROOT, download=False)
    assert images.shape == (10_000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10_000,) and labels.dtype == torch.int64
    assert torch.bincount(labels, minlength=10).tolist() == TEST_COUNTS
    assert images.max() == 255 and images.min() == 0


@needs_mnist
def test_mnist_default_root_from_environment(monkeypatch):
    monkeypatch.setenv("VI_LIB_DATA", str(REAL_ROOT))
    assert mnist_data.mnist_root() == REAL_ROOT
    _, labels = mnist_data.load_mnist("test", download=False)
    assert torch.bincount(labels, minlength=10).tolist() == TEST_COUNTS


def test_mnist_root_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("VI_LIB_DATA", str(tmp_path / "mine"))
    assert mnist_data.mnist_root() == tmp_path / "mine"
    monkeypatch.delenv("VI_LIB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist_data.mnist_root() == tmp_path / "xdg" / "vi_lib" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert mnist_data.mnist_root() == tmp_path / "home" / ".cache" / "vi_lib" / "mnist"


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
    images, labels = mnist_data.load_mnist("test", root=tmp_path, download=False)
    assert images.shape == (10_000, 28, 28)
    assert torch.bincount(labels, minlength=10).tolist() == TEST_COUNTS
    assert images.numpy().tobytes() == test_bytes[IMAGES][16:]


def test_mnist_bad_split_and_root():
    with pytest.raises(ValueError, match="split must be one of 'train', 'test'"):
        mnist_data.load_mnist("valid", root="/nonexistent", download=False)
    with pytest.raises(TypeError, match="root"):
        mnist_data.load_mnist("test", root=3, download=False)


def _assert_not_found_message(message: str, root: Path):
    for name in mnist_data.MNIST_FILES:
        assert name in message
    assert str(root) in message
    assert "VI_LIB_DATA" in message


def test_mnist_missing_files_download_false(tmp_path, monkeypatch):
    def no_network(url, timeout):
        raise AssertionError("download=False must not touch the network")

    monkeypatch.setattr(mnist_data, "_fetch", no_network)
    with pytest.raises(mnist_data.MNISTNotFoundError) as info:
        mnist_data.load_mnist("test", root=tmp_path, download=False)
    assert isinstance(info.value, FileNotFoundError)
    _assert_not_found_message(str(info.value), tmp_path)
    assert "download=False" in str(info.value)


def test_mnist_missing_files_offline(tmp_path, monkeypatch):
    calls = []

    def offline(url, timeout):
        calls.append(url)
        assert timeout > 0
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(mnist_data, "_fetch", offline)
    root = tmp_path / "cache"
    with pytest.raises(mnist_data.MNISTNotFoundError) as info:
        mnist_data.load_mnist("train", root=root, download=True)
    message = str(info.value)
    _assert_not_found_message(message, root)
    assert "no route to host" in message
    # Every mirror was tried, and nothing was left behind.
    assert calls == [f"{m}train-images-idx3-ubyte.gz" for m in mnist_data.MNIST_MIRRORS]
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
    with pytest.raises(mnist_data.MNISTCorruptError, match=expected):
        mnist_data.load_mnist("test", root=tmp_path, download=False)


@needs_mnist
def test_mnist_header_only_and_garbage_gz(tmp_path, test_bytes):
    (tmp_path / IMAGES).write_bytes(test_bytes[IMAGES][:10])
    with pytest.raises(mnist_data.MNISTCorruptError, match="truncated: expected 7840016 bytes, got 10"):
        mnist_data.load_mnist("test", root=tmp_path, download=False)
    (tmp_path / IMAGES).unlink()
    (tmp_path / f"{IMAGES}.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(mnist_data.MNISTCorruptError, match="not a complete gzip file"):
        mnist_data.load_mnist("test", root=tmp_path, download=False)


@needs_mnist
def test_mnist_wrong_md5(tmp_path, test_bytes):
    _write(tmp_path / IMAGES, test_bytes[IMAGES], gz=True)
    labels = bytearray(test_bytes[LABELS])
    labels[100] = (labels[100] + 1) % 10  # one label changed: same size, valid header
    _write(tmp_path / LABELS, bytes(labels), gz=True)
    expected = "expected md5 27ae3e4e09519cfbb04c329615203637"
    with pytest.raises(mnist_data.MNISTCorruptError, match=expected):
        mnist_data.load_mnist("test", root=tmp_path, download=False)


@needs_mnist
def test_mnist_wrong_magic_number_and_dimensions(tmp_path, test_bytes):
    # The labels file under the images file's name: wrong magic number.
    _write(tmp_path / IMAGES, test_bytes[LABELS], gz=False)
    expected = r"wrong magic number: expected 2051.*got 2049"
    with pytest.raises(mnist_data.MNISTCorruptError, match=expected):
        mnist_data.load_mnist("test", root=tmp_path, download=False)
    # Right magic number, wrong dimensions in the header.
    images = bytearray(test_bytes[IMAGES])
    images[4:8] = (5000).to_bytes(4, "big")
    _write(tmp_path / IMAGES, bytes(images), gz=False)
    expected = r"wrong dimensions: expected \(10000, 28, 28\), got \(5000, 28, 28\)"
    with pytest.raises(mnist_data.MNISTCorruptError, match=expected):
        mnist_data.load_mnist("test", root=tmp_path, download=False)


@pytest.fixture
def real_gz(test_bytes):
    """What a mirror serves: the gzipped original files."""
    return {name: gzip.compress(content, compresslevel=1) for name, content in test_bytes.items()}


@needs_mnist
def test_mnist_download_falls_back_to_the_next_mirror(tmp_path, monkeypatch, real_gz, test_bytes):
    calls = []

    def fetch(url, timeout):
        calls.append(url)
        if url.startswith(mnist_data.MNIST_MIRRORS[0]):
            raise urllib.error.URLError("403 Forbidden")
        assert url.startswith(mnist_data.MNIST_MIRRORS[1])
        return real_gz[url.rsplit("/", 1)[1].removesuffix(".gz")]

    monkeypatch.setattr(mnist_data, "_fetch", fetch)
    root = tmp_path / "cache" / "mnist"
    images, labels = mnist_data.load_mnist("test", root=root, download=True)
    assert len(calls) == 4
    assert torch.bincount(labels, minlength=10).tolist() == TEST_COUNTS
    assert sorted(p.name for p in root.iterdir()) == [f"{IMAGES}.gz", f"{LABELS}.gz"]
    assert (root / f"{LABELS}.gz").read_bytes() == real_gz[LABELS]

    # The saved files are used next time, without any download.
    def no_network(url, timeout):
        raise AssertionError("files are on disk; nothing should be downloaded")

    monkeypatch.setattr(mnist_data, "_fetch", no_network)
    images2, labels2 = mnist_data.load_mnist("test", root=root, download=True)
    assert torch.equal(images, images2) and torch.equal(labels, labels2)


@needs_mnist
def test_mnist_download_rejects_corrupt_mirrors(tmp_path, monkeypatch, real_gz, test_bytes):
    calls = []
    wrong = bytearray(test_bytes[LABELS])
    wrong[200] = (wrong[200] + 1) % 10

    def fetch(url, timeout):
        calls.append(url)
        good = real_gz[url.rsplit("/", 1)[1].removesuffix(".gz")]
        if url.startswith(mnist_data.MNIST_MIRRORS[0]):
            return good[: len(good) // 3]  # cut short
        if url.startswith(mnist_data.MNIST_MIRRORS[1]):
            return gzip.compress(bytes(wrong))  # valid gzip, wrong content
        return good

    monkeypatch.setattr(mnist_data, "_fetch", fetch)
    _write(tmp_path / IMAGES, test_bytes[IMAGES], gz=True)  # only the labels are missing
    _, labels = mnist_data.load_mnist("test", root=tmp_path, download=True)
    assert calls == [f"{m}{LABELS}.gz" for m in mnist_data.MNIST_MIRRORS]
    assert torch.bincount(labels, minlength=10).tolist() == TEST_COUNTS
    assert gzip.decompress((tmp_path / f"{LABELS}.gz").read_bytes()) == test_bytes[LABELS]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{IMAGES}.gz", f"{LABELS}.gz"]


@needs_mnist
def test_mnist_download_all_mirrors_corrupt_leaves_nothing(tmp_path, monkeypatch, real_gz):
    def fetch(url, timeout):
        good = real_gz[url.rsplit("/", 1)[1].removesuffix(".gz")]
        return good[:-20]

    monkeypatch.setattr(mnist_data, "_fetch", fetch)
    root = tmp_path / "cache"
    with pytest.raises(mnist_data.MNISTNotFoundError) as info:
        mnist_data.load_mnist("test", root=root, download=True)
    _assert_not_found_message(str(info.value), root)
    assert "not a complete gzip file" in str(info.value)
    assert not root.exists() or not any(root.rglob("*"))


@needs_mnist
def test_mnist_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, real_gz):
    monkeypatch.setattr(mnist_data, "_fetch", lambda url, timeout: real_gz[url.rsplit("/", 1)[1][:-3]])

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mnist_data.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        mnist_data.load_mnist("test", root=tmp_path, download=True)
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
    out = mnist_data.binarize(images, generator=torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.float32
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    p = images.double() / 255
    se = float(torch.sqrt((p * (1 - p)).sum())) / p.numel()
    assert abs(float(out.double().mean() - p.mean())) < 5 * se
    # Black pixels stay 0, white pixels become 1.
    assert torch.all(out[images == 0] == 0) and torch.all(out[images == 255] == 1)
    # Per grey level: a half-grey image is about half on.
    half = mnist_data.binarize(torch.full((100_000,), 0.5), generator=torch.Generator().manual_seed(2))
    assert abs(float(half.mean()) - 0.5) < 5 * 0.5 / math.sqrt(100_000)


@needs_mnist
def test_binarize_real_digits_mean(test_bytes):
    images = torch.from_numpy(np.frombuffer(test_bytes[IMAGES], np.uint8, offset=16).copy())
    out = mnist_data.binarize(images.reshape(-1, 28, 28), generator=torch.Generator().manual_seed(0))
    p = images.double() / 255
    se = float(torch.sqrt((p * (1 - p)).sum())) / p.numel()
    assert abs(float(out.double().mean() - p.mean())) < 5 * se


def test_binarize_seeded_reproducibility():
    images = _grey_images()
    a = mnist_data.binarize(images, generator=torch.Generator().manual_seed(3))
    b = mnist_data.binarize(images, generator=torch.Generator().manual_seed(3))
    c = mnist_data.binarize(images, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Float probabilities give the same draws as the uint8 grey levels they came from.
    d = mnist_data.binarize(images.float() / 255, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, d)
    # float64 input is accepted, output is float32.
    assert mnist_data.binarize(images.double() / 255).dtype == torch.float32


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
        mnist_data.binarize(bad)
    assert torch.equal(bad, before) or torch.isnan(before).any()


def test_binarize_type_errors():
    with pytest.raises(TypeError, match="uint8"):
        mnist_data.binarize(torch.tensor([0, 255]))  # int64
    with pytest.raises(TypeError, match="torch.Tensor"):
        mnist_data.binarize(np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(TypeError, match="Generator"):
        mnist_data.binarize(_grey_images(shape=(2,)), generator=0)
