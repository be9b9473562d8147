"""The convolutional VAE of chapter 8: its contract, checkpoints, and the training-loop additions."""

import pytest
import torch

from vi_lib import estimators
from vi_lib.mnist.checkpoints import CheckpointError, load_checkpoint, load_model, save_checkpoint
from vi_lib.models import ConvVAE, MLPVAE
from vi_lib.mnist.data import binarize_batch
from vi_lib.training import train_epoch


@pytest.fixture
def images():
    return torch.bernoulli(torch.full((5, 1, 28, 28), 0.3), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_contract_shapes(images, likelihood):
    torch.manual_seed(0)
    m = ConvVAE(latent_dim=6, likelihood=likelihood)
    assert m.prior.batch_shape == () and m.prior.event_shape == (6,)
    q = m.encode(images)
    assert q.batch_shape == (5,) and q.event_shape == (6,)
    p = m.decode(torch.randn(3, 5, 6))
    assert p.batch_shape == (3, 5) and p.event_shape == (1, 28, 28)
    assert p.log_prob(images).shape == (3, 5)
    assert m.decode(torch.randn(6)).batch_shape == ()
    assert estimators.iwae_bound(images, m.prior, m.decode, m.encode(images), 4).shape == (5,)
    assert m.elbo(images).shape == (5,) and m.log_marginal(images, 20, chunk_size=7).shape == (5,)
    assert m.sample(2).shape == (2, 1, 28, 28)


def test_default_model_has_the_chapter_8_size():
    assert sum(p.numel() for p in ConvVAE(latent_dim=32).parameters()) == 1_700_609


def test_bernoulli_log_prob_is_the_negative_binary_cross_entropy(images):
    torch.manual_seed(0)
    m = ConvVAE(latent_dim=3)
    z = torch.randn(5, 3)
    logits = m.decoder_output(z)
    expected = -torch.nn.functional.binary_cross_entropy_with_logits(logits, images, reduction="none").sum((1, 2, 3))
    assert torch.allclose(m.decode(z).log_prob(images), expected, atol=1e-4)


def test_elbo_is_below_the_importance_estimate_on_average(images):
    torch.manual_seed(0)
    m = ConvVAE(latent_dim=4)
    assert m.elbo(images, num_samples=50).mean() < m.log_marginal(images, 200).mean()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(latent_dim=0), "latent_dim"),
        (dict(likelihood="poisson"), "likelihood"),
        (dict(channels=(32,)), "channels"),
        (dict(hidden_dim=0), "hidden_dim"),
        (dict(likelihood="gaussian", decoder_std=0.0), "decoder_std"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvVAE(**kwargs)


def test_rejects_wrong_input_shapes():
    m = ConvVAE(latent_dim=4)
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\].*unsqueeze"):
        m.encode(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        m.decode(torch.zeros(2, 3))
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor, got list"):  # a wrong type is a TypeError
        m.encode([[0.0] * 784])
    with pytest.raises(TypeError, match=r"z must be a torch.Tensor, got ndarray"):
        m.decode(__import__("numpy").zeros((2, 4)))


def test_channels_last_layout_changes_no_numbers(tmp_path, images):
    """ConvVAE keeps its convolutions channels-last (for speed); the numbers must not depend on it."""
    torch.manual_seed(0)
    m = ConvVAE(latent_dim=4, channels=(4, 8), hidden_dim=16)
    conv = m.encoder[2].weight  # [8, 4, 4, 4]: the layouts differ (with one channel they would not)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    plain = ConvVAE(latent_dim=4, channels=(4, 8), hidden_dim=16).to(memory_format=torch.contiguous_format)
    plain.load_state_dict(m.state_dict())
    assert plain.encoder[2].weight.is_contiguous()
    z = torch.randn(3, 5, 4)
    assert torch.allclose(m.encode(images).mean, plain.encode(images).mean, atol=1e-5)
    assert torch.allclose(m.decode(z).log_prob(images), plain.decode(z).log_prob(images), rtol=1e-5)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "m.pt", plain))  # saved contiguous
    assert not loaded.decoder[5].weight.is_contiguous()  # the transposed convolution 8 -> 4 maps
    assert loaded.decoder[5].weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    "make", [lambda: ConvVAE(latent_dim=5, likelihood="gaussian", channels=(4, 8), hidden_dim=16), lambda: MLPVAE(7, 2)]
)
def test_save_and_load_round_trip(tmp_path, make):
    torch.manual_seed(0)
    m = make()
    path = save_checkpoint(tmp_path / "m.pt", m, epoch=3, note="hello")
    loaded, state = load_checkpoint(path)
    assert type(loaded) is type(m) and loaded.config() == m.config()
    assert state == {"epoch": 3, "note": "hello"}
    for (k, a), (k2, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert not loaded.training
    assert load_model(path).config() == m.config()
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    torch.manual_seed(0)
    m = ConvVAE(latent_dim=2, channels=(2, 2), hidden_dim=4)
    path = save_checkpoint(tmp_path / "m.pt", m, epoch=1)
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, m, epoch=2)
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert load_checkpoint(path)[1]["epoch"] == 1


