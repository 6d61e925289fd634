"""Measure how interpretable agents are: localization against ground truth, sanity checks,
the sample-count claim and faithfulness, for several runs on the SAME frames.

One policy (--frames-from, default the first --run) plays the game and its frames are
recorded with their ground truth (Quadrant-v0: the square's position; Atari: object positions
from the emulator RAM through a mapping fitted on the rendered screens). Every run is then
measured on exactly these frames, so differences come from the agents, not the inputs.

Parts (--parts, default all): localization (attention hit rate and mass per head, saliency
pointing game and energy share per method, each next to uniform-random and best-fixed-guess
baselines), sanity (cascading and independent model randomization), samples (SmoothGrad and
VarGrad against the number of samples and the noise scale), faithfulness (deletion and
insertion curves). The sanity checks and the sample sweep, which cost hundreds of gradients
per frame, run on an evenly spaced subset (--sanity-frames, --samples-frames; the sample sweep
on the first --target only). Writes DIR/report.json, DIR/report.md and figures (PNG and PDF).
What the numbers mean: docs/interpretability_metrics.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import time
from pathlib import Path
from typing import Any

import numpy as np

from attnjax.cli import add_play_arguments, check_play_arguments, comma_list
from attnjax.errors import UserError, writable_folder
from attnjax.files import write_json
from attnjax.metrics import faithfulness, ground_truth, localization, samples, sanity
from attnjax.progress import ProgressBar
from attnjax.provenance import attnjax_version
from attnjax.training.runs import run_name

PARTS = ("localization", "sanity", "samples", "faithfulness")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from attnjax.inspection.presets import add_saliency_arguments

    add_play_arguments(parser, runs=True, frames=256, stride=4, help_texts={
        "seed": "env seed, action sampling, noise and random baselines (default 0)",
        "policy": "how --frames-from plays (default sample)",
        "warmup": "steps played before recording"})
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--frames-from", default=None, metavar="RUN",
                        help="the run whose policy plays the frames (default: the first --run)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated: {', '.join(PARTS)} (default: all)")
    add_saliency_arguments(parser, "the frames' range", several_targets=True)
    parser.add_argument("--radius", type=float, default=3.0,
                        help="pointing game: peak within this many observation pixels (default 3)")
    parser.add_argument("--sanity-frames", type=int, default=32,
                        help="frames of the sanity checks (default 32, evenly spaced)")
    parser.add_argument("--samples-frames", type=int, default=32,
                        help="frames of the sample sweep (default 32, evenly spaced)")
    parser.add_argument("--faithfulness-frames", type=int, default=None,
                        help="frames of the deletion/insertion curves (default: all)")
    parser.add_argument("--n-grid", default=",".join(map(str, samples.N_GRID)),
                        help="sample counts of the sweep (default %(default)s)")
    parser.add_argument("--spreads", default=",".join(f"{s:g}" for s in samples.SPREADS),
                        help="noise scales of the sweep (default %(default)s)")
    parser.add_argument("--reference-n", type=int, default=samples.REFERENCE_N,
                        help="samples of the sweep's reference maps (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _list(text: str, flag: str, kind: type = str) -> tuple:
    """`cli.comma_list` of a flag's value; UserError naming the flag when it is not a list."""
    try:
        return comma_list(text, kind)
    except ValueError:
        raise UserError(f"{flag} needs a comma-separated list, got {text!r}") from None


