"""The report's figures, drawn from report.json's data alone (so they can be redrawn from a
saved report): localization, the sanity-check curves, the sample-count sweep and the deletion
and insertion curves, each as PNG and PDF (fonts embedded as TrueType, editable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnjax.files import replacing
from attnjax.inspection.saliency.registry import SALIENCY_METHODS
from attnjax.metrics.faithfulness import MAX_SUM_NOTE, rises_above_unperturbed, unperturbed_value
from attnjax.metrics.sanity import REGION_LABELS

# each saliency method's colour from its registry entry; the random pixel order in grey
METHOD_COLOURS = {**{m.name: m.colour for m in SALIENCY_METHODS.values()}, "random": "#7f7f7f"}
SPREAD_STYLES = ("-", "--", ":", "-.")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["pdf.fonttype"] = 42  # TrueType in PDFs: text stays text
    matplotlib.rcParams["ps.fonttype"] = 42
    import matplotlib.pyplot as plt

    return plt


def _head_colour(k: int) -> tuple[float, ...]:
    """Head k's colour in the attention videos (render.HEAD_COLORS)."""
    from attnjax.inspection.render import head_color

    return tuple(float(c) / 255 for c in head_color(k))


def _save(fig: Any, out: Path, name: str) -> list[Path]:
    paths = []
    for ext in ("png", "pdf"):
        path = out / f"{name}.{ext}"
        with replacing(path) as tmp:
            fig.savefig(tmp, dpi=130, bbox_inches="tight")
        paths.append(path)
    return paths


def run_label(data: dict[str, Any], run: str) -> str:
    """'λ=0.005, seed 1' for a run of the report (its name when the report does not say)."""
    for entry in data.get("runs", []):
        if entry.get("run_name") == run or entry.get("run") == run:
            return f"λ={entry['attn_coef']:g}, seed {entry['seed']}"
    return run


def plot_localization(data: dict[str, Any]) -> Any:
    """Per object: attention hit rate per run and head, saliency pointing game per run and
    method (first target), with the random and best-fixed baselines as lines."""
    plt = _pyplot()
    loc = data["localization"]
    runs = list(loc)
    objects = [o["name"] for o in data["ground_truth"]["objects"]]
    target = data["settings"]["targets"][0]
    fig, axes = plt.subplots(len(objects), 2, figsize=(10, 3.2 * len(objects)), squeeze=False)
    for row, name in enumerate(objects):
        first = loc[runs[0]][name]
        radius = data["settings"]["radius"]
        panels = (("attention", "hit_rate", "attention_baselines",
                   "attention hit rate (argmax cell covers it)"),
                  ("saliency", "pointing", "saliency_baselines",
                   f"pointing game, target {target} (peak within {radius:g} px)"))
        for col, (kind, score, base, title) in enumerate(panels):
            ax = axes[row, col]
            ax.set_title(f"{name}: {title}", fontsize=9)
            ax.set_ylim(0, 1.05)
            bars = []
            for r, run in enumerate(runs):
                entry = loc[run][name].get(kind) or {}
                groups = entry.get(target, {}) if kind == "saliency" else entry
                for g, (label, values) in enumerate(groups.items()):
                    bars.append((r, g, label, values.get(score)))
            width = 0.8 / max(1, max((g for _, g, _, _ in bars), default=0) + 1)
            for r, g, label, value in bars:
                ax.bar(r + (g + 0.5) * width - 0.4, value or 0.0, width,
                       color=METHOD_COLOURS.get(label) or _head_colour(g),
                       label=label if r == 0 else None)
            for style, key in (("--", "random"), (":", "best_fixed")):
                value = (first.get(base) or {}).get(key, {}).get(score)
                if value is not None:
                    ax.axhline(value, color="black", linestyle=style, linewidth=1,
                               label=key.replace("_", " "))
            ax.set_xticks(range(len(runs)), [run_label(data, run) for run in runs], fontsize=7)
            ax.set_ylabel("share of frames")
            ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def _target_by_run_panels(plt: Any, targets: list[str], runs: list[str], width: float
                          ) -> tuple[Any, Any]:
    """A figure with one row per target and one column per run: axes [targets, runs]."""
    return plt.subplots(len(targets), len(runs), figsize=(width * len(runs), 3.4 * len(targets)),
                        squeeze=False)


