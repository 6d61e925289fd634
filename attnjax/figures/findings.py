"""The findings page of an assessed sweep, generated from summary.json alone
(`visualize.py figures --findings PAGE.md`): the budget, the machines the runs trained on,
the per-λ table, and each claim with its effect size, 95 % interval and verdict. Every number
on the page is one of summary.json's, formatted here."""

from __future__ import annotations

from typing import Any

from attnjax.figures.tables import format_cell, format_mean


def _num(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _cell(stat: dict[str, Any]) -> str:
    return format_cell(stat["mean"], stat["std"], stat.get("n"))


def random_score(sweep: dict[str, Any]) -> str:
    """The random policy's mean score: one number when every run's assessment played it on
    the same games (then it is the same games' score, not a spread over seeds)."""
    rnd = sweep["random_agent"]
    if sweep.get("random_agent_same_games") and rnd["mean"] is not None:
        return format_mean(rnd["mean"])
    return _cell(rnd)


def table(sweep: dict[str, Any]) -> list[str]:
    target = sweep["target_object"] or "object"
    lines = [f"| λ | greedy return | sampled return | training return (last "
             f"{sweep['last_steps']:,} steps) | final entropy (nats) | {target} hit rate "
             "| heads agreeing | collapsed |", "|---" * 8 + "|"]
    for row in sweep["lambdas"]:
        lines.append(f"| {row['attn_coef']:g} | {_cell(row['greedy'])} | {_cell(row['sample'])} "
                     f"| {_cell(row['training_return_last_50k'])} | "
                     f"{_cell(row['final_entropy'])} | {_cell(row['target_hit_rate'])} | "
                     f"{_cell(row['heads_agree'])} | {row['collapsed']}/{row['n']} |")
    return lines


def _set(values: list) -> str:
    return "{" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "}"


def grid_sentence(sweep: dict[str, Any]) -> str:
    """"λ ∈ {…} × seeds {…}" when every λ has the same seeds; else the seeds every λ has and
    the λ values that have more (a sweep extended with extra seeds for some λ)."""
    seeds_of: dict[float, list[int]] = {}
    for run in sweep["runs"]:
        seeds_of.setdefault(run["attn_coef"], []).append(run["seed"])
    lambdas = sorted(seeds_of)
    common = sorted(set.intersection(*(set(v) for v in seeds_of.values())))
    if all(set(v) == set(common) for v in seeds_of.values()):
        return f"λ ∈ {_set(lambdas)} × seeds {_set(common)}"
    if not common:  # no seed every λ has: each λ's own
        return "; ".join(f"λ = {coef:g} with seeds {_set(sorted(set(seeds_of[coef])))}"
                         for coef in lambdas)
    extra: dict[tuple, list[float]] = {}
    for coef in lambdas:
        more = tuple(sorted(set(seeds_of[coef]) - set(common)))
        if more:
            extra.setdefault(more, []).append(coef)
    also = "; ".join(f"also seeds {_set(list(more))} for λ ∈ {_set(coefs)}"
                     for more, coefs in extra.items())
    return f"λ ∈ {_set(lambdas)} × seeds {_set(common)}; {also}"


def machines_table(sweep: dict[str, Any]) -> list[str]:
    """One row per machine the runs trained on (summary.json's "machines")."""
    lines = ["| machine | JAX | runs | seeds | per-run training speed (median agent steps/s) |",
             "|---|---|---|---|---|"]
    for row in sweep["machines"]:
        speed = "n/a" if row["median_sps"] is None else f"{row['median_sps']:,.0f}"
        jax_versions = ", ".join(row.get("jax") or []) or "unknown"
        lines.append(f"| {row['machine']} | {jax_versions} | {row['n_runs']} | "
                     f"{', '.join(str(x) for x in row['seeds'])} | {speed} |")
    return lines


def claim_line(c: dict[str, Any], confidence: float) -> str:
    interval = ("no interval" if c["low"] is None else
                f"{confidence:g} % interval [{_num(c['low'])}, {_num(c['high'])}]")
    line = (f"- {c['claim']}: effect {_num(c['effect'])}, {interval} "
            f"({c['method']}; n = {' and '.join(str(n) for n in c['n'])}): **{c['verdict']}**.")
    if c.get("paper"):
        quoted = " and ".join(f"{p['mean']:g} ± {p['std']:g} for λ = {p['attn_coef']:g}"
                              for p in c["paper"])
        line += f" The paper's numbers (quoted, not measured here): {quoted}."
    return line


FIGURES = (("reward_curves.png", "return against agent steps per λ (the paper's Figure 2)"),
           ("entropy_vs_reward.png", "final attention entropy against return (Figure 3)"),
           ("hit_rate_vs_lambda.png", "ball hit rate against λ with its baselines"))


def findings_markdown(summary: dict[str, Any], figures: str | None = None) -> str:
    """The page; KeyError-free only for a summary with a "sweep" entry. figures: the folder of
    the figures relative to the page, to show them on it (else only named)."""
    s = summary["sweep"]
    b = s["budget"]
    grid = grid_sentence(s)
    conf = s["confidence_percent"]
    lines = [
        f"# {s['game']}: λ sweep findings", "",
        "Generated by `visualize.py figures --findings` from summary.json; do not edit by hand.",
        "",
        "## Budget", "",
        f"Every run trained {b['agent_steps']:,} agent steps, {b['percent_of_paper']:.1f} % of "
        f"the paper's {b['paper_agent_steps']:,}; the learning rate was annealed to zero over "
        f"those {b['learning_rate_annealed_over']:,} steps, not over "
        f"{b['paper_agent_steps']:,}. These are early-training agents: where the paper's "
        "numbers are quoted, they are the paper's, at its full budget.", "",
        f"{grid} ({s['n_runs']} run{'' if s['n_runs'] == 1 else 's'}), K = "
        f"{', '.join(str(k) for k in s['attn_heads'])} heads. Each run was assessed at step "
        f"{s['agent_step']:,}: {s['games_per_policy']} full games per policy (greedy and "
        f"sampled; the same game seeds for every run, evaluation seed {s['eval_seed']}), and "
        f"{s['localization_frames']} frames it played itself for the attention's localization. "
        f"A uniformly random policy scores {random_score(s)} on the same games.", "",
        "## Where the runs trained", "",
        "Each run's machine is the device of its last training session (its machine.json; "
        "unknown: the run folder has none), JAX the version that session ran, its speed the "
        "median over that session's iterations of the agent steps per second it trained (runs "
        "trained together in one program share the machine: the speed is each run's own), and "
        "a row's speed the median over its runs.",
        "", *machines_table(s), "",
        "## Per λ (mean ± std over seeds)", "", *table(s), "",
        f"Hit rate: a head's argmax cell covers the {s['target_object']}, averaged over the "
        "heads and the frames where it is visible. Heads agreeing: share of frames on which "
        f"both heads' argmax is the same cell. {s['collapse_rule'] or ''}.", "",
        f"## Claims ({conf:g} % intervals)", "",
    ]
    lines += [claim_line(c, conf) for c in s["claims"]]
    lines += ["", "## How often attention collapsed", ""]
    lines += [f"- λ = {row['attn_coef']:g}: {row['collapsed']} of {row['n']} "
              f"seed{'' if row['n'] == 1 else 's'}" for row in s["lambdas"]]
    lines += ["", "## Localization against baselines (per λ, mean over seeds)", "",
              f"| λ | {s['target_object']} hit rate | best fixed cell | uniform attention |",
              "|---|---|---|---|"]
    lines += [f"| {row['attn_coef']:g} | {_num(row['target_hit_rate']['mean'])} | "
              f"{_num(row['best_fixed_hit_rate']['mean'])} | "
              f"{_num(row['uniform_hit_rate']['mean'])} |" for row in s["lambdas"]]
    if figures is None:
        lines += ["", "Figures: " + ", ".join(name for name, _ in FIGURES)
                  + " next to summary.json."]
    else:
        lines += ["", "## Figures", ""]
        for name, what in FIGURES:
            lines += [f"![{what}]({figures}/{name})", ""]
    return "\n".join(lines) + "\n"
