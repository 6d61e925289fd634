"""The sweep report: assessed runs (synthetic assessment.json files with known numbers) merged
into summary.json, the claims and their verdicts, the findings page generated from
summary.json alone, the bad-input one-liners; and `visualize.py assess` on the Quadrant-v0
agents of the `quadrant_grid` fixture."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest

from attnjax import figures
from attnjax.errors import UserError
from attnjax.figures import claims
from attnjax.figures.findings import findings_markdown
from attnjax.metrics import assess
from attnjax.provenance import markdown_stamp

LAMBDAS = (0.0, 0.0005, 0.005)
STEP = 100_000
# per (λ, seed): greedy score, final training entropy, frames entropy, ball hit rate, collapsed
RUNS = {
    (0.0, 0): (10.0, 7.0, 7.1, 0.30, False), (0.0, 1): (12.0, 6.8, 6.9, 0.35, False),
    (0.0, 2): (11.0, 6.9, 7.0, 0.32, False), (0.0005, 0): (11.5, 5.0, 5.1, 0.50, False),
    (0.0005, 1): (10.5, 5.2, 5.3, 0.52, False), (0.0005, 2): (12.5, 4.9, 5.0, 0.55, False),
    (0.005, 0): (2.0, 1.0, 1.1, 0.80, True), (0.005, 1): (3.0, 1.2, 1.3, 0.85, False),
    (0.005, 2): (2.5, 1.1, 1.2, 0.82, False),
}


def write_assessed_run(root: Path, coef: float, seed: int, step: int = STEP,
                       env_id: str = "Breakout-v5") -> Path:
    greedy, entropy, frames_entropy, hit, collapsed = RUNS[(coef, seed)]
    name = f"Breakout__attn{coef:g}__s{seed}"
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(
        {"env_id": env_id, "attn_coef": coef, "seed": seed, "network": "attention",
         "total_timesteps": step, "run_name": name}))
    rows = [{"iteration": i, "global_step": s, "episodic_return": greedy + i,
             "attention_entropy": entropy}
            for i, s in enumerate(range(step // 4, step + 1, step // 4))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def played(mean: float, heads: list[float] | None) -> dict:
        return {"games": 30, "mean": mean, "std": 1.0, "scores": [mean] * 30,
                "lengths": [100] * 30, "attention_entropy_per_head": heads}

    half = frames_entropy / 2
    (run / "assessment.json").write_text(json.dumps({
        "written_by": {"command": assess.STAMP_COMMAND, "attnjax_version": "0",
                       "agent_step": step},
        "run_name": name, "env_id": env_id, "attn_coef": coef, "seed": seed,
        "global_step": step,
        "evaluation": {"eval_seed": 0, "greedy": played(greedy, [half, half]),
                       "sample": played(greedy - 1, [half, half]),
                       "random": played(1.0, None)},
        "frames": {"count": 512},
        "localization": {"ball": {"frames": 500, "attention": {
            "head0": {"hit_rate": hit, "mass_ratio": 3.0},
            "head1": {"hit_rate": hit, "mass_ratio": 3.0}},
            "attention_baselines": {"random": {"hit_rate": 0.2, "mass_ratio": 1.0},
                                    "best_fixed": {"hit_rate": 0.45, "mass_ratio": 2.5}}}},
        "attention": {"entropy_per_head": [half, half], "modal_share_per_head": [0.95, 0.95]
                      if collapsed else [0.2, 0.2], "heads_agree_share": 0.9},
        "collapse": {**assess.collapse_verdict([0.2, 0.2], greedy, 1.0),
                     "collapsed": collapsed}}))
    return run


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    for coef, seed in RUNS:
        write_assessed_run(root / "runs", coef, seed)
    figures.make_figures([root / "runs"], root / "out", findings=root / "page.md")
    return root


def by_id(summary: dict, claim_id: str) -> list[dict]:
    return [c for c in summary["sweep"]["claims"] if c["id"] == claim_id]


def test_per_lambda_rows_and_collapse_counts(sweep):
    s = json.loads((sweep / "out" / "summary.json").read_text())["sweep"]
    rows = {r["attn_coef"]: r for r in s["lambdas"]}
    assert sorted(rows) == list(LAMBDAS)
    for coef, row in rows.items():
        greedy = [RUNS[(coef, seed)][0] for seed in range(3)]
        assert row["greedy"]["mean"] == pytest.approx(np.mean(greedy))
        assert row["greedy"]["std"] == pytest.approx(np.std(greedy))
        assert row["target_hit_rate"]["mean"] == pytest.approx(
            np.mean([RUNS[(coef, seed)][3] for seed in range(3)]))
        assert row["collapsed"] == sum(RUNS[(coef, seed)][4] for seed in range(3))
    assert s["random_agent"]["mean"] == 1.0 and s["target_object"] == "ball"
    assert s["budget"]["percent_of_paper"] == pytest.approx(1.0)


def test_claims_effects_intervals_and_verdicts(sweep):
    s = json.loads((sweep / "out" / "summary.json").read_text())
    training, greedy = by_id(s, "a")
    small = [RUNS[(0.0005, k)][0] for k in range(3)]
    base = [RUNS[(0.0, k)][0] for k in range(3)]
    assert greedy["effect"] == pytest.approx(np.mean(small) - np.mean(base))
    assert greedy["low"] < 0 < greedy["high"]
    assert greedy["verdict"] == "cannot tell with 3 seeds"
    (entropy,) = by_id(s, "b")
    assert entropy["effect"] < -0.8 and entropy["high"] < 0 and entropy["verdict"] == "supported"
    (cost,) = by_id(s, "c")
    assert cost["high"] < 0 and cost["verdict"] == "supported"
    assert cost["paper"][0]["mean"] == 131.0
    sharper, *per_lambda = by_id(s, "d")
    assert sharper["verdict"] == "supported" and len(per_lambda) == 2


def test_welch_and_fisher_intervals_match_scipy():
    from scipy import stats

    a, b = [1.0, 2.0, 4.0], [3.0, 5.0, 8.0, 9.0]
    est = claims.welch_difference(b, a)
    ref = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert (est["low"], est["high"]) == pytest.approx((ref.low, ref.high))
    rho = claims.spearman([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5])
    assert rho["low"] < rho["effect"] < rho["high"]
    assert claims.verdict({"low": -1.0, "high": 2.0}, +1, 3) == "cannot tell with 3 seeds"
    assert claims.verdict({"low": -3.0, "high": -1.0}, +1, 3) == "not supported"
    # a correlation rests on runs, not seeds per λ
    no_interval = claims.spearman([0.0, 0.001, 0.005], [3.0, 2.0, 1.0])
    assert claims.claim("x", no_interval, -1, 3, "run")["verdict"] == "cannot tell with 3 runs"


def test_page_is_generated_from_summary_alone(sweep):
    summary = json.loads((sweep / "out" / "summary.json").read_text())
    page = (sweep / "page.md").read_text()
    # its stamp, then the page, showing the figures from their folder relative to the page
    assert page == markdown_stamp("visualize.py figures") + "\n" + findings_markdown(summary, "out")
    assert "![return against agent steps per λ (the paper's Figure 2)](out/reward_curves.png)" \
        in page and (sweep / "out" / "reward_curves.png").exists()
    assert "100,000 agent steps, 1.0 % of the paper's 10,000,000" in page
    leaves: list[float] = []

    def walk(node):
        if isinstance(node, dict):
            [walk(v) for v in node.values()]
        elif isinstance(node, list):
            [walk(v) for v in node]
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            leaves.append(float(node))

    walk(summary["sweep"])
    for token in re.findall(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?", page):
        value = float(token.replace(",", ""))
        digits = len(token.split(".")[1]) if "." in token else 0
        assert any(abs(round(v, digits) - value) <= 10**-digits / 2 + 1e-9 or
                   abs(v) == abs(value) for v in leaves), f"{token} is not in summary.json"


def test_figures_show_the_sweep(sweep):
    for name in ("reward_curves", "entropy_vs_reward", "hit_rate_vs_lambda"):
        assert (sweep / "out" / f"{name}.png").stat().st_size > 10_000
    from attnjax.figures.plots import plot_reward_curves

    summary = json.loads((sweep / "out" / "summary.json").read_text())
    fig = plot_reward_curves(summary)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "agent steps (millions)"
    assert [ln.get_ydata()[0] for ln in ax.lines if ln.get_gid() == "random"] == [1.0]
    assert sum(1 for c in ax.collections if str(c.get_gid()).startswith("band:")) == 3


@pytest.mark.parametrize("damage", ["no_runs", "two_games", "unequal_steps", "unassessed"])
def test_bad_sweep_input_is_one_line(tmp_path, damage):
    runs = tmp_path / "runs"
    runs.mkdir()
    if damage != "no_runs":
        write_assessed_run(runs, 0.0, 0)
        if damage == "two_games":
            write_assessed_run(runs, 0.0, 1, env_id="Pong-v5")
        elif damage == "unequal_steps":
            write_assessed_run(runs, 0.0, 1, step=2 * STEP)
        else:
            (write_assessed_run(runs, 0.0, 1) / "assessment.json").unlink()
    with pytest.raises(UserError) as err:
        figures.make_figures([runs], tmp_path / "out", findings=tmp_path / "page.md")
    assert "\n" not in str(err.value)


def test_findings_need_assessed_runs(tmp_path):
    run = write_assessed_run(tmp_path / "runs", 0.0, 0)
    (run / "assessment.json").unlink()
    with pytest.raises(UserError, match="assess"):
        figures.make_figures([tmp_path / "runs"], tmp_path / "out", findings=tmp_path / "p.md")


def test_argmax_statistics_and_collapse_rule():
    attention = np.zeros((10, 7, 7, 2))
    attention[:, 3, 4, 0] = 1.0  # head 0 always on (3, 4)
    attention[:9, 3, 4, 1] = 1.0  # head 1 there on 9 of 10 frames
    attention[9, 0, 0, 1] = 1.0
    stats = assess.argmax_statistics(attention)
    assert stats["modal_cell_per_head"] == [[3, 4], [3, 4]]
    assert stats["modal_share_per_head"] == [1.0, 0.9]
    assert stats["heads_agree_share"] == 0.9
    assert assess.collapse_verdict([1.0, 0.9], 2.0, 1.2)["collapsed"]
    assert not assess.collapse_verdict([1.0, 0.89], 2.0, 1.2)["collapsed"]
    assert not assess.collapse_verdict([1.0, 0.9], 2.3, 1.2)["collapsed"]


def assess_args(runs: list[Path], out: Path) -> argparse.Namespace:
    return argparse.Namespace(run=[str(r) for r in runs], out=str(out), games=4, frames=16,
                              seed=0, envs=4, no_progress=True)


def test_assess_quadrant_agents(quadrant_grid, tmp_path):
    out = tmp_path / "results"
    assert assess.main(assess_args(list(quadrant_grid.values()), out)) == 0
    for run in quadrant_grid.values():
        written = json.loads((out / run.name / "assessment.json").read_text())
        assert written["written_by"]["command"] == assess.STAMP_COMMAND
        assert written["written_by"]["agent_step"] == written["global_step"]
        assert (out / run.name / "config.json").read_bytes() == (run / "config.json").read_bytes()
        machine = (run / "machine.json").read_bytes()  # where it trained, carried along
        assert (out / run.name / "machine.json").read_bytes() == machine
        assert written["copies"]["machine.json"] == assess.sha256(machine)
        for policy in ("greedy", "sample", "random"):
            assert written["evaluation"][policy]["games"] == 4
        square = written["localization"]["square"]
        assert square["frames"] == 16 and "best_fixed" in square["attention_baselines"]
        assert len(written["attention"]["entropy_per_head"]) == 2
        assert isinstance(written["collapse"]["collapsed"], bool)
    # the same random games for every run
    randoms = {json.dumps(json.loads((out / r.name / "assessment.json").read_text())
                          ["evaluation"]["random"]["scores"]) for r in quadrant_grid.values()}
    assert len(randoms) == 1
    # a second call replaces its own files; a foreign file is refused
    assert assess.main(assess_args(list(quadrant_grid.values())[:1], out)) == 0
    foreign = out / next(iter(quadrant_grid.values())).name / "assessment.json"
    foreign.write_text("{}")
    with pytest.raises(UserError, match="not written by"):
        assess.main(assess_args(list(quadrant_grid.values())[:1], out))
    assert foreign.read_text() == "{}"


def test_assess_refuses_an_unfinished_run(quadrant_grid, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(next(iter(quadrant_grid.values())), run)
    config = json.loads((run / "config.json").read_text())
    config["total_timesteps"] *= 2
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="not at its config's total_timesteps"):
        assess.main(assess_args([run], tmp_path / "results"))
    assert not (tmp_path / "results").exists()


def test_a_comparison_counts_the_seeds_of_its_two_lambdas():
    """A half-finished sweep (λ = 0 and 0.0005 with 2 seeds, 0.002 with 1): the λ = 0.0005 vs
    0 comparison rests on 2 seeds each, whatever other λ values have."""
    from attnjax.figures.sweep import sweep_claims

    def row(coef, seed, score):
        return {"attn_coef": coef, "seed": seed, "training_return_last_50k": score,
                "greedy": score, "final_entropy": 1.0 + coef, "frames_entropy": 1.0,
                "target_hit_rate": 0.5}

    rows = [row(0.0, 0, 5.0), row(0.0, 1, 9.0), row(0.0005, 0, 4.0), row(0.0005, 1, 10.0),
            row(0.002, 0, 7.0)]
    (training, greedy) = [c for c in sweep_claims(rows, "Breakout") if c["id"] == "a"]
    assert greedy["verdict"] == "cannot tell with 2 seeds", greedy
    hit_002 = [c for c in sweep_claims(rows, "Breakout") if c.get("compare") == [0.002, 0.0]]
    assert hit_002[0]["verdict"] == "cannot tell with 1 seed"


def test_assess_copies_machine_json_only_where_the_run_has_one(tmp_path):
    from types import SimpleNamespace

    run = write_assessed_run(tmp_path, 0.0, 0)
    agent = SimpleNamespace(run_dir=run, step=STEP)
    assert sorted(assess.run_copies(agent)) == ["config.json", "metrics.jsonl"]
    (run / "machine.json").write_text('{"sessions": []}')
    assert assess.run_copies(agent)["machine.json"] == b'{"sessions": []}'


def test_a_copy_the_run_no_longer_has_is_removed_only_if_assess_wrote_it(tmp_path):
    """machine.json recorded by the earlier assessment and unchanged: stale when the run has
    none now; changed since (someone else's), or still copied: left alone."""
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "machine.json").write_text('{"sessions": []}')
    (folder / "assessment.json").write_text(json.dumps({"copies": {
        "machine.json": assess.sha256(b'{"sessions": []}')}}))
    assert assess.stale_copies(folder, {"config.json": b"{}"}) == [folder / "machine.json"]
    assert assess.stale_copies(folder, {"machine.json": b"{}"}) == []
    (folder / "machine.json").write_text('{"sessions": [{}]}')
    assert assess.stale_copies(folder, {"config.json": b"{}"}) == []


