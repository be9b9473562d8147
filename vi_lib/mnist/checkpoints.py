"""Chapter 8's checkpoints: a trained VAE saved with what resuming its training needs, and loaded back.

A checkpoint is one ``torch.save`` file holding the model's class (``"module:ClassName"``), its
configuration (``model.config()``), its weights and any extra training state. Any subclass of
:class:`vi_lib.models.VAE` defined in an importable module can be saved; loading rebuilds it from
the class and configuration alone, reading the file with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import torch

from vi_lib._validation import DamagedFileError
from vi_lib.models import VAE

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "CheckpointNotFoundError", "save_checkpoint",
    "load_checkpoint", "load_model",
]

CHECKPOINT_FORMAT = "vi_lib.checkpoint"
CHECKPOINT_VERSION = 2  # 2: with a sha256 digest of the content; version 1 (no digest) still loads


def _digest(value, hasher=None) -> str:
    """sha256 of a checkpoint's content: every tensor's dtype, shape and bytes, every other leaf's repr.

    ``torch.load`` does not check its archive's CRCs, so a file with flipped bytes can load with
    wrong numbers; recomputing this digest after loading catches that.
    """
    top = hasher is None
    hasher = hashlib.sha256() if top else hasher
    if isinstance(value, dict):
        for key in sorted(value, key=repr):
            hasher.update(repr(key).encode())
            _digest(value[key], hasher)
    elif isinstance(value, (list, tuple)):
        hasher.update(f"{type(value).__name__}{len(value)}".encode())
        for item in value:
            _digest(item, hasher)
    elif isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        hasher.update(f"{t.dtype}{tuple(t.shape)}".encode())
        hasher.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        hasher.update(repr(value).encode())
    return hasher.hexdigest() if top else ""


class CheckpointError(DamagedFileError):
    """A file is not a vi_lib checkpoint, is damaged, or names a model that cannot be rebuilt."""


class CheckpointNotFoundError(FileNotFoundError):
    """There is no checkpoint file at the path."""


def _class_name(model_class: type) -> str:
    return f"{model_class.__module__}:{model_class.__qualname__}"


def _model_class(name, path: Path) -> type:
    """The VAE class a checkpoint names: ``"module:ClassName"`` (a bare name means vi_lib.models).

    Loading never imports a module because a file names it: the module must be imported already
    (vi_lib.models always is), so a checkpoint cannot make this process run code it did not choose.
    """
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{path} names no model class")
    module_name, _, class_name = name.rpartition(":")
    module = sys.modules.get(module_name or "vi_lib.models")
    if module is None:
        raise CheckpointError(
            f"{path} holds a {class_name} from the module {module_name}, which is not imported: "
            f"import {module_name} first (loading a checkpoint never imports code a file names)"
        )
    model_class = getattr(module, class_name, None)
    if model_class is None:
        raise CheckpointError(f"{path} holds a {name}, but {module_name or 'vi_lib.models'} has no {class_name}")
    if not (isinstance(model_class, type) and issubclass(model_class, VAE)):
        raise CheckpointError(f"{path} names {name}, which is not a vi_lib.models.VAE")
    return model_class


def save_checkpoint(path, model: VAE, **state) -> Path:
    """Save ``model`` (its class, configuration and weights) and any extra ``state`` to ``path``.

    The file is written to ``path + ".tmp"`` in the same folder, flushed to disk, then renamed
    over ``path`` in one atomic step, so a crash mid-save leaves the previous checkpoint intact.
    ``state`` holds whatever training needs to resume (optimiser state, RNG states, epoch,
    settings): tensors, numbers, strings, lists and dicts of those.

    Returns:
        the path written, as a :class:`pathlib.Path`.
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a vi_lib.models.VAE (e.g. a ConvVAE), got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_class": _class_name(type(model)),
        "config": model.config(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "state": state,
    }
    payload["digest"] = _digest(payload)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path, map_location: str | torch.device = "cpu") -> tuple[VAE, dict]:
    """Load a checkpoint written by :func:`save_checkpoint`: ``(model, state)``.

    The model is rebuilt from the saved class and configuration (no other arguments needed),
    its weights restored, and put on ``map_location`` in eval mode. ``state`` is the extra
    state saved with it (an empty dict if none). Raises :class:`CheckpointError` with a clear
    message if the file is missing, is not a checkpoint, or is damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"no checkpoint at {path}: the file does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path} is not a readable vi_lib checkpoint (truncated, damaged, or another kind of "
            f"file): {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a vi_lib checkpoint (it has no '{CHECKPOINT_FORMAT}' header); "
            "checkpoints are written by vi_lib.mnist.checkpoints.save_checkpoint or python -m vi_lib.mnist.train"
        )
    if payload.get("version") not in (1, CHECKPOINT_VERSION):
        raise CheckpointError(
            f"{path} is a checkpoint of format version {payload.get('version')!r}; this vi_lib "
            f"reads version {CHECKPOINT_VERSION}"
        )
    if payload.get("version") == CHECKPOINT_VERSION:
        saved = payload.pop("digest", None)
        if saved != _digest(payload):
            raise CheckpointError(
                f"{path} is damaged: its content does not match the digest saved with it (a disk or copy "
                "error changed some bytes). Use another copy, or retrain (--overwrite)"
            )
    model_class = _model_class(payload.get("model_class"), path)
    try:
        model = model_class(**payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: the saved weights do not fit a {model_class.__name__}: {error}") from None
    model.to(map_location).eval()
    return model, payload.get("state", {})


def load_model(path, map_location: str | torch.device = "cpu") -> VAE:
    """The model of a checkpoint, ready to use (eval mode); see :func:`load_checkpoint`."""
    return load_checkpoint(path, map_location)[0]
