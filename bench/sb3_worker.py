#!/usr/bin/env python3
"""The peer side of bench/peer_throughput.py: Stable-Baselines3 PPO (PyTorch, CPU) on ALE
BreakoutNoFrameskip-v4 with SB3's Atari wrappers and the paper's PPO settings, with SB3's
Nature CNN (`--network nature`, its CnnPolicy) or the paper's attention network written in
PyTorch as a features extractor (`--network attention`: the same layers as attnjax's and,
with `net_arch=[]`, no others: the same 1,720,999 parameters for Breakout's 4 actions). The
PPO loss is SB3's own, without the attention-entropy term (a sum over 2 x 49 cells per frame).

Runs in .venv-peers (`make peers`), never in attnjax's environment. Protocol on stdin/stdout:
after setup and --warmup iterations it prints `ready ... params=N`; each line `train K`
trains K more iterations (K x 8 envs x 128 steps) and answers `seconds <wall time>`; `quit`
ends it.
Usage: .venv-peers/bin/python bench/sb3_worker.py --network attention|nature [--warmup 1]
"""

from __future__ import annotations

import argparse
import sys
import time

import ale_py
import gymnasium as gym
import torch
import torch.nn.functional as F
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecFrameStack

NUM_ENVS, NUM_STEPS = 8, 128


class AttentionExtractor(BaseFeaturesExtractor):
    """Yang et al.'s region-sensitive attention as Nikulin et al. ran it (attnjax's
    `model/networks.py`): conv 32x8/4, 64x4/2, 64x3/1 with ReLU -> L2-normalised over channels
    -> 1x1 conv 512 + ELU -> 1x1 conv K -> softmax over the 49 cells per head -> features =
    normalised conv3 x (sum of heads) -> dense 512 + ReLU. Input [B, 4, 84, 84] in [0, 1]."""

    def __init__(self, observation_space: gym.Space, heads: int = 2) -> None:
        super().__init__(observation_space, features_dim=512)
        channels = observation_space.shape[0]
        self.encoder = torch.nn.Sequential(
            torch.nn.Conv2d(channels, 32, 8, stride=4), torch.nn.ReLU(),
            torch.nn.Conv2d(32, 64, 4, stride=2), torch.nn.ReLU(),
            torch.nn.Conv2d(64, 64, 3, stride=1), torch.nn.ReLU())
        self.attention_hidden = torch.nn.Conv2d(64, 512, 1)
        self.attention_logits = torch.nn.Conv2d(512, heads, 1)
        self.dense = torch.nn.Linear(64 * 7 * 7, 512)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        c3 = F.normalize(self.encoder(obs), dim=1)  # [B, 64, 7, 7], unit length per cell
        logits = self.attention_logits(F.elu(self.attention_hidden(c3)))  # [B, K, 7, 7]
        attention = logits.flatten(2).softmax(-1).view_as(logits)  # each head sums to 1
        features = c3 * attention.sum(1, keepdim=True)  # [B, 64, 7, 7]
        return F.relu(self.dense(features.flatten(1)))  # [B, 512]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=("attention", "nature"), default="nature")
    parser.add_argument("--warmup", type=int, default=1, help="iterations before `ready`")
    args = parser.parse_args()
    gym.register_envs(ale_py)
    env = VecFrameStack(make_atari_env("BreakoutNoFrameskip-v4", n_envs=NUM_ENVS, seed=0),
                        n_stack=4)
    policy_kwargs = {"optimizer_kwargs": {"eps": 1e-5}}
    if args.network == "attention":  # no layers beyond the extractor's: the paper's network
        policy_kwargs.update(features_extractor_class=AttentionExtractor, net_arch=[])
    model = PPO(
        "CnnPolicy", env, n_steps=NUM_STEPS, batch_size=256, n_epochs=4,
        learning_rate=lambda progress: 2.5e-4 * progress, clip_range=0.2, clip_range_vf=0.2,
        ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, gamma=0.99, gae_lambda=0.95,
        normalize_advantage=True, policy_kwargs=policy_kwargs,
        device="cpu", seed=0, verbose=0,
    )
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3 would make a /tmp folder
    batch = NUM_ENVS * NUM_STEPS
    model.learn(args.warmup * batch, reset_num_timesteps=False)  # allocations, first rollouts
    params = sum(p.numel() for p in model.policy.parameters())
    print(f"ready torch={torch.__version__} threads={torch.get_num_threads()} params={params}",
          flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        t0 = time.perf_counter()
        model.learn(int(words[1]) * batch, reset_num_timesteps=False)
        print(f"seconds {time.perf_counter() - t0:.6f}", flush=True)


if __name__ == "__main__":
    main()
