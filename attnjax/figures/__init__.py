"""Paper figures and table from run folders' metrics.jsonl alone (no checkpoints, no W&B).

Writes, under --out: reward_curves.png/.pdf (the paper's Figure 2: per game, mean ± std over
seeds of the full-game return against agent steps, one colour, line style and marker per
lambda, the seed count in the legend), final_table.csv and
final_table.md (the paper's table: final return mean±std over seeds per lambda and game),
entropy_vs_reward.png/.pdf (the paper's Figure 3: final attention entropy against final return,
a dot per run and a cross per lambda at the mean over its seeds, the entropy in nats with a
dashed line at the uniform maximum K·ln 49 (`attnjax.model.baseline`); attention networks only) and
summary.json (every plotted number, the names of the files written and a "written_by" stamp: a
rerun replaces only those files and refuses, before writing, any other file of the same
name). With --evaluations (JSON files of `visualize.py evaluate`)
also evaluation_table.csv/.md: the table's layout holding each run's evaluated mean score (mean±std
over seeds), next to the training-metric table, not instead of it.

"Final" value of a run (episodic_return or attention_entropy), --final: `last` (default, as the
paper's notebook: `ep_reward_mean.iloc[-1]`, the last logged mean of the last 100 games, and
the last attention entropy) = its last non-null logged value; `window` = the mean of its
non-null values over the rows whose global_step lies in the last FRAC of the run's logged
global_step range, i.e. global_step >= last - FRAC * (last - first), FRAC =
--final-window-frac (default 0.1: the last 1M of 10M steps), or the last non-null value if the
window holds none. With no non-null value at all the final value is NaN (a warning names the
run) and the run is left out of the statistics. Spreads are population standard deviations
over seeds (ddof=0). PDFs embed their fonts as TrueType (pdf.fonttype 42).
Curves: each seed is linearly interpolated onto a common grid of --grid-points steps from 0 to
the smallest last global_step among the seeds; grid points before a seed's first non-null
return are NaN for that seed, and the mean/std at a point use the seeds that have a value there.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from attnjax.errors import UserError, writable_folder
from attnjax.figures.findings import findings_markdown
from attnjax.figures.plots import plot_entropy_vs_reward, plot_reward_curves, pyplot
from attnjax.figures.records import ASSESSMENT_FILE, FiguresWarning, load_runs
from attnjax.figures.summary import FINALS, summarize
from attnjax.figures.sweep import check_sweep, finite, sweep_summary
from attnjax.figures.sweep_plots import plot_hit_rate_vs_lambda
from attnjax.figures.tables import table_markdown, write_table_csv
from attnjax.files import replacing, write_json, write_text
from attnjax.provenance import (
    MANIFEST_FILES_KEY,
    STAMP_KEY,
    check_replaceable,
    json_stamp,
    markdown_stamp,
    read_json_file,
)

COMMAND = "visualize.py figures"  # the stamp of its manifest (attnjax.provenance)
MANIFEST = "summary.json"  # every plotted number, and the files written beside it
PLOTS = {"reward_curves": plot_reward_curves, "entropy_vs_reward": plot_entropy_vs_reward}
TABLES = ("final_table.csv", "final_table.md")
EVALUATION_TABLES = ("evaluation_table.csv", "evaluation_table.md")
ALL_OUTPUTS = (*(f"{n}.{e}" for n in PLOTS for e in ("png", "pdf")), *TABLES, *EVALUATION_TABLES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", action="extend", required=True, metavar="DIR",
                        help="run folders, or folders searched recursively for them")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    parser.add_argument("--final", choices=FINALS, default="last",
                        help="a run's final return and entropy (table, Figure 3): last = its last "
                        "logged value, as the paper (default); window = the mean over the last "
                        "--final-window-frac of its logged steps")
    parser.add_argument("--final-window-frac", type=float, default=0.1, metavar="FRAC",
                        help="with --final window: the mean over the last FRAC of each run's "
                        "logged steps (default 0.1)")
    parser.add_argument("--grid-points", type=int, default=100, metavar="N",
                        help="points of the common step grid of the reward curves (default 100)")
    parser.add_argument("--findings", default=None, metavar="PAGE.md",
                        help="runs assessed by `visualize.py assess`: also write the findings "
                        "page (budget, per-λ table, claims with 95%% intervals) generated from "
                        "summary.json")
    parser.add_argument("--evaluations", nargs="+", action="extend", default=None,
                        metavar="JSON",
                        help="`visualize.py evaluate` files: also write evaluation_table.md/.csv "
                        "of the evaluated scores, next to the training-metric table")


def make_figures(run_paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                 final_window_frac: float = 0.1, grid_points: int = 100,
                 final: str = "last", evaluations: list[dict] | None = None,
                 findings: str | os.PathLike | None = None) -> list[Path]:
    """Load the runs, write every output under `out` (with `evaluations`, entries of
    `visualize.py evaluate` files, also the evaluation tables; for runs assessed by
    `visualize.py assess`, the sweep's figure and, with `findings`, its findings page there),
    return the paths written. Refused before anything is written when `out` holds a file of
    that name that this command did not write (its manifest, summary.json, names the files it
    wrote), or `findings` names a page it did not write."""
    runs = load_runs(run_paths)
    assessed = check_sweep(runs)
    if findings is not None and not assessed:
        raise UserError(f"--findings needs runs carrying {ASSESSMENT_FILE}; run "
                        "visualize.py assess on the finished runs first")
    summary = summarize(runs, final_window_frac, grid_points, final)
    if assessed:
        summary["sweep"] = finite(sweep_summary(runs, summary))
    out = Path(out)
    writable_folder(out, "--out")
    plots = {**PLOTS, **({"hit_rate_vs_lambda": plot_hit_rate_vs_lambda} if assessed else {})}
    drawn = [name for name in plots if name != "entropy_vs_reward" or any(
        g["network"] == "attention" for e in summary["games"].values() for g in e["groups"])]
    if "entropy_vs_reward" not in drawn:
        warnings.warn("no attention-network runs: entropy_vs_reward is not drawn",
                      FiguresWarning, stacklevel=2)
    names = [f"{name}.{ext}" for name in drawn for ext in ("png", "pdf")] + list(TABLES)
    names += list(EVALUATION_TABLES) if evaluations else []
    manifest = out / MANIFEST
    for name in (*names, MANIFEST):
        check_replaceable(out / name, COMMAND, "give another --out", manifest=manifest,
                          legacy=is_unstamped_output)
    page = None if findings is None else Path(findings)
    if page is not None:
        writable_folder(page.parent, "--findings", str(page))
        check_replaceable(page, COMMAND, "give another --findings")
    earlier = read_json_file(manifest) if manifest.is_file() else None
    kept = [n for n in (earlier or {}).get(MANIFEST_FILES_KEY, []) if (out / n).is_file()]
    write_json(manifest, {STAMP_KEY: json_stamp(COMMAND),
                          MANIFEST_FILES_KEY: sorted({*names, *kept}), **summary})
    written: list[Path] = [manifest]
    plt = pyplot()
    for name in drawn:
        fig = plots[name](summary)
        for ext in ("png", "pdf"):
            with replacing(out / f"{name}.{ext}") as tmp:
                fig.savefig(tmp, dpi=150)
            written.append(out / f"{name}.{ext}")
        plt.close(fig)
    write_table_csv(summary, out / "final_table.csv")
    write_text(out / "final_table.md", table_markdown(summary))
    written += [out / "final_table.csv", out / "final_table.md"]
    if evaluations:
        from attnjax.figures.evaluation_table import write_evaluation_tables

        written += write_evaluation_tables(evaluations, out)
    if page is not None:
        shown = Path(os.path.relpath(out.resolve(), page.resolve().parent)).as_posix()
        write_text(page, markdown_stamp(COMMAND) + "\n" + findings_markdown(summary, shown))
        written.append(page)
    return written


def is_unstamped_output(path: Path) -> bool:
    """Whether `path` is an output of this command written before stamps: one of its file
    names, beside the summary.json it wrote then (that summary's keys)."""
    doc = read_json_file(path.parent / MANIFEST)
    return (path.name in (*ALL_OUTPUTS, MANIFEST) and isinstance(doc, dict)
            and STAMP_KEY not in doc and {"final", "final_window_frac", "grid_points",
                                          "games"} <= doc.keys())


def main(args: argparse.Namespace) -> int:
    from attnjax.figures.evaluation_table import load_evaluations

    evaluations = load_evaluations(args.evaluations) if args.evaluations else None  # checked first
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FiguresWarning)
        try:
            written = make_figures(args.runs, args.out, args.final_window_frac, args.grid_points,
                                   final=args.final, evaluations=evaluations,
                                   findings=args.findings)
        finally:
            for w in caught:
                if issubclass(w.category, FiguresWarning):
                    print(f"warning: {w.message}", file=sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    for path in written:
        print(path)
    return 0
