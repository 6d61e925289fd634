"""What the saliency tests share: the head count of their networks and random frames."""

import numpy as np

HEADS = 2


def random_frames(n: int, seed: int = 0) -> np.ndarray:
    """[n, 4, 84, 84] uint8 random observations."""
    return np.random.default_rng(seed).integers(0, 256, (n, 4, 84, 84), dtype=np.uint8)
