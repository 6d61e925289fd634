"""Process-wide XLA:CPU setup, made before JAX runs anything (it starts no backend).

Two settings:
- `use_eigen_convolutions` (applied when `attnjax` is imported): jaxlib 0.10 lowers CPU
  convolutions to YNNPACK fusions by default. Those run the Nature-CNN convolutions' gradients
  ~3x slower than XLA's Eigen convolutions on a 2-core x86 machine (batch 128: conv-stack
  gradient 234 -> 74 ms, the attention network's loss gradient 244 -> 113 ms), so attnjax keeps
  YNNPACK for dots only.
- `use_cpu_cores_as_devices`: the CPU's cores as separate XLA host devices, so batch saliency
  can compute different frames on each core side by side (one convolution spreads over 2 cores
  only ~1.15x faster than over one). The command lines call it first thing.
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


# The XLA flag and its value: YNNPACK fusions for dots only (the overwrite form of the list;
# the flag's default also sends convolutions to YNNPACK). Known to parse on jaxlib 0.10.
YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
YNN_DOTS_ONLY = f"{YNN_FLAG}=dot"
YNN_FLAG_JAXLIB = ("0.10.",)  # jaxlib versions that accept the value (an unknown one aborts)


def use_eigen_convolutions() -> bool:
    """Add `YNN_DOTS_ONLY` to XLA_FLAGS unless the user set the flag, so CPU convolutions run
    on Eigen; True when the flag is (now) in XLA_FLAGS. Takes effect only if no JAX backend
    has started yet; skipped for jaxlib versions the value is not known to parse on (XLA
    aborts the process on a flag value it rejects)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if YNN_FLAG in flags:
        return True
    try:
        from importlib.metadata import version

        jaxlib_version = version("jaxlib")
    except Exception:  # noqa: BLE001 - no metadata: leave XLA's defaults
        return False
    if not jaxlib_version.startswith(YNN_FLAG_JAXLIB):
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {YNN_DOTS_ONLY}".strip()
    return True


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