def check_args(args: argparse.Namespace) -> dict[str, Any]:
    """Every flag checked before anything runs; returns the parsed lists."""
    from attnjax.inspection.presets import (
        SALIENCY_PRESETS,
        parse_methods,
        saliency_config_from_args,
    )
    from attnjax.inspection.saliency.methods import TARGETS

    parts = _list(args.parts, "--parts")
    for part in parts:
        if part not in PARTS:
            raise UserError(f"unknown part {part!r} in --parts; choose from {', '.join(PARTS)}")
    preset_target = SALIENCY_PRESETS[getattr(args, "preset", "attnjax")]["target"]
    targets = (_list(args.target, "--target") if args.target is not None
               else tuple(dict.fromkeys((preset_target, "action"))))
    for target in targets:
        if target not in TARGETS:
            raise UserError(f"--target {target!r}: choose from {', '.join(TARGETS)}")
    check_play_arguments(args)
    for flag, value, low in (("--sanity-frames", args.sanity_frames, 1),
                             ("--samples-frames", args.samples_frames, 1),
                             ("--reference-n", args.reference_n, 1)):
        if value < low:
            raise UserError(f"{flag} must be at least {low}, got {value}")
    if args.faithfulness_frames is not None and args.faithfulness_frames < 1:
        raise UserError(f"--faithfulness-frames must be at least 1, got {args.faithfulness_frames}")
    if not (np.isfinite(args.radius) and args.radius >= 0):
        raise UserError(f"--radius must be a number >= 0, got {args.radius}")
    n_grid = _list(args.n_grid, "--n-grid", int)
    if min(n_grid) < 1 or list(n_grid) != sorted(set(n_grid)):
        raise UserError(f"--n-grid must be increasing positive counts, got {args.n_grid}")
    spreads = _list(args.spreads, "--spreads", float)
    if not all(np.isfinite(s) and s > 0 for s in spreads):
        raise UserError(f"--spreads must be positive numbers, got {args.spreads}")
    one_target = argparse.Namespace(**{**vars(args), "target": targets[0]})
    config = saliency_config_from_args(one_target, methods=parse_methods(args.methods))
    return {"parts": parts, "targets": targets, "config": config, "n_grid": n_grid,
            "spreads": spreads}


def spaced(total: int, count: int) -> np.ndarray:
    """`count` evenly spaced indices of `total` frames (all of them if count >= total)."""
    if count >= total:
        return np.arange(total)
    return np.unique(np.round(np.linspace(0, total - 1, count)).astype(np.int64))


