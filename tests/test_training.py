"""The VAE contract and the training loop, checked against a model whose log p(x) is exact."""

import pytest
import torch

from vi_lib import estimators
from vi_lib.models import LinearGaussianModel, MLPVAE
from vi_lib.training import (
    NonFiniteLossError, TrainingState, adam, decayed_learning_rate, evaluate_elbo, fit, kl_warmup_weight, pick_device,
    train_epoch,
)


@pytest.fixture(scope="module")
def linear_gaussian_data():
    truth = LinearGaussianModel.random(latent_dim=2, data_dim=5, noise_std=0.3, seed=1, dtype=torch.float32)
    x, _ = truth.sample(4000, generator=torch.Generator().manual_seed(2))
    return truth, x[:3000], x[3000:]


def test_mlp_vae_contract_shapes():
    torch.manual_seed(0)
    m = MLPVAE(data_dim=5, latent_dim=3)
    x = torch.randn(7, 5)
    q = m.encode(x)
    assert q.batch_shape == (7,) and q.event_shape == (3,)
    assert m.prior.batch_shape == () and m.prior.event_shape == (3,)
    p = m.decode(torch.randn(4, 7, 3))
    assert p.batch_shape == (4, 7) and p.event_shape == (5,)
    assert estimators.iwae_bound(x, m.prior, m.decode, m.encode(x), 10).shape == (7,)
    assert m.elbo(x).shape == (7,) and m.log_marginal(x, 50).shape == (7,)
    assert m.sample(6).shape == (6, 5)


def test_mlp_vae_bernoulli_and_fixed_std():
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((4, 6), 0.3))
    assert MLPVAE(6, 2, likelihood="bernoulli").elbo(x).shape == (4,)
    m = MLPVAE(6, 2, decoder_std=0.5)
    assert torch.allclose(m.decode(torch.zeros(1, 2)).base_dist.scale, torch.full((1, 6), 0.5))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(data_dim=0), "data_dim"),
        (dict(data_dim=3, latent_dim=0), "latent_dim"),
        (dict(data_dim=3, likelihood="poisson"), "likelihood"),
        (dict(data_dim=3, decoder_std=-1.0), "decoder_std"),
    ],
)
def test_mlp_vae_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPVAE(**kwargs)


def test_mlp_vae_rejects_wrong_input_shapes():
    m = MLPVAE(3, 2)
    with pytest.raises(ValueError, match=r"\[B, 3\]"):
        m.encode(torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"\[\.\.\., 2\]"):
        m.decode(torch.zeros(4, 3))


def test_training_approaches_the_exact_log_likelihood(linear_gaussian_data):
    """On linear-Gaussian data the trained ELBO rises to just below the exact log p(x)."""
    truth, train, test = linear_gaussian_data
    torch.manual_seed(0)
    m = MLPVAE(5, latent_dim=2, hidden_dims=(32,))
    before = evaluate_elbo(m, test).elbo
    history = fit(m, train, test, epochs=40, batch_size=100, lr=1e-2, seed=0, progress=False)
    after = history[-1]["test_elbo"]
    exact = truth.log_marginal(test.double()).mean().item()
    assert after > before + 2
    assert after < exact + 0.05  # a lower bound (up to Monte Carlo noise of the 1-sample ELBO)
    assert exact - after < 0.5  # and a tight one after training
    importance = m.log_marginal(test, 500).mean().item()
    assert after < importance < exact + 0.05  # the importance estimate closes part of the gap
    assert set(history[0]) >= {"epoch", "train_elbo", "train_accuracy", "train_complexity", "seconds", "test_elbo"}
    row = history[-1]
    assert row["train_elbo"] == pytest.approx(row["train_accuracy"] - row["train_complexity"], abs=1e-4)


def test_fit_is_reproducible_with_a_seed(linear_gaussian_data):
    _, train, _ = linear_gaussian_data
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        m = MLPVAE(5, 2, hidden_dims=(16,))
        runs.append(fit(m, train[:500], epochs=2, batch_size=50, seed=7, progress=False)[-1]["train_elbo"])
    assert runs[0] == runs[1]


