#!/usr/bin/env python3
"""Whether any XLA:CPU compiler option of this jaxlib makes the paper-preset minibatch gradient
of the attention network faster than attnjax's setting (Eigen convolutions, YNNPACK dots).

The gradient is the one training computes: the PPO loss (`losses.ppo_loss`, the paper preset's
coefficients, lambda 0.001) of a minibatch of 256 random frames with respect to the float32
parameters. Each variant compiles that same function with attnjax's `compiler_options` plus
its own (VARIANTS). The script prints whether a variant's optimized HLO differs from
attnjax's at all (many options are accepted and change nothing on a jaxlib built without the
library they name; an option of the code generator, such as the vector width, leaves the HLO
alone) and how far its gradient strays (relative norm over all parameters); then it times all
variants after a warm-up call each, in rounds whose order alternates, medians of all calls.
A variant that fails to compile is reported and left out. oneDNN fusions
(`xla_cpu_experimental_onednn_fusion_type` with `xla_cpu_use_onednn`) are not offered: on
jaxlib 0.10.2 their compilation aborts the process ("partition compile failed").
Prints `<variant>_ms=` for each and, last, `best_ratio=<attnjax ms / the fastest other
variant's ms>` (above 1: that option is faster than attnjax's setting).
Usage: .venv/bin/python bench/xla_cpu_options.py [--rounds 6] [--calls 3] [--only a,b]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attnjax.devices import (  # noqa: E402
    YNN_OPTION,
    eigen_convolution_options,
    machine_line,
    prepare_process,
)

prepare_process()  # as train.py does

import jax  # noqa: E402
from bf16_gradient import loss_of, program_instructions, random_minibatch  # noqa: E402
from conv_contraction import alternating_medians, relative_difference  # noqa: E402

from attnjax.model.networks import init_params, make_network  # noqa: E402

# name -> (options added to attnjax's, or None: XLA's own defaults; what it asks XLA to do)
VARIANTS: dict[str, tuple[dict | None, str]] = {
    "attnjax": ({}, "Eigen convolutions, YNNPACK dots (training's setting)"),
    "xla-defaults": (None, "XLA's defaults: YNNPACK fusions for convolutions too"),
    "onednn-custom-calls": (
        {"xla_cpu_use_onednn": True, "xla_cpu_experimental_onednn_custom_call": True},
        "rewrite dots and convolutions to oneDNN custom calls"),
    "xnnpack-convolutions": (
        {"xla_cpu_experimental_xnn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"},
        "each convolution as an XNNPACK fusion"),
    "vector-width-512": ({"xla_cpu_prefer_vector_width": 512},
                         "512-bit vectors in XLA's own loops (default 256)"),
    "concurrency-scheduler": ({"xla_cpu_enable_concurrency_optimized_scheduler": True},
                              "the concurrency-optimized instruction scheduler"),
    "no-fusion-emitters": ({"xla_cpu_use_fusion_emitters": False},
                           "XLA's older loop emitters for its fusions"),
}
BASELINE = "attnjax"
SAME_HLO = "the same optimized HLO as attnjax's (code generation may still differ)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    p.add_argument("--calls", type=int, default=3, help="timed calls per variant per round")
    p.add_argument("--batch", type=int, default=256, help="frames (paper minibatch: 256)")
    p.add_argument("--only", default="",
                   help=f"a comma list of variants to compare with {BASELINE} "
                   f"({', '.join(v for v in VARIANTS if v != BASELINE)}); default all")
    args = p.parse_args()
    chosen = [v for v in args.only.split(",") if v]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        p.error(f"--only: unknown variant(s) {', '.join(unknown)}; "
                f"choose from {', '.join(VARIANTS)}")
    names = [BASELINE, *[v for v in (chosen or VARIANTS) if v != BASELINE]]
    base = eigen_convolution_options()
    if base is None:
        print(f"error: attnjax's XLA:CPU setting is off here (backend "
              f"{jax.default_backend()}, or ATTNJAX_XLA_CPU_DEFAULTS=1, or a jaxlib it does "
              f"not know): nothing to compare; run on a CPU with jaxlib 0.10", file=sys.stderr)
        return 2

    network = make_network("attention", 4, 2)  # Breakout: 4 actions
    params = init_params(network, jax.random.PRNGKey(0))
    batch = random_minibatch(args.batch, 4)
    grad = jax.grad(loss_of(network, "fp32"), has_aux=True)
    print(f"{machine_line()}, {jax.default_backend()}; attnjax's options {base}; batch "
          f"{args.batch}, {args.rounds} rounds x {args.calls} calls", flush=True)

    compiled, grads, programs = {}, {}, {}
    for name in names:
        extra, what = VARIANTS[name]
        options = {k: v for k, v in base.items() if k != YNN_OPTION} if extra is None else {
            **base, **extra}
        t0 = time.perf_counter()
        try:
            compiled[name] = jax.jit(grad, compiler_options=options).lower(
                params, batch).compile()
        except Exception as error:  # noqa: BLE001 - an option this jaxlib rejects: report it
            print(f"  {name} - {what}: does not compile here: "
                  f"{str(error).splitlines()[0][:160]}", flush=True)
            continue
        grads[name] = jax.block_until_ready(compiled[name](params, batch))[0]  # warm-up
        programs[name] = program_instructions(compiled[name].as_text())
        same = name != BASELINE and programs[name] == programs[BASELINE]
        print(f"  {name} - {what}: compiled in {time.perf_counter() - t0:.1f} s; "
              + (SAME_HLO if same else
                 f"gradient vs attnjax's {relative_difference(grads[name], grads[BASELINE]):.1e}"
                 if name != BASELINE else "the baseline"), flush=True)

    timed = tuple(compiled)
    ms = alternating_medians(compiled, (params, batch), timed, args.rounds, args.calls)
    for name in timed:
        print(f"{name.replace('-', '_')}_ms={ms[name]:.1f}")
    others = [n for n in timed if n != BASELINE]
    if not others:
        print("error: no variant besides attnjax's compiled", file=sys.stderr)
        return 1
    fastest = min(others, key=ms.get)
    print(f"fastest_other={fastest}")
    print(f"best_ratio={ms[BASELINE] / ms[fastest]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
