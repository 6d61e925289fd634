"""The agents committed to the repository (the references under agents/, the exhibits under
docs/results/exhibits/): each folder loads as an agent, is what its files say it is, and a
published one stays small enough to keep in the repository."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from attnjax.agents.load import load_agent
from attnjax.agents.published import is_published
from attnjax.training.runs import read_config, read_metrics

ROOT = Path(__file__).resolve().parents[1]
AGENTS = ROOT / "agents"
EXHIBITS = ROOT / "docs" / "results" / "exhibits"


def _subfolders(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []


SWEEP = AGENTS / "breakout-lambda-sweep"  # one agent per lambda of the lambda x seed sweep
REFERENCES = [p for p in _subfolders(AGENTS) if p != SWEEP]
SWEEP_AGENTS = _subfolders(SWEEP)
# exhibits: the agent folders among them (the exhibits also hold the reports measured on them)
FOLDERS = REFERENCES + SWEEP_AGENTS + [p for p in _subfolders(EXHIBITS)
                                       if (p / "agent.json").is_file()]
RESULTS = ROOT / "results" / "breakout-lambda-sweep"
MAX_PARAMS_BYTES = 8 * 2**20  # a published agent's parameters stay small enough to commit


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_committed_agent_folder_loads_and_matches_its_files(folder):
    agent = load_agent(folder)
    config = read_config(folder)
    assert agent.config.run_name == config.run_name == folder.name
    assert agent.step == read_metrics(folder)[-1]["global_step"]  # the log ends at the agent
    if is_published(folder):
        assert (folder / "params.npz").stat().st_size <= MAX_PARAMS_BYTES
        assert not (folder / "checkpoints").exists()  # no optimizer state beside the params
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert f"{agent.step:,}" in card
    for path in folder.glob("evaluation_*.json"):
        entries = [e for e in json.loads(path.read_text())["runs"]
                   if Path(e["run"]).name == folder.name]
        assert entries and all(e["global_step"] == agent.step for e in entries), path.name
        assert all(f"{e['mean']:.1f}" in card for e in entries)  # the card shows the scores
    obs = np.zeros((2, 4, 84, 84), np.uint8)
    out = agent.apply(obs)
    assert out.logits.shape == (2, agent.num_actions) and np.isfinite(out.logits).all()


def test_agents_folder_holds_one_reference_agent_per_lambda_the_ones_make_train_renders():
    """agents/ is what a user (or an evaluator) takes as "the trained agents": exhibits such as a
    collapsed seed live elsewhere, and `make train` renders exactly these folders."""
    lambdas = sorted(read_config(p).attn_coef for p in REFERENCES)
    assert lambdas == [0.0, 0.005]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    rendered = set(re.findall(r"^REF\w* := (agents/\S+)$", makefile, flags=re.M))
    assert rendered == {f"agents/{p.name}" for p in REFERENCES}


def test_sweep_agents_are_one_finished_uncollapsed_run_per_lambda_as_assessed():
    """agents/breakout-lambda-sweep holds, per lambda, the lowest seed whose attention did not
    collapse, trained to the sweep's 300,032 steps: the very agent its assessment measured."""
    from attnjax.figures.records import ASSESSMENT_FILE

    assert SWEEP_AGENTS, "no sweep agents"
    lambdas = [read_config(p).attn_coef for p in SWEEP_AGENTS]
    assert len(set(lambdas)) == len(lambdas)
    for folder in SWEEP_AGENTS:
        config = read_config(folder)
        assessment = json.loads((RESULTS / folder.name / ASSESSMENT_FILE).read_text())
        assert assessment["global_step"] == config.total_timesteps == 300_032
        assert not assessment["collapse"]["collapsed"]
        assert load_agent(folder).step == assessment["global_step"]
        lower = [json.loads((RESULTS / f"Breakout__attn{config.attn_coef:g}__s{s}" /
                             ASSESSMENT_FILE).read_text()) for s in range(config.seed)]
        assert all(a["collapse"]["collapsed"] for a in lower), "a lower seed did not collapse"