def test_non_finite_elbo_stops_before_the_step():
    torch.manual_seed(0)
    m = MLPVAE(3, 2)
    data = torch.randn(256, 3)
    calls = {"n": 0}
    real = m.elbo_terms

    def elbo_terms_that_blow_up(x, num_samples=1):
        calls["n"] += 1
        terms = real(x, num_samples)
        if calls["n"] == 3:  # the third batch: the ELBO overflows
            return type(terms)(terms.accuracy * float("inf"), terms.complexity)
        return terms

    m.elbo_terms = elbo_terms_that_blow_up
    optimizer = torch.optim.Adam(m.parameters())
    snapshots = []
    original_step = optimizer.step

    def step_and_remember(*args, **kwargs):
        original_step(*args, **kwargs)
        snapshots.append([p.detach().clone() for p in m.parameters()])

    optimizer.step = step_and_remember
    with pytest.raises(NonFiniteLossError, match="after 128 of 256 examples.*last finite parameters"):
        train_epoch(m, optimizer, data, batch_size=64)
    assert len(snapshots) == 2
    assert all(torch.equal(a, b) for a, b in zip(snapshots[-1], m.parameters()))
    assert all(torch.isfinite(p).all() for p in m.parameters())


def test_training_data_with_nan_is_rejected():
    m = MLPVAE(3, 2)
    data = torch.randn(64, 3)
    data[10, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        train_epoch(m, torch.optim.Adam(m.parameters()), data, batch_size=64)


def test_fit_rejects_bad_settings(linear_gaussian_data):
    _, train, _ = linear_gaussian_data
    m = MLPVAE(5, 2)
    with pytest.raises(ValueError, match="epochs"):
        fit(m, train, epochs=0, progress=False)
    with pytest.raises(ValueError, match="lr"):
        fit(m, train, lr=-1.0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        fit(m, train, batch_size=0, progress=False)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        pick_device("tpu-of-dreams")


def test_adam_is_fused_on_cpu_and_takes_the_same_steps_as_torch_adam():
    torch.manual_seed(0)
    target = torch.randn(50, 3)
    start = torch.randn(50, 3)
    paths = []
    for make in (lambda p: adam([p], lr=0.05), lambda p: torch.optim.Adam([p], lr=0.05)):
        p = torch.nn.Parameter(start.clone())
        opt = make(p)
        for _ in range(300):
            opt.zero_grad()
            ((p - target) ** 2).sum().backward()
            opt.step()
        paths.append(p.detach())
    assert torch.allclose(paths[0], paths[1], atol=1e-5)
    assert torch.allclose(paths[0], target, atol=0.05)  # it did minimise
    assert adam(MLPVAE(5, 2)).defaults["fused"] is True  # a model is accepted, and fused on the CPU


@pytest.mark.parametrize("lr, error", [(0, ValueError), (-1e-3, ValueError), (float("nan"), ValueError), ("0.1", TypeError)])
def test_adam_rejects_bad_learning_rates(lr, error):
    with pytest.raises(error, match="lr must be a positive finite number"):
        adam(MLPVAE(5, 2), lr=lr)


def test_kl_warmup_and_learning_rate_schedules():
    assert [kl_warmup_weight(e, 4) for e in range(1, 7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert kl_warmup_weight(1, 0) == 1.0  # no warm-up
    assert decayed_learning_rate(1e-3, 1e-4, 0.0) == pytest.approx(1e-3)
    assert decayed_learning_rate(1e-3, 1e-4, 1.0) == pytest.approx(1e-4)
    assert decayed_learning_rate(1e-3, 1e-4, 0.5) == pytest.approx(1e-3 / 10**0.5)  # geometric mean halfway


def _hand_loop(data, test, epochs, warmup, lr, lr_final, seed=0):
    """Chapter 8's loop as it was written by hand before fit had a schedule: the reference for fit."""
    torch.manual_seed(seed)
    model = MLPVAE(data_dim=5, latent_dim=2)
    optimizer = adam(model, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for epoch in range(1, epochs + 1):
        beta = kl_warmup_weight(epoch, warmup)
        for group in optimizer.param_groups:
            group["lr"] = decayed_learning_rate(lr, lr_final, (epoch - 1) / (epochs - 1))
        stats = train_epoch(model, optimizer, data, 128, generator, kl_weight=beta)
        rows.append((beta, optimizer.param_groups[0]["lr"], stats.elbo, evaluate_elbo(model, test).elbo))
    return model, rows


def test_fit_with_warmup_and_decay_equals_the_hand_written_loop(linear_gaussian_data):
    _, train, test = linear_gaussian_data
    reference, rows = _hand_loop(train, test, epochs=4, warmup=2, lr=3e-3, lr_final=1e-3)
    torch.manual_seed(0)
    model = MLPVAE(data_dim=5, latent_dim=2)
    history = fit(model, train, test, epochs=4, lr=3e-3, lr_final=1e-3, warmup_epochs=2, progress=False)
    assert [(h["kl_weight"], h["lr"], h["train_elbo"], h["test_elbo"]) for h in history] == rows
    assert [h["kl_weight"] for h in history] == [0.5, 1.0, 1.0, 1.0]
    assert history[0]["lr"] == 3e-3 and history[-1]["lr"] == pytest.approx(1e-3)
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.equal(a, b)


def test_fit_continues_a_run_from_its_state(linear_gaussian_data):
    """Two epochs, then two more from the saved state, end exactly where four epochs end."""
    _, train, test = linear_gaussian_data
    torch.manual_seed(0)
    straight = MLPVAE(data_dim=5, latent_dim=2)
    whole = fit(straight, train, test, epochs=4, lr=3e-3, lr_final=1e-3, warmup_epochs=2, progress=False)
    torch.manual_seed(0)
    resumed = MLPVAE(data_dim=5, latent_dim=2)
    seen = []
    state = TrainingState(adam(resumed, lr=3e-3), torch.Generator().manual_seed(0))

    def interrupt_after_two(row, state):
        if state.epoch == 2:
            raise KeyboardInterrupt  # as if the run were stopped here, after its checkpoint

    with pytest.raises(KeyboardInterrupt):
        fit(resumed, train, test, epochs=4, lr=3e-3, lr_final=1e-3, warmup_epochs=2, progress=False, state=state,
            on_epoch=interrupt_after_two)
    assert state.epoch == 2
    second = fit(resumed, train, test, epochs=4, lr=3e-3, lr_final=1e-3, warmup_epochs=2, progress=False, state=state,
                 on_epoch=lambda row, s: seen.append((row["epoch"], s.epoch)))
    assert seen == [(3, 3), (4, 4)]
    assert [h["test_elbo"] for h in second] == [h["test_elbo"] for h in whole[2:]]
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_fit_stops_before_an_epoch_that_would_pass_the_time_budget(linear_gaussian_data):
    _, train, _ = linear_gaussian_data
    torch.manual_seed(0)
    history = fit(MLPVAE(data_dim=5, latent_dim=2), train, epochs=50, max_minutes=1e-9, progress=False)
    assert len(history) == 1  # the first epoch always runs; the budget is spent after it
    with pytest.raises(ValueError, match="max_minutes"):
        fit(MLPVAE(data_dim=5, latent_dim=2), train, epochs=2, schedule="time", progress=False)
    with pytest.raises(ValueError, match="schedule must be one of"):
        fit(MLPVAE(data_dim=5, latent_dim=2), train, epochs=2, schedule="weekly", progress=False)


def test_a_diverging_run_stops_with_a_non_finite_loss_error_not_a_torch_traceback():
    """Before, lr = 1e6 ended in torch.distributions' ValueError ("found invalid values")."""
    from vi_lib.models import ConvVAE

    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((512, 1, 28, 28), 0.3), generator=torch.Generator().manual_seed(0))
    model = ConvVAE(latent_dim=2, channels=(4, 8), hidden_dim=16)
    with pytest.raises(NonFiniteLossError, match="diverged|became|NaN or infinite.*Lower the learning rate"):
        fit(model, x, epochs=3, lr=1e6, progress=False)
