"""Export saliency maps (gradient, SmoothGrad, VarGrad, perturbation, ...) of a trained agent to
one .npz file.

Plays the run's environment with the agent for --frames steps (or takes the observations of an
existing .npz with --obs), computes every requested method for all frames at once (jitted,
vmapped over frames x rows, chunked by --memory-budget-mb) and writes one compressed .npz
with the observations, RGB screens, actions, attention maps, each method's maps and a JSON
metadata string (config, method parameters, checkpoint step, seed). No pickle: load it with
numpy.load(path) (allow_pickle=False is the default). Keys: docs/saliency_and_videos.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from attnjax.cli import add_play_arguments, check_play_arguments
from attnjax.errors import UserError, writable_folder
from attnjax.files import replacing
from attnjax.inspection.presets import (
    add_saliency_arguments,
    parse_methods,
    saliency_config_from_args,
)
from attnjax.inspection.saliency.config import MAGNITUDES, SIGMA_SCOPES, SaliencyConfig
from attnjax.inspection.saliency.registry import SALIENCY_METHODS
from attnjax.provenance import attnjax_version

FORMAT = "attnjax-saliency"
FORMAT_VERSION = 1

# key -> (description, shape); `<method>` and `<method>_<stack>` are added per method
KEYS = {
    "obs": ("uint8 observations the network received (4 stacked 84x84 frames, newest last)",
            "[N, 4, 84, 84]"),
    "screens": ("uint8 RGB screens of the same env steps (Atari 210x160; Quadrant-v0 84x84; "
                "grey copies of obs[:, -1] when --obs had none)", "[N, H, W, 3]"),
    "actions": ("int32 action taken at each frame (the played policy, or --obs file's)", "[N]"),
    "greedy_actions": ("int32 argmax of the logits (the `action` target's action)", "[N]"),
    "rewards": ("float32 unclipped game reward of each frame's action (0 for --obs without)",
                "[N]"),
    "episode": ("int32 index of the game each frame belongs to", "[N]"),
    "env_step": ("int32 env step of each frame since reset (warm-up included)", "[N]"),
    "logits": ("float32 policy logits", "[N, A]"),
    "values": ("float32 value estimates", "[N]"),
    "attention": ("float32 attention weights, each head sums to 1 (attention networks only)",
                  "[N, 7, 7, K]"),
    "target": ("float32 the gradient target at the un-noised frame", "[N]"),
    "sigma": ("float32 noise std per frame in [0, 1] input units", "[N]"),
    "metadata": ("JSON string: run, checkpoint, config, saliency parameters, seed, keys",
                 "[] (str)"),
}
METHOD_KEYS = {
    "{m}": ("float32 {m} map per stacked frame: {summary}", "[N, 4, 84, 84]"),
    "{m}_{stack}": ("float32 {m} map, {what}", "[N, 84, 84]"),  # --stack max or newest
}
STACK_MEANING = {"max": "max over the 4 stacked frames",
                 "newest": "of the newest stacked frame (as the original drew it)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_play_arguments(parser, help_texts={
        "frames": "frames to play and explain (default 64; with --obs: all of them)",
        "seed": "env seed, action sampling and noise (default 0)"})
    parser.add_argument("--out", required=True, help="output file, ending in .npz")
    parser.add_argument("--png", default=None, metavar="DIR",
                        help="also draw each frame and its maps (log colour scale) into "
                             "DIR/frame_NNN.png")
    parser.add_argument("--obs", default=None,
                        help="take the frames from this .npz (key `obs`, uint8 [N, 4, 84, 84]; "
                             "optional `screens`, `actions`, `rewards`) instead of playing")
    add_saliency_arguments(parser, "the input range (see --sigma-scope)")
    parser.add_argument("--sigma-scope", default="batch", choices=SIGMA_SCOPES,
                        help="input range over all frames (batch, default) or each frame's own")
    parser.add_argument("--magnitude", default=None, choices=MAGNITUDES,
                        help="square (both presets, as the paper), abs or signed gradients")
    parser.add_argument("--clean-first", action="store_true",
                        help="first noisy copy without noise, as the original code")
    parser.add_argument("--chunk-frames", type=int, default=None,
                        help="frames per compiled call (default: from the memory budget; "
                             "on CPU one frame per host device)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> SaliencyConfig:
    return saliency_config_from_args(args, methods=parse_methods(args.methods),
                                     sigma_scope=args.sigma_scope, clean_first=args.clean_first)


def check_out_path(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix != ".npz":
        raise UserError(f"--out must end in .npz, got {out}")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name ending in .npz")
    writable_folder(out.parent, "--out", str(out))
    return out


# --------------------------------------------------------------------------------------------
# frames


def load_obs_file(path: str | Path, frames: int | None) -> dict[str, np.ndarray]:
    """Frames from an .npz: `obs` uint8 [N, 4, 84, 84] required; `screens`, `actions`,
    `rewards`, `episode`, `env_step` used when present."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--obs {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"--obs {path} is not a readable .npz ({err})") from None
    with data:
        if "obs" not in data:
            raise UserError(f"--obs {path} has no `obs` key (keys: {', '.join(data.files)})")
        obs = data["obs"]
        if obs.dtype != np.uint8 or obs.ndim != 4 or obs.shape[1:] != (4, 84, 84):
            raise UserError(f"`obs` in {path} must be uint8 [N, 4, 84, 84], got {obs.dtype} "
                            f"{list(obs.shape)}")
        n = len(obs) if frames is None else min(frames, len(obs))
        if n < 1:
            raise UserError(f"--obs {path} holds no frames")
        out = {"obs": obs[:n]}
        for key in ("screens", "actions", "rewards", "episode", "env_step"):
            if key in data and len(data[key]) >= n:
                out[key] = data[key][:n]
    return out


