"""vi_lib.mnist.checkpoints without a registry: any importable VAE subclass saves and loads; nothing else."""

import pytest
import torch
from torch.distributions import Independent, Normal

from vi_lib.distributions import diagonal_gaussian
from vi_lib.mnist.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from vi_lib.models import VAE, ConvVAE


def _resave(payload: dict, path) -> None:
    """Write an edited checkpoint payload back with a matching digest (an edit, not damage)."""
    from vi_lib.mnist.checkpoints import _digest

    payload.pop("digest", None)
    payload["digest"] = _digest(payload)
    torch.save(payload, path)


class TinyVAE(VAE):
    """A VAE defined outside vi_lib (here, in a test module): a linear encoder and decoder."""

    def __init__(self, data_dim: int = 3, latent_dim: int = 2):
        super().__init__(latent_dim)
        self.data_dim = data_dim
        self.encoder = torch.nn.Linear(data_dim, 2 * latent_dim)
        self.decoder = torch.nn.Linear(latent_dim, data_dim)

    def config(self) -> dict:
        return {"data_dim": self.data_dim, "latent_dim": self.latent_dim}

    def encode(self, x):
        mean, log_var = self.encoder(x).chunk(2, dim=-1)
        return diagonal_gaussian(mean, log_var)

    def decode(self, z):
        return Independent(Normal(self.decoder(z), 1.0), 1)


def test_a_vae_defined_elsewhere_round_trips(tmp_path):
    torch.manual_seed(0)
    model = TinyVAE(data_dim=4, latent_dim=3)
    path = save_checkpoint(tmp_path / "tiny.pt", model, epoch=7)
    loaded, state = load_checkpoint(path)
    assert type(loaded) is TinyVAE and loaded.config() == {"data_dim": 4, "latent_dim": 3} and state == {"epoch": 7}
    for a, b in zip(model.parameters(), loaded.parameters()):
        assert torch.equal(a, b)
    assert torch.load(path, weights_only=True)["model_class"] == f"{__name__}:TinyVAE"


def test_a_checkpoint_naming_a_bare_class_means_vi_lib_models(tmp_path):
    """Checkpoints written before classes were saved by module (``"ConvVAE"``) still load."""
    path = save_checkpoint(tmp_path / "m.pt", ConvVAE(latent_dim=2, channels=(2, 2), hidden_dim=8))
    payload = torch.load(path, weights_only=True)
    payload["model_class"] = "ConvVAE"
    _resave(payload, path)
    assert type(load_checkpoint(path)[0]) is ConvVAE


def test_loading_never_imports_a_module_the_file_names(tmp_path):
    """A checkpoint naming a module that is not imported is refused, and the module stays unimported."""
    import sys

    path = save_checkpoint(tmp_path / "m.pt", TinyVAE())
    payload = torch.load(path, weights_only=True)
    payload["model_class"] = "antigravity:Model"  # importing it would open a web browser
    _resave(payload, path)
    with pytest.raises(CheckpointError, match="import antigravity first"):
        load_checkpoint(path)
    assert "antigravity" not in sys.modules


@pytest.mark.parametrize(
    "name, match",
    [("no_such_module_xyz:Model", "import no_such_module_xyz first"), ("vi_lib.models:NoSuchVAE", "has no NoSuchVAE"),
     ("json:JSONDecoder", "not a vi_lib.models.VAE"),
     ("vi_lib.models:LinearGaussianModel", "not a vi_lib.models.VAE"), ("torch.nn:Linear", "not a vi_lib.models.VAE"),
     ("", "names no model class")],
)
def test_a_checkpoint_naming_something_else_is_refused(tmp_path, name, match):
    path = save_checkpoint(tmp_path / "m.pt", TinyVAE())
    payload = torch.load(path, weights_only=True)
    payload["model_class"] = name
    _resave(payload, path)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_only_a_vae_can_be_saved(tmp_path):
    with pytest.raises(TypeError, match="must be a vi_lib.models.VAE"):
        save_checkpoint(tmp_path / "m.pt", torch.nn.Linear(2, 2))
    assert not (tmp_path / "m.pt").exists()


def test_a_missing_checkpoint_is_a_file_not_found_and_a_damaged_one_a_damaged_file(tmp_path):
    """The exception kinds of vi_lib._validation: missing -> FileNotFoundError, damaged -> DamagedFileError."""
    from vi_lib._validation import DamagedFileError
    from vi_lib.mnist.checkpoints import CheckpointNotFoundError

    with pytest.raises(CheckpointNotFoundError, match="does not exist") as missing:
        load_checkpoint(tmp_path / "missing.pt")
    assert isinstance(missing.value, FileNotFoundError) and not isinstance(missing.value, ValueError)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(DamagedFileError, match="not a readable vi_lib checkpoint") as info:
        load_checkpoint(damaged)
    assert not isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("seed", range(5))
def test_a_checkpoint_with_flipped_bytes_is_refused(tmp_path, seed):
    """torch.load does not check the archive's CRCs: before, 400 flipped bytes loaded as wrong weights."""
    torch.manual_seed(0)
    model = ConvVAE(latent_dim=32)  # chapter 8's size: the flips land in the weights, which torch.load reads blindly
    path = save_checkpoint(tmp_path / "m.pt", model, epoch=1)
    data = bytearray(path.read_bytes())
    g = torch.Generator().manual_seed(seed)
    for i in torch.randint(len(data) // 4, 3 * len(data) // 4, (400,), generator=g).tolist():
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="is damaged: its content does not match the digest"):
        load_checkpoint(path)


def test_a_version_1_checkpoint_without_a_digest_still_loads(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", TinyVAE(), epoch=2)
    payload = torch.load(path, weights_only=True)
    payload.pop("digest")
    payload["version"] = 1
    torch.save(payload, path)
    assert load_checkpoint(path)[1] == {"epoch": 2}
