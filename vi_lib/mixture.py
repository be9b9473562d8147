"""Chapters 1 and 3: the Gaussian mixture, the book's first latent-variable model p(x, z) = p(z) p(x|z).

The hidden variable z picks one of K Gaussian components; every quantity is exact (a sum over K
terms): the joint log p(x, z), the marginal log p(x) (chapter 1) and the posterior p(z|x).
Through the true ocean model (:func:`vi_lib.toy_data.ocean_model`) chapters 2, 3 and 7 use it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.distributions import Categorical, MultivariateNormal

from vi_lib import _validation

__all__ = ["GaussianMixture"]


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """A Gaussian mixture p(x) = sum_z p(z) N(x; mu_z, Sigma_z), a latent-variable model with K components.

    Chapter 1 (the latent-variable model p(x, z) = p(z) p(x|z), equation ``eq-joint``; the true
    ocean model :func:`vi_lib.toy_data.ocean_model` is one) and chapter 3 (a mixture fitted by
    maximum likelihood is one too, compared with the truth).

    Attributes:
        weights: ``[K]`` mixing weights p(z = k), positive, summing to 1.
        means: ``[K, D]`` component means mu_k.
        covariances: ``[K, D, D]`` full, symmetric positive-definite covariances Sigma_k.
        scale_tril: ``[K, D, D]`` their Cholesky factors L_k (L_k L_k^T = Sigma_k), computed.
    """

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor
    scale_tril: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("weights", "means", "covariances"):
            _validation.tensor(f"GaussianMixture.{name}", getattr(self, name), floating=True,
                               hint="Use torch.as_tensor(..., dtype=torch.float64).")
        w, m, c = self.weights, self.means, self.covariances
        if w.dim() != 1 or m.dim() != 2 or c.dim() != 3:
            raise ValueError(
                "GaussianMixture expects weights [K], means [K, D], covariances [K, D, D], got "
                f"{tuple(w.shape)}, {tuple(m.shape)}, {tuple(c.shape)}."
            )
        k, d = m.shape
        if w.shape[0] != k or c.shape != (k, d, d):
            raise ValueError(
                "GaussianMixture expects weights [K], means [K, D], covariances [K, D, D] with the "
                f"same K and D, got {tuple(w.shape)}, {tuple(m.shape)}, {tuple(c.shape)}."
            )
        if not (w.dtype == m.dtype == c.dtype):
            raise TypeError(
                f"GaussianMixture tensors must share one dtype, got {w.dtype}, {m.dtype}, {c.dtype}."
            )
        if bool((w <= 0).any()) or abs(float(w.sum()) - 1.0) > 1e-5:
            raise ValueError(
                f"GaussianMixture.weights must be positive and sum to 1, got {w.tolist()} "
                f"(sum {float(w.sum())}). Normalise them with weights / weights.sum()."
            )
        if not torch.allclose(c, c.transpose(-1, -2), rtol=1e-5, atol=1e-8):
            raise ValueError("GaussianMixture.covariances must be symmetric [K, D, D] matrices.")
        scale_tril, info = torch.linalg.cholesky_ex(c)
        if bool((info != 0).any()):
            bad = torch.nonzero(info).flatten().tolist()
            raise ValueError(
                f"GaussianMixture.covariances[{bad}] are not positive definite. A fitted "
                "covariance can collapse; add a small ridge, e.g. + 1e-6 * torch.eye(D)."
            )
        object.__setattr__(self, "scale_tril", scale_tril)

    @property
    def n_components(self) -> int:
        """K, the number of mixture components (the ocean's biomes)."""
        return self.weights.shape[0]

    def prior(self) -> Categorical:
        """p(z): ``Categorical(probs=weights)``, batch shape ``()``, samples in 0..K-1."""
        return Categorical(probs=self.weights)

    def likelihood(self, z: torch.Tensor) -> MultivariateNormal:
        """p(x|z) = N(x; mu_z, Sigma_z) for an integer tensor z of any shape.

        Chapter 1: the likelihood of the latent-variable model.

        Args:
            z: integer tensor of component indices in 0..K-1, any shape ``S``.

        Returns:
            ``MultivariateNormal`` with batch shape ``S`` and event shape ``(D,)``.
        """
        _validation.tensor("z", z, hint="Use an integer tensor of component indices, e.g. torch.tensor([0, 2]).")
        if z.is_floating_point() or z.is_complex() or z.dtype == torch.bool:
            raise TypeError(
                f"z must be an integer tensor of component indices 0..{self.n_components - 1}, "
                f"got dtype {z.dtype}. Use z.long() if it holds whole numbers."
            )
        if z.numel() and (int(z.min()) < 0 or int(z.max()) >= self.n_components):
            raise ValueError(
                f"z must hold component indices 0..{self.n_components - 1}, got values from "
                f"{int(z.min())} to {int(z.max())}."
            )
        z = z.long()
        return MultivariateNormal(self.means[z], scale_tril=self.scale_tril[z])

    def log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x, z = k) = log p(z = k) + log p(x | z = k) for every k.

        Args:
            x: ``[N, D]`` readings (any leading shape ``[..., D]`` works).

        Returns:
            ``[N, K]`` (``[..., K]``), in the dtype common to x and the model.
        """
        x, components, log_w = self._prepare(x)
        return components.log_prob(x.unsqueeze(-2)) + log_w

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) = logsumexp_z [log p(z) + log p(x|z)].

        Chapter 1 (the marginal likelihood, a sum over the latent variable); chapters 3 and 7
        compare fitted models with it.

        Args:
            x: ``[N, D]`` readings (any leading shape ``[..., D]`` works).

        Returns:
            ``[N]`` (``[...]``) log-densities.
        """
        return torch.logsumexp(self.log_joint(x), dim=-1)

    def posterior(self, x: torch.Tensor) -> Categorical:
        """p(z | x) = p(x, z) / p(x): which component a data point most likely came from (for the ocean: which biome).

        Args:
            x: ``[N, D]`` readings.

        Returns:
            ``Categorical`` with batch shape ``[N]`` over the K components.
        """
        return Categorical(logits=self.log_joint(x))

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Ancestral sampling (chapter 1): z ~ p(z), then x ~ p(x|z); returns ``(x [n, D], z [n])``.

        z by inverting the cumulative distribution of the weights with one uniform number each,
        then x = mu_z + L_z eps with eps ~ N(0, I); all from ``generator``, in the model's dtype.
        """
        n = _validation.integer("n", n, hint="Ask for at least one sample.")
        dtype = self.means.dtype
        cdf = torch.cumsum(self.weights, 0)
        cdf[-1] = 1.0  # exactly 1, so u in [0, 1) always lands in 0..K-1
        u = torch.rand(n, dtype=dtype, generator=generator)
        z = torch.searchsorted(cdf, u, right=True)
        eps = torch.randn(n, self.means.shape[1], dtype=dtype, generator=generator)
        x = self.means[z] + (self.scale_tril[z] @ eps.unsqueeze(-1)).squeeze(-1)
        return x, z

    def _prepare(self, x):
        _validation.tensor("x", x, floating=True, hint=f"Use torch.as_tensor(x, dtype=torch.float64) [N, {self.means.shape[1]}].")
        d = self.means.shape[1]
        if x.dim() < 1 or x.shape[-1] != d:
            raise ValueError(
                f"x must have shape [N, {d}] (one row per data point, one column per "
                f"feature), got {tuple(x.shape)}."
            )
        dtype = torch.promote_types(x.dtype, self.means.dtype)
        components = MultivariateNormal(
            self.means.to(dtype), scale_tril=self.scale_tril.to(dtype)
        )
        return x.to(dtype), components, torch.log(self.weights.to(dtype))
