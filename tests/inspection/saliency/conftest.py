"""Fixtures of the saliency tests."""

import jax
import pytest
from saliency_helpers import HEADS

from attnjax.model.networks import init_params, make_network


@pytest.fixture(scope="module")
def real():
    """The attention network with random parameters: (network, params)."""
    net = make_network("attention", num_actions=4, num_heads=HEADS)
    params = init_params(net, jax.random.PRNGKey(3))
    return net, params
