"""Chapter 8's data: the original MNIST files, read, checked and (if missing) downloaded, and binarised.

:func:`load_mnist` reads the four IDX files (each verified by the md5 of its content), from
``$VI_LIB_DATA``, a per-user cache, or a public mirror; :func:`binarize` and
:func:`binarize_batch` turn grey levels into the 0/1 pixels a Bernoulli decoder models, afresh
at every use ("dynamic binarisation").
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import sys
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vi_lib import _validation
from vi_lib._validation import DamagedFileError

__all__ = [
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNISTNotFoundError",
    "MNISTCorruptError",
    "mnist_root",
    "load_mnist",
    "binarize",
    "binarize_batch",
]


@dataclass(frozen=True)
class _IdxFile:
    magic: int
    dims: tuple[int, ...]
    md5: str

    @property
    def header_bytes(self) -> int:
        return 4 + 4 * len(self.dims)

    @property
    def total_bytes(self) -> int:
        return self.header_bytes + math.prod(self.dims)


_MNIST_IDX = {
    "train-images-idx3-ubyte": _IdxFile(2051, (60000, 28, 28), "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": _IdxFile(2049, (60000,), "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": _IdxFile(2051, (10000, 28, 28), "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": _IdxFile(2049, (10000,), "27ae3e4e09519cfbb04c329615203637"),
}

MNIST_FILES = tuple(_MNIST_IDX)
"""The four MNIST files (each accepted raw or as ``.gz``)."""

_MNIST_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",  # the original site, often refusing downloads
)
"""Where :func:`load_mnist` downloads ``<file>.gz`` from, tried in this order."""

_DOWNLOAD_TIMEOUT_S = 30.0


class MNISTNotFoundError(FileNotFoundError):
    """The MNIST files are not on disk and could not (or may not) be downloaded."""


class MNISTCorruptError(DamagedFileError):
    """An MNIST file is truncated, damaged or not the file its name says."""


def mnist_root() -> Path:
    """Where :func:`load_mnist` looks by default.

    The environment variable ``VI_LIB_DATA`` if set, else ``$XDG_CACHE_HOME/vi_lib/mnist``,
    else ``~/.cache/vi_lib/mnist``.
    """
    env = os.environ.get("VI_LIB_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "vi_lib" / "mnist"


def _fetch(url: str, timeout: float) -> bytes:
    """Download one URL and return its bytes (the one place that touches the network)."""
    request = urllib.request.Request(url, headers={"User-Agent": "vi_lib (python urllib)"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _candidates(root: Path, name: str) -> list[Path]:
    folders = (root, root / "MNIST" / "raw")  # ours, then torchvision's layout
    return [folder / f"{name}{suffix}" for folder in folders for suffix in ("", ".gz")]


def _decompress(payload: bytes, source: str) -> bytes:
    try:
        return gzip.decompress(payload)
    except (EOFError, OSError, zlib.error) as error:
        raise MNISTCorruptError(
            f"{source} is not a complete gzip file (truncated or damaged: {error}). "
            "Delete it and load again; with download=True a fresh copy is fetched."
        ) from None


def _parse_idx(data: bytes, name: str, source: str) -> np.ndarray:
    """Check an IDX file's magic number, dimensions, length and md5; return its array."""
    spec = _MNIST_IDX[name]
    advice = "Delete it and load again; with download=True a fresh copy is fetched."
    if len(data) < spec.header_bytes:
        raise MNISTCorruptError(
            f"{source} is truncated: expected {spec.total_bytes} bytes, got {len(data)} "
            f"(not even the {spec.header_bytes}-byte header). {advice}"
        )
    magic = int.from_bytes(data[:4], "big")
    if magic != spec.magic:
        raise MNISTCorruptError(
            f"{source} has the wrong magic number: expected {spec.magic} (0x{spec.magic:08x}, "
            f"an IDX file of unsigned bytes with {len(spec.dims)} dimension(s)), got {magic} "
            f"(0x{magic:08x}). It is not {name}; was a file renamed or swapped? {advice}"
        )
    dims = tuple(int(v) for v in np.frombuffer(data, ">u4", count=len(spec.dims), offset=4))
    if dims != spec.dims:
        raise MNISTCorruptError(
            f"{source} has the wrong dimensions: expected {spec.dims}, got {dims}. {advice}"
        )
    if len(data) != spec.total_bytes:
        what = "truncated" if len(data) < spec.total_bytes else "too long"
        raise MNISTCorruptError(
            f"{source} is {what}: expected {spec.total_bytes} bytes, got {len(data)}. {advice}"
        )
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if md5 != spec.md5:
        raise MNISTCorruptError(
            f"{source} is corrupt: expected md5 {spec.md5} of the decompressed content, got "
            f"{md5}. {advice}"
        )
    return np.frombuffer(data, np.uint8, offset=spec.header_bytes).reshape(spec.dims).copy()


def _read_local(path: Path, name: str) -> np.ndarray:
    payload = path.read_bytes()
    data = _decompress(payload, str(path)) if path.suffix == ".gz" else payload
    return _parse_idx(data, name, str(path))


def _download(root: Path, name: str, timeout: float) -> tuple[np.ndarray | None, list[str]]:
    """Try every mirror for ``name.gz``; save the first verified copy atomically."""
    failures = []
    for mirror in MNIST_MIRRORS:
        url = f"{mirror}{name}.gz"
        print(f"vi_lib: downloading {url}", file=sys.stderr)
        try:
            payload = _fetch(url, timeout)
            array = _parse_idx(_decompress(payload, url), name, url)
        except Exception as error:  # network errors and corrupt payloads alike: next mirror
            failures.append(f"{url}: {type(error).__name__}: {error}")
            continue
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{name}.gz.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, root / f"{name}.gz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return array, failures
    return None, failures


