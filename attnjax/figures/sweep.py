"""A λ × seed sweep's numbers, when the run folders `visualize.py figures` reads carry the
assessment.json of `visualize.py assess`: per run its evaluation and localization, per λ over
seeds the paper-layout table (return, entropy, ball hit rate, heads agreeing, collapsed k/n),
the claims (`claims`) with effect sizes, 95 % intervals and verdicts, and per machine the runs
that trained on it and their speed. All of it goes into
summary.json under "sweep"; the findings page is generated from that alone (`findings`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from attnjax.errors import UserError
from attnjax.figures import claims
from attnjax.figures.records import ASSESSMENT_FILE, RunRecord
from attnjax.training.machine import last_session, machine_label

LAST_STEPS = 50_000  # the training return of a run's last 50k agent steps (claim a)
PAPER = {  # quoted from Nikulin et al. 2019 (Table 1), not measured here
    "source": "Nikulin et al. 2019, Breakout, 10M agent steps, 5 seeds",
    "total_timesteps": 10_000_000,
    "breakout_return": [{"attn_coef": 0.0, "mean": 131.0, "std": 52.0},
                        {"attn_coef": 0.005, "mean": 52.0, "std": 6.0}],
}
BASE, SMALL, LARGE = 0.0, 0.0005, 0.005  # the λ values the claims compare


def check_sweep(runs: Sequence[RunRecord]) -> bool:
    """True when the runs form an assessed sweep; UserError (one line) when only some are
    assessed, they are of different games, or assessed at different steps."""
    assessed = [r for r in runs if r.assessment is not None]
    if not assessed:
        return False
    if len(assessed) < len(runs):
        missing = next(r for r in runs if r.assessment is None)
        raise UserError(f"{missing.path} has no {ASSESSMENT_FILE} while other runs do; run "
                        "visualize.py assess on it or leave it out of --runs")
    games = sorted({r.env_id for r in runs})
    if len(games) > 1:
        raise UserError(f"the assessed runs are of different games ({', '.join(games)}); pass "
                        "the runs of one sweep")
    steps = sorted({int(r.assessment.get("global_step", -1)) for r in runs})
    if len(steps) > 1:
        raise UserError(f"the assessed runs were assessed at different steps "
                        f"({', '.join(f'{s:,}' for s in steps)}); pass runs of equal length")
    return True


def _mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    v = np.array([x for x in values if x is not None], np.float64)
    if not len(v):
        return {"n": 0, "mean": None, "std": None}
    return {"n": len(v), "mean": float(v.mean()), "std": float(v.std(ddof=0))}


def _last_steps_return(run: RunRecord) -> float | None:
    kept = run.returns[run.return_steps >= run.last_step - LAST_STEPS]
    return float(kept.mean()) if len(kept) else None


def target_object(runs: Sequence[RunRecord]) -> str | None:
    """The object the hit-rate claims are about: Breakout's ball, else the first annotated."""
    names = [n for r in runs for n in r.assessment.get("localization", {})]
    return "ball" if "ball" in names else (names[0] if names else None)


def run_numbers(run: RunRecord, final_entropy: float | None, target: str | None) -> dict:
    """One run's row of the sweep: evaluation, entropy, localization, collapse."""
    a = run.assessment
    evaluation = a["evaluation"]
    attention = a.get("attention") or {}
    loc = a.get("localization", {})
    objects = {}
    for name, entry in loc.items():
        heads = entry.get("attention", {})
        rates = [h["hit_rate"] for h in heads.values() if h["hit_rate"] is not None]
        base = entry.get("attention_baselines", {})
        objects[name] = {
            "frames": entry["frames"],
            "hit_rate": float(np.mean(rates)) if rates else None,
            "hit_rate_per_head": [h["hit_rate"] for h in heads.values()],
            "mass_ratio_per_head": [h["mass_ratio"] for h in heads.values()],
            "uniform_hit_rate": base.get("random", {}).get("hit_rate"),
            "best_fixed_hit_rate": base.get("best_fixed", {}).get("hit_rate"),
            "best_fixed_mass_ratio": base.get("best_fixed", {}).get("mass_ratio")}
    entropy = attention.get("entropy_per_head")
    collapse = a.get("collapse") or {}
    return {"run_name": a["run_name"], "attn_coef": run.attn_coef, "seed": run.seed,
            "greedy": evaluation["greedy"]["mean"], "sample": evaluation["sample"]["mean"],
            "random": evaluation["random"]["mean"],
            "training_return_last_50k": _last_steps_return(run),
            "final_entropy": final_entropy,
            "frames_entropy": None if entropy is None else float(sum(entropy)),
            "heads_agree": attention.get("heads_agree_share"),
            "modal_share_per_head": attention.get("modal_share_per_head"),
            "collapsed": collapse.get("collapsed"), "localization": objects,
            "target_hit_rate": objects.get(target, {}).get("hit_rate")}


