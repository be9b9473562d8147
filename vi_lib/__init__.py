"""vi_lib: the tested helper library of the book *Variational Inference, from p(x, z) to a VAE*.

Its layout is the book's table of contents: one module per idea, named after what the book calls
it, listed here by the chapter that first uses it. These are what the chapters import:

- :mod:`vi_lib.mixture`             the Gaussian mixture, a latent-variable model p(z) p(x|z) (chapters 1, 3)
- :mod:`vi_lib.toy_data`            ocean sensors and their true model; the forest (chapters 1-3, 5, 7)
- :mod:`vi_lib.distributions`       Gaussians, the maximum-likelihood Gaussian, their KL (chapters 2, 3, 6, 7)
- :mod:`vi_lib.models`              the linear-Gaussian model with exact answers; the VAEs (chapters 4, 6-8)
- :mod:`vi_lib.estimation_problem`  the shared problem on which estimators are scored (chapters 4, 6, 7)
- :mod:`vi_lib.estimators`          Monte Carlo estimates of log p(x), the ELBO, the IWAE bound (chapters 4-7)
- :mod:`vi_lib.training`            one loop that fits a VAE, with KL warm-up and learning-rate decay (chapters 7, 8)
- :mod:`vi_lib.diagnostics`         which latent dimensions a VAE uses: KL per dimension, active units (chapter 8)
- :mod:`vi_lib.checks`              the exercises' self-checks, in chapter order (chapters 1-8)
- :mod:`vi_lib.plotting`            the figure theme and colour-blind-safe palette (every chapter)

Beside them, chapter 8's engineering, which the ideas never import: :mod:`vi_lib.mnist` (the
MNIST files, checkpoints, the evaluation protocol, and the command lines ``python -m
vi_lib.mnist.train`` and ``python -m vi_lib.mnist.evaluate``). Two private modules serve all of
them: ``_validation`` (one check per kind of argument) and ``_progress`` (progress bars).

Modules are imported on use (``from vi_lib import estimators``), so ``import vi_lib`` is cheap.
"""

__version__ = "0.1.0"

__all__ = [  # the modules, in the order above (``from vi_lib import *`` imports them all)
    "mixture", "toy_data", "distributions", "models", "estimation_problem", "estimators", "training",
    "diagnostics", "checks", "plotting", "mnist",
]
