"""Sanity checks for saliency maps (Adebayo et al. 2018), which the paper cites and never ran.

Why: a saliency method that draws much the same map for a trained network and for one whose
weights were re-drawn at random shows the input (edges, bright objects), not what the network
computes. Model randomization, as Adebayo et al. ran it:

- cascading, from the top: policy/value heads -> dense -> attention 1x1 convolutions (logits,
  then hidden) -> conv3 -> conv2 -> conv1, each step re-drawing one more layer group with the
  network's own initializer (a fresh `init_params`, so the same distributions as training
  started from);
- independent: one layer group at a time, the others trained.

For every step, method and target the maps are compared with the trained network's maps of the
same frames and the same noise draws (so only the weights differ): Spearman rank correlation of
the absolute maps, of the signed map (the plain gradient only: the other methods' maps, squared
gradients' moments or squared output changes, have no sign), and SSIM of the maps scaled to [0,
1]. A method passes when, with every layer re-drawn, its mean rank correlation falls below
PASS_BELOW. Layers above the target do not change its maps (the attention targets do not depend
on the heads or the dense layer), so their flat start of the curve is expected.

What the whole-frame correlation is sensitive to (`sensitivity`): a map whose rank order
follows the frame's static structure (walls, bricks, where conv1's units fire) keeps a high
whole-frame ρ whatever the layers above conv1 compute. So the same comparison is repeated on
pixels that matter to the game, REGIONS: `moving`, pixels that differ between the four stacked
frames (ball and paddle, not the static screen), and `objects`, pixels near the ground-truth
objects when the caller gives them; and it is set beside an input-only baseline, the
agreement of two independent re-drawings of every layer above conv1 over the same trained
conv1 (what conv1 and the input alone fix of the map's order). A trained network's maps that
are as close to a random top's as two random tops are to each other carry nothing of the top
layers in that region. """

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

PASS_BELOW = 0.5  # mean rank correlation with everything re-drawn, below which a method passes
MIN_REGION_PIXELS = 16  # a frame whose region has fewer pixels is left out of that region's ρ
REGION_LABELS = {"whole": "whole frame", "moving": "moving pixels", "objects": "near objects"}
# the sensitivity comparisons and how to name them ({first}: the lowest layer, kept trained)
COMPARISONS = {
    "trained_vs_random_top": "trained vs layers above {first} re-drawn",
    "random_top_vs_random_top": "two re-drawings above {first} (input-only baseline)",
    "trained_vs_all_random": "trained vs every layer re-drawn",
}
SSIM_WINDOW = 7
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # Wang et al. 2004 with data range 1

# (label, parameter paths), top of the network first
LAYER_GROUPS = (
    ("policy/value", (("head", "policy"), ("head", "value"))),
    ("dense", (("head", "fc"),)),
    ("attention logits", (("attn_logits",),)),
    ("attention hidden", (("attn_hidden",),)),
    ("conv3", (("encoder", "conv3"),)),
    ("conv2", (("encoder", "conv2"),)),
    ("conv1", (("encoder", "conv1"),)),
)


# --------------------------------------------------------------------------------------------
# comparing maps


def average_ranks(x: np.ndarray) -> np.ndarray:
    """[N, P] -> float [N, P]: ranks 1..P within each row, ties sharing their mean rank."""
    x = np.asarray(x)
    out = np.empty(x.shape, np.float64)
    for i, row in enumerate(x):
        _, inverse, counts = np.unique(row, return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        out[i] = (ends - (counts - 1) / 2.0)[inverse]
    return out


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of [N, P] arrays (NaN for a constant row)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=1) / denom, np.nan)


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, ...] maps -> [N] Spearman rank correlation of each pair of maps."""
    n = len(a)
    return pearson_rows(average_ranks(np.reshape(a, (n, -1))),
                        average_ranks(np.reshape(b, (n, -1))))


def masked_spearman(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[N, H, W] maps and bool [N, H, W] mask -> [N] Spearman rank correlation over each
    frame's masked pixels (NaN for a frame with fewer than MIN_REGION_PIXELS of them)."""
    out = np.full(len(a), np.nan)
    for i, (x, y, m) in enumerate(zip(a, b, mask, strict=True)):
        if m.sum() >= MIN_REGION_PIXELS:
            out[i] = spearman(x[m][None], y[m][None])[0]
    return out


def moving_pixels(obs: np.ndarray) -> np.ndarray:
    """uint8 [N, 4, H, W] stacked frames -> bool [N, H, W]: pixels whose value differs
    between the stacked frames (what moved in the last 4 agent steps)."""
    obs = np.asarray(obs)
    return obs.max(axis=1) != obs.min(axis=1)


