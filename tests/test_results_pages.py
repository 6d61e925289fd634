"""The interpretability results page quotes its report: every number it prints with three
decimals (its tables, its ranges' ends) is a value of the part of the committed report.json
its section is about, so a report measured anew fails here until the page is rewritten."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results" / "interpretability.md"
REPORT = ROOT / "docs" / "results" / "interpretability" / "report.json"

# section heading (start) -> the report's parts its numbers come from
SECTIONS = {
    "## Does the attention cover": lambda r: [
        o[k] for run in r["localization"].values() for o in run.values()
        for k in ("attention", "attention_baselines")],
    "## Which saliency maps point": lambda r: [
        o[k] for run in r["localization"].values() for o in run.values()
        for k in ("saliency", "saliency_baselines")],
    "## Which saliency method passes": lambda r: [
        res[k] for run in r["sanity"].values() for res in run.values()
        for k in ("verdict", "sensitivity")],
    "## Does the paper's sample-count": lambda r: [run["claim"] for run in r["samples"].values()],
    "## Do the highest-ranked pixels": lambda r: [
        [[a[f"{mode}_target_auc"] for a in b["areas"].values() for mode in ("deletion",
                                                                            "insertion")],
         # a curve's start (the unperturbed frame) and its highest point
         [f(c[mode]["target"]) for c in b["curves"].values() for mode in c
          for f in (lambda y: y[0], max)]]
        for run in r["faithfulness"].values() for res in run.values()
        for b in res["baselines"].values()],
}


def numbers(node) -> list[float]:
    if isinstance(node, dict):
        return [x for v in node.values() for x in numbers(v)]
    if isinstance(node, list):
        return [x for v in node for x in numbers(v)]
    if isinstance(node, float | int) and not isinstance(node, bool):
        return [float(node)]
    return []


def quoted(text: str) -> list[str]:
    """Numbers written with exactly three decimals, '−' read as a minus sign (λ values are
    settings, not measurements)."""
    return [n.replace("−", "-")
            for n in re.findall(r"(?<!λ = )(?<![\d.])[-−]?\d+\.\d{3}(?!\d)", text)]


def sections(page: str) -> dict[str, str]:
    parts = re.split(r"(?m)^(?=## )", page)
    return {start: next(p for p in parts if p.startswith(start)) for start in SECTIONS}


def test_every_three_decimal_number_is_in_its_sections_part_of_the_report():
    report = json.loads(REPORT.read_text())
    total = 0
    for start, text in sections(PAGE.read_text()).items():
        measured = {f"{x:.3f}" for x in numbers(SECTIONS[start](report))}
        found = quoted(text)
        total += len(found)
        missing = sorted({n for n in found if n not in measured})
        assert not missing, f"{start!r}: numbers report.json does not hold there: {missing}"
    assert total > 50, "the page's tables are gone"