def plot_sanity(data: dict[str, Any]) -> Any:
    """Cascading randomization: rank correlation (solid) and SSIM (dashed) with the trained
    network's maps, one panel per target and run."""
    plt = _pyplot()
    san = data["sanity"]
    runs = list(san)
    targets = data["settings"]["targets"]
    fig, axes = _target_by_run_panels(plt, targets, runs, width=4.6)
    for i, target in enumerate(targets):
        for j, run in enumerate(runs):
            ax, result = axes[i, j], san[run][target]
            steps = result["cascade"]
            x = range(len(steps))
            for method in result["verdict"]:
                colour = METHOD_COLOURS.get(method)
                for key, style in (("spearman", "-"), ("ssim", "--")):
                    y = [s["methods"][method][key] for s in steps]
                    ax.plot(x, [float("nan") if v is None else v for v in y], style,
                            color=colour, marker="o" if style == "-" else None, markersize=3,
                            label=f"{method} ({'rank corr.' if key == 'spearman' else 'SSIM'})")
            ax.axhline(result["pass_below"], color="grey", linewidth=0.8, linestyle=":",
                       label=f"pass below {result['pass_below']:g} (all layers re-drawn)")
            ax.set_ylabel("similarity to the trained network's maps")
            ax.set_xticks(list(x), [s["randomized"] for s in steps], rotation=45, ha="right",
                          fontsize=7)
            ax.set_ylim(-0.3, 1.05)
            ax.set_title(f"{run_label(data, run)}\ntarget {target}: cascading randomization",
                         fontsize=8)
            if i == 0 and j == 0:
                ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_sanity_regions(data: dict[str, Any]) -> Any:
    """What the sanity check's rank correlation is sensitive to: per run and target, ρ of the
    trained network's maps with a random top's (bars) beside two random tops' agreement (black
    marks, the input-only baseline), on the whole frame, moving pixels and near objects."""
    plt = _pyplot()
    san = data["sanity"]
    runs = [r for r in san if all("sensitivity" in res for res in san[r].values())]
    targets = data["settings"]["targets"]
    fig, axes = _target_by_run_panels(plt, targets, runs, width=4.8)
    for i, target in enumerate(targets):
        for j, run in enumerate(runs):
            ax, sens = axes[i, j], san[run][target]["sensitivity"]
            comparisons = sens["comparisons"]
            methods = list(comparisons["trained_vs_random_top"])
            regions = list(sens["regions"])
            width = 0.8 / len(methods)
            for k, method in enumerate(methods):
                x = [r + (k - (len(methods) - 1) / 2) * width for r in range(len(regions))]
                trained = [comparisons["trained_vs_random_top"][method][g] for g in regions]
                floor = [comparisons["random_top_vs_random_top"][method][g] for g in regions]
                ax.bar(x, [float("nan") if v is None else v for v in trained], width * 0.9,
                       color=METHOD_COLOURS.get(method),
                       label=f"{method}: trained vs layers above the first re-drawn")
                everything = [comparisons["trained_vs_all_random"][method][g] for g in regions]
                ax.plot(x, [float("nan") if v is None else v for v in floor], "_",
                        color="black", markersize=14, markeredgewidth=2,
                        label="two random tops above the first layer (input-only baseline)"
                        if k == 0 else None)
                ax.plot(x, [float("nan") if v is None else v for v in everything], "o",
                        markerfacecolor="white", markeredgecolor="black", markersize=5,
                        label="trained vs every layer re-drawn (the pass/fail comparison)"
                        if k == 0 else None)
            ax.axhline(san[run][target]["pass_below"], color="grey", linewidth=0.8,
                       linestyle=":", label=f"pass below {san[run][target]['pass_below']:g}")
            ax.axhline(0, color="black", linewidth=0.5)
            ax.set_xticks(range(len(regions)), [
                f"{REGION_LABELS.get(g, g)}\n({sens['regions'][g]['mean_pixels']:.0f} px)"
                for g in regions], fontsize=7)
            ax.set_ylim(-0.3, 1.05)
            ax.set_ylabel("rank correlation of |map|", fontsize=8)
            ax.set_title(f"{run_label(data, run)}, target {target}", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.9 / fig.get_figheight()))
    return fig


