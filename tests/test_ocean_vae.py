"""Chapter 7's VAE recipe (vi_lib.models.MLPVAE trained by vi_lib.training.fit) learns the ocean data.

nbval re-executes chapter 7, which trains the model once; this test checks, on its own and quickly,
that the recipe chapter 8 reuses learns: the test ELBO rises, the KL term stays finite and
non-negative, and the importance-weighted bound with K = 100 is above the ELBO.
"""

from __future__ import annotations

import math

import torch

from vi_lib.toy_data import ocean_sensors
from vi_lib.models import MLPVAE
from vi_lib.training import fit


def test_chapter_7_recipe_learns_the_ocean():
    """Chapter 7's model and loop (vi_lib.models.MLPVAE, vi_lib.training.fit) on the ocean data."""
    data = ocean_sensors(n=1000, seed=1)
    x = (data.x - data.x.mean(0)) / data.x.std(0)
    torch.manual_seed(0)
    vae = MLPVAE(data_dim=3, latent_dim=2, hidden_dims=(32, 32))
    history = fit(vae, x, x, epochs=8, batch_size=100, lr=3e-3, seed=0, progress=False)
    assert history[-1]["test_elbo"] > history[0]["test_elbo"] + 0.5
    assert all(math.isfinite(row["test_complexity"]) and row["test_complexity"] >= 0 for row in history)
    with torch.no_grad():
        k1 = vae.iwae_bound(x, 1).mean()
        k100 = vae.iwae_bound(x, 100).mean()
    assert k100 > k1  # the importance-weighted bound tightens the ELBO