def test_bad_checkpoint_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable vi_lib checkpoint"):
        load_checkpoint(garbage)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a vi_lib checkpoint"):
        load_checkpoint(other)
    m = ConvVAE(latent_dim=2, channels=(2, 2), hidden_dim=4)
    truncated = tmp_path / "truncated.pt"
    save_checkpoint(truncated, m)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(truncated)


def test_binarize_batch_is_dynamic_and_reproducible():
    grey = torch.full((2, 1, 28, 28), 128, dtype=torch.uint8)
    a = binarize_batch(grey, torch.Generator().manual_seed(1))
    b = binarize_batch(grey, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.dtype == torch.float32 and set(a.unique().tolist()) == {0.0, 1.0}
    assert 0.4 < a.mean().item() < 0.6


def test_kl_weight_changes_the_step_but_not_the_reported_elbo():
    data = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    results = []
    for beta in (1.0, 0.1):
        torch.manual_seed(0)
        m = ConvVAE(latent_dim=3, channels=(4, 8), hidden_dim=16)
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        stats = train_epoch(m, opt, data, 64, torch.Generator().manual_seed(0), binarize_batch, kl_weight=beta)
        results.append((stats, [p.detach().clone() for p in m.parameters()]))
    (s1, p1), (s2, p2) = results
    assert s1.elbo == pytest.approx(s2.elbo)  # the same first batch, the true ELBO is reported
    assert not all(torch.equal(a, b) for a, b in zip(p1, p2))  # but the steps differ
    with pytest.raises(ValueError, match="kl_weight"):
        train_epoch(m, opt, data, 64, kl_weight=-1.0)


def test_pooled_summaries_equal_the_summary_of_all_values():
    from vi_lib.mnist.protocol import mean_and_stderr, pool_mean_and_stderr

    values = torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 7 - 90
    whole = mean_and_stderr(values)
    pooled = pool_mean_and_stderr([mean_and_stderr(values[:300]), mean_and_stderr(values[300:301 + 400]),
                                   mean_and_stderr(values[701:])])
    assert pooled["n"] == whole["n"] == 1000
    assert pooled["mean"] == pytest.approx(whole["mean"], abs=1e-9)
    assert pooled["stderr"] == pytest.approx(whole["stderr"], rel=1e-9)


def test_elbo_and_log_likelihood_shapes(images):
    from vi_lib.mnist.protocol import elbo_and_log_likelihood

    torch.manual_seed(0)
    m = ConvVAE(latent_dim=3, channels=(4, 8), hidden_dim=16)
    out = elbo_and_log_likelihood(m, images, num_samples=30, batch_size=2, chunk_samples=8)
    assert out["elbo"].shape == out["log_px"].shape == (5,) and out["log_px"].dtype == torch.float64
    with pytest.raises(ValueError, match="num_samples"):
        elbo_and_log_likelihood(m, images, num_samples=0)


@pytest.mark.parametrize("method", ["elbo", "iwae_bound", "log_marginal"])
@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda x: x * 0.5, ValueError, "binary data only.*binarize_batch"),  # grey levels in [0, 1]
        (lambda x: x * 255, ValueError, "values from 0 to 255"),
        (lambda x: (x * 255).to(torch.uint8), TypeError, "floating-point.*torch.uint8.*binarize_batch"),
        (lambda x: torch.where(x > 0, float("nan"), x), ValueError, "NaN"),
    ],
    ids=["grey", "0-255-float", "uint8", "nan"],
)
def test_a_bernoulli_vae_refuses_data_that_is_not_binary(images, method, make, error, match):
    """Before, ConvVAE returned numbers such as -4047 'nats' for grey levels without a word."""
    m = ConvVAE(latent_dim=4, channels=(2, 2), hidden_dim=8)
    bad = make(images[:3])
    call = {"elbo": lambda: m.elbo(bad), "iwae_bound": lambda: m.iwae_bound(bad, 2),
            "log_marginal": lambda: m.log_marginal(bad, 2)}[method]
    with pytest.raises(error, match=match):
        call()
    m.elbo(images[:3])  # binary images pass


def test_a_gaussian_vae_refuses_nan_but_takes_grey_levels(images):
    m = ConvVAE(latent_dim=4, channels=(2, 2), hidden_dim=8, likelihood="gaussian")
    assert torch.isfinite(m.elbo(images[:3] * 0.5)).all()
    with pytest.raises(ValueError, match="NaN or infinite"):
        m.elbo(torch.full_like(images[:3], float("nan")))
