"""Models of the book: the linear-Gaussian model with its exact answers (chapter 4), and the VAEs.

- :class:`LinearGaussianModel`: p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I); log p(x) and p(z|x) exact.
- :class:`VAE`: what every VAE of the book shares: the prior, the ELBO, the IWAE bound, sampling.
- :class:`MLPVAE`: a VAE with fully connected encoder and decoder (chapter 7, the ocean data).

Every VAE follows one contract, so that the estimators, the training loop and the evaluation code
serve all of them: ``.prior`` is p(z) (batch shape ``()``, event ``(d,)``); ``.encode(x)`` takes
``[B, *event_x]`` and returns q(z|x) with batch shape ``(B,)``; ``.decode(z)`` takes ``[..., d]``
and returns p(x|z) with batch shape ``z.shape[:-1]`` and event shape ``event_x``. Hence
``vi_lib.estimators.iwae_bound(x, m.prior, m.decode, m.encode(x), k)`` works for any of them.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn
from torch.distributions import Bernoulli, Distribution, Independent, MultivariateNormal, Normal

from vi_lib import estimators
from vi_lib.distributions import diagonal_gaussian, standard_normal

__all__ = ["LinearGaussianModel", "VAE", "MLPVAE"]


class LinearGaussianModel:
    """The linear-Gaussian model: the model whose log p(x) is exact (chapter 4).

    Chapter 4, equation ``eq-linear-gaussian``::

        p(z)   = N(0, I_d)
        p(x|z) = N(W z + b, s^2 I_D)

    so that (equations ``eq-linear-gaussian-marginal`` and ``eq-linear-gaussian-posterior``)::

        p(x)   = N(x; b, W W^T + s^2 I_D)
        p(z|x) = N(z; Sigma W^T (x - b) / s^2, Sigma),  Sigma = (I_d + W^T W / s^2)^{-1}.

    Every Monte Carlo estimator of chapters 4-7 is checked against these exact answers.

    Args:
        weight: ``[D, d]`` the matrix W.
        bias: ``[D]`` the offset b.
        noise_std: s > 0, the observation noise standard deviation.

    Attributes:
        latent_dim: d.
        data_dim: D.
        prior: p(z) = N(0, I_d), batch shape ``()``, event shape ``(d,)``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, noise_std: float):
        if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor):
            raise TypeError(
                f"weight and bias must be torch.Tensors, got {type(weight).__name__} and "
                f"{type(bias).__name__}. Use torch.as_tensor(..., dtype=torch.float64)."
            )
        if weight.dim() != 2:
            raise ValueError(
                f"weight must be a matrix W of shape [D, d] (data dim x latent dim), got shape "
                f"{tuple(weight.shape)}. For d = 1 use weight.reshape(D, 1)."
            )
        if not weight.is_floating_point():
            raise TypeError(
                f"weight must be a floating-point tensor, got dtype {weight.dtype}. "
                "Use weight.double()."
            )
        if bias.shape != weight.shape[:1]:
            raise ValueError(
                f"bias must have shape [D] = ({weight.shape[0]},) to match weight "
                f"{tuple(weight.shape)}, got {tuple(bias.shape)}."
            )
        if isinstance(noise_std, bool) or not isinstance(noise_std, numbers.Real):
            raise TypeError(
                f"noise_std must be a positive float, got {type(noise_std).__name__}. "
                "Pass e.g. noise_std=0.5."
            )
        if not (math.isfinite(noise_std) and noise_std > 0):
            raise ValueError(f"noise_std must be a positive finite float, got {noise_std}.")
        if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
            raise ValueError("weight and bias must be finite; they contain NaN or inf.")
        self.weight = weight
        self.bias = bias.to(dtype=weight.dtype, device=weight.device)
        self.noise_std = float(noise_std)
        self.data_dim, self.latent_dim = weight.shape
        self.prior = standard_normal(self.latent_dim, device=weight.device, dtype=weight.dtype)

    def __repr__(self) -> str:
        return (
            f"LinearGaussianModel(latent_dim={self.latent_dim}, data_dim={self.data_dim}, "
            f"noise_std={self.noise_std}, dtype={self.weight.dtype})"
        )

    @classmethod
    def random(
        cls,
        latent_dim: int,
        data_dim: int,
        noise_std: float = 0.5,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> "LinearGaussianModel":
        """A reproducible random model: W_ij ~ N(0, 1/d), b_i ~ N(0, 1).

        The 1/d scaling keeps the marginal variance per data dimension,
        sum_j W_ij^2 + s^2, near 1 + s^2 whatever the latent dimension d (chapter 4's
        curse-of-dimensionality experiments compare models of growing d).

        Args:
            latent_dim: d >= 1.  data_dim: D >= 1.  noise_std: s > 0.
            seed: seeds a private ``torch.Generator``; the global RNG is untouched.
            dtype: floating dtype of W and b (float64 by default, for exact comparisons).
        """
        for name, value in (("latent_dim", latent_dim), ("data_dim", data_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        generator = torch.Generator().manual_seed(int(seed))
        weight = torch.randn(data_dim, latent_dim, generator=generator, dtype=dtype)
        weight = weight / math.sqrt(latent_dim)
        bias = torch.randn(data_dim, generator=generator, dtype=dtype)
        return cls(weight, bias, noise_std)

    def _check_last_dim(self, name: str, value, size: int, what: str) -> None:
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor of shape [..., {size}], got "
                f"{type(value).__name__}. Use torch.as_tensor({name}, dtype={self.weight.dtype})."
            )
        if value.dim() < 1 or value.shape[-1] != size:
            raise ValueError(
                f"{name} must have shape [..., {size}] (last dim = {what}), got "
                f"{tuple(value.shape)}."
            )

    def likelihood(self, z: torch.Tensor) -> Independent:
        """p(x|z) = N(W z + b, s^2 I_D) (chapter 4, equation ``eq-linear-gaussian``).

        Args:
            z: ``[..., d]``, e.g. ``[S, B, d]``.

        Returns:
            ``Independent(Normal(W z + b, s), 1)`` with batch shape ``z.shape[:-1]`` and event
            shape ``(D,)``.
        """
        self._check_last_dim("z", z, self.latent_dim, "latent dim d")
        mean = z @ self.weight.T + self.bias  # [..., D]
        return Independent(Normal(mean, torch.full_like(mean, self.noise_std)), 1)

    @property
    def marginal(self) -> MultivariateNormal:
        """The exact p(x) = N(b, W W^T + s^2 I_D) (chapter 4, equation ``eq-linear-gaussian-marginal``); event shape ``(D,)``."""
        eye = torch.eye(self.data_dim, dtype=self.weight.dtype, device=self.weight.device)
        covariance = self.weight @ self.weight.T + self.noise_std**2 * eye
        return MultivariateNormal(self.bias, covariance_matrix=covariance)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) = log N(x; b, W W^T + s^2 I_D) (chapter 4, equation ``eq-linear-gaussian-marginal``).

        Args:
            x: ``[B, D]`` (any leading dims ``[..., D]`` work).

        Returns:
            ``[B]`` (resp. ``[...]``).
        """
        self._check_last_dim("x", x, self.data_dim, "data dim D")
        return self.marginal.log_prob(x)

    def posterior(self, x: torch.Tensor) -> MultivariateNormal:
        """The exact posterior p(z|x) (chapter 4, equation ``eq-linear-gaussian-posterior``).

        Sigma = (I_d + W^T W / s^2)^{-1} and mean = Sigma W^T (x - b) / s^2.

        Args:
            x: ``[B, D]`` (any leading dims ``[..., D]`` work).

        Returns:
            ``MultivariateNormal`` with batch shape ``(B,)`` (resp. ``[...]``) and event
            shape ``(d,)``.
        """
        self._check_last_dim("x", x, self.data_dim, "data dim D")
        s2 = self.noise_std**2
        eye = torch.eye(self.latent_dim, dtype=self.weight.dtype, device=self.weight.device)
        precision = eye + self.weight.T @ self.weight / s2  # [d, d]
        chol = torch.linalg.cholesky(precision)
        covariance = torch.cholesky_inverse(chol)  # Sigma, [d, d]
        covariance = 0.5 * (covariance + covariance.T)  # exactly symmetric
        projected = (x - self.bias) @ self.weight / s2  # [..., d]: W^T (x - b) / s^2 per row
        mean = projected @ covariance  # Sigma symmetric, so row @ Sigma = (Sigma row^T)^T
        return MultivariateNormal(mean, covariance_matrix=covariance)

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Ancestral sampling: z ~ p(z), then x ~ p(x|z) (chapter 1, equation ``eq-joint``).

        Args:
            n: number of pairs (int >= 1).
            generator: optional ``torch.Generator`` for reproducibility.

        Returns:
            ``(x [n, D], z [n, d])``.
        """
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}.")
        kwargs = dict(generator=generator, dtype=self.weight.dtype, device=self.weight.device)
        z = torch.randn(n, self.latent_dim, **kwargs)
        noise = torch.randn(n, self.data_dim, **kwargs)
        x = z @ self.weight.T + self.bias + self.noise_std * noise
        return x, z


