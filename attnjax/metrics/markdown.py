"""report.md: the report's numbers as Markdown tables with one line of reading each, from
report.json's data alone."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnjax.files import write_text
from attnjax.metrics.faithfulness import MAX_SUM_NOTE, rises_above_unperturbed
from attnjax.metrics.sanity import COMPARISONS, REGION_LABELS


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: Sequence[str], rows: list[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _every(stride: int) -> str:
    if stride == 1:
        return "every step"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(stride % 10 if stride % 100 not in (11, 12, 13)
                                            else 0, "th")
    return f"every {stride}{suffix} step"


def _head(data: dict[str, Any]) -> list[str]:
    fr, st = data["frames"], data["settings"]
    lines = [f"# Interpretability report: {data['env_id']}", "",
             f"attnjax {data['attnjax_version']}, {data['date']}. All runs are measured on the "
             f"same {fr['count']} frames, played by `{fr['from_run']}` ({fr['policy']} "
             f"actions, env seed {fr['seed']}, {_every(fr['stride'])} after "
             f"{fr['warmup']} warm-up steps). Saliency: methods {', '.join(st['methods'])}, "
             f"targets {', '.join(st['targets'])} (layer {st['layer']}), {st['samples']} "
             f"samples, spread {st['spread']:g}, stacked frames: {st['stack']}. What the "
             "numbers mean: docs/interpretability_metrics.md.", ""]
    lines += table(("run", "λ", "seed", "network", "step"),
                   [(r["run_name"], f"{r['attn_coef']:g}", r["seed"], r["network"],
                     r["global_step"]) for r in data["runs"]])
    sub = data.get("subsets", {})
    parts = []
    for part in st["parts"]:
        n = sub.get(part)
        parts.append(f"{part} ({n} of {fr['count']} frames, evenly spaced)"
                     if n is not None and n < fr["count"] else part)
    lines += [f"Parts: {', '.join(parts)}." + (
        f" The sample sweep uses target {st['targets'][0]} only." if "samples" in st["parts"]
        else ""), ""]
    if "timing_s" in data:
        lines += table(("part", "seconds"), [(k, f"{v:.1f}") for k, v in data["timing_s"].items()])
    return lines


def _ground_truth(data: dict[str, Any]) -> list[str]:
    gt = data["ground_truth"]
    lines = ["## Ground truth", ""]
    rows = []
    for o in gt["objects"]:
        cal = o["calibration"]
        if cal == "exact":
            rows.append((o["name"], o["visible_frames"], o["left_out"], "exact (env state)",
                         "0", "–"))
            continue
        axes = []
        for axis in ("x", "y"):
            fit, address = cal[axis], cal[f"ram_{axis}"]
            axes.append(f"{axis} = {fit['intercept']:.1f}" if address is None else
                        f"{axis} = {fit['slope']:.3f}·RAM[{address}] {fit['intercept']:+.1f}")
        err = max(cal["x"]["rms"], cal["y"]["rms"]), max(cal["x"]["max"], cal["y"]["max"])
        rows.append((o["name"], o["visible_frames"], o["left_out"], "; ".join(axes),
                     f"{err[0]:.2f} / {err[1]:.2f}", min(cal["x"]["frames"], cal["y"]["frames"])))
    lines += table(("object", "visible frames", "left out", "screen centre (px)",
                    "fit error rms / max (px)", "fitted on frames"), rows)
    if gt.get("calibration_states"):
        lines += [f"RAM -> screen mappings fitted by least squares on the objects detected in "
                  f"{gt['calibration_states']} rendered screens of the same game (the frames, "
                  "then the steps played after them); the fit error is their residual.", ""]
    lines += [f"- {note}" for note in gt["notes"]] + ([""] if gt["notes"] else [])
    return lines


def _localization(data: dict[str, Any]) -> list[str]:
    loc = data["localization"]
    lines = ["## Localization", "",
             "Attention: hit rate = share of frames whose head's argmax cell covers the object; "
             "mass = attention on covering cells / their share (1 = chance). Saliency: pointing "
             f"= peak within {data['settings']['radius']:g} px; energy = share of the map on the "
             "object. Baselines: uniform random maps, and the best fixed cell / pixel chosen "
             "with hindsight on these frames.", ""]
    for o in data["ground_truth"]["objects"]:
        name = o["name"]
        lines += [f"### {name} ({o['visible_frames']} frames, {o['left_out']} left out)", ""]
        first = next(iter(loc.values()))[name]
        if "attention_baselines" in first:
            heads = sorted({h for run in loc.values() for h in run[name].get("attention", {})})
            rows = [(run, *[fmt(e[name].get("attention", {}).get(h, {}).get(k))
                            for h in heads for k in ("hit_rate", "mass_ratio")])
                    for run, e in loc.items()]
            base = first["attention_baselines"]
            rows.append(("uniform random", *[base["random"][k] for _ in heads
                                             for k in ("hit_rate", "mass_ratio")]))
            rows.append((f"best fixed cell (hit {base['best_fixed']['hit_cell']}, mass "
                         f"{base['best_fixed']['mass_cell']})",
                         *[base["best_fixed"][k] for _ in heads
                           for k in ("hit_rate", "mass_ratio")]))
            lines += table(("attention", *[f"{h} {k}" for h in heads for k in ("hit", "mass")]),
                           rows)
        if "saliency_baselines" in first:
            methods = data["settings"]["methods"]
            rows = [(run, target, *[fmt(scores.get(m, {}).get(k)) for m in methods
                                    for k in ("pointing", "energy_share")])
                    for run, e in loc.items()
                    for target, scores in e[name].get("saliency", {}).items()]
            base = first["saliency_baselines"]
            rows.append(("uniform random", "", *[base["random"][k] for _ in methods
                                                 for k in ("pointing", "energy_share")]))
            rows.append((f"best fixed pixel (pointing {base['best_fixed']['pointing_pixel']}, "
                         f"energy {base['best_fixed']['energy_pixel']})", "",
                         *[base["best_fixed"][k] for _ in methods
                           for k in ("pointing", "energy_share")]))
            lines += table(("saliency", "target", *[f"{m} {k}" for m in methods
                                                    for k in ("pointing", "energy")]), rows)
    return lines


def _sanity(data: dict[str, Any]) -> list[str]:
    lines = ["## Sanity checks (model randomization)", "",
             "Rank correlation (ρ, of |map|; ρ± of the signed gradient) and SSIM of each "
             "randomized network's maps with the trained network's, same frames and noise. A "
             "method passes when ρ with every layer re-drawn is below the threshold.", ""]
    for run, by_target in data["sanity"].items():
        for target, res in by_target.items():
            methods = list(res["verdict"])
            verdicts = "; ".join(
                f"{m} {'passes' if v['passes'] else 'FAILS'} (ρ = "
                f"{fmt(v['spearman_all_randomized'])})" for m, v in res["verdict"].items())
            lines += [f"### {run}, target {target} ({res['frames']} frames)", "",
                      f"All layers re-drawn, threshold ρ < {res['pass_below']}: {verdicts}.", ""]
            for kind in ("cascade", "independent"):
                header = [kind + (" (from the top)" if kind == "cascade" else " (one layer)")]
                for m in methods:
                    header += [f"{m} ρ"] + ([f"{m} ρ±"] if m == "gradient" else []) + [
                        f"{m} SSIM"]
                rows = []
                for step in res[kind]:
                    row = [step["randomized"]]
                    for m in methods:
                        s = step["methods"][m]
                        row += [s["spearman"]] + ([s["spearman_signed"]]
                                                  if m == "gradient" else []) + [s["ssim"]]
                    rows.append(row)
                lines += table(header, rows)
            if "sensitivity" in res:
                lines += _sensitivity(res["sensitivity"], methods)
    return lines


def _sensitivity(sens: dict[str, Any], methods: list[str]) -> list[str]:
    """The sanity check's ρ on the whole frame, moving pixels and near the objects, beside
    the input-only baseline (two random tops over the same first layer)."""
    first = sens["first_layer"]
    regions = sens["regions"]
    lines = [f"What ρ is sensitive to: rank correlation of |map| on the whole frame and on the "
             f"pixels that matter to the game, beside the agreement of two independent "
             f"re-drawings of every layer above {first} (what the input and {first} alone fix). "
             f"A trained network whose ρ with a random top is as high as two random tops' "
             f"shows nothing of its top layers in that region. Regions: "
             + "; ".join(f"{REGION_LABELS.get(g, g)} {r['mean_pixels']:.0f} px a frame on average, "
                         f"{r['frames']} frames" for g, r in regions.items()) + ".", ""]
    rows = [[label.format(first=first), REGION_LABELS.get(g, g),
             *[sens["comparisons"][key][m][g] for m in methods]]
            for key, label in COMPARISONS.items() for g in regions]
    return lines + table(("comparison", "region", *[f"{m} ρ" for m in methods]), rows)


def _samples(data: dict[str, Any]) -> list[str]:
    lines = ["## The sample-count claim", ""]
    for run, res in data["samples"].items():
        spread = res["claim_spread"]
        lines += [f"### {run} ({res['frames']} frames, σ = {spread} × range)", ""]
        lines += [f"- {c['sentence']}" for c in res["claim"].values()] + [
            f"- {m}: left out, {reason}." for m, reason in res.get("skipped", {}).items()] + [
            f"- The plain gradient's Gini: {fmt(res['gradient']['gini'])}.", ""]
        curves = {m: res["curves"][m][spread] for m in res["curves"]}
        rows = [(n, *[curves[m][k][i] for m in curves for k in ("correlation", "gini")])
                for i, n in enumerate(res["n_grid"])]
        lines += table(("N", *[f"{m} {k}" for m in curves for k in ("ρ ref", "Gini")]), rows)
        stable = {f"{m} σ={s}": c["stable_n"] for m, by in res["curves"].items()
                  for s, c in by.items()}
        lines += ["Maps stop changing (ρ ≥ " + f"{res['stable_correlation']}) from N = " +
                  ", ".join(f"{k}: {fmt(v)}" for k, v in stable.items()) + ".", ""]
    return lines


def _rises(res: dict[str, Any], baseline: str) -> list[str]:
    """A line naming the curves that climb above the unperturbed frame's value, if any."""
    found = rises_above_unperturbed(res["baselines"][baseline]["curves"], res["fractions"])
    if not found:
        return []
    points = ", ".join(f"{r['order']} {r['mode']} {r['value']:.3f} at {r['fraction']:g} of "
                       "the pixels replaced" for r in found)
    return [f"Above the unperturbed frame's value ({found[0]['unperturbed']:.3f}): {points}.",
            ""]


