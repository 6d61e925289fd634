"""attnjax: entropy-regularized attention agents for Atari in JAX, and tools to look inside them."""

from attnjax.devices import use_eigen_convolutions

use_eigen_convolutions()  # before any JAX backend starts; see attnjax.devices

from attnjax.checkpoints import Agent, load_agent  # noqa: E402

__all__ = ["Agent", "load_agent"]
