"""What a saliency computation is asked for: the methods, targets and layers attnjax knows, and
`SaliencyConfig`, validated on construction (one-line UserErrors naming the flag).

Why its own module: the command lines, presets and the metrics report build and check configs
without building any saliency program; `attnjax.inspection.saliency.methods` re-exports all of
it. The methods themselves: `attnjax.inspection.saliency.registry`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from attnjax.errors import UserError
from attnjax.inspection.saliency.perturbation import points_per_frame
from attnjax.inspection.saliency.registry import DEFAULT_METHODS, METHODS, SALIENCY_METHODS

ATTENTION_TARGETS = ("max", "sum_max", "max_sum", "sum")
TARGETS = (*ATTENTION_TARGETS, "action", "value")
LAYERS = ("attention", "attention_logits")
MAGNITUDES = ("square", "abs", "signed")
SIGMA_SCOPES = ("batch", "frame")
STACKS = ("max", "newest")  # how a map of the 4 stacked frames becomes the one map shown


@dataclass(frozen=True)
class SaliencyConfig:
    """What to compute.

    methods: names in the registry (`METHODS`). target: see the methods module's docstring.
    layer: attention (softmax weights) or attention_logits. samples: N noisy copies. spread:
    sigma as a fraction of the input's range. magnitude: square (as the paper), abs or signed
    (the raw gradient; SmoothGrad then averages signed gradients) of the gradient.
    sigma_scope: batch (one sigma from the range over all frames given; the original's batch
    was the 9 envs of one step) or frame (each frame's own range). clean_first: make the first
    of the N copies noise-free, as the original code did. stack: the map `aggregate` shows of
    the 4 stacked frames: their max, or the newest (as the original drew it).
    memory_budget_mb: memory one chunk may use on each device (host devices of a CPU share it).
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    target: str = "max_sum"
    layer: str = "attention"
    samples: int = 50
    spread: float = 0.15
    magnitude: str = "square"
    sigma_scope: str = "batch"
    clean_first: bool = False
    stack: str = "max"
    memory_budget_mb: float = 2048.0

    def __post_init__(self) -> None:
        methods = tuple(dict.fromkeys(self.methods))  # de-duplicated, order kept
        object.__setattr__(self, "methods", methods)
        if not methods:
            raise UserError(f"--methods needs at least one of {', '.join(METHODS)}")
        for method in methods:
            if method not in METHODS:
                raise UserError(
                    f"unknown saliency method {method!r}; choose from {', '.join(METHODS)}"
                )
        _check_choice("--target", self.target, TARGETS)
        _check_choice("--layer", self.layer, LAYERS)
        _check_choice("--magnitude", self.magnitude, MAGNITUDES)
        _check_choice("--sigma-scope", self.sigma_scope, SIGMA_SCOPES)
        _check_choice("--stack", self.stack, STACKS)
        if self.samples < 1:
            raise UserError(f"--samples must be at least 1, got {self.samples}")
        if not (math.isfinite(self.spread) and self.spread >= 0):
            raise UserError(f"--spread must be a finite number >= 0, got {self.spread}")
        if not (math.isfinite(self.memory_budget_mb) and self.memory_budget_mb > 0):
            raise UserError(
                f"--memory-budget-mb must be a positive number, got {self.memory_budget_mb}"
            )

    def needs(self, evidence: str) -> bool:
        """Whether any method asked for is made from this evidence (registry.EVIDENCE)."""
        return any(SALIENCY_METHODS[m].evidence == evidence for m in self.methods)

    @property
    def noisy(self) -> bool:
        """Whether any method needs the N noisy copies."""
        return self.needs("noise_moments")

    @property
    def gradients_per_frame(self) -> int:
        """Input gradients evaluated per frame: the clean one and/or the N noisy ones."""
        return self.needs("gradient") + (self.samples if self.noisy else 0)

    @property
    def forwards_per_frame(self) -> int:
        """Forward passes of perturbed frames per frame (no gradients): 289 for perturbation."""
        return points_per_frame() if self.needs("perturbation") else 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["methods"] = list(self.methods)
        d["input_space"] = "obs / 255 in [0, 1], [4, 84, 84]"
        return d


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")
