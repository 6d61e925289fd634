"""Paper figures and table from synthetic run folders with known numbers."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attnjax import figures
from attnjax.cli import run_cli
from attnjax.errors import UserError
from attnjax.figures.plots import plot_entropy_vs_reward, plot_reward_curves
from attnjax.figures.records import FiguresWarning, load_runs
from attnjax.figures.summary import final_value, interpolate_on_grid, summarize
from attnjax.figures.tables import format_cell, table_markdown

ROOT = Path(__file__).resolve().parents[2]

# Rows every 500 steps from 500 to 10000: with --final-window-frac 0.1 the window is
# global_step >= 10000 - 0.1 * 9500 = 9050, i.e. the rows at 9500 and 10000.
STEPS = list(range(500, 10001, 500))
# final returns (mean of the two window rows) and final attention entropies per run
FINALS = {
    ("Breakout-v5", 0.0): ([100.0, 130.0, 160.0], [7.5, 7.6, 7.7]),
    ("Breakout-v5", 0.005): ([50.0, 52.0, 60.0], [3.0, 3.5, 4.0]),
    ("BeamRider-v5", 0.0): ([500.0, 540.0, 580.0], [7.0, 7.2, 7.4]),
    ("BeamRider-v5", 0.005): ([560.0, 580.0, 600.0], [2.0, 2.5, 3.0]),
}


def write_run(root: Path, name: str, rows: list[dict], **config) -> Path:
    run = root / name
    run.mkdir(parents=True)
    base = {"env_id": "Breakout-v5", "attn_coef": 0.0, "seed": 0, "network": "attention",
            "total_timesteps": 10000, "run_name": name}
    (run / "config.json").write_text(json.dumps({**base, **config}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def row(step: int, ret: float | None, ent: float | None = 7.78) -> dict:
    return {"iteration": step // 500, "global_step": step, "episodic_return": ret,
            "episodic_length": None if ret is None else 100.0, "attention_entropy": ent,
            "policy_loss": 0.0, "value_loss": 0.0, "entropy": 1.0, "approx_kl": 0.0,
            "clipfrac": 0.0, "learning_rate": 2.5e-4, "sps": 100.0}


def final_rows(final_ret: float, final_ent: float) -> list[dict]:
    """Null return at first, a ramp, then final_ret -/+ 1 in the final window (mean final_ret)."""
    rows = [row(STEPS[0], None, 7.78)]
    rows += [row(s, 10.0 * i, 7.0) for i, s in enumerate(STEPS[1:-2])]
    rows += [row(STEPS[-2], final_ret - 1, final_ent - 0.1),
             row(STEPS[-1], final_ret + 1, final_ent + 0.1)]
    return rows


@pytest.fixture(scope="module")
def grid_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for (env_id, coef), (rets, ents) in FINALS.items():
        for seed, (ret, ent) in enumerate(zip(rets, ents, strict=True)):
            write_run(root / env_id, f"{env_id}__{coef:g}__s{seed}", final_rows(ret, ent),
                      env_id=env_id, attn_coef=coef, seed=seed)
    return root


@pytest.fixture(scope="module")
def outputs(grid_runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("figures")
    figures.make_figures([grid_runs], out, final="window")  # FINALS are window means
    return out


def test_final_value_window_and_fallbacks():
    steps = np.array([100, 200, 300, 400])
    vals = np.array([1.0, 2.0, 3.0, 5.0])
    # window: step >= 400 - 0.5 * (400 - 100) = 250 -> 3, 5
    assert final_value(steps, vals, 100, 400, 0.5) == 4.0
    # nothing non-null in the window -> last non-null value
    assert final_value(steps[:2], vals[:2], 100, 400, 0.1) == 2.0
    assert math.isnan(final_value(steps[:0], vals[:0], 100, 400, 0.1))


def test_interpolate_is_nan_before_first_point():
    grid = np.array([0.0, 50.0, 100.0, 150.0, 300.0])
    out = interpolate_on_grid(np.array([100, 200]), np.array([1.0, 3.0]), grid)
    assert np.isnan(out[:2]).all()
    np.testing.assert_allclose(out[2:], [1.0, 2.0, 3.0])


def test_table_csv_and_markdown(outputs):
    with open(outputs / "final_table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["game"] for r in rows] == ["BeamRider"] * 2 + ["Breakout"] * 2  # paper order
    assert list(rows[0]) == ["game", "attn_coef", "n_seeds", "mean", "std", "network"]
    for r in rows:
        rets = FINALS[(r["game"] + "-v5", float(r["attn_coef"]))][0]
        assert int(r["n_seeds"]) == 3
        assert float(r["mean"]) == pytest.approx(np.mean(rets))
        assert float(r["std"]) == pytest.approx(np.std(rets, ddof=0))
    md = (outputs / "final_table.md").read_text().splitlines()
    assert md[0] == "| λ | BeamRider | Breakout |"
    assert md[2] == "| 0 | 540±33 | 130±24 |"
    assert md[3] == "| 0.005 | 580±16 | 54±4 |"
    assert "over 3 seeds" in md[5] and "population standard deviation" in md[5]
    assert "ddof" not in md[5]


def test_summary_scatter_points_and_crosses(outputs):
    summary = json.loads((outputs / "summary.json").read_text())
    assert list(summary["games"]) == ["BeamRider", "Breakout"]
    for game, entry in summary["games"].items():
        for g in entry["groups"]:
            rets, ents = FINALS[(game + "-v5", g["attn_coef"])]
            assert [p["final_reward"] for p in g["runs"]] == pytest.approx(rets)
            assert [p["final_entropy"] for p in g["runs"]] == pytest.approx(ents)
            assert g["cross"] == pytest.approx([np.mean(ents), np.mean(rets)])
            assert g["final_reward"]["std"] == pytest.approx(np.std(rets))


def test_scatter_artists_match_finals(grid_runs):
    summary = summarize(load_runs([grid_runs]), final="window")
    fig = plot_entropy_vs_reward(summary)
    try:
        axes = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
        assert set(axes) == {"BeamRider", "Breakout"}
        for (env_id, coef), (rets, ents) in FINALS.items():
            colls = {c.get_gid(): c for c in axes[env_id[:-3]].collections}
            label = f"λ={coef:g}"
            np.testing.assert_allclose(colls[f"dots:{label}"].get_offsets(),
                                       np.column_stack([ents, rets]))
            np.testing.assert_allclose(colls[f"cross:{label}"].get_offsets(),
                                       [[np.mean(ents), np.mean(rets)]])
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_outputs_written(outputs):
    for name in ("reward_curves.png", "reward_curves.pdf", "entropy_vs_reward.png",
                 "entropy_vs_reward.pdf", "final_table.csv", "final_table.md", "summary.json"):
        assert (outputs / name).stat().st_size > 0, name


def test_curve_mean_std_on_common_grid(tmp_path):
    # returns k * step / 1000 for seeds with k = 1, 2, 3; last steps 10000, 9000, 9500 ->
    # grid 0..9000 with 10 points = 0, 1000, ..., 9000; seed 2 has no return before 2000.
    for seed, (k, last) in enumerate([(1, 10000), (2, 9000), (3, 9500)]):
        rows = [row(s, None if seed == 2 and s < 2000 else k * s / 1000)
                for s in range(1000, last + 1, 500)]
        write_run(tmp_path, f"s{seed}", rows, seed=seed)
    summary = summarize(load_runs([tmp_path]), grid_points=10)
    curve = summary["games"]["Breakout"]["groups"][0]["curve"]
    assert curve["grid"] == pytest.approx(np.arange(0, 9001, 1000))
    assert curve["mean"][0] is None and curve["std"][0] is None
    assert curve["mean"][1] == pytest.approx(1.5) and curve["std"][1] == pytest.approx(0.5)
    g = np.arange(2000, 9001, 1000) / 1000
    assert curve["mean"][2:] == pytest.approx(2 * g)
    assert curve["std"][2:] == pytest.approx(np.std([1, 2, 3]) * g)
    fig = plot_reward_curves(summary)
    line = [ln for ln in fig.axes[0].lines if ln.get_gid() == "mean:λ=0"][0]
    np.testing.assert_allclose(line.get_ydata()[2:], 2 * g)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_nulls_nature_and_short_last_line(tmp_path):
    for seed, ret in enumerate([10.0, 20.0]):
        write_run(tmp_path, f"a{seed}", [row(s, ret, 6.0) for s in (1000, 2000)], seed=seed)
    write_run(tmp_path, "a2", [row(s, None, 6.0) for s in (1000, 2000)], seed=2)
    write_run(tmp_path, "nat", [row(s, 5.0, None) for s in (1000, 2000)], network="nature")
    cut = tmp_path / "a1" / "metrics.jsonl"
    cut.write_text(cut.read_text() + '{"global_step": 3000, "episodic_ret')  # being written
    with pytest.warns(FiguresWarning) as record:
        summary = summarize(load_runs([tmp_path]))
    messages = " ".join(str(w.message) for w in record)
    assert "unfinished last line" in messages and "no episode finished" in messages
    attention, nature = summary["games"]["Breakout"]["groups"]
    assert attention["final_reward"] == {"n": 2, "mean": 15.0, "std": 5.0}
    assert attention["runs"][2]["final_reward"] is None
    assert attention["cross"] == pytest.approx([6.0, 15.0])
    assert nature["label"] == "nature CNN" and nature["cross"] is None
    assert nature["final_entropy"] is None and nature["final_reward"]["mean"] == 5.0
    md = table_markdown(summary)
    assert "| 0 | 15±5 |" in md and "| nature CNN | 5 (1 seed) |" in md and "over 2 seeds" in md
    fig = plot_entropy_vs_reward(summary)
    gids = {c.get_gid() for c in fig.axes[0].collections}
    assert gids == {"dots:λ=0", "cross:λ=0"}  # the nature run is left out
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.parametrize("damage", ["no_runs", "bad_json", "config_key", "metrics_key",
                                    "not_increasing", "no_metrics", "duplicate", "frac"])
def test_bad_input_raises_user_error(tmp_path, damage):
    frac = 0.1
    if damage != "no_runs":
        run = write_run(tmp_path, "r", [row(1000, 1.0), row(2000, 2.0)])
    if damage == "bad_json":
        (run / "metrics.jsonl").write_text('{"global_step": 1000,}\n' + json.dumps(row(2000, 1)))
    elif damage == "config_key":
        (run / "config.json").write_text(json.dumps({"env_id": "Breakout-v5", "seed": 0}))
    elif damage == "metrics_key":
        (run / "metrics.jsonl").write_text(json.dumps({"global_step": 1000}) + "\n")
    elif damage == "not_increasing":
        (run / "metrics.jsonl").write_text(json.dumps(row(2000, 1)) + "\n"
                                           + json.dumps(row(1000, 1)) + "\n")
    elif damage == "no_metrics":
        (run / "metrics.jsonl").unlink()
    elif damage == "duplicate":
        write_run(tmp_path / "again", "r", [row(1000, 1.0)])
    elif damage == "frac":
        frac = 0.0
    with pytest.raises(UserError) as err:
        figures.make_figures([tmp_path], tmp_path / "out", final_window_frac=frac)
    assert "\n" not in str(err.value)


def test_main_prints_paths_and_cli_error_is_one_line(grid_runs, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    figures.add_arguments(parser)
    args = parser.parse_args(["--runs", str(grid_runs / "Breakout-v5"), "--out",
                              str(tmp_path / "f"), "--grid-points", "5"])
    assert figures.main(args) == 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "f" / "final_table.md") in printed and len(printed) == 7
    bad = parser.parse_args(["--runs", str(tmp_path / "missing"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: figures.main(bad))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


OTHER_SUBCOMMANDS = ("attnjax.inspection.saliency.export", "attnjax.inspection.video",
                     "attnjax.inspection.relevance.viewer")


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in OTHER_SUBCOMMANDS),
                    reason="visualize.py imports subcommand modules that do not exist yet")
def test_visualize_figures_cli_exit_code(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "visualize.py", "figures", "--runs", str(empty),
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1


def test_figures_read_at_a_glance(grid_runs, tmp_path):
    """Coinciding curves stay visible (own line style and marker per λ), the legend counts the
    seeds, Figure 3's entropy is in nats with the uniform maximum K·ln 49 drawn, captions carry
    no jargon, and PDFs embed TrueType fonts (no Type 3)."""
    import matplotlib.pyplot as plt

    summary = summarize(load_runs([grid_runs]))
    fig = plot_reward_curves(summary)
    try:
        ax = next(a for a in fig.axes if a.get_title() == "Breakout")
        lines = {line.get_gid(): line for line in ax.get_lines()}
        a, b = lines["mean:λ=0"], lines["mean:λ=0.005"]
        assert (a.get_linestyle(), a.get_marker()) != (b.get_linestyle(), b.get_marker())
        assert a.get_marker() not in ("", "None") and a.get_markevery() is not None
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert legend == ["λ=0 (3 seeds)", "λ=0.005 (3 seeds)"]
        assert not any("ddof" in t.get_text() for t in fig.texts)
    finally:
        plt.close(fig)
    fig = plot_entropy_vs_reward(summary)
    try:
        ax = next(a for a in fig.axes if a.get_title() == "Breakout")
        assert "nats" in ax.get_xlabel()
        uniform = next(line for line in ax.get_lines() if line.get_gid() == "uniform:2")
        assert uniform.get_xdata()[0] == pytest.approx(2 * math.log(49))
        (left, right), (bottom, top) = ax.get_xlim(), ax.get_ylim()
        assert left < 0 and right > 2 * math.log(49)  # 0 to uniform, off the edges
        dots = {c.get_gid(): c for c in ax.collections}
        for c in dots.values():  # no point on an edge of the axes
            x, y = np.asarray(c.get_offsets()).T
            assert (left < x).all() and (x < right).all() and (bottom < y).all() and (y < top).all()
        assert dots["dots:λ=0"].get_paths()[0] != dots["dots:λ=0.005"].get_paths()[0]
        assert any("K·ln 49" in t.get_text() for t in fig.texts)
    finally:
        plt.close(fig)
    figures.make_figures([grid_runs], tmp_path)
    for name in ("reward_curves.pdf", "entropy_vs_reward.pdf"):
        pdf = (tmp_path / name).read_bytes()
        assert b"/FontFile2" in pdf and b"Type3" not in pdf, name


# --------------------------------------------------------------------------------------------
# --final last (the paper's notebook) and the table's significant digits


def test_final_last_is_the_default_and_takes_each_runs_last_logged_values(grid_runs, tmp_path):
    out = tmp_path / "f"
    figures.make_figures([grid_runs], out)  # the default: --final last
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final"] == "last"
    for game, entry in summary["games"].items():
        for g in entry["groups"]:
            rets, ents = FINALS[(game + "-v5", g["attn_coef"])]
            # final_rows logs final_ret + 1 and final_ent + 0.1 last
            assert [p["final_reward"] for p in g["runs"]] == pytest.approx(np.add(rets, 1))
            assert [p["final_entropy"] for p in g["runs"]] == pytest.approx(np.add(ents, 0.1))
            assert g["final_reward"]["mean"] == pytest.approx(np.mean(rets) + 1)
    md = (out / "final_table.md").read_text()
    assert "| 0 | 541±33 | 131±24 |" in md and "last logged value" in md
    window = summarize(load_runs([grid_runs]), final="window")
    assert "over the last 10% of its logged" in table_markdown(window)
    # Figure 3's dots and caption follow --final
    fig = plot_entropy_vs_reward(summary)
    try:
        axes = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
        rets, ents = FINALS[("Breakout-v5", 0.005)]
        dots = {c.get_gid(): c for c in axes["Breakout"].collections}["dots:λ=0.005"]
        np.testing.assert_allclose(dots.get_offsets(), np.column_stack([np.add(ents, 0.1),
                                                                        np.add(rets, 1)]))
        assert any("last logged value" in t.get_text() for t in fig.texts)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    parser = argparse.ArgumentParser()
    figures.add_arguments(parser)
    args = parser.parse_args(["--runs", str(grid_runs), "--out", str(tmp_path / "w"),
                              "--final", "window"])
    assert figures.main(args) == 0
    assert json.loads((tmp_path / "w" / "summary.json").read_text())["final"] == "window"
    with pytest.raises(UserError, match="--final"):
        summarize(load_runs([grid_runs]), final="median")


@pytest.mark.parametrize("mean, std, text", [
    (1.325, 0.425, "1.3±0.4"), (540.4, 33.2, "540±33"), (131.0, 52.4, "131±52"),
    (5.0, 0.0, "5±0"), (0.0123, 0.0049, "0.012±0.005"), (-0.04, 0.5, "0.0±0.5"),
    (2.5, 0.95, "2.5±1.0"), (None, 1.0, "n/a"),
    # no spread: the mean to 3 significant digits
    (1.25, 0.0, "1.25±0"), (540.4, 0.0, "540±0"), (0.5, 0.0, "0.5±0"), (0.0, 0.0, "0±0"),
    (-12.345, 0.0, "-12.3±0"),
])
def test_table_cells_keep_significant_digits(mean, std, text):
    assert format_cell(mean, std) == text


def test_a_single_seed_shows_no_spread():
    assert format_cell(24.31, 0.0, n=1) == "24.3 (1 seed)"
    assert format_cell(540.4, 0.0, n=1) == "540 (1 seed)"
    assert format_cell(15.0, 5.0, n=2) == "15±5"


def test_figures_replace_only_their_own_outputs(grid_runs, tmp_path):
    """Rerun into its own folder (stamped, or written before the stamp): fine. A file of the
    same name it did not write: refused before anything is written."""
    out = tmp_path / "fig"
    figures.make_figures([grid_runs], out)
    manifest = json.loads((out / "summary.json").read_text())
    assert manifest["written_by"]["command"] == "visualize.py figures"
    assert "reward_curves.png" in manifest["files"] and "final_table.md" in manifest["files"]
    figures.make_figures([grid_runs], out)
    legacy = {k: v for k, v in manifest.items() if k not in ("written_by", "files")}
    (out / "summary.json").write_text(json.dumps(legacy))  # as written before the stamp
    figures.make_figures([grid_runs], out)
    for name in ("reward_curves.png", "final_table.csv"):
        theirs = tmp_path / name.split(".")[0]
        theirs.mkdir()
        (theirs / name).write_bytes(b"theirs")
        with pytest.raises(UserError, match=f"{theirs / name} exists and was not written by "
                                            "visualize.py figures"):
            figures.make_figures([grid_runs], theirs)
        assert sorted(p.name for p in theirs.iterdir()) == [name]
        assert (theirs / name).read_bytes() == b"theirs"
