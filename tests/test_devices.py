"""Which library runs a training program's convolutions on CPU (attnjax.devices): Eigen via a
per-compilation option, not YNNPACK (XLA's default, 2-3x slower for the training gradients);
when a command line restarts itself with tcmalloc; the machine line every benchmark prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from attnjax import devices
from attnjax.devices import KEEP_XLA_DEFAULTS, eigen_convolution_options


def compiled_conv_gradient(compiler_options: dict | None) -> str:
    """Optimized HLO of a strided convolution's kernel gradient, as training computes it."""
    x, w = jnp.ones((2, 84, 84, 4)), jnp.ones((8, 8, 4, 32))

    def loss(w: jax.Array) -> jax.Array:
        y = jax.lax.conv_general_dilated(x, w, (4, 4), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(y**2)

    fn = jax.jit(jax.grad(loss), compiler_options=compiler_options)
    return fn.lower(w).compile().as_text()


def test_training_programs_put_cpu_convolutions_on_eigen(monkeypatch):
    monkeypatch.delenv(KEEP_XLA_DEFAULTS, raising=False)
    options = eigen_convolution_options("cpu")
    assert options is not None
    hlo = compiled_conv_gradient(options)
    assert "ynn_fusion" not in hlo and "convolution(" in hlo
    # the option is what changes it: without it this jaxlib fuses the convolution into YNNPACK
    assert "ynn_fusion" in compiled_conv_gradient(None)


def test_no_options_off_cpu_or_when_the_user_opts_out(monkeypatch):
    assert eigen_convolution_options("gpu") is None
    monkeypatch.setenv(KEEP_XLA_DEFAULTS, "1")
    assert eigen_convolution_options("cpu") is None


def test_machine_line_names_the_cpu_model_cores_and_jax(monkeypatch):
    monkeypatch.setattr(devices, "cpu_model", lambda: "Intel(R) Xeon(R) Processor")
    monkeypatch.setattr(devices, "usable_cores", lambda: 2)
    line = devices.machine_line()
    assert line.startswith("machine: Intel(R) Xeon(R) Processor, 2 usable of ")
    assert line.endswith(f"jax {jax.__version__}")
    monkeypatch.setattr(devices, "cpu_model", lambda: None)
    assert devices.machine_line().startswith("machine: CPU model unknown, ")


REPO = Path(__file__).resolve().parents[1]
PRINT_MALLOC = "from attnjax.devices import prepare_process; print(prepare_process())"


@pytest.fixture
def tcmalloc_would_help(monkeypatch):
    """A Linux CPU process without tcmalloc loaded, on a machine that has it."""
    for name in (devices.KEEP_MALLOC_DEFAULTS, devices.RESTARTED, "JAX_PLATFORMS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(devices, "malloc_in_use", lambda: "default")
    monkeypatch.setattr(devices, "tcmalloc_library", lambda: "libtcmalloc_minimal.so.4")
    monkeypatch.setattr(devices.pkgutil, "iter_modules", lambda: [])
    monkeypatch.setattr(devices.sys, "platform", "linux")


def test_tcmalloc_environment_preloads_it_once(tcmalloc_would_help, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "libother.so")
    env = devices.tcmalloc_environment()
    assert env["LD_PRELOAD"] == "libtcmalloc_minimal.so.4 libother.so"
    assert env[devices.RESTARTED] == "1"  # the restarted process never restarts again


@pytest.mark.parametrize("why", ["opted out", "restarted", "accelerator", "cuda plugin",
                                 "loaded", "no library", "macOS"])
def test_no_restart_where_tcmalloc_cannot_or_need_not_help(tcmalloc_would_help, monkeypatch,
                                                            why):
    if why == "opted out":
        monkeypatch.setenv(devices.KEEP_MALLOC_DEFAULTS, "1")
    elif why == "restarted":
        monkeypatch.setenv(devices.RESTARTED, "1")
    elif why == "accelerator":
        monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
    elif why == "cuda plugin":
        plugin = type("Module", (), {"name": "jax_cuda12_plugin"})
        monkeypatch.setattr(devices.pkgutil, "iter_modules", lambda: [plugin])
    elif why == "loaded":
        monkeypatch.setattr(devices, "malloc_in_use", lambda: "tcmalloc")
    elif why == "no library":
        monkeypatch.setattr(devices, "tcmalloc_library", lambda: None)
    else:
        monkeypatch.setattr(devices.sys, "platform", "darwin")
    assert devices.tcmalloc_environment() is None


def test_jax_platforms_cpu_first_means_the_cpu(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu,cuda")
    assert devices.xla_runs_on_cpu()


@pytest.mark.skipif(not sys.platform.startswith("linux") or devices.tcmalloc_library() is None,
                    reason="this machine has no tcmalloc (Debian: libtcmalloc-minimal4)")
def test_a_command_line_restarts_itself_with_tcmalloc():
    env = {k: v for k, v in os.environ.items()
           if k not in (devices.KEEP_MALLOC_DEFAULTS, devices.RESTARTED, "JAX_PLATFORMS")}
    for opt_out, expected in (("0", "tcmalloc"), ("1", "default")):
        shown = subprocess.run([sys.executable, "-c", PRINT_MALLOC], cwd=REPO, text=True,
                               capture_output=True, timeout=120, check=True,
                               env={**env, devices.KEEP_MALLOC_DEFAULTS: opt_out}).stdout
        assert shown.split() == [expected]