def plot_samples(data: dict[str, Any]) -> Any:
    """Rank correlation with the reference and Gini sharpness against N, per run."""
    plt = _pyplot()
    smp = data["samples"]
    runs = list(smp)
    fig, axes = plt.subplots(2, len(runs), figsize=(4.6 * len(runs), 6.4), squeeze=False)
    for j, run in enumerate(runs):
        result = smp[run]
        for method, by_spread in result["curves"].items():
            for s, (spread, curve) in enumerate(by_spread.items()):
                style = SPREAD_STYLES[s % len(SPREAD_STYLES)]
                for i, key in enumerate(("correlation", "gini")):
                    y = [float("nan") if v is None else v for v in curve[key]]
                    axes[i, j].plot(curve["n"], y, style, color=METHOD_COLOURS.get(method),
                                    marker="o", markersize=3, label=f"{method} σ={spread}")
        if result["gradient"]["gini"] is not None:
            axes[1, j].axhline(result["gradient"]["gini"], color=METHOD_COLOURS["gradient"],
                               linewidth=1, label="plain gradient (no samples)")
        axes[0, j].axhline(result["stable_correlation"], color="grey", linestyle=":",
                           linewidth=0.8, label=f"stable from ρ = {result['stable_correlation']:g}")
        axes[0, j].set_title(f"{run_label(data, run)}\nrank corr. with the "
                             f"N={result['reference_n']} map", fontsize=8)
        axes[0, j].set_ylabel("rank correlation ρ")
        axes[1, j].set_ylabel("Gini (0 flat, 1 one pixel)")
        axes[1, j].legend(fontsize=6)
        axes[1, j].set_title("sharpness (Gini of the map)", fontsize=8)
        for i in range(2):
            axes[i, j].set_xscale("log")
            axes[i, j].set_xlabel("samples N")
        axes[0, j].legend(fontsize=6)
    fig.tight_layout()
    return fig


# what each saliency target is, for the faithfulness axes (config.TARGETS)
TARGET_LABELS = {
    "max_sum": "max_sum (Σ heads' peak weight)",
    "sum_max": "sum_max (peak of heads' sum)",
    "max": "max (largest attention weight)",
    "sum": "sum (all attention)",
    "action": "action (greedy action's logit)",
    "value": "value (critic's estimate)",
}
AREA_TICKS = ("deletion\n(faithful: below random)", "insertion\n(faithful: above random)")


