"""Effect sizes, 95 % intervals and verdicts for a sweep's claims; pure functions of numbers.

Differences of means over seeds: Welch's t interval (unequal variances, sample variances
ddof=1, Welch-Satterthwaite degrees of freedom). Rank correlations: Spearman's rho with a
Fisher-z interval using the Fieller-Hartley-Pearson standard error sqrt(1.06 / (n - 3)).
Verdict against the claimed sign: the interval entirely on the claimed side -> "supported",
entirely on the other side -> "not supported", containing zero (or not computable) ->
"cannot tell with N seeds" (N runs for a correlation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

CONFIDENCE = 0.95
SUPPORTED, NOT_SUPPORTED = "supported", "not supported"


def welch_difference(b: Sequence[float], a: Sequence[float]) -> dict[str, Any]:
    """mean(b) - mean(a) with Welch's 95 % interval ([None, None] with fewer than 2 values in
    either group)."""
    from scipy import stats

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = float(b.mean() - a.mean())
    out = {"effect": diff, "low": None, "high": None, "n": [len(b), len(a)],
           "method": "difference of means, Welch's t interval"}
    if min(len(a), len(b)) < 2:
        return out
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        out["low"] = out["high"] = diff
        return out
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * se
    out.update(low=diff - half, high=diff + half, df=float(df))
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Spearman's rho of x and y with a Fisher-z 95 % interval (None for n <= 3 or a constant
    variable)."""
    from scipy import stats

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    out = {"effect": None, "low": None, "high": None, "n": [n],
           "method": "Spearman rank correlation, Fisher-z interval with the "
                     "Fieller-Hartley-Pearson standard error"}
    if n < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    rho = float(stats.spearmanr(x, y).statistic)
    out["effect"] = rho
    if n > 3:
        z = math.atanh(min(max(rho, -1 + 1e-12), 1 - 1e-12))
        half = float(stats.norm.ppf(0.5 + CONFIDENCE / 2)) * math.sqrt(1.06 / (n - 3))
        out["low"], out["high"] = math.tanh(z - half), math.tanh(z + half)
    return out


def verdict(estimate: dict[str, Any], sign: int, count: int, unit: str = "seed") -> str:
    """`sign` is the claimed direction: +1 (effect > 0) or -1 (effect < 0); `count` `unit`s
    (seeds per λ for a difference of means, runs for a correlation) name what the estimate
    rests on when it cannot tell."""
    low, high = estimate["low"], estimate["high"]
    if low is None or high is None or low <= 0 <= high:
        return f"cannot tell with {count} {unit}{'' if count == 1 else 's'}"
    return SUPPORTED if (low > 0) == (sign > 0) else NOT_SUPPORTED


def claim(text: str, estimate: dict[str, Any], sign: int, count: int, unit: str = "seed",
          **extra: Any) -> dict:
    return {"claim": text, **estimate, "claimed_sign": sign,
            "verdict": verdict(estimate, sign, count, unit), **extra}
