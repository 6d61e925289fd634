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
- `restart_with_tcmalloc`: XLA:CPU allocates each call's temporaries afresh (the paper
  preset's minibatch gradient: 179 MB + 105 MB). glibc serves blocks that large with a new
  mmap and unmaps them on free, so every call faults their pages in again (~260,000 page
  faults per paper-preset iteration). tcmalloc keeps them for reuse, and the command lines
  restart themselves with it preloaded when the machine has it (gperftools'
  libtcmalloc-minimal4); bench/setting_speedup.py --setting malloc measures the difference.
- `prepare_process`: both, as every command line and benchmark starts.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import math
import os
import pkgutil
import subprocess
import sys
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


KEEP_MALLOC_DEFAULTS = "ATTNJAX_MALLOC_DEFAULTS"  # =1: never restart with tcmalloc
RESTARTED = "ATTNJAX_TCMALLOC_RESTART"  # set in the restarted process: never restart twice
TCMALLOC_LIBRARIES = ("tcmalloc_minimal", "tcmalloc")  # gperftools' libraries, as ld finds them
ACCELERATOR_PLUGINS = ("jax_cuda", "jax_rocm", "libtpu")  # module name prefixes


def xla_runs_on_cpu() -> bool:
    """Whether JAX's default backend will be the CPU, decided without starting JAX:
    JAX_PLATFORMS names it first, or no accelerator plugin (CUDA, ROCm, TPU) is installed."""
    platforms = os.environ.get("JAX_PLATFORMS", "").strip()
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    return not any(module.name.startswith(ACCELERATOR_PLUGINS)
                   for module in pkgutil.iter_modules())


def malloc_in_use() -> str:
    """"tcmalloc" when this process has it loaded (/proc/self/maps), else "default"."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "default"
    return "tcmalloc" if "libtcmalloc" in maps else "default"


def tcmalloc_library() -> str | None:
    """The name the dynamic loader knows tcmalloc by on this machine, None without one."""
    return next(filter(None, map(ctypes.util.find_library, TCMALLOC_LIBRARIES)), None)


def tcmalloc_environment() -> dict[str, str] | None:
    """This process's environment with tcmalloc preloaded, for a process that should get it
    (restart_with_tcmalloc's conditions); None when it should not or the machine has none."""
    if (not sys.platform.startswith("linux") or os.environ.get(KEEP_MALLOC_DEFAULTS) == "1"
            or os.environ.get(RESTARTED) == "1" or not xla_runs_on_cpu()
            or malloc_in_use() == "tcmalloc"):
        return None
    library = tcmalloc_library()
    if library is None:
        return None
    preload = " ".join(filter(None, (library, os.environ.get("LD_PRELOAD", ""))))
    return {
        # never hand freed pages back to the system: by default tcmalloc does so now and
        # then, and the next iteration faults them all in again (as slow as glibc or worse);
        # tcmalloc reports every block above 1 GiB on stderr, and a vmapped grid makes such
        # blocks as a matter of course. A user's own values of either win.
        "TCMALLOC_RELEASE_RATE": "0", "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(2**40),
        **os.environ, "LD_PRELOAD": preload, RESTARTED: "1"}


def restart_with_tcmalloc() -> None:
    """Run this command line again (same interpreter, arguments and environment) with tcmalloc
    preloaded, where it helps and is installed: Linux, XLA on the CPU, not loaded yet, not
    already restarted, and ATTNJAX_MALLOC_DEFAULTS is not 1. Otherwise returns doing nothing.
    Why: the module docstring. Must run before anything is printed or started."""
    env = tcmalloc_environment()
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def prepare_process() -> str:
    """What every command line and benchmark does first, before JAX runs anything: restart
    with tcmalloc where that helps, and the CPU's cores as XLA host devices. Returns the
    malloc in use ("tcmalloc" or "default")."""
    restart_with_tcmalloc()
    use_cpu_cores_as_devices()
    return malloc_in_use()


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
