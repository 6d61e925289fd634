"""attnjax.metrics.plots and markdown on the committed report of the reference agents: the
faithfulness figure has a panel for every run × target × baseline the data holds, and the
figure and report.md name the curves that climb above the unperturbed frame's value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnjax.metrics import plots
from attnjax.metrics.faithfulness import MAX_SUM_NOTE, rises_above_unperturbed
from attnjax.metrics.markdown import write_markdown

REPORT = Path(__file__).resolve().parents[2] / "docs/results/interpretability/report.json"


@pytest.fixture
def report() -> dict:
    return json.loads(REPORT.read_text())


def test_faithfulness_figure_has_a_panel_per_run_target_and_baseline(report):
    fth = report["faithfulness"]
    runs = list(fth)
    # the second run without one (target, baseline): its panels stay empty, the rest drawn
    del fth[runs[1]]["action"]["baselines"]["mean"]
    expected = {f"{plots.run_label(report, run)}: {target}, {baseline} baseline\n{kind}"
                for run in runs for target, result in fth[run].items()
                for baseline in result["baselines"]
                for kind in ("area under the curves", "deletion", "insertion")}
    assert len(expected) == 3 * (2 * 2 * 2 - 1)
    fig = plots.plot_faithfulness(report)
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert len(titles) == len(expected) and set(titles) == expected
    assert "λ=0.005, seed 1: action, blur baseline\ndeletion" in titles
    plots._pyplot().close(fig)


def test_curves_above_the_unperturbed_value_are_named(report, tmp_path):
    """On the reference agents only λ = 0's max_sum under the blur baseline climbs above the
    unperturbed frame: SmoothGrad's and VarGrad's deletion at half the pixels."""
    fth = report["faithfulness"]
    found = {(run, target, baseline): rises_above_unperturbed(b["curves"], res["fractions"])
             for run, by_target in fth.items() for target, res in by_target.items()
             for baseline, b in res["baselines"].items()}
    rising = {key: [(r["order"], r["mode"], r["fraction"]) for r in value]
              for key, value in found.items() if value}
    assert rising == {("Breakout__attn0__s0", "max_sum", "blur"): [
        ("smoothgrad", "deletion", 0.5), ("vargrad", "deletion", 0.5)]}
    caption = plots.faithfulness_caption(report)
    assert MAX_SUM_NOTE in caption
    assert ("λ=0, seed 0, max_sum, blur baseline: smoothgrad deletion 1.775 at 0.5, vargrad "
            "deletion 1.770 at 0.5 (unperturbed 1.699)") in caption
    write_markdown(report, tmp_path / "report.md")
    md = (tmp_path / "report.md").read_text()
    assert MAX_SUM_NOTE in md
    assert md.count("Above the unperturbed frame's value") == 1
