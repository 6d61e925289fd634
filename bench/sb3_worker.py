#!/usr/bin/env python3
"""The peer side of bench/peer_throughput.py: Stable-Baselines3 PPO (PyTorch, CPU) on ALE
BreakoutNoFrameskip-v4 with SB3's Atari wrappers and the paper's PPO settings.

Runs in .venv-peers (`make peers`), never in attnjax's environment. Protocol on stdin/stdout:
after setup and one warm-up iteration it prints `ready`; each line `train K` trains K more
iterations (K x 8 envs x 128 steps) and answers `seconds <wall time>`; `quit` ends it.
"""

from __future__ import annotations

import sys
import time

import ale_py
import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecFrameStack

NUM_ENVS, NUM_STEPS = 8, 128


def main() -> None:
    gym.register_envs(ale_py)
    env = VecFrameStack(make_atari_env("BreakoutNoFrameskip-v4", n_envs=NUM_ENVS, seed=0),
                        n_stack=4)
    model = PPO(
        "CnnPolicy", env, n_steps=NUM_STEPS, batch_size=256, n_epochs=4,
        learning_rate=lambda progress: 2.5e-4 * progress, clip_range=0.2, clip_range_vf=0.2,
        ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, gamma=0.99, gae_lambda=0.95,
        normalize_advantage=True, policy_kwargs={"optimizer_kwargs": {"eps": 1e-5}},
        device="cpu", seed=0, verbose=0,
    )
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3 would make a /tmp folder
    batch = NUM_ENVS * NUM_STEPS
    model.learn(batch, reset_num_timesteps=False)  # warm-up: allocations, first rollout
    print(f"ready torch={torch.__version__} threads={torch.get_num_threads()}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        t0 = time.perf_counter()
        model.learn(int(words[1]) * batch, reset_num_timesteps=False)
        print(f"seconds {time.perf_counter() - t0:.6f}", flush=True)


if __name__ == "__main__":
    main()
