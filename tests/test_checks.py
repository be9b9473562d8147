"""The exercise self-checks accept a right answer and explain a wrong one."""

import torch
from torch.distributions import MultivariateNormal

from vi_lib import checks


def right_ancestral_sample(model, n):
    z = torch.multinomial(model.weights, n, replacement=True)
    return MultivariateNormal(model.means[z], model.covariances[z]).sample(), z


def test_ancestral_sample_correct(capsys):
    assert checks.check_ancestral_sample(right_ancestral_sample)
    assert "correct" in capsys.readouterr().out


def test_ancestral_sample_not_solved(capsys):
    def stub(model, n):
        raise NotImplementedError("Exercise 1.2")

    assert not checks.check_ancestral_sample(stub)
    assert "not solved yet" in capsys.readouterr().out


def test_ancestral_sample_uniform_biomes(capsys):
    def uniform(model, n):
        z = torch.randint(len(model.weights), (n,))
        return MultivariateNormal(model.means[z], model.covariances[z]).sample(), z

    assert not checks.check_ancestral_sample(uniform)
    assert "frequencies" in capsys.readouterr().out


def test_ancestral_sample_returns_means(capsys):
    def means_only(model, n):
        z = torch.multinomial(model.weights, n, replacement=True)
        return model.means[z], z

    assert not checks.check_ancestral_sample(means_only)
    assert "hardly vary" in capsys.readouterr().out


def test_ancestral_sample_wrong_shape(capsys):
    def transposed(model, n):
        x, z = right_ancestral_sample(model, n)
        return x.T, z

    assert not checks.check_ancestral_sample(transposed)
    out = capsys.readouterr().out
    assert "shape" in out and "solution" not in out.lower()


def test_ancestral_sample_mixed_up_biomes(capsys):
    def shuffled_labels(model, n):
        x, z = right_ancestral_sample(model, n)
        return x, z[torch.randperm(n)]

    assert not checks.check_ancestral_sample(shuffled_labels)
    assert "centred" in capsys.readouterr().out
