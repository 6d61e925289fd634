"""Random network parameters for the relevance-tree and viewer tests."""

import jax
import jax.numpy as jnp
import numpy as np


def fast_params(network, seed: int = 0) -> dict:
    """Random parameters of the network's shapes: He-scaled normal kernels, small random biases
    (so a missing bias term cannot pass). Orthogonal init (init_params) costs seconds of QR on
    this CPU and the tests need no orthogonality."""
    shapes = jax.eval_shape(network.init, jax.random.PRNGKey(0),
                            jnp.zeros((1, 4, 84, 84), jnp.uint8))["params"]
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        if path[-1].key == "bias":
            return (0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return (rng.standard_normal(leaf.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)
