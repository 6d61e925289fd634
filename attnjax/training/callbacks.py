"""What hangs on the training loop: the metrics file, W&B, the attention picture, checkpoints
and the progress bar, each a callback (as Brax's `progress_fn`).

Why apart from the loop: `loop.run_iterations` only runs compiled iterations and hands their
numbers on; benches and tests call it (or `train` with their own callbacks) without files,
trackers or terminal output. Every callback sees, for each compiled call, each iteration's
metrics lines (`on_iteration`) and then the state after the call (`on_call`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from attnjax.files import replacing
from attnjax.progress import ProgressBar
from attnjax.training import runs
from attnjax.training.checkpoints import RunCheckpointer
from attnjax.training.config import TrainConfig
from attnjax.training.ppo import RunState, TrainState
from attnjax.training.tracking import ATTENTION_DPI, WandbRun, attention_figure


@dataclass
class CallEnd:
    """The loop's state after one compiled call of `iterations_per_call` iterations."""

    iteration: int  # iterations done by every run
    state: TrainState  # stacked over runs; possibly sharded over a device mesh
    steps_per_s: float  # per run, this call
    final: bool  # the last call of training


class Callback:
    """Does nothing; subclasses override what they need."""

    def on_iteration(self, iteration: int, records: list[dict[str, Any]]) -> None:
        """One iteration's metrics line of every run (records[r])."""

    def on_call(self, end: CallEnd) -> None:
        """After each compiled call."""

    def close(self) -> None:
        """Training ended, normally or not."""


def run_slice(tree: Any, r: int) -> Any:
    """Run r's slice of a stacked tree. Once the state is split over a device mesh, pass host
    copies (`jax.device_get`): indexing a device-sharded array compiles a program with an
    all-reduce across the devices, which the independent runs never need and which XLA:CPU
    aborts when one device thread arrives over 40 s late (a busy machine)."""
    return jax.tree_util.tree_map(lambda x: x[r], tree)


def saved_state(run: RunState) -> dict[str, Any]:
    """The part of one run's state a checkpoint keeps (envs restart on resume)."""
    return {"opt_state": run.opt_state, "key": run.key, "stats": run.stats,
            "iteration": run.iteration}


class MetricsFiles(Callback):
    """One line per iteration in each run folder's metrics.jsonl."""

    def __init__(self, run_dirs: list[Path]) -> None:
        self.logs = [runs.MetricsLog(d) for d in run_dirs]

    def on_iteration(self, iteration: int, records: list[dict[str, Any]]) -> None:
        for log, record in zip(self.logs, records, strict=True):
            log.write(record)

    def close(self) -> None:
        for log in self.logs:
            log.close()


class Tracking(Callback):
    """W&B (offline by default) and the attention picture, every `log_images_every`
    iterations and at the end."""

    def __init__(self, configs: list[TrainConfig], run_dirs: list[Path], network: Any) -> None:
        self.configs, self.run_dirs, self.network = configs, run_dirs, network
        self.trackers = [WandbRun(c, d) for c, d in zip(configs, run_dirs, strict=True)]

    @property
    def run_ids(self) -> list[str | None]:
        return [t.id for t in self.trackers]

    def on_iteration(self, iteration: int, records: list[dict[str, Any]]) -> None:
        for tracker, record in zip(self.trackers, records, strict=True):
            tracker.log(record)

    def on_call(self, end: CallEnd) -> None:
        every = self.configs[0].log_images_every
        if not every or not (end.iteration % every == 0 or end.final):
            return
        host = jax.device_get(end.state.runs.replace(opt_state=None))  # see run_slice
        step = end.iteration * self.configs[0].batch_size
        for r, (config, run_dir) in enumerate(zip(self.configs, self.run_dirs, strict=True)):
            self._picture(run_slice(host, r), run_dir, self.trackers[r], step,
                          runs.run_name(config))

    def _picture(self, run: RunState, run_dir: Path, tracker: WandbRun, global_step: int,
                 title: str) -> None:
        import matplotlib.pyplot as plt

        obs = run.obs[:1]
        out = self.network.apply({"params": run.params}, obs)
        attention = None if out.attention is None else np.asarray(out.attention[0])
        fig = attention_figure(np.asarray(obs[0]), attention, f"{title}  step {global_step:,}")
        with replacing(run_dir / runs.ATTENTION_PNG) as tmp:
            fig.savefig(tmp, dpi=ATTENTION_DPI)
        tracker.log_figure(fig, global_step)
        plt.close(fig)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()


class Checkpoints(Callback):
    """An orbax checkpoint of every run each `checkpoint_every` iterations and at the end."""

    def __init__(self, configs: list[TrainConfig], checkpointers: list[RunCheckpointer],
                 num_actions: int, run_ids: list[str | None]) -> None:
        self.configs, self.checkpointers = configs, checkpointers
        self.num_actions, self.run_ids = num_actions, run_ids

    def on_call(self, end: CallEnd) -> None:
        base = self.configs[0]
        if not (end.iteration % base.checkpoint_every == 0 or end.final):
            return
        host = jax.device_get(end.state.runs)  # on the host: no cross-device program
        for r, (checkpointer, config) in enumerate(zip(self.checkpointers, self.configs,
                                                       strict=True)):
            run = run_slice(host, r)
            meta = {"config": runs.config_record(config), "iteration": end.iteration,
                    "global_step": end.iteration * base.batch_size,
                    "num_actions": self.num_actions, "wandb_run_id": self.run_ids[r],
                    "saved_at": time.time()}
            checkpointer.save(end.iteration, run.params, saved_state(run), meta)

    def close(self) -> None:
        for checkpointer in self.checkpointers:
            checkpointer.close()


class ProgressLine(Callback):
    """The progress bar over the agent steps of all runs together, so its average rate (since
    the start, compilation included) and the last call's rate in its text are both aggregate
    rates; the return and attention entropy shown are the first run's."""

    def __init__(self, configs: list[TrainConfig], start_iteration: int, enabled: bool) -> None:
        base, n = configs[0], len(configs)
        self.configs, self.latest = configs, ("-", "-")
        label = base.game if n == 1 else f"{base.game} x{n}"
        self.bar = ProgressBar(label, n * base.num_iterations * base.batch_size,
                               enabled=enabled,
                               unit="agent steps" if n == 1 else f"agent steps of {n} runs",
                               start=n * start_iteration * base.batch_size, every_s=30.0,
                               stream="stdout", info="compiling...")

    def on_iteration(self, iteration: int, records: list[dict[str, Any]]) -> None:
        ret, ent = records[0]["episodic_return"], records[0]["attention_entropy"]
        self.latest = ("-" if ret is None else f"{ret:.1f}", "-" if ent is None else f"{ent:.3f}")

    def on_call(self, end: CallEnd) -> None:
        n, base = len(self.configs), self.configs[0]
        ret, ent = self.latest
        self.bar.update(n * end.iteration * base.batch_size,
                        f"last iteration {end.steps_per_s * n:,.0f} steps/s  return {ret}  "
                        f"H(att) {ent}" + (" (first run)" if n > 1 else ""), final=end.final)

    def close(self) -> None:
        self.bar.close()
