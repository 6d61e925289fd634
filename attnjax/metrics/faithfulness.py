"""Faithfulness: do the pixels a saliency map ranks highest matter to the network?

Deletion and insertion curves (Petsiuk et al. 2018, RISE). Pixels are ranked by the map
(84x84, as shown: max over the stacked frames or the newest); a pixel is replaced in all 4
stacked frames at once. Deletion replaces the top k% of pixels of the frame by a baseline
image, insertion starts from the baseline and puts the top k% of the frame's pixels back; at
each fraction the network is re-run and two things are tracked: the saliency target (the
scalar the map explains) and whether the greedy action still equals the unperturbed frame's.
A faithful map makes the deletion curve fall fast (small area under it) and the insertion
curve rise fast (large area); both are shown next to a random pixel order, the chance level.

Baselines: `blur`, the frame blurred with a Gaussian of BLUR_SIGMA pixels (removes the objects'
shape but keeps brightness, what RISE used), and `mean`, the per-pixel mean of all frames
given (a "typical" frame: static parts stay, moving objects fade).
Fractions are denser near 0 (FRACTIONS): saliency maps are heavy-tailed and most of a map's
mass sits in its first few percent of pixels. Areas are trapezoids over the fraction axis.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
BASELINES = ("blur", "mean")
MODES = ("deletion", "insertion")
BLUR_SIGMA = 5.0  # pixels of the 84x84 observation
BATCH = 128  # network evaluations per call (fixed: one compilation)
RISE_SHARE = 0.1  # a curve above the frame by this share of its frame-baseline span: worth a note
# why a max_sum curve can climb above the unperturbed frame (figure caption and report.md)
MAX_SUM_NOTE = (
    "max_sum is a peak, not an amount: the sum over heads of each head's largest attention "
    "weight (a softmax over the 49 cells). Pixels are ranked by the map's magnitude, whatever "
    "the gradient's sign, so the top ones can be pixels that draw weight away from a head's "
    "peak cell; replacing them leaves the attention more peaked than on the frame itself (e.g. "
    "with clutter gone, one cell dominates). So a max_sum curve need not be monotone: it can "
    "rise above the unperturbed value, which enlarges the deletion area, and a half-replaced "
    "frame can sit below both ends.")


def blur_matrix(size: int, sigma: float) -> np.ndarray:
    """[size, size] Gaussian blur along one axis, rows renormalised at the borders (so a
    constant image stays constant)."""
    idx = np.arange(size)
    m = np.exp(-0.5 * ((idx[:, None] - idx[None]) / sigma) ** 2)
    return m / m.sum(axis=1, keepdims=True)


def gaussian_blur(images: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """[..., H, W] -> the same blurred with a separable Gaussian of `sigma` pixels."""
    x = np.asarray(images, np.float64)
    rows, cols = blur_matrix(x.shape[-2], sigma), blur_matrix(x.shape[-1], sigma)
    return np.einsum("ij,...jk,lk->...il", rows, x, cols)


def baseline_images(obs: np.ndarray, kind: str) -> np.ndarray:
    """uint8 [N, 4, 84, 84] -> float32 [N, 4, 84, 84] baseline frames (0..255)."""
    x = np.asarray(obs, np.float32)
    if kind == "blur":
        return gaussian_blur(x).astype(np.float32)
    if kind == "mean":
        return np.broadcast_to(x.mean(axis=0, keepdims=True), x.shape).astype(np.float32)
    raise ValueError(f"unknown baseline {kind!r}; choose from {', '.join(BASELINES)}")


def pixel_order(maps: np.ndarray) -> np.ndarray:
    """[N, H, W] maps -> int [N, H * W]: pixels by decreasing |value| (ties: lower index
    first)."""
    flat = np.abs(np.reshape(maps, (len(maps), -1)))
    return np.argsort(-flat, axis=1, kind="stable")


def random_order(rng: np.random.Generator, n: int, pixels: int) -> np.ndarray:
    """int [n, pixels]: an independent random permutation of the pixels per frame."""
    return np.argsort(rng.random((n, pixels)), axis=1)


def perturb(x: np.ndarray, baseline: np.ndarray, order: np.ndarray, fraction: float,
            mode: str) -> np.ndarray:
    """x, baseline [N, C, H, W], order [N, H * W] -> [N, C, H, W]: deletion puts the baseline
    on the first round(fraction x H x W) pixels of `order`; insertion puts x there on the
    baseline."""
    n, _, h, w = x.shape
    k = int(round(fraction * h * w))
    chosen = np.zeros((n, h * w), bool)
    np.put_along_axis(chosen, order[:, :k], True, axis=1)
    chosen = chosen.reshape(n, 1, h, w)
    if mode == "deletion":
        return np.where(chosen, baseline, x)
    if mode == "insertion":
        return np.where(chosen, x, baseline)
    raise ValueError(f"unknown mode {mode!r}")


def auc(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoidal area under values(fraction) over [0, 1]."""
    f, v = np.asarray(fractions, np.float64), np.asarray(values, np.float64)
    return float(np.sum((f[1:] - f[:-1]) * (v[1:] + v[:-1]) / 2))


