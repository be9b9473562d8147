"""vi_lib: the tested helper library of the book *Variational Inference, from p(x, z) to a VAE*.

One module per idea, each named after what the book calls it:

- :mod:`vi_lib.distributions`  Gaussians and their KL divergence (chapters 2 and 7)
- :mod:`vi_lib.estimators`     Monte Carlo estimates of log p(x) and the ELBO (chapters 4-7)
- :mod:`vi_lib.models`         the linear-Gaussian model with its exact answers, and the VAEs
- :mod:`vi_lib.data`           ocean sensors, the forest, MNIST
- :mod:`vi_lib.plotting`       the book's figure theme and colour-blind-safe palette

Modules are imported on use (``from vi_lib import estimators``), so ``import vi_lib`` is cheap.
"""

__version__ = "0.1.0"