def with_machine(run: Path, devices: list[str] | None, sps: list[float] | None,
                 starts: list[int] | None = None) -> None:
    """Give a synthetic run the sessions of train.py on `devices` starting at global steps
    `starts` (default all 0; no devices: no machine.json) and an "sps" on each metrics line
    (none: no speed logged)."""
    if sps is not None:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        (run / "metrics.jsonl").write_text(
            "".join(json.dumps({**row, "sps": x}) + "\n" for row, x in zip(rows, sps,
                                                                            strict=True)))
    if devices is not None:
        (run / "machine.json").write_text(json.dumps(
            {"written_by": {"command": "train.py"},
             "sessions": [{"from_step": x, "device": d, "jax": JAX_ON[d]}
                          for d, x in zip(devices, starts or [0] * len(devices), strict=True)]}))


CPU, GPU = "AMD EPYC (2 cores)", "NVIDIA H200 x 1"
JAX_ON = {CPU: "0.10.2", GPU: "0.11.2"}


def test_findings_name_the_machines_the_runs_trained_on(tmp_path):
    """Seeds 0 and 1 trained on a CPU, seed 2 started there and finished on a GPU from step
    50,000 (its last session counts, with the speed of the iterations trained there: the lines
    at 75,000 and 100,000), one run has no machine.json."""
    runs = tmp_path / "runs"
    per_run = {(0.0, 0): 200, (0.0, 1): 210, (0.005, 0): 240, (0.005, 1): 300,
               (0.0, 2): 3000, (0.005, 2): 5000}
    for (coef, seed), x in per_run.items():  # the first iteration's speed includes compiling
        devices, starts = ([CPU], [0]) if seed < 2 else ([CPU, GPU], [0, STEP // 2])
        with_machine(write_assessed_run(runs, coef, seed), devices, [x / 10, x, x, 5 * x],
                     starts)
    with_machine(write_assessed_run(runs, 0.0005, 0), None, None)
    figures.make_figures([runs], tmp_path / "out", findings=tmp_path / "page.md")
    machines = json.loads((tmp_path / "out" / "summary.json").read_text())["sweep"]["machines"]
    assert machines == [
        {"machine": CPU, "n_runs": 4, "seeds": [0, 1], "jax": ["0.10.2"], "median_sps": 225.0,
         "runs": [{"attn_coef": 0.0, "seed": 0}, {"attn_coef": 0.0, "seed": 1},
                  {"attn_coef": 0.005, "seed": 0}, {"attn_coef": 0.005, "seed": 1}]},
        {"machine": GPU, "n_runs": 2, "seeds": [2], "jax": ["0.11.2"], "median_sps": 12000.0,
         "runs": [{"attn_coef": 0.0, "seed": 2}, {"attn_coef": 0.005, "seed": 2}]},
        {"machine": "unknown", "n_runs": 1, "seeds": [0], "jax": [], "median_sps": None,
         "runs": [{"attn_coef": 0.0005, "seed": 0}]}]
    page = (tmp_path / "page.md").read_text()
    section = page.split("## Where the runs trained\n")[1].split("\n## ")[0]
    assert page.index("## Budget") < page.index("## Where the runs trained") \
        < page.index("## Per λ")
    assert [line for line in section.splitlines() if line.startswith("| ")][1:] == [
        f"| {CPU} | 0.10.2 | 4 | 0, 1 | 225 |", f"| {GPU} | 0.11.2 | 2 | 2 | 12,000 |",
        "| unknown | unknown | 1 | 0 | n/a |"]


def test_runs_on_one_machine_make_one_row(sweep):
    """The fixture's runs have no machine.json: one row, "unknown", every run and seed."""
    s = json.loads((sweep / "out" / "summary.json").read_text())["sweep"]
    (row,) = s["machines"]
    assert (row["machine"], row["n_runs"], row["seeds"]) == ("unknown", len(RUNS), [0, 1, 2])
    assert "| unknown | unknown | 9 | 0, 1, 2 | n/a |" in (sweep / "page.md").read_text()


def test_the_budget_names_extra_seeds_of_some_lambdas(sweep):
    """Every λ with seeds 0-2 reads as one product; seeds 3 and 4 added for two λ values are
    named with those λ values, not folded into a product the sweep did not train."""
    from attnjax.figures.findings import grid_sentence

    s = json.loads((sweep / "out" / "summary.json").read_text())["sweep"]
    assert grid_sentence(s) == "λ ∈ {0, 0.0005, 0.005} × seeds {0, 1, 2}"
    extended = {"runs": s["runs"] + [{"attn_coef": c, "seed": x}
                                     for c in (0.0, 0.0005) for x in (3, 4)]}
    assert grid_sentence(extended) == ("λ ∈ {0, 0.0005, 0.005} × seeds {0, 1, 2}; "
                                       "also seeds {3, 4} for λ ∈ {0, 0.0005}")
    twice = {"runs": s["runs"] + s["runs"][:1]}  # one λ and seed twice (two networks)
    assert grid_sentence(twice) == "λ ∈ {0, 0.0005, 0.005} × seeds {0, 1, 2}"
    apart = {"runs": [{"attn_coef": 0.0, "seed": 0}, {"attn_coef": 0.005, "seed": 1}]}
    assert grid_sentence(apart) == "λ = 0 with seeds {0}; λ = 0.005 with seeds {1}"
