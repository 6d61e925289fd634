"""`--preset attnjax|paper`: attnjax's defaults, the paper code's settings, the flags they set.

The original code (github.com/dniku/rl-attention) made its saliency maps with `enjoy.py` and its
relevance trees with `DeepSaliencyTreeRenderer2` in `colab.ipynb` plus `k_means.filter_k`. Its
settings are offered as the `paper` preset of `visualize.py saliency`, `video --saliency` and
`tree`; `attnjax` keeps attnjax's defaults (docs/design.md says why they differ). A flag given
explicitly always wins over the preset (`attnjax.cli.preset_values`).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from attnjax.cli import (
    add_preset_argument,
    comma_list,
    counts,
    non_negative_int,
    positive_int,
    preset_values,
)
from attnjax.inspection.relevance.tree import LEAF_LAYERS, RANK_MODES, ROOT_MODES, SPECS, TreeConfig
from attnjax.inspection.saliency.config import LAYERS, STACKS, TARGETS, SaliencyConfig
from attnjax.inspection.saliency.registry import DEFAULT_METHODS, METHODS, methods_help

# saliency (SaliencyConfig fields). attnjax: SaliencyConfig's own defaults. The paper: target SUM
# of the pre-softmax attention logits (the graph's `a2`), the newest stacked frame's map
# (`[..., -1]`); its 50 noisy copies, sigma = 0.15 x (max - min) of the input and squared
# gradients are attnjax's defaults too.
_DEFAULTS = SaliencyConfig()
SALIENCY_PRESETS = {
    "attnjax": {k: getattr(_DEFAULTS, k)
                for k in ("target", "layer", "samples", "spread", "magnitude", "stack")},
}
SALIENCY_PRESETS["paper"] = {**SALIENCY_PRESETS["attnjax"], "target": "sum",
                             "layer": "attention_logits", "stack": "newest"}


def paper_tree_counts(layer: str) -> tuple[int, int]:
    """(k, top_x) of the original for nodes found in `layer`: k = floor(2 e^(0.06 size)) peaks
    per channel and top_x = floor(4 e^(-0.1 size) + 2) nodes kept, size = the kernel size with
    which that layer reads the layer below (a1 1, conv3 3, conv2 4, conv1 8)."""
    size = SPECS[layer].kernel
    return math.floor(2 * math.exp(0.06 * size)), math.floor(4 * math.exp(-0.1 * size) + 2)


def _paper_tree() -> dict[str, object]:
    below = ("a1", "conv3", "conv2", "conv1")  # the layers its trees' children were found in
    return {
        # roots: each head's k = 2 highest cells (peak_local_max, min_distance=0); the original
        # ranked them by value^2 and kept top_x = 5 >= 2 heads x 2, i.e. all of them
        "num_peaks": paper_tree_counts("attention")[0], "roots": "top", "min_peak_ratio": 0.0,
        # children: |a w| / sum |a w| ranked (the same order as |a w|); the 3 channels with
        # the largest maximum, k cells each, top_x of them kept; leaves in conv1
        "rank": "abs", "channels": 3,
        "channel_peaks": tuple(paper_tree_counts(layer)[0] for layer in below),
        "branching": tuple(paper_tree_counts(layer)[1] for layer in below),
        "leaf_layer": "conv1",
    }


TREE_PRESETS = {"attnjax": TreeConfig().to_dict(), "paper": _paper_tree()}


# --------------------------------------------------------------------------------------------
# the flags presets set


def _both(key: str) -> str:
    """'(attnjax preset: max_sum; paper: sum)' or '(both presets: 50)' for a --help text."""
    a, p = SALIENCY_PRESETS["attnjax"][key], SALIENCY_PRESETS["paper"][key]
    return f"(attnjax preset: {a}; paper: {p})" if a != p else f"(both presets: {a})"


def add_saliency_arguments(parser: Any, spread_of: str, *, methods: bool = True,
                           several_targets: bool = False) -> None:
    """The saliency flags, defined once for every tool that computes saliency
    (`visualize.py saliency`, `video --saliency`, `metrics`): preset, methods (`methods`:
    False for a tool that picks its one method itself), target (`several_targets`: a
    comma-separated list), layer, samples, spread, stack, memory budget. spread_of: what the
    noise range is measured over. The flags a preset sets default to None;
    `saliency_config_from_args` fills them in."""
    add_preset_argument(parser, "--target, --layer, --samples, --spread, --stack",
                        "as the original's enjoy.py: --target sum --layer attention_logits "
                        "--stack newest, 50 samples, spread 0.15, squared gradients")
    if methods:
        parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                            help=f"comma-separated, any of {', '.join(METHODS)} (default "
                                 f"{','.join(DEFAULT_METHODS)}). {methods_help()}")
    if several_targets:
        parser.add_argument("--target", default=None,
                            help=f"comma-separated targets, any of {', '.join(TARGETS)} "
                                 "(default: the preset's target and action; attnjax preset: "
                                 f"{SALIENCY_PRESETS['attnjax']['target']},action)")
    else:
        parser.add_argument("--target", default=None, choices=TARGETS,
                            help=f"scalar to explain {_both('target')}")
    parser.add_argument("--layer", default=None, choices=LAYERS,
                        help="attention (softmax weights) or attention_logits (pre-softmax) "
                             f"{_both('layer')}")
    parser.add_argument("--samples", type=int, default=None,
                        help="noisy copies per frame for the methods of noise samples "
                             f"{_both('samples')}")
    parser.add_argument("--spread", type=float, default=None,
                        help=f"noise std as a fraction of {spread_of} {_both('spread')}")
    parser.add_argument("--stack", default=None, choices=STACKS,
                        help=f"map shown of the 4 stacked frames: max over them or the newest "
                             f"{_both('stack')}")
    parser.add_argument("--memory-budget-mb", type=float, default=_DEFAULTS.memory_budget_mb,
                        help="memory one compiled chunk may use per device; CPU host devices "
                             f"share theirs (default {_DEFAULTS.memory_budget_mb:g})")


def parse_methods(text: str) -> tuple[str, ...]:
    """--methods 'a,b' -> ('a', 'b'); () for none. SaliencyConfig checks the names."""
    try:
        return comma_list(text)
    except ValueError:
        return ()


def saliency_config_from_args(args: Any, **fields: Any) -> SaliencyConfig:
    """SaliencyConfig of the shared flags: the --preset's values under the flags given, plus
    `fields` (methods, sigma scope, ... of the calling tool)."""
    return SaliencyConfig(**preset_values(args, SALIENCY_PRESETS),
                          memory_budget_mb=args.memory_budget_mb, **fields)


def add_tree_arguments(parser: argparse.ArgumentParser) -> None:
    """`visualize.py tree`'s --preset and the tree flags it sets (defaults None, each flag's
    dest a TreeConfig field: see `tree_config_from_args`)."""
    attnjax, paper = TREE_PRESETS["attnjax"], TREE_PRESETS["paper"]

    def both(key: str) -> str:  # "(attnjax preset: 4,3,2,2,2; paper: 5,4,4,3)"
        a, p = (",".join(map(str, v)) if isinstance(v, list | tuple) else v
                for v in (attnjax[key], paper[key]))
        return f"(attnjax preset: {a}; paper: {p})" if a != p else f"(both presets: {a})"

    add_preset_argument(parser, "the tree flags below", "the original colab.ipynb's "
                        "DeepSaliencyTreeRenderer2 with k_means.filter_k, its channel bug fixed")
    parser.add_argument("--peaks", type=positive_int, default=None, dest="num_peaks",
                        help=f"attention peaks per head {both('num_peaks')}")
    parser.add_argument("--roots", choices=ROOT_MODES, default=None,
                        help="local: local maxima of each head; top: each head's highest cells, "
                             f"neighbours allowed {both('roots')}")
    parser.add_argument("--branching", type=counts, default=None,
                        help="children kept per node at each depth below a peak, last repeats "
                             f"{both('branching')}")
    parser.add_argument("--channels", type=non_negative_int, default=None,
                        help="0: every input competes; n: only the n channels with the largest "
                             f"relevance offer children {both('channels')}")
    parser.add_argument("--channel-peaks", type=counts, default=None,
                        help="with --channels: candidate cells per channel at each depth, last "
                             f"repeats {both('channel_peaks')}")
    parser.add_argument("--leaf", choices=LEAF_LAYERS, default=None, dest="leaf_layer",
                        help=f"deepest layer of the tree {both('leaf_layer')}")
    parser.add_argument("--rank", choices=RANK_MODES, default=None,
                        help="signed: keep the most positive relevances; abs: the largest in "
                             f"magnitude, inhibition included {both('rank')}")
    parser.add_argument("--min-peak-ratio", type=float, default=None,
                        help="drop peaks weaker than this fraction of their head's maximum "
                             f"{both('min_peak_ratio')}")


def tree_config_from_args(args: argparse.Namespace) -> TreeConfig:
    """TreeConfig of `visualize.py tree`: the --preset's values under the flags given."""
    return TreeConfig(**preset_values(args, TREE_PRESETS))