def play_frames(agent: Any, frames: int, seed: int, policy: str, warmup: int, stride: int,
                progress: bool) -> dict[str, np.ndarray]:
    """The frames to explain, played by `render.play` (as `video` and `tree` play them)."""
    from attnjax.inspection.render import record_one
    from attnjax.progress import ProgressBar

    with ProgressBar("playing", frames, progress) as bar:
        return record_one(agent, frames, seed, policy, warmup, stride, advance=bar.advance)


# --------------------------------------------------------------------------------------------
# writing


def _versions() -> dict[str, str]:
    out = {"attnjax": attnjax_version()}
    for name in ("jax", "flax"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def key_table(methods: tuple[str, ...], has_attention: bool = True,
              stack: str = "max") -> dict[str, str]:
    """Every key an export holds -> "description, shape"."""
    table = {k: f"{d} {s}" for k, (d, s) in KEYS.items()
             if has_attention or k != "attention"}
    what = STACK_MEANING[stack]
    for m in methods:
        for pattern, (d, s) in METHOD_KEYS.items():
            summary = SALIENCY_METHODS[m].summary
            table[pattern.format(m=m, stack=stack)] = (
                f"{d.format(m=m, what=what, summary=summary)} {s}")
    return table


def build_arrays(frames: dict[str, np.ndarray], result: Any) -> dict[str, np.ndarray]:
    """The .npz's arrays (metadata excluded) from the frames and a SaliencyResult."""
    n = len(frames["obs"])
    obs = frames["obs"].astype(np.uint8)
    screens = frames.get("screens")
    if screens is None:
        screens = np.repeat(obs[:, -1, :, :, None], 3, axis=-1)
    arrays = {
        "obs": obs,
        "screens": np.asarray(screens, np.uint8),
        "actions": np.asarray(frames.get("actions", result.greedy_actions), np.int32),
        "greedy_actions": np.asarray(result.greedy_actions, np.int32),
        "rewards": np.asarray(frames.get("rewards", np.zeros(n)), np.float32),
        "episode": np.asarray(frames.get("episode", np.zeros(n)), np.int32),
        "env_step": np.asarray(frames.get("env_step", np.arange(n)), np.int32),
        "logits": np.asarray(result.logits, np.float32),
        "values": np.asarray(result.values, np.float32),
        "target": np.asarray(result.target, np.float32),
        "sigma": np.asarray(result.sigma, np.float32),
    }
    if result.attention is not None:
        arrays["attention"] = np.asarray(result.attention, np.float32)
    for method, maps in result.maps.items():
        arrays[method] = np.asarray(maps, np.float32)
        arrays[f"{method}_{result.config.stack}"] = np.asarray(result.aggregate(method),
                                                               np.float32)
    return arrays


def write_npz(out: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Compressed .npz, written to a temporary name and renamed (no half-written files)."""
    arrays = dict(arrays)
    arrays["metadata"] = np.array(json.dumps(meta, sort_keys=True, default=str))
    with replacing(out) as tmp:
        np.savez_compressed(tmp, **arrays)


def export(agent: Any, config: SaliencyConfig, out: str | Path, *, frames: int | None = None,
           obs_file: str | Path | None = None, seed: int = 0, policy: str = "sample",
           warmup: int = 0, stride: int = 1, chunk_frames: int | None = None,
           progress: bool = False) -> dict[str, Any]:
    """Play (or load) frames, compute the saliency of all of them and write the .npz.
    Returns the metadata written."""
    import jax

    from attnjax.inspection.saliency.methods import (
        check_network,
        compute_saliency,
        frames_per_chunk,
    )
    from attnjax.progress import ProgressBar

    out = check_out_path(out)
    check_network(agent.network, config)
    check_play_arguments(argparse.Namespace(frames=frames, policy=policy, warmup=warmup,
                                            stride=stride))
    if chunk_frames is not None and chunk_frames < 1:
        raise UserError(f"--chunk-frames must be at least 1, got {chunk_frames}")
    t0 = time.monotonic()
    if obs_file is not None:
        data = load_obs_file(obs_file, frames)
        source = str(obs_file)
    else:
        data = play_frames(agent, 64 if frames is None else frames, seed, policy, warmup,
                           stride, progress)
        source = "played"
    n = len(data["obs"])
    chunk = chunk_frames or frames_per_chunk(agent.network, config, n)
    with ProgressBar("saliency", n, progress) as bar:
        result = compute_saliency(agent.network, agent.params, data["obs"], config,
                                  jax.random.PRNGKey(seed), chunk_frames=chunk,
                                  progress=bar.advance)
    arrays = build_arrays(data, result)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "run": str(agent.run_dir),
        "checkpoint": str(agent.path),
        "checkpoint_step": int(agent.step),
        "checkpoint_iteration": int(getattr(agent, "iteration", -1)),
        "config": agent.config.to_dict(),
        "network": agent.config.network,
        "saliency": {**config.to_dict(), "chunk_frames": chunk,
                     "gradients_per_frame": config.gradients_per_frame,
                     "forwards_per_frame": config.forwards_per_frame},
        "seed": seed,
        "frames": n,
        "source": source,
        "policy": policy if obs_file is None else None,
        "warmup": warmup if obs_file is None else None,
        "stride": stride if obs_file is None else None,
        "screens": "env" if "screens" in data else "grey copies of obs[:, -1]",
        "keys": key_table(config.methods, result.attention is not None, config.stack),
        "seconds": round(time.monotonic() - t0, 2),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
    }
    write_npz(out, arrays, meta)
    return meta


def write_pngs(arrays: dict[str, np.ndarray], methods: tuple[str, ...], stack: str,
               folder: str | Path, title: str = "") -> list[Path]:
    """One PNG per frame: the newest observation frame, then each method's map (`<method>_
    <stack>`) on a logarithmic colour scale over 4 decades below the frame's maximum (squared
    gradients span many orders of magnitude: 1e-3 to 1e-12 across methods and targets)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(len(arrays["obs"])):
        fig, axes = plt.subplots(1, 1 + len(methods), figsize=(2.6 * (1 + len(methods)), 2.9),
                                 layout="constrained", squeeze=False)
        axes[0, 0].imshow(arrays["obs"][i, -1], cmap="gray", vmin=0, vmax=255)
        axes[0, 0].set_title(f"observation, step {int(arrays['env_step'][i]):,}", fontsize=8)
        for ax, method in zip(axes[0, 1:], methods, strict=True):
            m = arrays[f"{method}_{stack}"][i]
            top = max(float(m.max()), 1e-30)
            image = ax.imshow(np.maximum(m, top * 1e-4), norm=LogNorm(top * 1e-4, top),
                              cmap="inferno")
            fig.colorbar(image, ax=ax, shrink=0.8).ax.tick_params(labelsize=7)
            ax.set_title(f"{method} ({STACK_MEANING[stack].split(' (')[0]})", fontsize=7)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        if title:
            fig.suptitle(title, fontsize=9)
        path = folder / f"frame_{i:03d}.png"
        with replacing(path) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def main(args: argparse.Namespace) -> int:
    from attnjax.agents.load import load_agent

    check_play_arguments(args)
    config = config_from_args(args)
    out = check_out_path(args.out)
    if args.png:
        writable_folder(args.png, "--png")
    agent = load_agent(args.run)
    meta = export(agent, config, out, frames=args.frames, obs_file=args.obs, seed=args.seed,
                  policy=args.policy, warmup=args.warmup, stride=args.stride,
                  chunk_frames=args.chunk_frames, progress=not args.no_progress)
    size_mb = out.stat().st_size / 2**20
    print(f"wrote {out} ({meta['frames']} frames, {', '.join(config.methods)}, target "
          f"{config.target} of {config.layer}, preset {args.preset}, {size_mb:.1f} MB, "
          f"{meta['seconds']:.1f} s)")
    if args.png:
        with np.load(out, allow_pickle=False) as data:  # the pictures come from the file
            arrays = {k: data[k] for k in ("obs", "env_step", *(f"{m}_{config.stack}"
                                                                for m in config.methods))}
        paths = write_pngs(arrays, config.methods, config.stack, args.png,
                           title=f"{agent.run_dir.name} · step {agent.step:,} · log colour scale")
        print(f"wrote {len(paths)} PNGs to {args.png}/")
    return 0