def _faithfulness(data: dict[str, Any]) -> list[str]:
    fth = data["faithfulness"]
    lines = ["## Faithfulness (deletion and insertion)", "",
             "Areas under the mean-target curves (deletion: lower is more faithful; insertion: "
             "higher) and under the greedy-action agreement curves, next to a random pixel "
             "order.", ""]
    if any("max_sum" in by_target for by_target in fth.values()):
        lines += [MAX_SUM_NOTE, ""]
    for run, by_target in fth.items():
        for target, res in by_target.items():
            for baseline, b in res["baselines"].items():
                lines += [f"### {run}, target {target}, {baseline} baseline "
                          f"({res['frames']} frames)", ""]
                rows = [(name, a["deletion_target_auc"], a["insertion_target_auc"],
                         a["deletion_agreement_auc"], a["insertion_agreement_auc"],
                         a.get("deletion_beats_random"), a.get("insertion_beats_random"))
                        for name, a in b["areas"].items()]
                lines += table(("order", "deletion AUC", "insertion AUC",
                                "deletion agreement", "insertion agreement",
                                "deletion < random", "insertion > random"), rows)
                lines += _rises(res, baseline)
    return lines


def write_markdown(data: dict[str, Any], path: Path, figures: Sequence[Path] = ()) -> None:
    lines = _head(data)
    if data.get("ground_truth"):
        lines += _ground_truth(data)
    for part, section in (("localization", _localization), ("sanity", _sanity),
                          ("samples", _samples), ("faithfulness", _faithfulness)):
        if data.get(part) and (part != "localization" or data["ground_truth"]["objects"]):
            lines += section(data)
    pngs = [f for f in figures if f.suffix == ".png"]
    if pngs:
        lines += ["## Figures", ""] + [f"![{f.stem}]({os.path.relpath(f, path.parent)})"
                                       for f in pngs] + [""]
    write_text(path, "\n".join(lines))
