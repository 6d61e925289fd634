"""Which library runs a training program's convolutions on CPU (attnjax.devices): Eigen via a
per-compilation option, not YNNPACK (XLA's default, 2-3x slower for the training gradients);
and the machine line every benchmark prints."""

from __future__ import annotations

import jax
import jax.numpy as jnp

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