Evaluate = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def curves(evaluate: Evaluate, x: np.ndarray, baseline: np.ndarray,
           orders: dict[str, np.ndarray], actions: np.ndarray,
           fractions: Sequence[float] = FRACTIONS) -> dict[str, dict[str, dict[str, list]]]:
    """Deletion and insertion curves of frames x (float [N, C, H, W], 0..255) against a
    baseline for each pixel order (name -> [N, H * W]).

    evaluate: (images [B, C, H, W], actions [B]) -> (target [B], greedy action [B]), image by
    image; actions [N]: each frame's unperturbed greedy action (the logit the `action` target
    keeps reading while the frame is perturbed). All perturbed images of all orders go
    through one `evaluate` call; the two ends shared by every order (the frame itself, the
    baseline) are evaluated once. Returns order -> mode -> {"target": mean target per
    fraction, "agreement": share of frames whose greedy action is still `actions`}.
    """
    n = len(x)
    keys, images = [], [x, baseline]
    for name, order in orders.items():
        for mode in MODES:
            for f in fractions:
                if 0.0 < f < 1.0:
                    keys.append((name, mode, f))
                    images.append(perturb(x, baseline, order, f, mode))
    target, greedy = evaluate(np.concatenate(images), np.tile(actions, len(images)))
    result = {key: (target[(i + 2) * n:(i + 3) * n], greedy[(i + 2) * n:(i + 3) * n])
              for i, key in enumerate(keys)}
    frame, base = (target[:n], greedy[:n]), (target[n:2 * n], greedy[n:2 * n])
    out: dict[str, dict[str, dict[str, list]]] = {}
    for name in orders:
        out[name] = {}
        for mode in MODES:
            targets, agreement = [], []
            for f in fractions:
                if 0.0 < f < 1.0:
                    t, a = result[(name, mode, f)]
                else:  # deletion starts at the frame and ends at the baseline; insertion reverse
                    t, a = base if (f == 1.0) == (mode == "deletion") else frame
                targets.append(float(np.mean(t)))
                agreement.append(float(np.mean(a == actions)))
            out[name][mode] = {"target": targets, "agreement": agreement}
    return out


def merge_curves(parts: list[tuple[int, dict]]) -> dict:
    """Frame-weighted mean of `curves` results of several chunks [(frames, result), ...]."""
    total = sum(n for n, _ in parts)

    def merge(nodes: list[Any]) -> Any:
        if isinstance(nodes[0], dict):
            return {k: merge([nd[k] for nd in nodes]) for k in nodes[0]}
        return [sum(n * v[i] for (n, _), v in zip(parts, nodes, strict=True)) / total
                for i in range(len(nodes[0]))]

    return merge([r for _, r in parts])


def summarize(result: dict, fractions: Sequence[float] = FRACTIONS) -> dict[str, Any]:
    """Areas under each curve, and whether each order beats the random one (deletion target
    area smaller, insertion target area larger)."""
    areas = {name: {f"{mode}_{kind}_auc": auc(fractions, result[name][mode][kind])
                    for mode in MODES for kind in ("target", "agreement")}
             for name in result}
    if "random" in areas:
        rnd = areas["random"]
        for name, a in areas.items():
            if name != "random":
                a["deletion_beats_random"] = a["deletion_target_auc"] < rnd["deletion_target_auc"]
                a["insertion_beats_random"] = (a["insertion_target_auc"]
                                               > rnd["insertion_target_auc"])
    return areas


def unperturbed_value(curves_result: dict) -> float:
    """The mean target on the frames themselves: every deletion curve's first point."""
    return next(iter(curves_result.values()))["deletion"]["target"][0]


