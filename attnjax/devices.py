"""XLA:CPU settings: which library runs a program's convolutions, and the cores as devices.

- `eigen_convolution_options`: jaxlib 0.10 lowers CPU convolutions to YNNPACK fusions by
  default. Their gradients run ~2-3x slower than XLA's Eigen convolutions on a 2-core x86
  machine (batch 128: conv-stack gradient 234 -> 74 ms, the attention network's loss gradient
  253 -> 109 ms; the paper preset trains 2.3x faster, bench/conv_backend.py; batch SmoothGrad
  1.2x). Training and saliency programs are compiled with the option (per `jax.jit`, so a
  user's own programs keep XLA's defaults).
- `use_cpu_cores_as_devices`: the CPU's cores as separate XLA host devices, so batch saliency
  can compute different frames on each core side by side (one convolution spreads over 2 cores
  only ~1.15x faster than over one). Must run before JAX runs anything, so the command lines
  call it first thing; it imports nothing heavy and starts no backend.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
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


# XLA:CPU's per-compilation option and value: YNNPACK fusions for dots only (the option's
# default also sends convolutions to YNNPACK). Known to be accepted by jaxlib 0.10.
YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
YNN_DOTS_ONLY = "LIBRARY_FUSION_TYPE_DOT"
YNN_OPTION_JAXLIB = ("0.10.",)  # jaxlib versions known to accept the value
KEEP_XLA_DEFAULTS = "ATTNJAX_XLA_CPU_DEFAULTS"  # =1: leave XLA's convolution backend alone


def eigen_convolution_options(backend: str | None = None) -> dict[str, str] | None:
    """`compiler_options` for `jax.jit` that put a CPU program's convolutions on Eigen; None
    (XLA's defaults) off CPU, when ATTNJAX_XLA_CPU_DEFAULTS=1, or on a jaxlib the value is not
    known to work on. Training and saliency programs use it (numbers: the module docstring)."""
    import jax

    if (backend or jax.default_backend()) != "cpu" or os.environ.get(KEEP_XLA_DEFAULTS) == "1":
        return None
    try:
        from importlib.metadata import version

        jaxlib_version = version("jaxlib")
    except Exception:  # noqa: BLE001 - no metadata: leave XLA's defaults
        return None
    if not jaxlib_version.startswith(YNN_OPTION_JAXLIB):
        return None
    return {YNN_OPTION: YNN_DOTS_ONLY}


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


def machine_line() -> str:
    """"machine: <CPU model>, <usable cores> of <CPUs> CPUs, jax <version>" for a benchmark's
    output, so that every recorded number names the machine it came from (ratios differ
    between CPU models). Reads package metadata only: starts no JAX backend."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        jax_version = version("jax")
    except PackageNotFoundError:
        jax_version = "not installed"
    return (f"machine: {cpu_model() or 'CPU model unknown'}, {usable_cores()} usable of "
            f"{os.cpu_count()} CPUs, jax {jax_version}")


def cpu_model() -> str | None:
    """The CPU's model name: /proc/cpuinfo's "model name", else lscpu's "Model name"; None when
    neither says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    try:
        shown = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in shown.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name" and value.strip():
            return value.strip()
    return None