def unit_scale(maps: np.ndarray) -> np.ndarray:
    """[N, H, W] -> each map shifted and scaled to [0, 1] (a constant map becomes 0)."""
    m = np.asarray(maps, np.float64)
    low = m.min(axis=(1, 2), keepdims=True)
    span = m.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (m - low) / np.where(span > 0, span, 1.0), 0.0)


def _box_mean(x: np.ndarray, w: int) -> np.ndarray:
    """[N, H, W] -> [N, H - w + 1, W - w + 1] means over w x w windows (integral image)."""
    c = np.pad(np.cumsum(np.cumsum(x, axis=1), axis=2), ((0, 0), (1, 0), (1, 0)))
    return (c[:, w:, w:] - c[:, :-w, w:] - c[:, w:, :-w] + c[:, :-w, :-w]) / (w * w)


def ssim(a: np.ndarray, b: np.ndarray, window: int = SSIM_WINDOW) -> np.ndarray:
    """[N, H, W] maps -> [N] mean structural similarity (Wang et al. 2004; uniform 7x7
    windows, sample covariances, as scikit-image's default) of the maps scaled to [0, 1]."""
    x, y = unit_scale(a), unit_scale(b)
    mx, my = _box_mean(x, window), _box_mean(y, window)
    k = window * window / (window * window - 1)  # sample (ddof 1) variances
    vx = k * (_box_mean(x * x, window) - mx * mx)
    vy = k * (_box_mean(y * y, window) - my * my)
    cxy = k * (_box_mean(x * y, window) - mx * my)
    s = ((2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)) / (
        (mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2))
    return s.mean(axis=(1, 2))


def _finite_mean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def compare_maps(reference: np.ndarray, maps: np.ndarray,
                 signed_reference: np.ndarray | None = None,
                 signed: np.ndarray | None = None) -> dict[str, float | None]:
    """Means over frames: `spearman` of |maps|, `spearman_signed` (when signed maps are
    given), `ssim`."""
    out = {"spearman": _finite_mean(spearman(np.abs(reference), np.abs(maps))),
           "spearman_signed": None,
           "ssim": _finite_mean(ssim(np.abs(reference), np.abs(maps)))}
    if signed_reference is not None and signed is not None:
        out["spearman_signed"] = _finite_mean(spearman(signed_reference, signed))
    return out