def network_outputs(agent: Any, obs: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    """attention [N, 7, 7, K] (or None) and logits of the agent on the frames."""
    attention, logits = [], []
    for start in range(0, len(obs), batch):
        out = agent.apply(obs[start:start + batch])
        logits.append(np.asarray(out.logits))
        if out.attention is not None:
            attention.append(np.asarray(out.attention))
    return {"attention": np.concatenate(attention) if attention else None,
            "logits": np.concatenate(logits)}


def saliency_maps(agent: Any, obs: np.ndarray, config: Any, seed: int,
                  bar: ProgressBar) -> dict[str, np.ndarray]:
    """method -> [N, 84, 84] maps as shown: `compute_saliency` with the noise keys of
    `visualize.py saliency --seed` (frame i: `split(PRNGKey(seed), N)[i]`), sigma from the range
    over all frames."""
    from attnjax.inspection.saliency.methods import agent_saliency

    result = agent_saliency(agent, obs, config, seed, progress=bar.advance)
    return {m: result.aggregate(m).astype(np.float32) for m in config.methods}


def localize_object(obj: ground_truth.ObjectTruth, attention: np.ndarray | None,
                    maps: dict[str, dict[str, np.ndarray]], args: argparse.Namespace
                    ) -> dict[str, Any]:
    """Localization of one object: attention scores per head, saliency scores per target and
    method, with their baselines (the saliency baselines do not depend on the target)."""
    entry = localization.localize(obj.boxes, obj.visible, attention, None, args.radius,
                                  args.seed)
    entry["saliency"] = {}
    for target, target_maps in maps.items():
        scores = localization.localize(obj.boxes, obj.visible, None, target_maps, args.radius,
                                       args.seed)
        if "saliency" in scores:
            entry["saliency"][target] = scores["saliency"]
            entry["saliency_baselines"] = scores["saliency_baselines"]
    return entry


def run_label(agent: Any) -> str:
    return run_name(agent.config)


def object_neighbourhoods(objects: list[ground_truth.ObjectTruth], radius: float
                          ) -> np.ndarray | None:
    """bool [N, 84, 84]: pixels within `radius` of any visible ground-truth object (None
    without objects), the region the sanity checks' sensitivity part calls `objects`."""
    if not objects:
        return None
    return np.any([localization.near_masks(o.boxes, radius) & o.visible[:, None, None]
                   for o in objects], axis=0)


def measure(agents: list[Any], frames: ground_truth.Frames, settings: dict[str, Any],
            args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """All selected parts for every agent on the frames: (report, timing in seconds)."""
    parts, targets, base = settings["parts"], settings["targets"], settings["config"]
    progress = not args.no_progress
    timing: dict[str, float] = {}
    objects, notes = ground_truth.ground_truth(frames)
    n = len(frames.obs)
    report: dict[str, Any] = {part: {} for part in parts}
    need_maps = "localization" in parts or "faithfulness" in parts
    maps: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    labels = [run_label(a) for a in agents]
    if need_maps:
        t0 = time.monotonic()
        with ProgressBar("saliency maps", n * len(agents) * len(targets), progress) as bar:
            for agent, label in zip(agents, labels, strict=True):
                for target in targets:
                    cfg = dataclasses.replace(base, target=target)
                    maps[(label, target)] = saliency_maps(agent, frames.obs, cfg, args.seed, bar)
        timing["saliency_maps"] = time.monotonic() - t0
    if "localization" in parts:
        t0 = time.monotonic()
        with ProgressBar("localization", len(agents), progress, unit="runs") as bar:
            for agent, label in zip(agents, labels, strict=True):
                attention = network_outputs(agent, frames.obs)["attention"]
                report["localization"][label] = {
                    obj.name: localize_object(obj, attention, {t: maps[(label, t)]
                                                               for t in targets}, args)
                    for obj in objects}
                bar.advance()
        timing["localization"] = time.monotonic() - t0
    if "sanity" in parts:
        t0 = time.monotonic()
        idx = spaced(n, args.sanity_frames)
        near_objects = object_neighbourhoods(objects, args.radius)
        total = sum(sanity.variant_count(a.params) for a in agents) * len(targets)
        with ProgressBar("sanity", total, progress, unit="networks") as bar:
            for agent, label in zip(agents, labels, strict=True):
                report["sanity"][label] = {
                    target: sanity.model_randomization(
                        agent.network, agent.params, frames.obs[idx],
                        dataclasses.replace(base, target=target), args.seed, bar.advance,
                        near_objects[idx] if near_objects is not None else None)
                    for target in targets}
        timing["sanity"] = time.monotonic() - t0
    if "samples" in parts:
        t0 = time.monotonic()
        idx = spaced(n, args.samples_frames)
        sub = [ground_truth.ObjectTruth(o.name, o.boxes[idx], o.visible[idx]) for o in objects]
        total = samples.block_count(settings["n_grid"], settings["spreads"],
                                    args.reference_n) * len(agents)
        with ProgressBar("samples", total, progress, unit="blocks") as bar:
            for agent, label in zip(agents, labels, strict=True):
                report["samples"][label] = samples.sample_count_sweep(
                    agent.network, agent.params, frames.obs[idx], base, sub, args.radius,
                    args.seed, settings["n_grid"], settings["spreads"], args.reference_n,
                    bar.advance)
        timing["samples"] = time.monotonic() - t0
    if "faithfulness" in parts:
        t0 = time.monotonic()
        idx = spaced(n, args.faithfulness_frames or n)
        total = len(idx) * len(faithfulness.BASELINES) * len(agents) * len(targets)
        with ProgressBar("faithfulness", total, progress) as bar:
            for agent, label in zip(agents, labels, strict=True):
                report["faithfulness"][label] = {
                    target: faithfulness.deletion_insertion(
                        agent.network, agent.params, frames.obs[idx],
                        {m: v[idx] for m, v in maps[(label, target)].items()}, target,
                        base.layer, seed=args.seed, progress=bar.advance)
                    for target in targets}
        timing["faithfulness"] = time.monotonic() - t0
    report["ground_truth"] = {
        "objects": [{"name": o.name, "visible_frames": int(o.visible.sum()),
                     "left_out": int((~o.visible).sum()),
                     "calibration": o.calibration.to_dict() if o.calibration else "exact"}
                    for o in objects],
        "notes": notes,
        "calibration_states": None if frames.calibration_ram is None
        else len(frames.calibration_ram)}
    report["subsets"] = {
        "sanity": int(len(spaced(n, args.sanity_frames))) if "sanity" in parts else None,
        "samples": int(len(spaced(n, args.samples_frames))) if "samples" in parts else None,
        "faithfulness": int(len(spaced(n, args.faithfulness_frames or n)))
        if "faithfulness" in parts else None}
    return report, timing


def main(args: argparse.Namespace) -> int:
    from attnjax.agents.load import check_one_game, load_agent
    from attnjax.inspection.saliency.methods import check_network
    from attnjax.metrics import markdown, plots

    settings = check_args(args)
    agents = [load_agent(run) for run in args.run]
    source_run = args.frames_from or args.run[0]
    source = agents[args.run.index(source_run)] if source_run in args.run else load_agent(
        source_run)
    env_id = check_one_game([*agents, source], "measure the runs of one game together")
    for agent in agents:
        for target in settings["targets"]:
            check_network(agent.network, dataclasses.replace(settings["config"], target=target))
    labels = [run_label(a) for a in agents]
    if len(set(labels)) != len(labels):
        raise UserError(f"two --run folders have the same run name ({', '.join(labels)}); "
                        "give different runs")
    out = writable_folder(Path(args.out), "--out")  # last check: creates the folder
    t0 = time.monotonic()
    with ProgressBar("frames", args.frames, not args.no_progress) as bar:
        frames = ground_truth.collect_frames(source, args.frames, args.seed, args.policy,
                                             args.warmup, args.stride, bar.advance)
    frames_s = time.monotonic() - t0
    report, timing = measure(agents, frames, settings, args)
    config = settings["config"]
    timing = {"frames": frames_s, **timing}
    t0 = time.monotonic()
    data = {
        "attnjax_version": attnjax_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "env_id": env_id,
        "frames": {"count": len(frames.obs), "from": str(source_run),
                   "from_run": run_label(source), "seed": args.seed, "policy": args.policy,
                   "stride": args.stride, "warmup": args.warmup},
        "runs": [{"run": str(r), "run_name": run_label(a), "attn_coef": a.config.attn_coef,
                  "seed": a.config.seed, "network": a.config.network, "global_step": a.step,
                  "checkpoint": str(a.path)} for r, a in zip(args.run, agents, strict=True)],
        "settings": {"parts": list(settings["parts"]), "targets": list(settings["targets"]),
                     "methods": list(config.methods), "preset": args.preset,
                     "layer": config.layer, "samples": config.samples,
                     "spread": config.spread, "stack": config.stack,
                     "radius": args.radius, "n_grid": list(settings["n_grid"]),
                     "spreads": list(settings["spreads"]), "reference_n": args.reference_n},
        **report,
    }
    written = plots.write_figures(data, out)
    timing["report"] = time.monotonic() - t0
    data["timing_s"] = {k: round(v, 2) for k, v in timing.items()}
    write_json(out / "report.json", _finite(data))
    markdown.write_markdown(data, out / "report.md", written)
    for path in (out / "report.json", out / "report.md", *written):
        print(path)
    return 0


def _finite(node: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, so the JSON is strict."""
    if isinstance(node, dict):
        return {str(k): _finite(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_finite(v) for v in node]
    if isinstance(node, np.generic):
        node = node.item()
    if isinstance(node, float) and not np.isfinite(node):
        return None
    return node