def lambda_rows(rows: Sequence[dict], target: str | None) -> list[dict]:
    """Per λ over seeds: the table's numbers and the collapse count."""
    out = []
    for coef in sorted({r["attn_coef"] for r in rows}):
        m = [r for r in rows if r["attn_coef"] == coef]
        loc = [r["localization"].get(target, {}) for r in m]
        out.append({
            "attn_coef": coef, "seeds": [r["seed"] for r in m],
            "greedy": _mean_std([r["greedy"] for r in m]),
            "sample": _mean_std([r["sample"] for r in m]),
            "training_return_last_50k": _mean_std([r["training_return_last_50k"] for r in m]),
            "final_entropy": _mean_std([r["final_entropy"] for r in m]),
            "target_hit_rate": _mean_std([r["target_hit_rate"] for r in m]),
            "uniform_hit_rate": _mean_std([x.get("uniform_hit_rate") for x in loc]),
            "best_fixed_hit_rate": _mean_std([x.get("best_fixed_hit_rate") for x in loc]),
            "heads_agree": _mean_std([r["heads_agree"] for r in m]),
            "collapsed": sum(bool(r["collapsed"]) for r in m), "n": len(m)})
    return out


def _values(rows: Sequence[dict], coef: float, key: str) -> list[float]:
    return [r[key] for r in rows if r["attn_coef"] == coef and r[key] is not None]


def sweep_claims(rows: Sequence[dict], game: str) -> list[dict]:
    """Claims (a)-(d) of the sweep, each left out when its λ values were not trained."""
    coefs = {r["attn_coef"] for r in rows}
    out = []
    if {BASE, SMALL} <= coefs:
        for key, what in (("training_return_last_50k",
                           f"training return, last {LAST_STEPS:,} steps"),
                          ("greedy", "greedy evaluation")):
            small, base = _values(rows, SMALL, key), _values(rows, BASE, key)
            out.append(claims.claim(f"λ={SMALL:g} does not slow training ({what})",
                                    claims.welch_difference(small, base), +1,
                                    min(len(small), len(base)), id="a", measure=key,
                                    compare=[SMALL, BASE]))
    both = [r for r in rows if r["final_entropy"] is not None]
    out.append(claims.claim(
        "larger λ gives lower attention entropy (final training entropy)",
        claims.spearman([r["attn_coef"] for r in both], [r["final_entropy"] for r in both]),
        -1, len(both), "run", id="b", measure="attn_coef vs final_entropy"))
    if {BASE, LARGE} <= coefs:
        large, base = _values(rows, LARGE, "greedy"), _values(rows, BASE, "greedy")
        paper = PAPER["breakout_return"] if game == "Breakout" else None
        out.append(claims.claim(f"λ={LARGE:g} costs {game} reward (greedy evaluation)",
                                claims.welch_difference(large, base), -1,
                                min(len(large), len(base)), id="c", measure="greedy",
                                compare=[LARGE, BASE], paper=paper))
    both = [r for r in rows if r["frames_entropy"] is not None
            and r["target_hit_rate"] is not None]
    out.append(claims.claim(
        "sharper attention is more often on the ball (entropy on the localization frames vs "
        "hit rate)", claims.spearman([r["frames_entropy"] for r in both],
                                     [r["target_hit_rate"] for r in both]),
        -1, len(both), "run", id="d", measure="frames_entropy vs target_hit_rate"))
    if BASE in coefs:
        for coef in sorted(coefs - {BASE}):
            this, base = (_values(rows, coef, "target_hit_rate"),
                          _values(rows, BASE, "target_hit_rate"))
            out.append(claims.claim(f"λ={coef:g} puts attention on the ball more often than "
                                    f"λ={BASE:g}", claims.welch_difference(this, base), +1,
                                    min(len(this), len(base)), id="d",
                                    measure="target_hit_rate", compare=[coef, BASE]))
    return out


