"""W&B tracking read back from disk, with no network: offline mode writes a `.wandb` transaction
log whose records (run config, history, images) we decode; online mode with no server falls back
to offline; the run folder's `wandb_run_id` makes a second start continue the same W&B run.

wandb 0.31 ships no Python reader for `.wandb` files (the old `DataStore` is gone), so
`read_wandb_records` decodes the format itself: a 7-byte header (`:W&B`, magic 0xBEE1, version 0)
then LevelDB-log records in 32 KiB blocks (4-byte CRC, 2-byte length, 1-byte type; type 1 = a full
record, 2/3/4 = first/middle/last fragment), each payload a `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

SETTINGS = dict(
    env_id="Quadrant-v0", total_timesteps=128, num_envs=4, num_steps=16, num_minibatches=2,
    update_epochs=1, log_images_every=1, checkpoint_every=4, attn_coef=0.005, seed=3,
    wandb_tags=("t1",),
)
BLOCK = 32768
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)


def read_wandb_records(path: Path) -> list:
    """Every Record in a `.wandb` transaction log, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:7] == HEADER, f"not a W&B transaction log: header {data[:7]!r}"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a header is zero padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        if kind == 0 and length == 0:  # zero-filled (pre-allocated) end
            break
        pending += data[pos:pos + length]
        pos += length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _items(updates) -> dict:
    return {u.key: json.loads(u.value_json) for u in updates}


def _history(record) -> dict:
    out: dict = {}
    for item in record.history.item:
        keys = list(item.nested_key) or [item.key]
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = json.loads(item.value_json)
    return out


def _only_run_log(run_dir: Path) -> Path:
    logs = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 1, logs
    return logs[0]


@pytest.fixture
def no_wandb_network(monkeypatch, tmp_path):
    """Point W&B at a closed local port and keep its settings/cache inside tmp_path."""
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def test_offline_run_read_back(tmp_path, no_wandb_network):
    from attnjax.training.config import TrainConfig
    from attnjax.training.loop import train

    [run_dir] = train([TrainConfig(**SETTINGS, wandb_mode="offline", out_dir=str(tmp_path))])

    run_id = (run_dir / "wandb_run_id").read_text().strip()
    log = _only_run_log(run_dir)
    assert log.name == f"run-{run_id}.wandb"
    records = read_wandb_records(log)
    kinds = [r.WhichOneof("record_type") for r in records]
    assert "run" in kinds and kinds[-1] == "exit", kinds

    # the run record: id, tags, group and the whole config (the dashboard groups by these)
    [run] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.run_id == run_id
    assert list(run.tags) == ["t1"]
    assert run.run_group == "Quadrant-v0"
    config = _items(run.config.update)
    for r in records:
        if r.WhichOneof("record_type") == "config":
            config.update(_items(r.config.update))
    expected = TrainConfig(**SETTINGS, wandb_mode="offline", out_dir=str(tmp_path)).to_dict()
    assert config["attn_coef"] == 0.005 and config["seed"] == 3
    assert config["env_id"] == "Quadrant-v0" and config["network"] == "attention"
    for key in ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs",
                "learning_rate", "gamma", "gae_lambda", "clip_coef", "ent_coef", "vf_coef",
                "max_grad_norm", "attn_heads"):
        assert config[key] == pytest.approx(expected[key]), key

    # history: metrics of every iteration against global_step, and attention images
    history = [_history(r) for r in records if r.WhichOneof("record_type") == "history"]
    metrics = {h["global_step"]: h for h in history if "policy_loss" in h}
    assert sorted(metrics) == [64, 128]
    for h in metrics.values():
        for key in ("attention_entropy", "policy_loss", "value_loss", "entropy", "approx_kl",
                    "learning_rate", "iteration"):
            assert isinstance(h[key], int | float), (key, h)
    assert metrics[64]["iteration"] == 1 and metrics[128]["iteration"] == 2
    images = [h for h in history if "attention" in h]
    assert {h["global_step"] for h in images} == {64, 128}
    for h in images:
        assert h["attention"]["_type"] == "image-file"
        assert (log.parent / "files" / h["attention"]["path"]).is_file()

    # metrics.jsonl says the same as W&B
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["global_step"] for x in lines] == [64, 128]


def test_online_without_server_falls_back_to_offline(tmp_path, no_wandb_network):
    from attnjax.training.config import TrainConfig
    from attnjax.training.loop import train

    config = TrainConfig(**{**SETTINGS, "total_timesteps": 64, "log_images_every": 0},
                         wandb_mode="online", out_dir=str(tmp_path))
    with pytest.warns(UserWarning, match="unreachable"):
        [run_dir] = train([config])
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["global_step"] for x in lines] == [64]
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    assert _only_run_log(run_dir).name == f"run-{run_id}.wandb"


def test_second_start_continues_same_wandb_run(tmp_path, no_wandb_network):
    from attnjax.training.config import TrainConfig
    from attnjax.training.tracking import WandbRun

    config = TrainConfig(**SETTINGS, wandb_mode="offline", out_dir=str(tmp_path))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ids = []
    for step in (64, 128):
        tracker = WandbRun(config, run_dir)
        assert tracker.run is not None
        ids.append(tracker.id)
        tracker.log({"global_step": step, "policy_loss": 0.5})
        tracker.finish()
    assert ids[0] == ids[1] == (run_dir / "wandb_run_id").read_text().strip()
    logs = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert logs and all(p.name == f"run-{ids[0]}.wandb" for p in logs)
    runs = [r.run for p in logs for r in read_wandb_records(p)
            if r.WhichOneof("record_type") == "run"]
    assert {r.run_id for r in runs} == {ids[0]}
