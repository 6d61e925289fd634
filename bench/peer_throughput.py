#!/usr/bin/env python3
"""CPU training throughput: attnjax against the peer a CPU user would pick, interleaved in one run.

Trains the paper preset (Breakout, 8 envs x 128 steps, 4 epochs x 4 minibatches of 256) with
attnjax (attention network and Nature CNN; the default execution for this machine, i.e. on a
multi-core CPU each minibatch split over the cores) and with Stable-Baselines3 PPO `CnnPolicy`
(PyTorch, CPU) on ALE `BreakoutNoFrameskip-v4` with SB3's Atari wrappers and the same PPO
settings (bench/sb3_worker.py, run by .venv-peers' Python). After one warm-up iteration each
(compilation, allocations), the three train the same number of iterations in alternating rounds,
so a machine that gets busier slows all of them alike. Prints agent steps/s of each and, last,
`ratio=<attnjax attention SPS / SB3 SPS>`.
Usage: make peers && .venv/bin/python bench/peer_throughput.py [--rounds 3] [--iterations 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attnjax.devices import use_cpu_cores_as_devices  # noqa: E402

use_cpu_cores_as_devices()  # before JAX runs anything, as train.py does

import jax  # noqa: E402

from attnjax.training.config import TrainConfig  # noqa: E402
from attnjax.training.loop import build_program  # noqa: E402
from attnjax.training.ppo import resolve_execution  # noqa: E402

PEER_PYTHON = ROOT / ".venv-peers" / "bin" / "python"


class AttnjaxTrainer:
    """One compiled attnjax training program of the paper preset, warmed up."""

    def __init__(self, network: str) -> None:
        self.config = TrainConfig(env_id="Breakout-v5", network=network, wandb_mode="disabled")
        program = build_program([self.config])
        self.state, self.iterate = program.state, program.iterate
        self.train(1)  # compile

    def train(self, iterations: int) -> float:
        t0 = time.perf_counter()
        for _ in range(iterations):
            self.state, metrics = self.iterate(self.state)
        jax.block_until_ready(metrics)
        return time.perf_counter() - t0


class WorkerTrainer:
    """A training worker process, trained on request: after its warm-up it prints `ready ...`;
    `train K` answers `seconds <wall time>`; `quit` ends it (bench/sb3_worker.py's protocol)."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.banner = self._read("ready")

    def _read(self, word: str) -> str:
        line = self.proc.stdout.readline()
        if not line.startswith(word):
            raise SystemExit(f"error: a worker stopped (expected {word!r}, got {line!r})")
        return line.strip()

    def train(self, iterations: int) -> float:
        self.proc.stdin.write(f"train {iterations}\n")
        self.proc.stdin.flush()
        return float(self._read("seconds").split()[1])

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def interleaved_sps(trainers: dict, rounds: int, iterations: int) -> dict[str, float]:
    """Agent steps/s of each trainer over `rounds` alternating rounds of `iterations` PPO
    iterations each (a machine that gets busier slows all of them alike); prints every round
    and the totals as `sps[name]=...`."""
    seconds = dict.fromkeys(trainers, 0.0)
    width = max(map(len, trainers))
    for round_ in range(rounds):
        for name, trainer in trainers.items():
            took = trainer.train(iterations)
            seconds[name] += took
            print(f"round {round_ + 1}: {name:{width}s} {iterations * 1024 / took:7.1f} steps/s",
                  flush=True)
    sps = {name: rounds * iterations * 1024 / s for name, s in seconds.items()}
    for name, value in sps.items():
        print(f"sps[{name}]={value:.1f}")
    return sps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--iterations", type=int, default=2,
                   help="PPO iterations (1024 agent steps) per trainer per round (default 2)")
    args = p.parse_args()
    if not PEER_PYTHON.exists():
        print(f"error: {PEER_PYTHON} is missing; run `make peers` first", file=sys.stderr)
        return 2
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__} on {len(jax.devices())} {jax.default_backend()} device(s)")
    trainers = {"attnjax attention": AttnjaxTrainer("attention"),
                "attnjax nature": AttnjaxTrainer("nature")}
    _, loops, _ = resolve_execution(trainers["attnjax attention"].config)
    print(f"attnjax execution: loops={loops}")
    peer = WorkerTrainer([str(PEER_PYTHON), str(ROOT / "bench" / "sb3_worker.py")])
    trainers["sb3 nature (pytorch)"] = peer
    print(f"peer: {peer.banner}")
    sps = interleaved_sps(trainers, args.rounds, args.iterations)
    peer.close()
    print(f"ratio_nature={sps['attnjax nature'] / sps['sb3 nature (pytorch)']:.3f}")
    print(f"ratio={sps['attnjax attention'] / sps['sb3 nature (pytorch)']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
