"""Process-wide device setup: the CPU's cores as separate XLA host devices.

Why: XLA:CPU spreads one convolution over 2 cores only ~1.15x faster than over one, while two
host devices computing different frames side by side keep both cores busy (~1.6x). Training
splits each minibatch's rows over them (`ppo.py`, loops="split"); batch saliency splits frames.
The setting must be made before JAX runs anything, so the command lines call
`use_cpu_cores_as_devices` first thing; it imports nothing heavy and starts no backend.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path


def usable_cores() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup v2 CPU quota (a
    container limited to 2 CPUs on a 64-core host gets 2)."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def use_cpu_cores_as_devices(count: int | None = None) -> None:
    """Expose the CPU as `count` XLA host devices (default: `usable_cores()`). Sets
    `jax_num_cpu_devices`, which starts nothing (no backend, no GPU); only possible before JAX
    has run anything (afterwards a no-op), and left alone when XLA_FLAGS already sets a host
    device count."""
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    import jax

    with contextlib.suppress(RuntimeError):  # backends already initialised: keep them
        jax.config.update("jax_num_cpu_devices", count or usable_cores())