def faithfulness_combinations(fth: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (target, baseline) any run has, in the report's order."""
    combos: list[tuple[str, str]] = []
    for by_target in fth.values():
        for target, result in by_target.items():
            combos += [(target, b) for b in result["baselines"] if (target, b) not in combos]
    return combos


def _orders(fth: dict[str, Any]) -> list[str]:
    """The pixel orders drawn: the methods as the report has them, the random order last."""
    names = [name for by_target in fth.values() for result in by_target.values()
             for b in result["baselines"].values() for name in b["curves"]]
    return [n for n in dict.fromkeys(names) if n != "random"] + ["random"] * ("random" in names)


def _area_panel(ax: Any, areas: dict[str, dict], orders: list[str]) -> None:
    """Deletion and insertion areas per method as bars that start at the random order's area
    (a dashed grey line): where a bar points is whether the map beats chance."""
    methods = [name for name in orders if name != "random" and name in areas]
    width = 0.8 / max(1, len(methods))
    values = []
    for g, mode in enumerate(("deletion", "insertion")):
        key = f"{mode}_target_auc"
        chance = areas.get("random", {}).get(key)
        for m, name in enumerate(methods):
            value = areas[name][key]
            bottom = value if chance is None else chance
            ax.bar(g - 0.4 + (m + 0.5) * width, value - bottom, width * 0.85, bottom=bottom,
                   color=METHOD_COLOURS.get(name), edgecolor=METHOD_COLOURS.get(name))
            values.append(value)
        if chance is not None:
            ax.hlines(chance, g - 0.46, g + 0.46, colors=METHOD_COLOURS["random"],
                      linestyles="--", linewidth=1.5)
            values.append(chance)
    pad = 0.12 * (max(values) - min(values)) or 0.1
    ax.set_ylim(min(values) - pad, max(values) + pad)
    ax.set_xlim(-0.5, 1.5)
    ax.set_xticks([0, 1], AREA_TICKS, fontsize=7)
    ax.set_ylabel("area under the curve", fontsize=8)


def _curve_panel(ax: Any, fractions: list[float], curves: dict[str, dict], mode: str,
                 orders: list[str]) -> None:
    """Mean target against the fraction replaced, per order, with the unperturbed frame's
    value (deletion's first point) dotted."""
    for name in orders:
        if name in curves:
            ax.plot(fractions, curves[name][mode]["target"], "--" if name == "random" else "-",
                    marker="o", markersize=2.5, linewidth=1.2, color=METHOD_COLOURS.get(name))
    ax.axhline(unperturbed_value(curves), color="black", linestyle=":", linewidth=0.9)
    ax.set_xlabel("fraction of pixels replaced", fontsize=8)
    ax.set_xlim(-0.02, 1.02)


def faithfulness_caption(data: dict[str, Any]) -> str:
    """How to read the faithfulness figure, and where a curve rises above the unperturbed
    frame's value (found in the data) and why a `max_sum` curve can."""
    fth = data["faithfulness"]
    frames = sorted({r["frames"] for by_target in fth.values() for r in by_target.values()})
    top = "Top row" if len(fth) == 1 else f"Top {len(fth)} rows"
    text = [
        f"{top}: area under each method's curve; bars start at the random pixel order's area "
        "(dashed grey), so a map beats chance where its bar points down for deletion and up for "
        "insertion. Below: the curves, mean target over "
        f"{' or '.join(map(str, frames))} frames, against the fraction of pixels replaced by "
        "the baseline (deletion) or put back onto it (insertion); dotted black: the unperturbed "
        "frame's value."]
    if any("max_sum" in by_target for by_target in fth.values()):
        text.append(MAX_SUM_NOTE)
    rises = []
    for run, by_target in fth.items():
        for target, result in by_target.items():
            for baseline, b in result["baselines"].items():
                found = rises_above_unperturbed(b["curves"], result["fractions"])
                if found:
                    points = ", ".join(f"{r['order']} {r['mode']} {r['value']:.3f} at "
                                       f"{r['fraction']:g}" for r in found)
                    rises.append(f"{run_label(data, run)}, {target}, {baseline} baseline: "
                                 f"{points} (unperturbed {found[0]['unperturbed']:.3f})")
    if rises:
        text.append("Above the unperturbed value here (fraction replaced after 'at'): "
                    + "; ".join(rises) + ".")
    return "\n".join(text)


def plot_faithfulness(data: dict[str, Any]) -> Any:
    """Every run × target × baseline: the deletion and insertion areas against the random
    order's (one row per run), then the curves (a deletion and an insertion row per run), a
    shared legend and a caption under the axes."""
    import textwrap

    from matplotlib.lines import Line2D

    plt = _pyplot()
    fth = data["faithfulness"]
    runs, combos, orders = list(fth), faithfulness_combinations(fth), _orders(fth)
    rows = [(run, "areas") for run in runs] + [(run, mode) for run in runs
                                               for mode in ("deletion", "insertion")]
    fig, axes = plt.subplots(len(rows), len(combos), squeeze=False, layout="constrained",
                             figsize=(3.3 * len(combos) + 0.4, 2.35 * len(rows) + 0.6))
    for i, (run, kind) in enumerate(rows):
        for j, (target, baseline) in enumerate(combos):
            ax, result = axes[i, j], fth[run].get(target)
            if result is None or baseline not in result["baselines"]:
                ax.set_axis_off()
                continue
            b = result["baselines"][baseline]
            if kind == "areas":
                _area_panel(ax, b["areas"], orders)
            else:
                _curve_panel(ax, result["fractions"], b["curves"], kind, orders)
                ax.set_ylabel(TARGET_LABELS.get(target, target), fontsize=8)
            ax.set_title(f"{run_label(data, run)}: {target}, {baseline} baseline\n"
                         f"{'area under the curves' if kind == 'areas' else kind}", fontsize=8)
            ax.tick_params(labelsize=7)
    handles = [Line2D([], [], color=METHOD_COLOURS.get(name), marker="o", markersize=4,
                      linestyle="--" if name == "random" else "-",
                      label="random pixel order" if name == "random" else name)
               for name in orders]
    handles.append(Line2D([], [], color="black", linestyle=":", label="unperturbed frame"))
    inches = fig.get_figwidth()
    fig.legend(handles=handles, loc="outside upper center", frameon=False, fontsize=8,
               ncol=min(len(handles), max(2, int(inches / 1.6))))
    caption = "\n".join(textwrap.fill(p, int(15 * inches))  # characters per line at 7.5 pt
                        for p in faithfulness_caption(data).split("\n"))
    fig.text(0.01, 0, caption, fontsize=7.5, va="top", ha="left", linespacing=1.4)
    return fig


def write_figures(data: dict[str, Any], out: Path) -> list[Path]:
    """Every figure whose part is in the data (and has something to draw)."""
    plt = _pyplot()
    written: list[Path] = []
    has_objects = bool(data.get("ground_truth", {}).get("objects"))
    has_regions = any("sensitivity" in res for by_target in data.get("sanity", {}).values()
                      for res in by_target.values())
    for name, part, plot in (("localization", "localization", plot_localization),
                             ("sanity", "sanity", plot_sanity),
                             ("sanity_regions", "sanity", plot_sanity_regions),
                             ("samples", "samples", plot_samples),
                             ("faithfulness", "faithfulness", plot_faithfulness)):
        if (not data.get(part) or (part == "localization" and not has_objects)
                or (name == "sanity_regions" and not has_regions)):
            continue
        fig = plot(data)
        written += _save(fig, out, name)
        plt.close(fig)
    return written
