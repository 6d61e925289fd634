"""machine.json: one session per start or resume of training on a run folder (where, from which
step, how many runs in the program), a finished rerun adding none, an older run without the
file getting one when resumed, a file of another origin refused before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import pytest

from attnjax.errors import UserError
from attnjax.training.config import TrainConfig, expand_grid
from attnjax.training.loop import train
from attnjax.training.machine import device_label, machine_label, read_machine
from attnjax.training.runs import MACHINE_FILE, run_dir

TINY = dict(env_id="Quadrant-v0", num_envs=4, num_steps=16, num_minibatches=2, update_epochs=1,
            wandb_mode="disabled", log_images_every=0, checkpoint_every=1, keep_checkpoints=2)
BATCH = 64  # 4 envs x 16 steps


def sessions(run: Path) -> list[dict]:
    return json.loads((run / MACHINE_FILE).read_text())["sessions"]


def drop_last_checkpoint(run: Path) -> None:
    shutil.rmtree(run / "checkpoints" / "2")


def test_training_and_resuming_append_one_session_each(tmp_path):
    configs = expand_grid(TrainConfig(**TINY, total_timesteps=2 * BATCH, out_dir=str(tmp_path)),
                          [0.0, 0.01], [0])
    folders = [run_dir(c) for c in configs]
    train(configs)
    for run in folders:
        doc = json.loads((run / MACHINE_FILE).read_text())
        assert doc["written_by"]["command"] == "train.py"
        (first,) = doc["sessions"]
        assert first["from_step"] == 0 and first["backend"] == jax.default_backend()
        assert first["runs_in_program"] == 2 and first["runs_axis"] == "map"  # CPU default
        assert first["loops"] == "unroll" and first["microbatch"] == 32  # a minibatch of 32
        assert first["jax"] == jax.__version__ and first["cpu_count"] >= 1
        assert first["malloc"] == "default"  # the test process runs glibc's malloc
        assert first["device"].endswith(" cores)") or first["device"].endswith(" core)")
        assert machine_label(read_machine(run)) == first["device"]

    for run in folders:  # resumed from checkpoint 1
        drop_last_checkpoint(run)
    train(configs, resume=True)
    for run in folders:
        assert [s["from_step"] for s in sessions(run)] == [0, BATCH]

    before = {run: (run / MACHINE_FILE).read_bytes() for run in folders}
    train(configs, resume=True)  # finished: nothing to train, no session
    assert all((run / MACHINE_FILE).read_bytes() == before[run] for run in folders)

    for run in folders:  # an older run, trained before machine.json, gets one when resumed
        (run / MACHINE_FILE).unlink()
        drop_last_checkpoint(run)
    train(configs, resume=True)
    for run in folders:
        assert [s["from_step"] for s in sessions(run)] == [BATCH]

    foreign = folders[0] / MACHINE_FILE
    foreign.write_text('{"sessions": []}')  # not train.py's: refused, nothing touched
    metrics = (folders[0] / "metrics.jsonl").read_bytes()
    drop_last_checkpoint(folders[0])
    with pytest.raises(UserError, match="not written by train.py"):
        train(configs, resume=True)
    assert foreign.read_text() == '{"sessions": []}'
    assert (folders[0] / "metrics.jsonl").read_bytes() == metrics


def test_device_labels_and_runs_without_a_record():
    assert device_label("gpu", "NVIDIA H200", 1, "AMD EPYC", 16) == "NVIDIA H200 x 1"
    assert device_label("cpu", "cpu", 2, "AMD EPYC", 2) == "AMD EPYC (2 cores)"
    assert device_label("cpu", "cpu", 1, None, 1) == "unknown CPU (1 core)"
    assert machine_label(None) == "unknown"
    assert machine_label({"sessions": [{"device": "a"}, {"device": "b"}]}) == "b"
