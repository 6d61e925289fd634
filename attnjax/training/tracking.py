"""Where training results go besides the run folder's files (attnjax.training.runs): Weights &
Biases and attention pictures (progress: attnjax.progress).

Why here: the train loop only produces per-iteration dictionaries; this module decides how they
are drawn and tracked (W&B, offline by default, never blocking training).
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from attnjax.model.baseline import UNIFORM_CELL, UNIFORM_HEAD_ENTROPY, near_uniform, vs_uniform
from attnjax.model.networks import head_entropies
from attnjax.training.config import TrainConfig
from attnjax.training.runs import WANDB_DIR, WANDB_ID_FILE, config_record, run_name


def clean_number(value: Any) -> float | int | None:
    """JSON-safe scalar: NaN/Inf become null, integers stay integers."""
    value = np.asarray(value).item()
    if isinstance(value, bool | int):
        return int(value)
    return float(value) if math.isfinite(value) else None


ATTENTION_DPI = 160  # attention.png
ATTENTION_CMAP = "plasma"


def attention_figure(obs: np.ndarray, attention: np.ndarray | None, title: str):
    """Matplotlib figure: the newest observation frame, then each attention head over it.

    obs: uint8 [4, 84, 84]; attention: [7, 7, K] or None (nature network). The heads share one
    colour scale (the colour bar, uniform 1/49 marked) reaching at least 5x uniform; a cell's
    opacity grows with its weight above uniform, so cells at or under uniform leave the frame
    clear and a near-uniform head shows no pattern (it says so instead); the 7x7 cells are
    outlined; each head's title gives its peak against uniform and its entropy against ln 49.
    Save it at ATTENTION_DPI.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    heads = 0 if attention is None else attention.shape[-1]
    widths = [1.0] * (heads + 1) + ([0.07] if heads else [])
    size = (2.4 * (heads + 1) + 1.0, 3.2) if heads else (2.4, 2.9)
    fig, axes = plt.subplots(1, len(widths), figsize=size, gridspec_kw={"width_ratios": widths},
                             layout="constrained", squeeze=False)
    axes = axes[0]
    frame = obs[-1]
    for ax in axes[: heads + 1]:
        ax.imshow(frame, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_title("observation\n(newest of 4 stacked frames)", fontsize=8)
    if heads:
        att = np.asarray(attention, np.float64)
        norm = Normalize(0.0, max(float(att.max()), 5 * UNIFORM_CELL))
        cmap = colormaps[ATTENTION_CMAP]
        cells = np.linspace(-0.5, 83.5, att.shape[0] + 1)  # 12 input pixels a cell
        for k in range(heads):
            ax, p = axes[k + 1], att[..., k]
            # opacity grows with the weight above uniform (uniform: clear); a light fill keeps
            # what lies under a cell visible, its outline shows the colour at full strength
            strength = np.clip((p - UNIFORM_CELL) / (norm.vmax - UNIFORM_CELL), 0, 1)
            rgba = cmap(norm(p))
            rgba[..., 3] = 0.45 * strength
            ax.imshow(rgba, extent=(cells[0], cells[-1], cells[-1], cells[0]),
                      interpolation="nearest")
            for (i, j), a in np.ndenumerate(strength):
                if a > 0.05:
                    ax.add_patch(Rectangle((cells[j], cells[i]), 12, 12, fill=False, lw=1.2,
                                           edgecolor=rgba[i, j, :3], alpha=float(a)))
            for edge in cells[1:-1]:
                ax.axhline(edge, color="white", lw=0.4, alpha=0.3)
                ax.axvline(edge, color="white", lw=0.4, alpha=0.3)
            if near_uniform(float(p.max())):
                ax.set_xlabel("near uniform: no cell stands out", fontsize=7)
            entropy = float(head_entropies(att[None, ..., k : k + 1])[0, 0])
            ax.set_title(f"head {k}: peak {vs_uniform(float(p.max()))}\n"
                         f"entropy {entropy:.2f} of {UNIFORM_HEAD_ENTROPY:.2f} nats", fontsize=8)
        bar = fig.colorbar(ScalarMappable(norm, cmap), cax=axes[-1])
        ticks = [t for t in MaxNLocator(4).tick_values(0.0, norm.vmax)
                 if 2 * UNIFORM_CELL < t <= norm.vmax]
        bar.set_ticks([UNIFORM_CELL, *ticks], labels=["uniform", *(f"{t:.2g}" for t in ticks)],
                      fontsize=7)
        bar.ax.axhline(UNIFORM_CELL, color="black", lw=1.0)
        bar.set_label("attention weight per cell (uniform = 1/49)", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return fig


def _wandb_reachable(timeout: float = 3.0) -> bool:
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


class WandbRun:
    """One W&B run per training run; offline by default, resumed with the id kept in the run
    folder. Any W&B failure becomes a warning: tracking never stops training."""

    def __init__(self, config: TrainConfig, run_dir: Path, mode: str | None = None) -> None:
        self.run = None
        mode = mode or config.wandb_mode
        if mode == "disabled":
            return
        if mode == "online" and not _wandb_reachable():
            warnings.warn(
                "W&B online mode asked for but the W&B server is unreachable; logging offline "
                f"instead (sync later with `wandb sync {run_dir}/{WANDB_DIR}/offline-run-*`)",
                stacklevel=2,
            )
            mode = "offline"
        id_file = Path(run_dir) / WANDB_ID_FILE
        try:
            import wandb

            # wandb 0.31 has no public id generator (wandb.util.generate_id is gone); a run id
            # is any short lowercase alphanumeric string
            run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
            id_file.write_text(run_id)
            self.run = wandb.init(
                project=config.wandb_project,
                entity=config.wandb_entity or None,
                group=config.wandb_group or config.env_id,
                tags=list(config.wandb_tags) or None,
                name=run_name(config),
                id=run_id,
                resume="allow",
                dir=str(run_dir),
                mode=mode,
                config=config_record(config),
                reinit="create_new",
                settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
            )
            self.run.define_metric("global_step")
            self.run.define_metric("*", step_metric="global_step")
        except Exception as err:  # noqa: BLE001 - tracking must not stop training
            warnings.warn(f"W&B could not start ({err}); training goes on without it",
                          stacklevel=2)
            self.run = None

    @property
    def id(self) -> str | None:
        return None if self.run is None else self.run.id

    def log(self, record: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.log({k: v for k, v in record.items() if v is not None})

    def log_figure(self, fig: Any, global_step: int) -> None:
        if self.run is not None:
            import wandb

            self.run.log({"attention": wandb.Image(fig), "global_step": global_step})

    def finish(self) -> None:
        if self.run is not None:
            try:  # wandb 0.31's Run.finish has no `quiet`; settings.silent already quiets it
                self.run.finish()
            except Exception as err:  # noqa: BLE001 - tracking must not stop training
                warnings.warn(f"W&B could not finish cleanly ({err})", stacklevel=2)
            self.run = None

