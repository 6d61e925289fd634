"""Running saliency in batches: batched = per-frame loop, chunked = unchunked, micro-batches,
the memory estimate against XLA and the chunks it allows, and frames split over two host devices
equal to one device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from saliency_helpers import random_frames

from attnjax.inspection.saliency import execution as X
from attnjax.inspection.saliency import methods as S

ROOT = Path(__file__).resolve().parents[3]


def test_batched_equals_per_frame_loop_and_chunking(real):
    net, params = real
    obs = random_frames(5, seed=6)
    config = S.SaliencyConfig(samples=3, target="max_sum", sigma_scope="frame")
    key = jax.random.PRNGKey(11)
    batched = S.compute_saliency(net, params, obs, config, key, chunk_frames=5)
    frame_fn = S.make_frame_saliency(net, config)
    keys = S.frame_keys(key, len(obs))
    x = S.to_unit(obs)
    sigma = S.noise_sigma(x, config.spread, config.sigma_scope)
    for i in range(len(obs)):
        single = frame_fn(params, jnp.asarray(x[i]), keys[i], jnp.asarray(sigma[i]))
        for method in config.methods:
            want = np.asarray(single[method])
            np.testing.assert_allclose(batched.maps[method][i], want, rtol=1e-5,
                                       atol=1e-5 * np.abs(want).max())
        np.testing.assert_allclose(batched.attention[i], np.asarray(single["attention"]),
                                   rtol=1e-5, atol=1e-7)
        assert batched.greedy_actions[i] == int(single["action"])
    # chunk 1: more calls than are kept in flight, so results are fetched inside the loop too
    for chunk, schedule in ((1, None), (2, None), (3, X.Schedule(0, 1)), (5, X.Schedule(7, 3))):
        chunked = S.compute_saliency(net, params, obs, config, key, chunk_frames=chunk,
                                     schedule=schedule)
        for method in config.methods:
            np.testing.assert_allclose(chunked.maps[method], batched.maps[method], rtol=1e-5,
                                       atol=1e-5 * np.abs(batched.maps[method]).max())
        assert chunked.chunk_frames == chunk


@pytest.mark.parametrize("total, size", [(50, 8), (51, 8), (8, 8), (5, 8), (49, 7), (3, 1)])
def test_micro_batches_cover_the_rows_in_near_equal_slices(total, size):
    slices = X.micro_batches(total, size)
    assert [i for sl in slices for i in range(total)[sl]] == list(range(total))
    lengths = [sl.stop - sl.start for sl in slices]
    assert len(slices) == -(-total // size) and max(lengths) <= size
    assert max(lengths) - min(lengths) <= 1


def test_memory_estimate_bounds_xla_and_chunks_respect_budget(real, monkeypatch):
    net, params = real
    config = S.SaliencyConfig(samples=4)
    frames = 3
    fn = S.make_batch_saliency(net, config)
    x = jnp.zeros((frames, 4, 84, 84))
    compiled = fn.lower(params, x, S.frame_keys(jax.random.PRNGKey(0), frames),
                        jnp.zeros(frames)).compile()
    analysis = compiled.memory_analysis()
    estimate = X.bytes_per_gradient(net) * config.gradients_per_frame * frames
    if analysis is not None:
        assert analysis.temp_size_in_bytes <= estimate
    per_frame_mb = X.bytes_per_gradient(net) * config.gradients_per_frame / 2**20
    tight = S.SaliencyConfig(samples=4, memory_budget_mb=3.5 * per_frame_mb)
    def chunk(cfg, frames, backend, devices):
        return X.frames_per_chunk(net, cfg, frames, backend=backend, num_devices=devices)

    assert chunk(tight, 100, "gpu", 1) == 3  # the budget is per device
    assert chunk(tight, 100, "gpu", 2) == 6
    assert chunk(tight, 2, "gpu", 1) == 2
    assert chunk(tight, 5, "gpu", 2) == 6  # 3 frames per device, one call, one padded frame
    assert chunk(tight, 4, "gpu", 1) == 2  # two calls of 2, not 3 and 1 padded to 3
    assert chunk(S.SaliencyConfig(memory_budget_mb=1e-3), 9, "gpu", 1) == 1
    assert chunk(S.SaliencyConfig(memory_budget_mb=1e-3), 9, "gpu", 2) == 2
    for devices in (1, 2, 4):
        want = X.CPU_FRAMES_PER_DEVICE * devices
        assert chunk(S.SaliencyConfig(samples=50), 1000, "cpu", devices) == want
    # CPU host devices share one RAM: the budget covers all of them, not each
    monkeypatch.setattr(X, "CPU_FRAMES_PER_DEVICE", 8)
    six = S.SaliencyConfig(samples=4, memory_budget_mb=6.5 * per_frame_mb)
    assert chunk(six, 100, "cpu", 2) == 6
    assert chunk(six, 100, "gpu", 2) == 12
    from attnjax.devices import usable_cores

    assert 1 <= usable_cores() <= os.cpu_count()


SHARDED_SCRIPT = """
import sys, jax, numpy as np
from attnjax.inspection.saliency import methods as S
from attnjax.devices import use_cpu_cores_as_devices
from attnjax.model.networks import init_params, make_network
use_cpu_cores_as_devices(2)
assert len(S.saliency_devices()) == 2
net = make_network("attention", num_actions=4, num_heads=2)
params = init_params(net, jax.random.PRNGKey(3))
obs = np.random.default_rng(0).integers(0, 256, (5, 4, 84, 84), dtype=np.uint8)
config = S.SaliencyConfig(methods=S.METHODS, samples=3)  # every method, perturbation too
one = S.compute_saliency(net, params, obs, config, 7, chunk_frames=5,
                         fn=S.make_batch_saliency(net, config, devices=S.saliency_devices()[:1]))
for chunk in (None, 3):  # 1 frame per device; 3 frames padded to 4
    two = S.compute_saliency(net, params, obs, config, 7, chunk_frames=chunk)
    for m in config.methods:
        np.testing.assert_allclose(two.maps[m], one.maps[m], rtol=1e-5,
                                   atol=1e-6 * np.abs(one.maps[m]).max())
    np.testing.assert_array_equal(two.greedy_actions, one.greedy_actions)
print("chunk", S.frames_per_chunk(net, config, 5))
"""


def test_frames_split_over_two_host_devices_equal_one_device():
    """Saliency with the CPU exposed as 2 host devices (how the command-line tools run it)
    equals one device, frame for frame, including a padded last call."""
    proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == str(2 * X.CPU_FRAMES_PER_DEVICE)