class VAE(nn.Module):
    """What every VAE in the book shares (chapter 7): p(z) = N(0, I), an encoder, a decoder.

    Subclasses define ``encode(x) -> q(z|x)`` and ``decode(z) -> p(x|z)`` (see the module
    docstring for shapes) and ``config()``, the keyword arguments that rebuild the same
    architecture (saved in checkpoints). Everything else is here, written once.
    """

    def __init__(self, latent_dim: int):
        super().__init__()
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
        self.latent_dim = latent_dim

    def _reference(self) -> torch.Tensor:
        return next(self.parameters())

    @property
    def prior(self) -> Distribution:
        """p(z) = N(0, I_d) on the model's device and dtype; batch shape ``()``, event ``(d,)``."""
        ref = self._reference()
        return standard_normal(self.latent_dim, device=ref.device, dtype=ref.dtype)

    def encode(self, x: torch.Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def elbo_terms(self, x: torch.Tensor, num_samples: int = 1, analytic_kl: bool = True):
        """Accuracy E_q[log p(x|z)] and complexity KL(q(z|x) || p(z)), each ``[B]`` (eq-elbo)."""
        return estimators.elbo_terms(x, self.prior, self.decode, self.encode(x), num_samples, analytic_kl)

    def elbo(self, x: torch.Tensor, num_samples: int = 1) -> torch.Tensor:
        """The ELBO of each data point, ``[B]`` (chapter 7, equation ``eq-elbo``)."""
        return self.elbo_terms(x, num_samples).elbo

    def iwae_bound(self, x: torch.Tensor, num_samples: int) -> torch.Tensor:
        """The importance-weighted bound with ``num_samples`` samples, ``[B]`` (equation ``eq-iwae``)."""
        return estimators.iwae_bound(x, self.prior, self.decode, self.encode(x), num_samples)

    @torch.no_grad()
    def log_marginal(self, x: torch.Tensor, num_samples: int, chunk_size: int | None = None) -> torch.Tensor:
        """Importance-sampled estimate of log p(x) with q(z|x) as proposal, ``[B]`` (chapter 6)."""
        return estimators.log_marginal_importance(
            x, self.prior, self.decode, self.encode(x), num_samples, chunk_size=chunk_size
        )

    @torch.no_grad()
    def sample(self, n: int, mean: bool = False) -> torch.Tensor:
        """Ancestral samples x ~ p(x|z), z ~ p(z), ``[n, *event_x]`` (or the decoder means)."""
        z = self.prior.sample((n,))
        p_x = self.decode(z)
        return p_x.mean if mean else p_x.sample()


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class MLPVAE(VAE):
    """A VAE with fully connected encoder and decoder, for vector data (chapter 7).

    Encoder: x ``[B, D]`` -> MLP -> mean and log-variance of q(z|x) = N(mu, diag sigma^2).
    Decoder: z ``[..., d]`` -> MLP -> p(x|z), either

    - ``likelihood="gaussian"``: N(mean(z), diag std^2), with ``std`` a learned per-feature scale,
      or a fixed number given as ``decoder_std`` (the isotropic Gaussian of chapter 7, whose
      log-likelihood is a scaled squared error, equation ``eq-gaussian-squared-error``);
    - ``likelihood="bernoulli"``: independent Bernoulli(logits(z)) for binary data.
    """

    LIKELIHOODS = ("gaussian", "bernoulli")

    def __init__(
        self,
        data_dim: int,
        latent_dim: int = 2,
        hidden_dims: tuple[int, ...] = (64, 64),
        likelihood: str = "gaussian",
        decoder_std: float | None = None,
    ):
        super().__init__(latent_dim)
        if not isinstance(data_dim, int) or data_dim < 1:
            raise ValueError(f"data_dim must be a positive int, got {data_dim!r}")
        if likelihood not in self.LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {self.LIKELIHOODS}, got {likelihood!r}")
        if decoder_std is not None and not (isinstance(decoder_std, numbers.Real) and decoder_std > 0):
            raise ValueError(f"decoder_std must be None (learned) or a positive number, got {decoder_std!r}")
        self.data_dim = data_dim
        self.hidden_dims = tuple(int(h) for h in hidden_dims)
        self.likelihood = likelihood
        self.decoder_std = decoder_std
        self.encoder = _mlp([data_dim, *self.hidden_dims, 2 * latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(self.hidden_dims), data_dim])
        if likelihood == "gaussian" and decoder_std is None:
            self.decoder_log_std = nn.Parameter(torch.zeros(data_dim))

    def config(self) -> dict:
        return {
            "data_dim": self.data_dim,
            "latent_dim": self.latent_dim,
            "hidden_dims": list(self.hidden_dims),
            "likelihood": self.likelihood,
            "decoder_std": self.decoder_std,
        }

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z|x): batch shape ``(B,)``, event ``(d,)`` for x ``[B, D]``."""
        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"encode expects x of shape [B, {self.data_dim}], got {tuple(x.shape)}")
        mean, log_var = self.encoder(x).chunk(2, dim=-1)
        return diagonal_gaussian(mean, log_var)

    def decode(self, z: torch.Tensor) -> Distribution:
        """p(x|z): batch shape ``z.shape[:-1]``, event ``(D,)`` for z ``[..., d]``."""
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"decode expects z of shape [..., {self.latent_dim}], got {tuple(z.shape)}")
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return Independent(Bernoulli(logits=out), 1)
        if self.decoder_std is None:
            std = self.decoder_log_std.exp().expand_as(out)
        else:
            std = torch.full_like(out, float(self.decoder_std))
        return Independent(Normal(out, std), 1)
