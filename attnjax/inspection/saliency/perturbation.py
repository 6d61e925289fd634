"""The geometry of perturbation saliency (Greydanus et al. 2018, "Visualizing and understanding
Atari agents"): blurred frames, Gaussian masks on a grid, and the grid of scores upsampled.

At each point (i, j) of a GRID_STRIDE grid over the 84 x 84 input (rows and columns 0, 5, ...,
80: 17 x 17 = 289 points) the frame I is blended with its Gaussian blur A(I) (sigma BLUR_SIGMA)
under a Gaussian mask M centred there (sigma MASK_SIGMA, peak 1):
I' = I (1 - M) + A(I) M, in all 4 stacked frames at the same place. How much the network's
output changes (`scores`: ½ ||π(I) - π(I')||^2 of the policy logits, (V(I) - V(I'))^2 of the
value, the squared change of an attention target) is that point's score. The 17 x 17 scores
become an 84 x 84 map by bilinear interpolation at the points' own coordinates: pixel p lies at
grid position p / GRID_STRIDE,
between points floor and ceil of it; pixels 81-83, beyond the last point, take its value.

Greydanus et al.'s code drew the mask as a blurred disc scaled to peak 1; here it is the
Gaussian itself. The blur is scipy.ndimage.gaussian_filter's (truncated at 4 sigma, borders
mirrored: d c b a | a b c d), written as a matrix so that it is two matrix products in JAX.
Pure functions of constants and arrays: the engine vmaps them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

SIZE = 84  # observation height and width
GRID_STRIDE = 5
MASK_SIGMA = 5.0
BLUR_SIGMA = 3.0
BLUR_TRUNCATE = 4.0  # kernel radius in sigmas, scipy.ndimage.gaussian_filter's default


def grid_points(size: int = SIZE, stride: int = GRID_STRIDE) -> np.ndarray:
    """[G] rows (or columns) of the grid: 0, stride, ... < size (17 for 84 and 5)."""
    return np.arange(0, size, stride)


def grid_centres(size: int = SIZE, stride: int = GRID_STRIDE) -> np.ndarray:
    """[G * G, 2] float32 (row, column) of every grid point, row-major."""
    points = grid_points(size, stride)
    rows, cols = np.meshgrid(points, points, indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float32)


def blur_matrix(size: int = SIZE, sigma: float = BLUR_SIGMA,
                truncate: float = BLUR_TRUNCATE) -> np.ndarray:
    """[size, size] B with B @ v the 1-D Gaussian blur of v, mirrored at the borders (as
    scipy.ndimage's default mode 'reflect'): a frame F blurs to B @ F @ B.T."""
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    out = np.zeros((size, size), np.float64)
    for i in range(size):
        for offset, weight in zip(offsets, kernel, strict=True):
            j = i + offset
            period = 2 * size  # mirror: -1 -> 0, -2 -> 1, size -> size - 1
            j %= period
            if j >= size:
                j = period - 1 - j
            out[i, j] += weight
    return out.astype(np.float32)


def blur(x: jax.Array) -> jax.Array:
    """[..., 84, 84] -> the same frames blurred with sigma BLUR_SIGMA."""
    b = jnp.asarray(blur_matrix(x.shape[-1]))
    return jnp.einsum("ij,...jk,lk->...il", b, x, b)


def gaussian_mask(centre: jax.Array, size: int = SIZE, sigma: float = MASK_SIGMA) -> jax.Array:
    """[2] (row, column) -> [size, size] mask exp(-d^2 / (2 sigma^2)), 1 at the centre."""
    coords = jnp.arange(size, dtype=jnp.float32)
    rows = jnp.square(coords - centre[0])[:, None]
    cols = jnp.square(coords - centre[1])[None, :]
    return jnp.exp(-(rows + cols) / (2.0 * sigma * sigma))


def perturb(x: jax.Array, blurred: jax.Array, centre: jax.Array) -> jax.Array:
    """[4, 84, 84] frame, its blur, [2] centre -> the frame blended with its blur under the
    mask at `centre`, the same mask in every stacked frame."""
    mask = gaussian_mask(centre, x.shape[-1])  # [84, 84]
    return x * (1.0 - mask) + blurred * mask


def upsample_matrix(size: int = SIZE, stride: int = GRID_STRIDE) -> np.ndarray:
    """[size, G] U with U @ s the linear interpolation of grid values s [G] at every pixel
    (pixel p at grid position p / stride, clamped to the last point)."""
    count = len(grid_points(size, stride))
    out = np.zeros((size, count), np.float32)
    for p in range(size):
        position = min(p / stride, count - 1)
        low = min(math.floor(position), count - 1)
        high = min(low + 1, count - 1)
        frac = position - low
        out[p, low] += 1.0 - frac
        out[p, high] += frac
    return out


def upsample(scores: jax.Array, size: int = SIZE) -> jax.Array:
    """[G, G] grid scores -> [size, size] bilinear map (see the module docstring)."""
    u = jnp.asarray(upsample_matrix(size, GRID_STRIDE))
    return u @ scores @ u.T


def scores(readouts: jax.Array, clean: jax.Array, weight: float = 1.0) -> jax.Array:
    """[P, D] readouts of a frame's perturbed copies and [D] of the frame -> [G, G] grid of
    weight * ||r(I) - r(I')||^2: ½ for the policy logits (Greydanus et al.'s ½ ||π(I) -
    π(I')||^2), 1 for a scalar target: (V(I) - V(I'))^2, the squared change of an attention
    target."""
    per_point = weight * jnp.sum(jnp.square(readouts - clean), axis=-1)  # [P]
    side = math.isqrt(per_point.shape[0])
    return per_point.reshape(side, side)


def points_per_frame(size: int = SIZE, stride: int = GRID_STRIDE) -> int:
    """Perturbed forward passes per frame (289 for 84 and 5)."""
    return len(grid_points(size, stride)) ** 2
