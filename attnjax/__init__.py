"""attnjax: entropy-regularized attention agents for Atari in JAX, and tools to look inside them."""

from attnjax.agents.load import Agent, load_agent

__all__ = ["Agent", "load_agent"]
