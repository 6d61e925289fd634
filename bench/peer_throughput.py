#!/usr/bin/env python3
"""CPU training throughput: attnjax against Stable-Baselines3 on PyTorch, same network, one run.

Trains the paper preset (Breakout, 8 envs x 128 steps, 4 epochs x 4 minibatches of 256) four
ways, each in a process of its own (bench/attnjax_worker.py in attnjax's environment,
bench/sb3_worker.py in .venv-peers, `make peers`): attnjax with the attention network and with
the Nature CNN, each as `train.py` runs it; SB3 PPO (ALE `BreakoutNoFrameskip-v4`, SB3's Atari
wrappers, the same PPO settings) with the paper's attention network as a PyTorch features
extractor (`net_arch=[]`: the same layers and parameter count, checked) and with its own
`CnnPolicy`. After each worker's WARMUP iterations (compilation, allocations), they train the
same number of iterations in alternating rounds while the others wait idle, so the measured
process is alone on the CPU and a machine that gets busier slows all four alike. Where the
machine has tcmalloc, all four run with it (attnjax's workers restart with it as train.py does,
and PyTorch gains from it too; ATTNJAX_MALLOC_DEFAULTS=1 keeps glibc's malloc for all four); the
`malloc:` line says which. Prints agent steps/s of each, then `ratio_same_network` (attnjax
attention / SB3 attention), `ratio_nature` (attnjax Nature CNN / SB3 CnnPolicy) and, last,
`ratio` (attnjax attention / SB3 CnnPolicy).
Usage: make peers && .venv/bin/python bench/peer_throughput.py [--rounds 3] [--iterations 2]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PEER_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
# iterations each worker trains before the timed rounds: compilation and first rollouts, and,
# with tcmalloc, its heap's one growth in a process's first ~10 iterations (a few seconds once
# per process, which the hours of a real training make nothing of)
WARMUP = 12

from attnjax import devices  # noqa: E402


class WorkerTrainer:
    """A training worker process, trained on request: after its warm-up it prints `ready ...`;
    `train K` answers `seconds <wall time>`; `quit` ends it (bench/sb3_worker.py's protocol)."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.banner = self._read("ready")
        self.last_reply = ""

    def _read(self, word: str) -> str:
        line = self.proc.stdout.readline()
        if not line.startswith(word):
            raise SystemExit(f"error: a worker stopped (expected {word!r}, got {line!r})")
        return line.strip()

    def train(self, iterations: int) -> float:
        self.proc.stdin.write(f"train {iterations}\n")
        self.proc.stdin.flush()
        self.last_reply = self._read("seconds")
        return float(self.last_reply.split()[1])

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


def params_of(banner: str) -> int:
    return int(re.search(r"params=(\d+)", banner).group(1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--iterations", type=int, default=2,
                   help="PPO iterations (1024 agent steps) per trainer per round (default 2)")
    args = p.parse_args()
    if not PEER_PYTHON.exists():
        print(f"error: {PEER_PYTHON} is missing; run `make peers` first", file=sys.stderr)
        return 2
    print(devices.machine_line())
    # the attnjax workers restart with tcmalloc as train.py does where the machine has it;
    # PyTorch gains from it as well, so the SB3 workers get it too: one malloc for all four
    # (None also when this process runs tcmalloc already: the workers then inherit its preload)
    tcmalloc_env = devices.tcmalloc_environment()
    tcmalloc = tcmalloc_env is not None or devices.malloc_in_use() == "tcmalloc"
    print(f"malloc: {'tcmalloc' if tcmalloc else 'the default'} in all four trainers")
    warmup = ["--warmup", str(WARMUP)]
    attnjax = [sys.executable, str(ROOT / "bench" / "attnjax_worker.py"), *warmup, "--network"]
    sb3 = [str(PEER_PYTHON), str(ROOT / "bench" / "sb3_worker.py"), *warmup, "--network"]
    trainers = {"attnjax attention": WorkerTrainer([*attnjax, "attention"]),
                "attnjax nature": WorkerTrainer([*attnjax, "nature"]),
                "sb3 attention (pytorch)": WorkerTrainer([*sb3, "attention"], tcmalloc_env),
                "sb3 nature (pytorch)": WorkerTrainer([*sb3, "nature"], tcmalloc_env)}
    for name, trainer in trainers.items():
        print(f"{name}: {trainer.banner}")
    ours, theirs = (params_of(trainers[n].banner) for n in ("attnjax attention",
                                                            "sb3 attention (pytorch)"))
    print(f"parameters: attnjax attention {ours:,}, sb3 attention {theirs:,}")
    if ours != theirs:
        for trainer in trainers.values():
            trainer.close()
        print("error: the two attention networks differ in size; the comparison would not be "
              "of the same network", file=sys.stderr)
        return 1
    sps = interleaved_sps(trainers, args.rounds, args.iterations)
    for trainer in trainers.values():
        trainer.close()
    print(f"ratio_same_network={sps['attnjax attention'] / sps['sb3 attention (pytorch)']:.3f}")
    print(f"ratio_nature={sps['attnjax nature'] / sps['sb3 nature (pytorch)']:.3f}")
    print(f"ratio={sps['attnjax attention'] / sps['sb3 nature (pytorch)']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