def _not_found(root: Path, missing: list[str], why: str) -> MNISTNotFoundError:
    return MNISTNotFoundError(
        f"MNIST file(s) {', '.join(missing)} not found in {root} (nor in {root / 'MNIST' / 'raw'}, "
        f"raw or .gz). {why}\n"
        f"MNIST is these four files, each raw or gzipped (.gz): {', '.join(MNIST_FILES)}. "
        f"Put them in {root}, or put them in any folder and set the environment variable "
        f"VI_LIB_DATA to it (or pass root=...). They are available from "
        f"{MNIST_MIRRORS[0]} (e.g. {MNIST_MIRRORS[0]}{MNIST_FILES[0]}.gz)."
    )


def load_mnist(
    split: str = "train", root: str | os.PathLike | None = None, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The MNIST digits (chapter 8), checked by md5, downloaded if missing.

    Looks in ``root`` (default :func:`mnist_root`: ``$VI_LIB_DATA``, else a per-user cache)
    and in torchvision's layout ``root/MNIST/raw`` for the original IDX files
    (:data:`MNIST_FILES`), each raw or ``.gz``.  Every file is verified by the md5 of its
    decompressed content; a truncated or damaged file raises :class:`MNISTCorruptError`.
    A missing file is downloaded (if ``download``) from :data:`MNIST_MIRRORS` in turn,
    verified, and saved atomically as ``root/<file>.gz``; if that is impossible,
    :class:`MNISTNotFoundError` says which files to put where.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        root: folder holding the files; default :func:`mnist_root`.
        download: whether missing files may be downloaded.

    Returns:
        ``(images, labels)``: ``uint8 [N, 28, 28]`` grey levels 0..255 (0 = background) and
        ``int64 [N]`` digits 0..9.
    """
    _validation.choice("split", split, tuple(_MNIST_SPLITS))
    if root is None:
        root = mnist_root()
    elif isinstance(root, (str, os.PathLike)):
        root = Path(root).expanduser()
    else:
        raise TypeError(
            f"root must be a folder path (str or pathlib.Path) or None, got {type(root).__name__}."
        )
    arrays = {}
    missing = []
    for name in _MNIST_SPLITS[split]:
        found = next((p for p in _candidates(root, name) if p.is_file()), None)
        if found is None:
            missing.append(name)
        else:
            arrays[name] = _read_local(found, name)
    if missing and not download:
        raise _not_found(root, missing, "download=False, so nothing was downloaded.")
    for name in missing:
        array, failures = _download(root, name, _DOWNLOAD_TIMEOUT_S)
        if array is None:
            raise _not_found(
                root,
                missing,
                "Downloading failed from every mirror (offline?):\n  " + "\n  ".join(failures),
            )
        arrays[name] = array
    images_name, labels_name = _MNIST_SPLITS[split]
    images = torch.from_numpy(arrays[images_name])
    labels = torch.from_numpy(arrays[labels_name]).to(torch.int64)
    return images, labels


def binarize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation: each pixel ~ Bernoulli(its grey level), drawn afresh each call.

    Chapter 8: the Bernoulli decoder needs 0/1 pixels; the "dynamic binarisation" protocol
    of Salakhutdinov & Murray (2008) and Burda et al. (2015, IWAE) samples a new binary
    image every time an image is used, rather than thresholding once.

    Args:
        images: ``uint8 [...]`` grey levels 0..255 (probability = value / 255), or a float
            tensor ``[...]`` of probabilities in [0, 1] (no NaN; nothing is clipped).
        generator: optional ``torch.Generator`` for reproducible draws.

    Returns:
        ``float32 [...]`` tensor of 0.0 and 1.0, the same shape as ``images``.
    """
    _validation.tensor("images", images, hint="Use torch.as_tensor(images).")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}. "
            "Use torch.Generator().manual_seed(0)."
        )
    if images.dtype == torch.uint8:
        probs = images.to(torch.float32) / 255.0
    elif images.is_floating_point():
        if bool(torch.isnan(images).any()):
            raise ValueError(
                "images contains NaN; grey levels must be probabilities in [0, 1]. "
                "Find where the NaN came from; binarize does not guess."
            )
        if images.numel() and (float(images.min()) < 0.0 or float(images.max()) > 1.0):
            raise ValueError(
                "float images must be probabilities in [0, 1], got values from "
                f"{float(images.min())} to {float(images.max())}. Pass uint8 grey levels "
                "0..255 as they are, or divide by 255 (values are not clipped)."
            )
        probs = images.to(torch.float32)
    else:
        raise TypeError(
            f"images must be uint8 grey levels 0..255 or floats in [0, 1], got dtype "
            f"{images.dtype}. Use images.to(torch.uint8) for 0..255 integers."
        )
    return torch.bernoulli(probs, generator=generator)


def binarize_batch(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation of a batch on any device, as a ``transform`` for :func:`vi_lib.training.fit`.

    Same protocol as :func:`binarize` (each pixel ~ Bernoulli(grey level / 255), drawn afresh at
    every call), which it is on the CPU. On a GPU the uniform numbers are drawn on the CPU from
    ``generator`` and compared on the GPU, so one CPU generator fixes the result wherever it
    runs. Returns ``float32`` 0/1 of the same shape, on the images' device.
    """
    if _validation.tensor("images", images, hint="Use torch.as_tensor(images).").device.type == "cpu":
        return binarize(images, generator)
    probs = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    uniform = torch.rand(images.shape, generator=generator).to(images.device, non_blocking=True)
    return (uniform < probs).float()
