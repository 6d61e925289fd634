"""One frozen dataclass for a training run: the paper's preset as defaults, validated before
anything compiles.

Every field is a command-line flag of train.py (`attn_coef` -> `--attn-coef`); its `help`
metadata is the flag's help text. A grid of runs is a list of configs that differ only in
`attn_coef` and `seed` (see `expand_grid`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from attnjax.errors import UserError


def _f(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    # what is trained
    env_id: str = _f("Breakout-v5", "envpool Atari id (<Game>-v5) or Quadrant-v0, a tiny test env")
    network: str = _f("attention", "attention (Yang et al.) or nature (no attention)",
                      choices=("attention", "nature"))
    attn_heads: int = _f(2, "attention heads K")
    attn_coef: float = _f(0.0, "lambda: weight of the attention-entropy penalty", grid=True)
    seed: int = _f(0, "random seed (network init, actions, env seeds)", grid=True)
    # PPO2 as the paper ran it
    total_timesteps: int = _f(10_000_000, "agent steps to train for, rounded down to whole "
                              "batches (frames = 4x)")
    num_envs: int = _f(8, "parallel environments per run")
    num_steps: int = _f(128, "steps per env per iteration (batch = num_envs * num_steps)")
    num_minibatches: int = _f(4, "minibatches per epoch")
    update_epochs: int = _f(4, "epochs over each batch")
    learning_rate: float = _f(2.5e-4, "Adam learning rate, annealed linearly to 0")
    anneal_lr: bool = _f(True, "anneal the learning rate linearly to 0")
    adam_eps: float = _f(1e-5, "Adam epsilon")
    gamma: float = _f(0.99, "discount")
    gae_lambda: float = _f(0.95, "GAE lambda")
    clip_coef: float = _f(0.2, "policy clip range")
    vf_clip_coef: float = _f(0.2, "value-function clip range")
    ent_coef: float = _f(0.01, "policy-entropy bonus coefficient")
    vf_coef: float = _f(0.5, "value-loss coefficient")
    max_grad_norm: float = _f(0.5, "gradient clipping by global norm")
    norm_adv: bool = _f(True, "normalise advantages per minibatch")
    # execution
    runs_axis: str = _f("auto", "how a grid's runs execute: vmap (accelerators), map "
                        "(sequential, CPU) or auto", choices=("auto", "vmap", "map"))
    loops: str = _f("auto", "epoch/minibatch loops: unroll (CPU), split (each minibatch's "
                    "rows split over the CPU's cores as host devices), scan (GPU/TPU) or auto",
                    choices=("auto", "split", "unroll", "scan"))
    iterations_per_call: int = _f(0, "PPO iterations per compiled call (0 = auto: 1 on CPU, "
                                  "up to 8 on accelerators)")
    microbatch_size: int = _f(0, "rows per forward/backward pass of a minibatch update; the "
                              "passes' gradients add up to the minibatch's (0 = auto: 64 on "
                              "CPU where it divides a larger minibatch, else the whole "
                              "minibatch; --loops split ignores it)")
    # outputs
    out_dir: str = _f("runs", "parent folder of run folders")
    run_name: str = _f("", "run folder name (default: <game>__attn<lambda>__s<seed>)")
    checkpoint_every: int = _f(50, "iterations between checkpoints (also at the end)")
    keep_checkpoints: int = _f(3, "checkpoints kept")
    log_images_every: int = _f(50, "iterations between attention images (0 = never)")
    wandb_mode: str = _f("offline", "Weights & Biases: offline (default), online or disabled",
                         choices=("offline", "online", "disabled"))
    wandb_project: str = _f("attnjax", "W&B project")
    wandb_entity: str = _f("", "W&B entity (team or user)")
    wandb_group: str = _f("", "W&B group (default: env id)")
    wandb_tags: tuple[str, ...] = _f((), "W&B tags")

    # derived sizes
    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        return self.total_timesteps // self.batch_size

    @property
    def game(self) -> str:
        from attnjax.model.envs import game_name  # loads JAX only where a name is needed

        return game_name(self.env_id)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["wandb_tags"] = list(self.wandb_tags)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "wandb_tags" in kw:
            kw["wandb_tags"] = tuple(kw["wandb_tags"])
        return cls(**kw)


# Fields that change what a run means; `--resume` refuses to change them.
RUN_DEFINING_FIELDS = (
    "env_id", "network", "attn_heads", "attn_coef", "seed", "total_timesteps", "num_envs",
    "num_steps", "num_minibatches", "update_epochs", "learning_rate", "anneal_lr", "adam_eps",
    "gamma", "gae_lambda", "clip_coef", "vf_clip_coef", "ent_coef", "vf_coef", "max_grad_norm",
    "norm_adv",
)


def validate(config: TrainConfig) -> None:
    """Raise UserError with the problem and its fix; cheap checks only, before any compilation.
    The env id is checked by `envs.validate_env_id` (config sits below envs)."""
    if not (math.isfinite(config.attn_coef) and config.attn_coef >= 0):
        raise UserError(f"--attn-coef must be a finite number >= 0, got {config.attn_coef}")
    for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs", "attn_heads"):
        if getattr(config, name) < 1:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} must be at least 1, got {getattr(config, name)}")
    if config.batch_size % config.num_minibatches:
        raise UserError(
            f"batch num_envs*num_steps = {config.batch_size} is not divisible by "
            f"--num-minibatches {config.num_minibatches}; choose a divisor of {config.batch_size}"
        )
    if config.total_timesteps < config.batch_size:
        raise UserError(
            f"--total-timesteps {config.total_timesteps} is smaller than one batch "
            f"(num_envs*num_steps = {config.batch_size}); raise it to at least {config.batch_size}"
        )
    for name in ("learning_rate", "gamma", "gae_lambda", "clip_coef", "max_grad_norm"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"--{name.replace('_', '-')} must be a finite number > 0, got {value}")
    if config.checkpoint_every < 1 or config.keep_checkpoints < 1:
        raise UserError("--checkpoint-every and --keep-checkpoints must be at least 1")
    if config.iterations_per_call < 0:
        raise UserError("--iterations-per-call must be >= 0 (0 = automatic)")
    if config.microbatch_size < 0:
        raise UserError(f"--microbatch-size must be >= 0 (0 = automatic), got "
                        f"{config.microbatch_size}")
    if (config.microbatch_size and config.loops != "split"
            and config.minibatch_size % config.microbatch_size):
        raise UserError(
            f"--microbatch-size {config.microbatch_size} does not divide the minibatch of "
            f"{config.minibatch_size} rows; choose a divisor of {config.minibatch_size} (or 0)"
        )


def expand_grid(base: TrainConfig, attn_coefs: list[float], seeds: list[int]) -> list[TrainConfig]:
    """The runs of a lambda x seed grid, lambda-major; one run is a grid of one."""
    if base.run_name and len(attn_coefs) * len(seeds) > 1:
        raise UserError("--run-name names a single run; leave it out when training a grid")
    return [dataclasses.replace(base, attn_coef=float(a), seed=int(s))
            for a in attn_coefs for s in seeds]
