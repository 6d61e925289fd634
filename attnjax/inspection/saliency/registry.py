"""The saliency methods attnjax knows: one `SaliencyMethod` entry each, read by every consumer.

Adding a method is one entry in SALIENCY_METHODS: its name (the --methods value and the .npz
key), display name, colour in the report's figures, the evidence it is made from, its function
(evidence, x) -> [4, 84, 84] map, a one-line summary (for --help and the .npz key table) and
whether --methods includes it by default (perturbation does not: its 289 forward passes per
frame cost more than the other three methods together).
The export (`visualize.py saliency --methods`), the video overlay (`video --saliency`), the
metrics report's flags, tables and plots and the flags' choices all read this table.

Evidence is what the batched engine (`attnjax.inspection.saliency.methods`) gathers per frame,
once for all the methods that share it:

- "gradient": the un-noised frame's input gradient, squared (or abs or signed, as the
  config's magnitude), [4, 84, 84];
- "noise_moments": (mean, variance) over the N noisy copies of those gradient maps, each
  [4, 84, 84]. A method of noise samples is a function of these two, which is what lets the
  sample-count sweep (`attnjax.metrics.samples`) merge blocks of samples exactly;
- "perturbation": [17, 17] grid of the target's change under Greydanus et al.'s blur
  perturbations (`attnjax.inspection.saliency.perturbation`).

x, the frame [4, 84, 84] in [0, 1], is passed too, for methods that weigh the input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EVIDENCE = ("gradient", "noise_moments", "perturbation")


@dataclass(frozen=True)
class SaliencyMethod:
    name: str
    display: str
    colour: str  # matplotlib colour in the report's figures; not a head's (red, blue)
    evidence: str  # one of EVIDENCE
    fn: Callable[[Any, Any], Any]  # (evidence, x [4, 84, 84]) -> [4, 84, 84]
    summary: str
    default: bool = True  # in --methods's default

    @property
    def noise_samples(self) -> bool:
        """Whether the method needs the N noisy copies (--samples, --spread)."""
        return self.evidence == "noise_moments"


def _perturbation_map(scores: Any, x: Any) -> Any:
    """[17, 17] grid scores -> [4, 84, 84]: the upsampled map, the same in every stacked frame
    (the mask covers all four at the same place)."""
    import jax.numpy as jnp

    from attnjax.inspection.saliency.perturbation import upsample

    return jnp.broadcast_to(upsample(scores, x.shape[-1]), x.shape)


SALIENCY_METHODS: dict[str, SaliencyMethod] = {m.name: m for m in (
    SaliencyMethod("gradient", "Gradient", "#8c564b", "gradient", lambda g, x: g,
                   "input gradient (Simonyan et al. 2014) w.r.t. obs / 255, squared"),
    SaliencyMethod("smoothgrad", "SmoothGrad", "#ff7f0e", "noise_moments",
                   lambda moments, x: moments[0],
                   "mean squared gradient over noisy copies (Smilkov et al. 2017)"),
    SaliencyMethod("vargrad", "VarGrad", "#2ca02c", "noise_moments",
                   lambda moments, x: moments[1],
                   "variance of the squared gradients over noisy copies (Adebayo et al. 2018)"),
    SaliencyMethod("perturbation", "Perturbation", "#9467bd", "perturbation", _perturbation_map,
                   "squared change of the target when a blurred Gaussian patch replaces each "
                   "point of a 5-pixel grid (Greydanus et al. 2018), no gradients", default=False),
)}
METHODS = tuple(SALIENCY_METHODS)
DEFAULT_METHODS = tuple(m.name for m in SALIENCY_METHODS.values() if m.default)


def method(name: str) -> SaliencyMethod:
    return SALIENCY_METHODS[name]


def methods_help() -> str:
    """'gradient (squared input gradient ...), smoothgrad (...)': for --help texts."""
    return "; ".join(f"{m.name}: {m.summary}" for m in SALIENCY_METHODS.values())
