"""The run folder's format (attnjax.training.runs): names, config.json, metrics.jsonl, checkpoints
and preparing folders, on folders written by hand (no training)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from attnjax.errors import UserError
from attnjax.training import runs
from attnjax.training.config import TrainConfig


def config(tmp_path: Path, **kw) -> TrainConfig:
    return TrainConfig(env_id="Quadrant-v0", out_dir=str(tmp_path), **kw)


def one_line_error(call, *needles: str) -> str:
    with pytest.raises(UserError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_run_name_rule_and_config_record(tmp_path):
    c = config(tmp_path, attn_coef=0.0005, seed=3)
    assert runs.run_name(c) == "Quadrant__attn0.0005__s3"
    assert runs.run_name(config(tmp_path, attn_coef=0.0)) == "Quadrant__attn0__s0"  # %g
    assert runs.run_dir(c) == tmp_path / "Quadrant__attn0.0005__s3"
    assert runs.run_name(dataclasses.replace(c, run_name="mine")) == "mine"
    assert c.to_dict()["run_name"] == ""  # the config holds what was given
    assert runs.config_record(c)["run_name"] == "Quadrant__attn0.0005__s3"


def test_config_json_round_trip_and_resume_placement(tmp_path):
    c = config(tmp_path, attn_coef=0.01, seed=2, wandb_tags=("a", "b"))
    folder = tmp_path / "somewhere" / "moved"
    folder.mkdir(parents=True)
    runs.write_config(folder, c)
    text = (folder / runs.CONFIG_FILE).read_text()
    assert text.endswith("}\n") and json.loads(text)["run_name"] == "Quadrant__attn0.01__s2"
    read = runs.read_config(folder)
    assert read == dataclasses.replace(c, run_name="Quadrant__attn0.01__s2")
    resumed = runs.load_run_config(folder)  # where the folder now is
    assert resumed.out_dir == str(folder.parent) and resumed.run_name == "moved"
    assert runs.run_dir(resumed) == folder


def test_read_config_rejects_bad_files_in_one_line(tmp_path):
    path = tmp_path / runs.CONFIG_FILE
    one_line_error(lambda: runs.read_config(tmp_path), "cannot read", str(path))
    path.write_text("{not json")
    one_line_error(lambda: runs.read_config(tmp_path), "not valid JSON")
    path.write_text("[1, 2]")
    one_line_error(lambda: runs.read_config(tmp_path), "not a JSON object")
    path.write_text(json.dumps({"env_id": "Breakout-v5", "seed": 0}))
    one_line_error(lambda: runs.read_config(tmp_path, required=("env_id", "attn_coef")),
                   "lacks attn_coef")
    path.write_text(json.dumps({"env_id": "Breakout-v5", "seed": "zero"}))
    one_line_error(lambda: runs.read_config(tmp_path), "seed must be an integer", "'zero'")
    path.write_text(json.dumps({"env_id": "Breakout-v5", "seed": True}))
    one_line_error(lambda: runs.read_config(tmp_path), "seed must be an integer")
    # unknown keys (a newer version's) are ignored, missing ones take the defaults
    path.write_text(json.dumps({"env_id": "Breakout-v5", "attn_coef": 0, "future": 1}))
    assert runs.read_config(tmp_path) == TrainConfig(env_id="Breakout-v5")
    one_line_error(lambda: runs.load_run_config(tmp_path / "nothing"), "--resume",
                   "no config.json")


def test_metrics_append_read_truncate(tmp_path):
    log = runs.MetricsLog(tmp_path)
    for step in (64, 128, 192):
        log.write({"iteration": step // 64, "global_step": step, "episodic_return": None})
    log.close()
    assert [r["global_step"] for r in runs.read_metrics(tmp_path)] == [64, 128, 192]
    path = tmp_path / runs.METRICS_FILE
    path.write_text(path.read_text() + '{"global_step": 256, "episodic_ret')  # killed mid-line
    with pytest.warns(runs.PartialRunWarning, match="unfinished last line"):
        assert len(runs.read_metrics(tmp_path)) == 3
    assert len(runs.metrics_lines_up_to(tmp_path, 128)) == 2
    assert runs.truncate_metrics(tmp_path, 128) == 2  # resume from iteration 2
    assert [json.loads(x)["global_step"] for x in path.read_text().splitlines()] == [64, 128]
    assert path.read_text().endswith("\n")
    assert runs.truncate_metrics(tmp_path / "none", 128) == 0


def test_read_metrics_rejects_bad_lines_in_one_line(tmp_path):
    (tmp_path / runs.CONFIG_FILE).write_text("{}")
    one_line_error(lambda: runs.read_metrics(tmp_path), "no metrics.jsonl")
    path = tmp_path / runs.METRICS_FILE
    path.write_text("")
    one_line_error(lambda: runs.read_metrics(tmp_path), "is empty")
    lines = [{"global_step": 128, "x": 1.0}, {"global_step": 64, "x": 1.0}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    one_line_error(lambda: runs.read_metrics(tmp_path), "line 2", "does not increase")
    path.write_text(json.dumps({"global_step": 64.5}) + "\n")
    one_line_error(lambda: runs.read_metrics(tmp_path), "global_step must be an integer")
    path.write_text(json.dumps({"global_step": 64, "x": "high"}) + "\n")
    one_line_error(lambda: runs.read_metrics(tmp_path, numbers=("x",)), "x must be a number")
    one_line_error(lambda: runs.read_metrics(tmp_path, required=("global_step", "y")),
                   "lacks y")


def test_checkpoints_are_found_in_a_run_folder_or_by_path(tmp_path):
    saved = tmp_path / runs.CHECKPOINT_DIR
    for name in ("1", "12", "3", "7.orbax-checkpoint-tmp"):  # orbax's unfinished write: no
        (saved / name).mkdir(parents=True)
    assert runs.checkpoint_iterations(tmp_path) == [1, 3, 12]
    assert runs.find_checkpoints(tmp_path) == (tmp_path, [12, 3, 1])
    assert runs.checkpoint_path(tmp_path, 3) == saved / "3"
    assert runs.find_checkpoints(saved / "3") == (tmp_path, [3])
    assert runs.run_of_checkpoint(saved / "3") == tmp_path
    assert runs.checkpoint_iterations(tmp_path / "none") == []
    one_line_error(lambda: runs.find_checkpoints(tmp_path / "none"), "does not exist")
    one_line_error(lambda: runs.find_checkpoints(saved), "no checkpoints/ folder")
    for name in ("1", "12", "3"):
        (saved / name).rmdir()
    one_line_error(lambda: runs.find_checkpoints(tmp_path), "is empty")


def test_run_folders_are_found_below_paths_but_not_inside_runs(tmp_path):
    for name in ("a/r1", "a/b/r2", "r3"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / runs.CONFIG_FILE).write_text("{}")
    (tmp_path / "r3" / "inner").mkdir()  # inside a run folder: not a run of its own
    (tmp_path / "r3" / "inner" / runs.CONFIG_FILE).write_text("{}")
    found = runs.find_run_dirs([tmp_path])
    assert found == sorted((tmp_path / n).resolve() for n in ("a/r1", "a/b/r2", "r3"))
    assert runs.find_run_dirs([tmp_path / "r3"]) == [(tmp_path / "r3").resolve()]
    one_line_error(lambda: runs.find_run_dirs([tmp_path / "x"]), "--runs", "no such folder")
    (tmp_path / "empty").mkdir()
    one_line_error(lambda: runs.find_run_dirs([tmp_path / "empty"]), "no run folders")


def test_checking_and_creating_run_folders(tmp_path):
    grid = [config(tmp_path, attn_coef=a) for a in (0.0, 0.5)]
    one_line_error(lambda: runs.check_run_dirs(grid, resume=True), "--resume",
                   "no checkpoint there")
    assert runs.check_run_dirs(grid, resume=False) == ([runs.run_dir(c) for c in grid], False)
    assert not any(tmp_path.iterdir())  # checking writes nothing
    dirs = runs.create_run_dirs(grid, resume=False)
    for c, folder in zip(grid, dirs, strict=True):
        assert (folder / runs.CHECKPOINT_DIR).is_dir()
        assert runs.read_config(folder).attn_coef == c.attn_coef
    (dirs[0] / runs.METRICS_FILE).write_text('{"global_step": 64}\n')
    (dirs[0] / runs.CHECKPOINT_DIR / "1").mkdir()
    # only one run of the grid has a checkpoint, the other one's files have none
    one_line_error(lambda: runs.check_run_dirs(grid, resume=False), str(dirs[1]),
                   "config.json", "no checkpoint", "nothing was changed")
    (dirs[1] / runs.CONFIG_FILE).unlink()
    one_line_error(lambda: runs.check_run_dirs(grid, resume=False), "1 run folder(s)",
                   "hold checkpoints", "nothing was changed")
    # the same configuration with a checkpoint: the command continues it
    assert runs.check_run_dirs(grid[:1], resume=False) == ([dirs[0]], True)
    runs.create_run_dirs(grid[:1], resume=True)  # a resume keeps the metrics
    assert (dirs[0] / runs.METRICS_FILE).exists()
    (dirs[0] / runs.CHECKPOINT_DIR / "1").rmdir()
    runs.create_run_dirs(grid[:1], resume=False)  # a new run starts a new log
    assert not (dirs[0] / runs.METRICS_FILE).exists()


def test_a_new_run_never_starts_over_another_runs_files(tmp_path):
    """Checkpoints of another configuration, or any file of a run (a published agent, its
    evaluations, card or log) without a checkpoint: refused with one line, nothing touched."""
    c = config(tmp_path, attn_coef=0.5)
    folder = runs.run_dir(c)
    folder.mkdir()
    (folder / runs.CHECKPOINT_DIR).mkdir()  # an empty checkpoints/ folder holds nothing
    assert runs.check_run_dirs([c], resume=False) == ([folder], False)
    for name in ("metrics.jsonl", "agent.json", "params.npz", "evaluation_greedy.json",
                 "README.md", "config.json"):
        (folder / name).write_text("kept")
        one_line_error(lambda: runs.check_run_dirs([c], resume=False), str(folder), name,
                       "no checkpoint", "--out-dir")
        (folder / name).unlink()
    runs.write_config(folder, dataclasses.replace(c, attn_coef=0.25, learning_rate=1e-3))
    (folder / runs.CHECKPOINT_DIR / "3").mkdir()
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    one_line_error(lambda: runs.check_run_dirs([c], resume=False), "another configuration",
                   "attn_coef 0.25 there, 0.5 here", "learning_rate", f"--resume {folder}")
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_creating_run_folders_leaves_nothing_when_one_cannot_be_made(tmp_path):
    out = tmp_path / "out"
    grid = [config(out, attn_coef=a) for a in (0.0, 0.5)]
    out.mkdir()
    runs.run_dir(grid[1]).write_text("a file where the run folder should be")
    one_line_error(lambda: runs.create_run_dirs(grid, resume=False),
                   "cannot prepare run folder", "Quadrant__attn0.5__s0", "--out-dir")
    assert sorted(p.name for p in out.iterdir()) == ["Quadrant__attn0.5__s0"]


def test_out_dir_writability(tmp_path):
    runs.check_out_dir_writable(str(tmp_path / "new" / "deeper"))  # can be created
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    one_line_error(lambda: runs.check_out_dir_writable(str(blocker / "runs")), "--out-dir",
                   "not writable")
