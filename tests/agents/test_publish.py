"""Published agents (attnjax.agents.publish): what agents/ holds, loaded like a run folder."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from attnjax import load_agent
from attnjax.agents.published import AGENT_FILE, PARAMS_FILE

ROOT = Path(__file__).resolve().parents[2]


def _visualize(*args):
    return subprocess.run([sys.executable, str(ROOT / "visualize.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_published_agent_loads_with_the_parameters_and_outputs_of_its_run(quadrant_run, tmp_path):
    out = tmp_path / "agents" / "quadrant"
    done = _visualize("publish", "--run", str(quadrant_run), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [AGENT_FILE, PARAMS_FILE, "config.json", "metrics.jsonl", "machine.json"])
    assert (out / "machine.json").read_bytes() == (quadrant_run / "machine.json").read_bytes()
    with np.load(out / PARAMS_FILE, allow_pickle=False) as data:  # no pickle needed
        assert "encoder/conv1/kernel" in data.files
    original, published = load_agent(quadrant_run), load_agent(out)
    assert published.step == original.step and published.config == original.config
    assert published.run_dir == out and original.run_dir == quadrant_run
    for a, b in zip(jax.tree_util.tree_leaves(original.params),
                    jax.tree_util.tree_leaves(published.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    obs = jax.random.randint(jax.random.PRNGKey(0), (3, 4, 84, 84), 0, 255).astype(jnp.uint8)
    np.testing.assert_array_equal(np.asarray(original.apply(obs).attention),
                                  np.asarray(published.apply(obs).attention))
    steps = [json.loads(line)["global_step"] for line in
             (out / "metrics.jsonl").read_text().splitlines()]
    assert steps and max(steps) == published.step


def test_publish_refuses_a_folder_that_is_not_an_agent_and_keeps_it(quadrant_run, tmp_path):
    occupied = tmp_path / "notes"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    done = _visualize("publish", "--run", str(quadrant_run), "--out", str(occupied))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (occupied / "keep.txt").read_text() == "mine"
    done = _visualize("publish", "--run", str(tmp_path / "nothing"), "--out",
                      str(tmp_path / "x"))
    assert done.returncode == 2 and not (tmp_path / "x").exists()


def test_a_published_agent_with_wrong_shapes_is_refused_in_one_line(quadrant_run, tmp_path):
    out = tmp_path / "agent"
    assert _visualize("publish", "--run", str(quadrant_run), "--out", str(out)).returncode == 0
    meta = json.loads((out / AGENT_FILE).read_text())
    meta["attn_heads"] = 3
    (out / AGENT_FILE).write_text(json.dumps(meta))
    import pytest

    from attnjax.errors import UserError

    with pytest.raises(UserError, match="does not fit"):
        load_agent(out)


SHIPPED = ROOT / "agents" / "Breakout__attn0__s0"


def test_republishing_replaces_only_the_published_files_and_keeps_the_rest(tmp_path):
    """A folder published before stamps (as agents/ holds) is republished in place; the card,
    the evaluations and any other file in it are kept; agent.json now carries the stamp."""
    out = tmp_path / "agent"
    shutil.copytree(SHIPPED, out)
    (out / "notes.txt").write_text("mine")
    kept = {name: (out / name).read_bytes() for name in
            ("README.md", "evaluation_greedy.json", "notes.txt")}
    done = _visualize("publish", "--run", str(SHIPPED), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert {name: (out / name).read_bytes() for name in kept} == kept
    meta = json.loads((out / AGENT_FILE).read_text())
    assert meta["written_by"]["command"] == "visualize.py publish"
    assert meta["global_step"] == json.loads((SHIPPED / AGENT_FILE).read_text())["global_step"]
    assert _visualize("publish", "--run", str(SHIPPED), "--out", str(out)).returncode == 0


def test_publish_refuses_an_agent_json_it_did_not_write(tmp_path):
    out = tmp_path / "agent"
    shutil.copytree(SHIPPED, out)
    (out / AGENT_FILE).write_text(json.dumps({"format": "someone-else/1"}))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    done = _visualize("publish", "--run", str(SHIPPED), "--out", str(out))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"{out / AGENT_FILE} exists and was not written by visualize.py publish" in done.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_published_machine_record_stops_at_the_published_step(quadrant_run, tmp_path):
    """A session that started at or after the published checkpoint (a later resume, maybe on
    another machine) is not where the published parameters trained: left out."""
    from attnjax.agents.publish import publish_agent

    run = tmp_path / "run"
    shutil.copytree(quadrant_run, run)
    step = load_agent(run).step
    record = json.loads((run / "machine.json").read_text())
    later = {**record["sessions"][0], "from_step": step, "device": "NVIDIA H200 x 1"}
    (run / "machine.json").write_text(json.dumps({**record, "sessions": [
        *record["sessions"], later]}))
    out = publish_agent(run, tmp_path / "agent")
    published = json.loads((out / "machine.json").read_text())
    assert published["sessions"] == record["sessions"]
    assert published["written_by"] == record["written_by"]
