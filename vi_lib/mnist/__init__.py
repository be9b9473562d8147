"""Chapter 8's engineering, beside the ideas: MNIST files, checkpoints, the evaluation protocol, two command lines.

- :mod:`vi_lib.mnist.data`         the original MNIST files, read, checked, downloaded; binarisation
- :mod:`vi_lib.mnist.checkpoints`  a trained VAE and its training state, saved atomically, loaded back
- :mod:`vi_lib.mnist.protocol`     test ELBO and importance-sampled log p(x); means, standard errors, pooling
- :mod:`vi_lib.mnist.cli`          what the two command lines share (thread policy, flags, device, JSON)
- :mod:`vi_lib.mnist.train`        ``python -m vi_lib.mnist.train``: the results page's training run
- :mod:`vi_lib.mnist.evaluate`     ``python -m vi_lib.mnist.evaluate``: its test log-likelihood

Nothing here is imported by ``import vi_lib.mnist``; import the module you need.
"""

__all__ = ["data", "checkpoints", "protocol", "cli", "train", "evaluate"]