def rises_above_unperturbed(curves_result: dict, fractions: Sequence[float],
                            share: float = RISE_SHARE) -> list[dict[str, Any]]:
    """Where a mean-target curve climbs above the unperturbed frame's value (deletion's first
    point) by more than `share` of the frame-to-baseline distance: each (order, mode)'s
    highest such point. Not a failure of the map: a peak target such as `max_sum` rises when
    replacing pixels leaves the attention more peaked than on the frame itself."""
    unperturbed = unperturbed_value(curves_result)
    baseline = next(iter(curves_result.values()))["deletion"]["target"][-1]
    margin = share * abs(unperturbed - baseline)
    found = []
    for name, by_mode in curves_result.items():
        for mode in MODES:
            values = by_mode[mode]["target"]
            top = int(np.argmax(values))
            if values[top] > unperturbed + margin:
                found.append({"order": name, "mode": mode, "fraction": fractions[top],
                              "value": values[top], "unperturbed": unperturbed})
    return found


@functools.lru_cache(maxsize=8)
def _evaluator(network: Any, target: str, layer: str) -> Callable:
    import jax
    import jax.numpy as jnp

    from attnjax.inspection.saliency.methods import target_value

    def evaluate(params: Any, x: jax.Array, action: jax.Array):
        out = network.apply({"params": params}, x)
        return target_value(out, target, layer, action), jnp.argmax(out.logits, axis=-1)

    return jax.jit(evaluate)


def _batched(network: Any, params: Any, target: str, layer: str, images: np.ndarray,
             actions: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(target, greedy action) of float images [N, C, H, W], `batch` per compiled call (the
    last one padded: one compilation)."""
    fn = _evaluator(network, target, layer)
    n = len(images)
    targets, greedy = [], []
    for start in range(0, n, batch):
        idx = np.arange(start, start + batch).clip(max=n - 1)
        t, a = fn(params, np.asarray(images[idx], np.float32), np.asarray(actions[idx]))
        count = min(batch, n - start)
        targets.append(np.asarray(t)[:count])
        greedy.append(np.asarray(a)[:count])
    return np.concatenate(targets), np.concatenate(greedy)


def network_evaluator(network: Any, params: Any, target: str, layer: str,
                      batch: int = BATCH) -> Evaluate:
    """`evaluate` for `curves` from a network: (images float 0..255 [B, C, H, W], actions [B])
    -> (target, greedy action), `batch` images per compiled call."""
    def evaluate(images: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _batched(network, params, target, layer, images,
                        np.asarray(actions, np.int32), batch)

    return evaluate


def greedy_actions(network: Any, params: Any, images: np.ndarray,
                   batch: int = BATCH) -> np.ndarray:
    """int [N]: the greedy action of each float image (0..255)."""
    return _batched(network, params, "value", "attention", images,
                    np.zeros(len(images), np.int32), batch)[1]


def deletion_insertion(network: Any, params: Any, obs: np.ndarray, maps: dict[str, np.ndarray],
                       target: str, layer: str = "attention", baselines: Sequence[str] = BASELINES,
                       fractions: Sequence[float] = FRACTIONS, seed: int = 0, chunk: int = 8,
                       progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Curves and areas for each baseline and each method's maps (method -> [N, 84, 84]) next
    to a random pixel order, on frames `obs` (uint8 [N, 4, 84, 84]), `chunk` frames at a time
    (bounded memory). progress(frames) after each chunk and baseline."""
    x_all = np.asarray(obs, np.float32)
    rng = np.random.default_rng(seed)
    orders_all = {m: pixel_order(v) for m, v in maps.items()}
    orders_all["random"] = random_order(rng, len(x_all), math.prod(x_all.shape[-2:]))
    clean_actions = greedy_actions(network, params, x_all)
    evaluate = network_evaluator(network, params, target, layer)
    out: dict[str, Any] = {"frames": len(x_all), "fractions": list(fractions),
                           "blur_sigma": BLUR_SIGMA, "baselines": {}}
    for kind in baselines:
        base_all = baseline_images(obs, kind)
        parts = []
        for start in range(0, len(x_all), chunk):
            sl = slice(start, start + chunk)
            orders = {m: o[sl] for m, o in orders_all.items()}
            parts.append((len(x_all[sl]), curves(evaluate, x_all[sl], base_all[sl], orders,
                                                 clean_actions[sl], fractions)))
            if progress is not None:
                progress(len(x_all[sl]))
        merged = merge_curves(parts)
        out["baselines"][kind] = {"curves": merged, "areas": summarize(merged, fractions)}
    return out


def forward_count(frames: int, methods: int, baselines: int = len(BASELINES),
                  fractions: Sequence[float] = FRACTIONS) -> int:
    """Network evaluations of `deletion_insertion` (for planning)."""
    inner = sum(f not in (0.0, 1.0) for f in fractions)
    return frames * baselines * (3 + (methods + 1) * len(MODES) * inner)
