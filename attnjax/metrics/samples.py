"""The sample-count claim: "although SmoothGrad and VarGrad provide a sharper salience map, this
advantage quickly diminishes when more samples are used, suggesting that much of the apparent
structure is due to the noise in the sampling" (Nikulin et al. 2019), measured.

For each noise scale sigma = spread x input range and each N of N_GRID, the maps of N samples of
every method of noise samples (registry: SmoothGrad, VarGrad) are compared with a REFERENCE_N-
sample map drawn with independent noise: Spearman rank correlation (does the map still change?),
sharpness as the Gini coefficient of the map's values (0 = flat, 1 = all in one pixel), and the
localization scores of `localization` when ground truth is given.

Methods without noise samples (gradient, perturbation) have no N to vary and are left out, with
that reason (`skipped`). How: the N samples are built up in blocks (`blocks`), each one call of
`attnjax.inspection.saliency.methods.compute_saliency` with its own noise key, and the blocks'
means and variances are merged exactly (Chan et al.'s pairwise update), so the map of N = 20
uses the samples of N = 10 plus 10 more; every method's map is its registry function of the
merged mean and variance. Every N is a fair draw of N samples; only the reference must be
independent of them, and it is. Block sizes come from a few values (BLOCK_SIZES) so only a few
programs are compiled, and sigma is passed explicitly so the noise scale never recompiles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from attnjax.metrics.localization import energy_shares, pointing_hits

N_GRID = (1, 2, 5, 10, 20, 50, 100, 200)
SPREADS = (0.05, 0.15, 0.3)
REFERENCE_N = 500
BLOCK_SIZES = (50, 10, 5, 1)  # compiled sample counts, largest first
STABLE_CORRELATION = 0.9  # rank correlation with the reference from which "maps stop changing"
CONFIDENCE = 0.95  # interval over frames on the Gini's fall from the smallest to largest N
SKIP_REASON = "no noise samples: its map does not depend on N or the noise scale"


def sample_methods(methods: Sequence[str] | None = None) -> tuple[str, ...]:
    """The methods of noise samples among `methods` (default: all the registry's)."""
    from attnjax.inspection.saliency.registry import METHODS, SALIENCY_METHODS

    return tuple(m for m in (METHODS if methods is None else methods)
                 if SALIENCY_METHODS[m].noise_samples)


def blocks(count: int) -> list[int]:
    """`count` samples as blocks of BLOCK_SIZES, largest first (3 -> [1, 1, 1], 30 ->
    [10, 10, 10], 100 -> [50, 50])."""
    out = []
    for size in BLOCK_SIZES:
        while count >= size:
            out.append(size)
            count -= size
    return out


def block_plan(n_grid: Sequence[int]) -> list[list[int]]:
    """The blocks added to reach each N of the grid from the previous one."""
    plan, done = [], 0
    for n in n_grid:
        if n <= done:
            raise ValueError(f"the sample counts must increase, got {list(n_grid)}")
        plan.append(blocks(n - done))
        done = n
    return plan


@dataclasses.dataclass
class Moments:
    """Running count, mean and sum of squared deviations of per-sample squared gradients:
    SmoothGrad = mean, VarGrad = m2 / n (population variance, as attnjax computes it)."""

    n: int = 0
    mean: np.ndarray | None = None  # [F, 4, 84, 84] float64
    m2: np.ndarray | None = None

    def add(self, n: int, mean: np.ndarray, var: np.ndarray) -> None:
        """Merge a block of n samples with this mean and population variance."""
        mean, m2 = np.asarray(mean, np.float64), np.asarray(var, np.float64) * n
        if self.n == 0:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.m2 = self.m2 + m2 + delta * delta * (self.n * n / total)
        self.mean = self.mean + delta * (n / total)
        self.n = total

    def maps(self, methods: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """method -> its map of the samples so far, for the noise-sample `methods` (default
        all of them): the registry's function of (mean, population variance)."""
        from attnjax.inspection.saliency.registry import SALIENCY_METHODS

        moments = (self.mean, self.m2 / self.n)
        return {m: np.asarray(SALIENCY_METHODS[m].fn(moments, None), np.float64)
                for m in sample_methods(methods)}


def stack_maps(maps: np.ndarray, stack: str) -> np.ndarray:
    """[F, 4, 84, 84] -> [F, 84, 84]: max over the stacked frames, or the newest."""
    return maps[:, -1] if stack == "newest" else maps.max(axis=1)


def gini(maps: np.ndarray) -> np.ndarray:
    """[F, ...] non-negative maps -> [F] Gini coefficient of each map's values (NaN for an
    all-zero map): 0 when every pixel is equal, (P - 1) / P when one pixel holds everything."""
    x = np.sort(np.abs(np.reshape(maps, (len(maps), -1))).astype(np.float64), axis=1)
    p = x.shape[1]
    weights = 2 * np.arange(1, p + 1) - p - 1
    total = x.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (x @ weights) / (p * total), np.nan)


def _mean(x: np.ndarray) -> float | None:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def _localization(maps: np.ndarray, objects: Sequence[Any], radius: float) -> dict[str, Any]:
    out = {}
    for obj in objects:
        v = obj.visible
        out[obj.name] = {"pointing": _mean(pointing_hits(maps[v], obj.boxes[v], radius))
                         if v.any() else None,
                         "energy_share": _mean(energy_shares(maps[v], obj.boxes[v]))
                         if v.any() else None}
    return out


def sample_count_sweep(network: Any, params: Any, obs: np.ndarray, config: Any,
                       objects: Sequence[Any] = (), radius: float = 3.0, seed: int = 0,
                       n_grid: Sequence[int] = N_GRID, spreads: Sequence[float] = SPREADS,
                       reference_n: int = REFERENCE_N,
                       progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The noise-sample methods of `config` (all of them if it has none) on frames `obs` (uint8
    [F, 4, 84, 84]) against N and sigma; its other methods under `skipped`, with the reason.

    config: a `SaliencyConfig` whose methods, target, layer, magnitude, stack and memory
    budget are used (its samples are replaced). objects: `ObjectTruth`s over the same frames.
    progress(1) after each block.
    """
    import jax

    from attnjax.inspection.saliency.methods import compute_saliency, noise_sigma, to_unit
    from attnjax.metrics.sanity import spearman

    from_range = noise_sigma(to_unit(obs), 1.0, config.sigma_scope)  # the range per frame
    swept = sample_methods(config.methods) or sample_methods()
    plan = block_plan(n_grid)
    root = jax.random.PRNGKey(seed)
    gradient_maps = None

    def run_blocks(sizes: list[int], moments: Moments, spread: float, tag: int) -> None:
        nonlocal gradient_maps
        for b, size in enumerate(sizes):
            cfg = dataclasses.replace(config, methods=("gradient", "smoothgrad", "vargrad"),
                                      samples=size)  # the moments: SmoothGrad and VarGrad
            key = jax.random.fold_in(jax.random.fold_in(root, tag), b)
            result = compute_saliency(network, params, obs, cfg, key,
                                      sigma=spread * from_range)
            moments.add(size, result.maps["smoothgrad"], result.maps["vargrad"])
            if gradient_maps is None:
                gradient_maps = stack_maps(result.maps["gradient"], config.stack)
            if progress is not None:
                progress(1)

    curves: dict[str, dict[str, Any]] = {m: {} for m in swept}
    for s, spread in enumerate(spreads):
        reference = Moments()
        run_blocks(blocks(reference_n), reference, spread, tag=2 * s + 1)
        ref_maps = {m: stack_maps(v, config.stack) for m, v in reference.maps(swept).items()}
        moments = Moments()
        rows: dict[str, dict[str, list]] = {
            m: {"correlation": [], "gini": [], "gini_frames": [], "localization": []}
            for m in swept}
        for step, sizes in enumerate(plan):
            run_blocks(sizes, moments, spread, tag=2 * s + 2 + 1000 * (step + 1))
            for m, v in moments.maps(swept).items():
                maps = stack_maps(v, config.stack)
                rows[m]["correlation"].append(_mean(spearman(maps, ref_maps[m])))
                frame_gini = gini(maps)  # [F]
                rows[m]["gini"].append(_mean(frame_gini))
                rows[m]["gini_frames"].append([None if not np.isfinite(g) else float(g)
                                               for g in frame_gini])
                rows[m]["localization"].append(_localization(maps, objects, radius))
        for m in swept:
            curves[m][f"{spread:g}"] = {
                "n": list(n_grid), **rows[m],
                "reference_gini": _mean(gini(ref_maps[m])),
                "stable_n": stable_n(n_grid, rows[m]["correlation"]),
            }
    paper_spread = f"{config.spread:g}" if config.spread in spreads else f"{spreads[0]:g}"
    return {
        "frames": len(obs), "n_grid": list(n_grid), "spreads": list(spreads),
        "reference_n": reference_n, "stable_correlation": STABLE_CORRELATION,
        "claim_confidence": CONFIDENCE, "claim_spread": paper_spread,
        "gradient": {"gini": _mean(gini(gradient_maps)),
                     "localization": _localization(gradient_maps, objects, radius)},
        "curves": curves,
        "claim": {m: claim(m, curves[m][paper_spread], reference_n) for m in swept},
        "skipped": {m: SKIP_REASON for m in config.methods if m not in swept},
    }


def stable_n(n_grid: Sequence[int], correlation: Sequence[float | None]) -> int | None:
    """The smallest N from which the rank correlation with the reference stays at or above
    STABLE_CORRELATION (None if it never does)."""
    found = None
    for n, c in zip(n_grid, correlation, strict=True):
        if c is not None and c >= STABLE_CORRELATION:
            found = n if found is None else found
        else:
            found = None
    return found


def fall_interval(first: Sequence[float | None], last: Sequence[float | None]) -> dict[str, Any]:
    """The mean over frames of the Gini's fall (first - last, paired by frame) with its
    CONFIDENCE t interval; frames with a missing value at either end are left out."""
    from scipy import stats

    pairs = np.array([(a, b) for a, b in zip(first, last, strict=True)
                      if a is not None and b is not None], np.float64).reshape(-1, 2)
    falls = pairs[:, 0] - pairs[:, 1]
    out = {"frames": len(falls), "mean": float(falls.mean()) if len(falls) else None,
           "low": None, "high": None}
    if len(falls) >= 2:
        half = (float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(falls) - 1))
                * float(falls.std(ddof=1)) / np.sqrt(len(falls)))
        out["low"], out["high"] = float(out["mean"] - half), float(out["mean"] + half)
    return out


def claim(method: str, curve: dict[str, Any], reference_n: int) -> dict[str, Any]:
    """Does sharpness fall as N grows (the paper's claim), and from which N do maps stop
    changing? The fall of the Gini from the smallest to the largest N with a CONFIDENCE interval
    over frames: it holds when the interval lies above zero, does not when it lies below, and
    the frames cannot tell when it holds zero. One sentence and the numbers behind it."""
    from attnjax.inspection.saliency.registry import SALIENCY_METHODS

    name = SALIENCY_METHODS[method].display
    ends = [i for i, g in enumerate(curve["gini"]) if g is not None]
    if len(ends) < 2:
        return {"holds": None, "sentence": f"{name}: too few finite maps to judge."}
    i0, i1 = ends[0], ends[-1]
    (n0, g0), (n1, g1) = (curve["n"][i0], curve["gini"][i0]), (curve["n"][i1], curve["gini"][i1])
    fall = fall_interval(curve["gini_frames"][i0], curve["gini_frames"][i1])
    low, high = fall["low"], fall["high"]
    holds = None if low is None or low <= 0 <= high else bool(low > 0)
    stable = curve["stable_n"]
    when = (f"its maps stop changing (rank correlation >= {STABLE_CORRELATION} with the "
            f"{reference_n}-sample reference) from N = {stable}" if stable is not None else
            f"its maps never reach rank correlation {STABLE_CORRELATION} with the "
            f"{reference_n}-sample reference up to N = {curve['n'][-1]}")
    shown = ("no interval" if low is None else
             f"{100 * CONFIDENCE:g}% interval over {fall['frames']} frames "
             f"[{low:+.3f}, {high:+.3f}]")
    verdict = {True: "the claim holds", False: "the claim does not hold (sharpness rises)",
               None: f"these {fall['frames']} frames cannot tell"}[holds]
    return {"holds": holds, "gini_first": g0, "gini_last": g1, "n_first": n0, "n_last": n1,
            "fall": fall, "stable_n": stable,
            "sentence": f"{name}: sharpness (Gini) goes from {g0:.3f} at N = {n0} to {g1:.3f} at "
                        f"N = {n1}, a fall of {g0 - g1:+.3f} per frame ({shown}), so {verdict}; "
                        f"{when}."}


def block_count(n_grid: Sequence[int] = N_GRID, spreads: Sequence[float] = SPREADS,
                reference_n: int = REFERENCE_N) -> int:
    """compute_saliency calls `sample_count_sweep` makes (progress total)."""
    per_spread = sum(len(b) for b in block_plan(n_grid)) + len(blocks(reference_n))
    return per_spread * len(spreads)