def region_correlations(reference: np.ndarray, maps: np.ndarray,
                        regions: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Mean over frames of the Spearman ρ of |maps| with |reference| in each region
    ([N, H, W] maps, bool [N, H, W] regions; `whole` is the entire frame)."""
    a, b = np.abs(reference), np.abs(maps)
    return {name: _finite_mean(spearman(a, b) if name == "whole" else masked_spearman(a, b, m))
            for name, m in regions.items()}


# --------------------------------------------------------------------------------------------
# randomized parameters


def layer_groups(params: Any) -> list[tuple[str, tuple[tuple[str, ...], ...]]]:
    """The LAYER_GROUPS this network has (the nature network: no attention layers)."""
    def has(path: tuple[str, ...]) -> bool:
        node = params
        for name in path:
            if name not in node:
                return False
            node = node[name]
        return True

    return [(label, paths) for label, paths in LAYER_GROUPS if all(has(p) for p in paths)]


def randomize(params: Any, fresh: Any, paths: list[tuple[str, ...]]) -> Any:
    """A copy of `params` with the subtrees at `paths` taken from `fresh` (re-initialised)."""
    def copy(node: Any) -> Any:
        return {k: copy(v) for k, v in node.items()} if isinstance(node, dict) else node

    out = copy(params)
    for path in paths:
        target, source = out, fresh
        for name in path[:-1]:
            target, source = target[name], source[name]
        target[path[-1]] = source[path[-1]]
    return out


def cascade(params: Any, fresh: Any) -> list[tuple[str, list[str], Any]]:
    """(label, randomized groups, params) for no layer, then one more group per step from the
    top."""
    groups = layer_groups(params)
    steps: list[tuple[str, list[str], Any]] = [("none", [], randomize(params, fresh, []))]
    for k in range(len(groups)):
        chosen = groups[: k + 1]
        paths = [p for _, ps in chosen for p in ps]
        steps.append((groups[k][0], [g for g, _ in chosen], randomize(params, fresh, paths)))
    return steps


def above_first_layer(params: Any, fresh: Any) -> Any:
    """`params` with every layer group but the lowest (conv1) taken from `fresh`."""
    groups = layer_groups(params)
    return randomize(params, fresh, [p for _, ps in groups[:-1] for p in ps])


def independent(params: Any, fresh: Any) -> list[tuple[str, list[str], Any]]:
    """(label, [label], params) with one layer group re-drawn at a time."""
    return [(label, [label], randomize(params, fresh, list(paths)))
            for label, paths in layer_groups(params)]


# --------------------------------------------------------------------------------------------
# signed gradients (the "without absolute values" comparison): `compute_saliency` with
# magnitude "signed"


def signed_stack(grads: np.ndarray, stack: str) -> np.ndarray:
    """[N, 4, 84, 84] signed maps -> [N, 84, 84] as `stack` shows them: the newest frame's, or
    (max) the value of the stacked frame where |g| is largest (the signed form of the max of
    the squared maps)."""
    if stack == "newest":
        return grads[:, -1]
    idx = np.argmax(np.abs(grads), axis=1)[:, None]
    return np.take_along_axis(grads, idx, axis=1)[:, 0]


# --------------------------------------------------------------------------------------------
# the checks


def model_randomization(network: Any, params: Any, obs: np.ndarray, config: Any,
                        seed: int = 0, progress: Callable[[int], None] | None = None,
                        objects: np.ndarray | None = None) -> dict[str, Any]:
    """Cascading and independent randomization of one network on frames `obs` (uint8
    [N, 4, 84, 84]) for `config` (a `SaliencyConfig`: methods, target, samples, ...), and
    what its correlation is sensitive to (`sensitivity`, with `objects`, bool [N, 84, 84]
    pixels near the ground-truth objects, when given). progress(1) after each network
    variant."""
    import jax

    from attnjax.inspection.saliency.methods import compute_saliency
    from attnjax.model.networks import init_params

    fresh = init_params(network, jax.random.PRNGKey(10_000 + seed))
    gradient = "gradient" in config.methods

    signed_config = dataclasses.replace(config, methods=("gradient",), magnitude="signed")

    def maps_of(p: Any, with_signed: bool = True
                ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        result = compute_saliency(network, p, obs, config, jax.random.PRNGKey(seed))
        maps = {m: result.aggregate(m) for m in config.methods}
        signed = (signed_stack(compute_saliency(network, p, obs, signed_config).maps[
            "gradient"], config.stack) if gradient and with_signed else None)
        if progress is not None:
            progress(1)
        return maps, signed

    reference, reference_signed = maps_of(params)
    groups = layer_groups(params)
    # cascade steps whose maps the sensitivity part reuses: all but the first layer re-drawn,
    # and every layer re-drawn
    kept_labels = {groups[-2][0]: "above_first", groups[-1][0]: "everything"}
    kept: dict[str, dict[str, np.ndarray]] = {}

    def rows(variants: list[tuple[str, list[str], Any]], keep: dict[str, str] | None = None
             ) -> list[dict[str, Any]]:
        out = []
        for label, redrawn, p in variants:
            maps, signed = maps_of(p)
            if keep and label in keep:
                kept[keep[label]] = maps
            out.append({"randomized": label, "layers": redrawn, "methods": {
                m: compare_maps(reference[m], maps[m],
                                reference_signed if m == "gradient" else None,
                                signed if m == "gradient" else None)
                for m in config.methods}})
        return out

    steps = rows(cascade(params, fresh), kept_labels)
    single = rows(independent(params, fresh))
    other_top, _ = maps_of(above_first_layer(
        params, init_params(network, jax.random.PRNGKey(20_000 + seed))), with_signed=False)
    regions = {"whole": np.ones(reference[config.methods[0]].shape, bool),
               "moving": moving_pixels(obs)}
    if objects is not None:
        regions["objects"] = np.asarray(objects, bool)
    sensitivity = {
        "regions": {name: {"mean_pixels": float(m.reshape(len(m), -1).sum(axis=1).mean()),
                           "frames": int((m.reshape(len(m), -1).sum(axis=1)
                                          >= MIN_REGION_PIXELS).sum())}
                    for name, m in regions.items()},
        "first_layer": groups[-1][0],
        "comparisons": {
            "trained_vs_random_top": {m: region_correlations(reference[m],
                                                             kept["above_first"][m], regions)
                                      for m in config.methods},
            "random_top_vs_random_top": {m: region_correlations(kept["above_first"][m],
                                                                other_top[m], regions)
                                         for m in config.methods},
            "trained_vs_all_random": {m: region_correlations(reference[m],
                                                             kept["everything"][m], regions)
                                      for m in config.methods}}}
    verdict = {}
    for m in config.methods:
        final = steps[-1]["methods"][m]["spearman"]
        verdict[m] = {"spearman_all_randomized": final,
                      "passes": final is not None and final < PASS_BELOW}
    return {"frames": len(obs), "pass_below": PASS_BELOW, "cascade": steps,
            "independent": single, "verdict": verdict, "sensitivity": sensitivity,
            "config": {k: v for k, v in dataclasses.asdict(config).items()
                       if k in ("target", "layer", "samples", "spread", "stack", "magnitude")}}


def variant_count(params: Any) -> int:
    """Network variants `model_randomization` computes maps for (progress total)."""
    return 3 + 2 * len(layer_groups(params))
