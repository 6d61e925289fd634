"""Checkpoints and resume through the command: --keep-checkpoints, a grid resumed past a corrupt
newest checkpoint continuing exactly (parameters, optimizer state, RNG key, episode statistics)
from the one before, a grid killed with SIGKILL continuing gap-free when its command is run
again, and the NaN stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from attnjax import load_agent
from attnjax.training.checkpoints import RunCheckpointer
from attnjax.training.loop import build_program
from attnjax.training.runs import load_run_config

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--env-id", "Quadrant-v0", "--num-envs", "4", "--num-steps", "16",
        "--num-minibatches", "2", "--update-epochs", "1", "--wandb-mode", "disabled",
        "--log-images-every", "0", "--quiet"]
BATCH = 64
RUNS = ("Quadrant__attn0__s0", "Quadrant__attn0.01__s0")


def run_train(*args, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def global_steps(run: Path) -> list[int]:
    return [json.loads(x)["global_step"] for x in (run / "metrics.jsonl").read_text().splitlines()]


def lines_written(run: Path) -> int:
    """Complete lines of a metrics file another process is appending to."""
    path = run / "metrics.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def checkpoints(run: Path) -> list[int]:
    return sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())


def saved_state(run: Path, iteration: int, template_run) -> tuple:
    """(params, {opt_state, key, stats, iteration}) of a checkpoint, in the structure of one
    run's state `template_run` (a RunState slice); the items checkpoints.py documents."""
    state_like = {"opt_state": template_run.opt_state, "key": template_run.key,
                  "stats": template_run.stats, "iteration": template_run.iteration}
    checkpointer = RunCheckpointer(run)
    try:
        params, state, _ = checkpointer.restore(iteration, template_run.params, state_like)
    finally:
        checkpointer.close()
    return params, state


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    """A lambda 0 / 0.01 grid trained 4 iterations, a checkpoint after each, 2 kept."""
    out = tmp_path_factory.mktemp("grid")
    proc = run_train(*TINY, "--attn-coef", "0", "0.01", "--total-timesteps", str(4 * BATCH),
                     "--checkpoint-every", "1", "--keep-checkpoints", "2", "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_keep_checkpoints_keeps_the_newest(grid):
    for name in RUNS:
        assert checkpoints(grid / name) == [3, 4]
        assert global_steps(grid / name) == [BATCH, 2 * BATCH, 3 * BATCH, 4 * BATCH]
        assert load_agent(grid / name).iteration == 4


def test_grid_resume_past_a_corrupt_checkpoint_continues_exactly(grid, tmp_path):
    """Checkpoint 4 of one run is corrupt: both runs resume from 3 (the newest iteration every
    run can restore), drop the metrics written after it, and train iteration 4 again. The new
    checkpoint 4 equals iteration 3's saved state (parameters, Adam state, RNG key, finished
    games) carried one iteration on fresh envs by the same compiled iteration."""
    runs = [tmp_path / name for name in RUNS]
    for run in runs:
        shutil.copytree(grid / run.name, run)
    for path in (runs[1] / "checkpoints" / "4" / "params").rglob("*"):
        if path.is_file():
            path.write_bytes(b"corrupt")
    proc = run_train("--resume", *map(str, runs), "--keep-checkpoints", "2")
    assert proc.returncode == 0, proc.stderr
    assert "checkpoint 4 is unreadable" in proc.stderr
    for run in runs:
        assert global_steps(run) == [BATCH, 2 * BATCH, 3 * BATCH, 4 * BATCH], run.name
        assert checkpoints(run) == [3, 4], run.name

    # what resuming from 3 must give: iteration 3's state, one more iteration (envs restart)
    program = build_program([load_run_config(run) for run in runs])
    state = program.state
    template = jax.tree_util.tree_map(lambda x: x[0], state.runs)
    restored = []
    for r, run in enumerate(runs):
        params, saved = saved_state(grid / run.name, 3, template)
        assert int(saved["iteration"]) == 3
        stats = saved["stats"].replace(running_return=np.zeros_like(template.stats.running_return),
                                       running_length=np.zeros_like(template.stats.running_length))
        restored.append(jax.tree_util.tree_map(lambda x, r=r: x[r], state.runs).replace(
            params=params, opt_state=saved["opt_state"], key=saved["key"], stats=stats,
            iteration=saved["iteration"]))
    state = state.replace(runs=jax.tree_util.tree_map(lambda *xs: np.stack(xs), *restored))
    state, _ = program.iterate(state)
    program.close()
    for r, run in enumerate(runs):
        want_run = jax.device_get(jax.tree_util.tree_map(lambda x, r=r: x[r], state.runs))
        params, saved = saved_state(run, 4, want_run)
        np.testing.assert_array_equal(saved["key"], want_run.key)
        assert int(saved["iteration"]) == 4
        for got, want in zip(jax.tree_util.tree_leaves((params, saved["opt_state"])),
                             jax.tree_util.tree_leaves((want_run.params, want_run.opt_state)),
                             strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        for got, want in zip(jax.tree_util.tree_leaves(saved["stats"]),
                             jax.tree_util.tree_leaves(want_run.stats), strict=True):
            np.testing.assert_array_equal(got, want)
        assert int(saved["stats"].num_finished) > 0  # games finished before and after resume
    # and the resumed state differs from the uninterrupted run's (its envs did not restart)
    uninterrupted, _ = saved_state(grid / RUNS[0], 4, want_run)
    assert not all(np.array_equal(a, b) for a, b in zip(
        jax.tree_util.tree_leaves(uninterrupted), jax.tree_util.tree_leaves(load_agent(
            runs[0]).params), strict=True))


def test_grid_killed_after_a_checkpoint_continues_when_rerun_with_the_same_command(tmp_path):
    """A 2-run grid killed (SIGKILL) as soon as iteration 7's metrics lines are written, past
    the checkpoint of iteration 5 (no sleep: a fast machine cannot finish the 50 iterations in
    between), then started again with the very same command: it continues from the newest
    checkpoint and ends at the total steps with gap-free metrics whose lines up to that
    checkpoint are the killed run's own (the envs restart, so later lines differ)."""
    total_iterations = 50
    cmd = [sys.executable, str(ROOT / "train.py"), *TINY, "--attn-coef", "0", "0.01",
           "--checkpoint-every", "5", "--total-timesteps", str(total_iterations * BATCH),
           "--out-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    grid = [tmp_path / name for name in RUNS]
    deadline = time.monotonic() + 600  # a timeout for a stuck run, not a speed requirement
    try:
        while min(lines_written(run) for run in grid) < 7:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = {run: (run / "metrics.jsonl").read_text().splitlines() for run in grid}
    newest = min(load_agent(run).iteration for run in grid)
    assert newest % 5 == 0 and 5 <= newest < total_iterations, newest

    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for run in grid:
        assert global_steps(run) == list(range(BATCH, total_iterations * BATCH + 1, BATCH))
        assert load_agent(run).step == total_iterations * BATCH
        lines = (run / "metrics.jsonl").read_text().splitlines()
        assert lines[:newest] == killed[run][:newest]
        # training is deterministic: a run started over would write the killed lines again;
        # a continued one meets new games after the checkpoint
        assert len(killed[run]) > newest and lines[newest] != killed[run][newest]

    # the same command once more: every run is finished, nothing is built, compiled or written
    before = {p: p.read_bytes() for run in grid for p in sorted(run.rglob("*")) if p.is_file()}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to train" in proc.stdout and "compiling" not in proc.stdout, proc.stdout
    assert {p: p.read_bytes() for run in grid for p in sorted(run.rglob("*"))
            if p.is_file()} == before


def test_nan_loss_stops_with_exit_1_and_keeps_the_last_good_checkpoint(tmp_path):
    """A learning rate of 1e30 makes the parameters infinite after the first update: the second
    iteration's loss is NaN, training stops with one line naming it and exit code 1, and
    iteration 1's checkpoint and metrics stay."""
    proc = run_train(*TINY, "--num-minibatches", "1", "--learning-rate", "1e30",
                     "--total-timesteps", str(4 * BATCH), "--checkpoint-every", "1",
                     "--out-dir", str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("error: loss became nan at iteration 2"), lines[0]
    run = tmp_path / "Quadrant__attn0__s0"
    assert checkpoints(run) == [1]
    assert global_steps(run) == [BATCH]
    assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(load_agent(run).params))