def machine_rows(runs: Sequence[RunRecord]) -> list[dict]:
    """Per machine (the device of a run's last training session, `machine_label`; "unknown"
    for a run without machine.json): its runs, their seeds, the JAX versions of those sessions
    and the median over them of each run's median agent steps/s (None when no run logged its
    speed). Why: runs that trained on different machines (a CPU grid, a GPU grid) are a
    possible confound the findings name."""
    by_label: dict[str, list[RunRecord]] = {}
    for run in sorted(runs, key=lambda r: (r.attn_coef, r.seed)):
        by_label.setdefault(machine_label(run.machine), []).append(run)
    rows = []
    for label, members in sorted(by_label.items()):
        speeds = [r.median_sps for r in members if r.median_sps is not None]
        rows.append({"machine": label, "n_runs": len(members),
                     "runs": [{"attn_coef": r.attn_coef, "seed": r.seed} for r in members],
                     "seeds": sorted({r.seed for r in members}),
                     "jax": sorted({v for r in members if (v := last_session(r.machine, "jax"))}),
                     "median_sps": float(np.median(speeds)) if speeds else None})
    return rows


def sweep_summary(runs: Sequence[RunRecord], summary: dict[str, Any]) -> dict[str, Any]:
    """The "sweep" entry of summary.json (runs already checked by `check_sweep`)."""
    game = runs[0].game
    finals = {g["attn_coef"]: {p["seed"]: p["final_entropy"] for p in g["runs"]}
              for g in summary["games"][game]["groups"] if g["network"] == "attention"}
    target = target_object(runs)
    rows = sorted((run_numbers(r, finals.get(r.attn_coef, {}).get(r.seed), target)
                   for r in runs), key=lambda r: (r["attn_coef"], r["seed"]))
    first = runs[0].assessment
    step = int(first["global_step"])
    random = [r["random"] for r in rows]
    seeds = sorted({r["seed"] for r in rows})
    return {
        "game": game, "env_id": runs[0].env_id, "agent_step": step,
        "attn_heads": sorted({r.attn_heads for r in runs}),
        "seeds": seeds, "n_runs": len(rows),
        "games_per_policy": first["evaluation"]["greedy"]["games"],
        "eval_seed": first["evaluation"]["eval_seed"],
        "localization_frames": first["frames"]["count"], "target_object": target,
        "collapse_rule": (first.get("collapse") or {}).get("rule"),
        "collapse_thresholds": {k: (first.get("collapse") or {}).get(k) for k in
                                ("min_share_percent", "max_points_from_random")},
        "budget": {"agent_steps": step, "paper_agent_steps": PAPER["total_timesteps"],
                   "percent_of_paper": 100.0 * step / PAPER["total_timesteps"],
                   "learning_rate_annealed_over": step},
        "paper": PAPER, "confidence_percent": 100 * claims.CONFIDENCE,
        "last_steps": LAST_STEPS,
        "random_agent": _mean_std(random),
        "random_agent_same_games": bool(np.ptp(random) == 0) if random else None,
        "runs": rows, "lambdas": lambda_rows(rows, target),
        "claims": sweep_claims(rows, game), "machines": machine_rows(runs),
    }


def finite(node: Any) -> Any:
    """NaN/Inf -> None, recursively (summary.json is strict JSON)."""
    if isinstance(node, dict):
        return {k: finite(v) for k, v in node.items()}
    if isinstance(node, list):
        return [finite(v) for v in node]
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node
