"""Deep relevance trees: from the peaks of the attention maps down to the input pixels.

For a unit u with pre-activation z_u = sum_i a_i * w_iu + b_u over the inputs i in its receptive
field (all channels of the layer below), the relevance of input i to u is a_i * w_iu; the
relevances of all of u's inputs sum to z_u - b_u. A tree starts at a local maximum of one
attention head's 7x7 map and follows the chain

    attention (y, x, head)  <- a1 (y, x, :)          1x1 conv, 512 units (ELU)
    a1 (y, x, c)            <- conv3 (y, x, :)       1x1 conv over the L2-normalised c3
    conv3 (y, x, c)         <- conv2 (3x3 field, 64 channels)
    conv2 (y, x, c)         <- conv1 (4x4 field, 32 channels)
    conv1 (y, x, c)         <- input pixels (8x8 field, 4 stacked frames)

keeping the strongest few inputs of every node (fewer the deeper it goes, as the original did;
`attnjax.inspection.presets.TREE_PRESETS["paper"]` reproduces the original's own selection).
The L2 normalisation of c3 is a per-cell scale: a conv3 node carries the normalised activation
(what a1 sees), its children explain its raw pre-activation. Every node records its layer,
(y, x, channel), activation, pre-activation, relevance to its parent, the sum of all its inputs'
relevances, and its receptive-field square in 84x84 input coordinates
(`networks.CONV_GEOMETRY`).

Everything is computed from the activations one `network.apply` returns and the parameters; only
the per-unit products activation x weight are formed here. Trees for a batch of frames are built
level by level with one gather per level for all frames and nodes at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from attnjax.errors import UserError
from attnjax.model.networks import CONV_GEOMETRY, CONV_LAYERS
from attnjax.model.networks import receptive_field as network_receptive_field

# Layers from the top of a tree to the bottom.
LAYERS = ("attention", "a1", "conv3", "conv2", "conv1", "input")
LEAF_LAYERS = LAYERS[1:]
RANK_MODES = ("signed", "abs")
ROOT_MODES = ("local", "top")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the tree: where its values are and how its units read the layer below."""

    name: str
    activation: str  # key of AgentOutput.activations ("attention": AgentOutput.attention)
    pre_activation: str | None  # key of the pre-activation; None for the input
    params: tuple[str, ...] | None  # path of the module whose kernel/bias read the layer below
    below: str | None  # the layer whose units are this layer's inputs
    kernel: int  # kernel size of that map
    stride: int
    jump: int  # distance in input pixels between neighbouring units of this layer
    rf_size: int  # side of a unit's receptive-field square in input pixels
    description: str


def _specs() -> dict[str, LayerSpec]:
    geo = {layer: g[:2] for layer, g in CONV_GEOMETRY.items()}  # (jump, rf_size)
    (_, k1, s1), (_, k2, s2), (_, k3, s3) = CONV_LAYERS
    return {
        "attention": LayerSpec("attention", "attention", "attention_logits", ("attn_logits",),
                               "a1", 1, 1, *geo["conv3"], "attention head (softmax over cells)"),
        "a1": LayerSpec("a1", "a1", "a1_pre", ("attn_hidden",), "conv3", 1, 1, *geo["conv3"],
                        "attention hidden unit (1x1 conv + ELU)"),
        "conv3": LayerSpec("conv3", "c3_normalized", "conv3_pre", ("encoder", "conv3"), "conv2",
                           k3, s3, *geo["conv3"], "conv3 unit, L2-normalised per cell"),
        "conv2": LayerSpec("conv2", "conv2", "conv2_pre", ("encoder", "conv2"), "conv1", k2, s2,
                           *geo["conv2"], "conv2 unit"),
        "conv1": LayerSpec("conv1", "conv1", "conv1_pre", ("encoder", "conv1"), "input", k1, s1,
                           *geo["conv1"], "conv1 unit"),
        "input": LayerSpec("input", "input", None, None, None, 1, 1, *geo["input"],
                           "input pixel (channel = stacked frame)"),
    }


SPECS: dict[str, LayerSpec] = _specs()


def receptive_field(layer: str, y: Any, x: Any) -> tuple[Any, Any, int]:
    """(top, left, size) of the receptive-field square of unit(s) (y, x) of any tree layer in
    84x84 input coordinates (`networks.receptive_field`; attention and a1 units are conv3's)."""
    return network_receptive_field(grid_layer(layer), y, x)


def grid_layer(layer: str) -> str:
    """The conv layer whose units a tree layer's units are: attention and a1 are 1x1 maps of
    conv3, the rest are themselves."""
    return "conv3" if layer in ("attention", "a1") else layer


# --------------------------------------------------------------------------------------------
# peaks


class Peaks(NamedTuple):
    """Local maxima of each head's attention map, strongest first; arrays [B, K, n]."""

    y: np.ndarray  # int
    x: np.ndarray  # int
    value: np.ndarray  # attention weight at the peak
    valid: np.ndarray  # bool: False where a head has fewer than n peaks (or below the ratio)


def peak_mask(attention: Any) -> np.ndarray:
    """bool [B, 7, 7, K]: cells that are local maxima of their head's map over the
    8-neighbourhood. Ties are broken by raster order, so equal neighbours never both count:
    a cell must be strictly greater than its neighbours before it (above, or left in the same
    row) and at least as great as those after it. A constant map has one peak, at (0, 0)."""
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim != 4:
        raise ValueError(f"attention must be [B, H, W, K], got shape {a.shape}")
    _, h, w, _ = a.shape
    padded = np.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    mask = np.ones(a.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            neighbour = padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w, :]
            before = dy < 0 or (dy == 0 and dx < 0)
            mask &= (a > neighbour) if before else (a >= neighbour)
    return mask


def attention_peaks(attention: Any, num_peaks: int, min_ratio: float = 0.0,
                    mode: str = "local") -> Peaks:
    """The `num_peaks` strongest local maxima of each head (mode "top": the strongest cells,
    neighbours allowed, as the original's `peak_local_max(min_distance=0)`), ranked by
    attention weight (ties: raster order). A peak weaker than `min_ratio` x its head's maximum
    is marked invalid."""
    a = np.asarray(attention, dtype=np.float64)
    mask = peak_mask(a) if mode == "local" else np.ones(a.shape, bool)
    b, h, w, k = a.shape
    flat = np.moveaxis(a, 3, 1).reshape(b, k, h * w)
    flat_mask = np.moveaxis(mask, 3, 1).reshape(b, k, h * w)
    score = np.where(flat_mask, flat, -np.inf)
    order = np.argsort(-score, axis=-1, kind="stable")[..., :num_peaks]  # [B, K, n]
    value = np.take_along_axis(flat, order, axis=-1)
    valid = np.take_along_axis(flat_mask, order, axis=-1)
    valid &= value >= min_ratio * flat.max(axis=-1, keepdims=True)
    return Peaks(y=order // w, x=order % w, value=value, valid=valid)


# --------------------------------------------------------------------------------------------
# trees


@dataclass(frozen=True)
class TreeConfig:
    """How a tree is grown.

    num_peaks: peaks per attention head (roots); branching: children kept per node at each depth
    below a peak (attention->a1, a1->conv3, conv3->conv2, conv2->conv1, conv1->input; the last
    number repeats); leaf_layer: where recursion stops; rank: "signed" keeps the largest
    (most positive) relevances, "abs" the largest in magnitude; min_peak_ratio: drop peaks
    weaker than this fraction of their head's maximum (0.1: a sharpened head's stray 1e-3
    maxima are noise that would triple the tree). Inputs with zero relevance (inactive
    units) are never kept. roots: "local" (local maxima of each head) or "top" (each head's
    highest cells, neighbours allowed, as the original's peak_local_max(min_distance=0)).
    channels: 0 = every input competes; n > 0 = as the original's `filter_k`, only the n
    channels with the largest (ranked) relevance offer children, each its `channel_peaks`
    best cells (per depth, the last number repeats), of which the `branching` best are kept.
    """

    num_peaks: int = 2
    branching: tuple[int, ...] = (4, 3, 2, 2, 2)
    leaf_layer: str = "conv1"
    rank: str = "signed"
    min_peak_ratio: float = 0.1
    roots: str = "local"
    channels: int = 0
    channel_peaks: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "branching", tuple(int(b) for b in self.branching))
        object.__setattr__(self, "channel_peaks", tuple(int(b) for b in self.channel_peaks))
        if self.roots not in ROOT_MODES:
            raise UserError(f"--roots must be one of {', '.join(ROOT_MODES)}, got {self.roots!r}")
        if self.channels < 0 or not self.channel_peaks or min(self.channel_peaks) < 1:
            raise UserError(f"--channels must be >= 0 and --channel-peaks positive counts, got "
                            f"{self.channels} and {self.channel_peaks}")
        if self.num_peaks < 1:
            raise UserError(f"--peaks must be at least 1, got {self.num_peaks}")
        if not self.branching or min(self.branching) < 1:
            raise UserError(
                f"--branching needs positive counts such as 4,3,2,2, got {self.branching}"
            )
        if self.leaf_layer not in LEAF_LAYERS:
            raise UserError(
                f"--leaf must be one of {', '.join(LEAF_LAYERS)}, got {self.leaf_layer!r}"
            )
        if self.rank not in RANK_MODES:
            raise UserError(f"--rank must be one of {', '.join(RANK_MODES)}, got {self.rank!r}")
        if not 0.0 <= self.min_peak_ratio <= 1.0:
            raise UserError(f"--min-peak-ratio must be in [0, 1], got {self.min_peak_ratio}")

    @property
    def depth(self) -> int:
        """Number of layers below the peak."""
        return LAYERS.index(self.leaf_layer)

    def keep(self, depth: int) -> int:
        """Children kept by a node `depth` levels below the peak (0: the peak itself)."""
        return self.branching[min(depth, len(self.branching) - 1)]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def cells(self, depth: int) -> int:
        """With `channels`: candidate cells per channel of a node `depth` levels below the peak."""
        return self.channel_peaks[min(depth, len(self.channel_peaks) - 1)]


@dataclass(frozen=True)
class Node:
    """One unit of a relevance tree."""

    id: str  # path: "h<head>p<rank>" for a peak, then ".<child rank>" per level
    layer: str  # one of LAYERS
    y: int  # position in the layer's own grid
    x: int
    channel: int  # head for "attention", stacked frame for "input"
    activation: float  # attention weight / post-nonlinearity value (conv3: L2-normalised)
    pre_activation: float | None  # logit / value before the nonlinearity; None for pixels
    relevance: float | None  # activation x weight into the parent; None for a peak
    input_total: float | None  # sum of the relevances of all its inputs = pre - bias
    rf: tuple[int, int, int]  # receptive field (top, left, size) in 84x84 input pixels
    children: tuple[Node, ...] = ()

    def walk(self) -> Iterator[Node]:
        """This node and its descendants, depth first, parents before children."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class RelevanceTree:
    """The relevance trees of one frame: one root per attention peak, head by head, strongest
    first within a head."""

    roots: tuple[Node, ...]
    attention: np.ndarray = field(compare=False)  # [7, 7, K] attention of the frame
    config: TreeConfig = TreeConfig()

    def nodes(self) -> Iterator[Node]:
        for root in self.roots:
            yield from root.walk()

    @property
    def num_nodes(self) -> int:
        return sum(1 for _ in self.nodes())


def _params_of(params: Mapping[str, Any], path: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    module = params
    for name in path:
        module = module[name]
    return np.asarray(module["kernel"]), np.asarray(module["bias"])


def _channel_candidates(key: np.ndarray, channels: int, cells: int) -> np.ndarray:
    """bool [N, k*k*C] of N nodes' inputs [N, k, k, C] ranked by `key`: the `cells` highest
    cells of each of the `channels` channels with the highest maximum (the original's
    k_means.filter_k, channel by channel; ties: lower index)."""
    n, c = key.shape[0], key.shape[-1]
    flat = key.reshape(n, -1, c)  # [N, k*k, C]
    top = np.argsort(-flat.max(axis=1), axis=1, kind="stable")[:, :channels]  # [N, channels]
    chosen = np.zeros((n, c), bool)
    np.put_along_axis(chosen, top, True, axis=1)
    rank = np.argsort(np.argsort(-flat, axis=1, kind="stable"), axis=1, kind="stable")
    return ((rank < cells) & chosen[:, None, :]).reshape(n, -1)


def _value(activations: Mapping[str, np.ndarray], attention: np.ndarray, key: str) -> np.ndarray:
    return attention if key == "attention" else activations[key]


def _contributions(
    activations: Mapping[str, np.ndarray],
    params: Mapping[str, Any],
    layer: str,
    frame: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    channel: np.ndarray,
) -> np.ndarray:
    """Relevance of every input of N units of `layer`: float64 [N, k, k, C_below]."""
    spec = SPECS[layer]
    if spec.below is None:
        raise ValueError("input pixels have no inputs")
    kernel, _ = _params_of(params, spec.params)  # [k, k, C_below, C]
    below = activations[SPECS[spec.below].activation]  # [B, H, W, C_below]
    offsets = np.arange(spec.kernel)
    rows = y[:, None] * spec.stride + offsets  # [N, k]
    cols = x[:, None] * spec.stride + offsets
    patch = below[frame[:, None, None], rows[:, :, None], cols[:, None, :]]  # [N, k, k, C_below]
    weights = np.moveaxis(kernel, -1, 0)[channel]  # [N, k, k, C_below]
    return patch.astype(np.float64) * weights.astype(np.float64)


def unit_contributions(
    activations: Mapping[str, Any],
    params: Mapping[str, Any],
    layer: str,
    frame: int,
    y: int,
    x: int,
    channel: int,
) -> np.ndarray:
    """Relevance (activation x weight) of every input of one unit: [k, k, C_below]. Summed,
    it equals the unit's pre-activation minus its bias."""
    acts = {key: np.asarray(v) for key, v in activations.items()}
    idx = [np.asarray([v]) for v in (frame, y, x, channel)]
    return _contributions(acts, params, layer, *idx)[0]


def unit_bias(params: Mapping[str, Any], layer: str, channel: int) -> float:
    """Bias b_u of one unit of `layer` (the map from the layer below)."""
    _, bias = _params_of(params, SPECS[layer].params)
    return float(bias[channel])


@dataclass
class _Level:
    """The nodes of one depth for all frames, as flat arrays."""

    layer: str
    frame: np.ndarray
    y: np.ndarray
    x: np.ndarray
    channel: np.ndarray
    parent: np.ndarray  # index into the previous level (-1 for peaks)
    ids: list[str]
    relevance: np.ndarray  # NaN for peaks
    input_total: np.ndarray | None = None  # filled when the level is expanded


def relevance_trees(
    output: Any, params: Mapping[str, Any], config: TreeConfig | None = None
) -> list[RelevanceTree]:
    """Relevance trees of every frame of one forward pass.

    output: the `AgentOutput` of `network.apply` on a batch of B frames (attention network);
    params: the network's parameters. Returns B `RelevanceTree`s. Pure: same inputs, same trees.
    """
    config = config or TreeConfig()
    if output.attention is None:
        raise UserError(
            "relevance trees start at attention peaks, but this agent's network has no attention "
            "(network 'nature'); use a run trained with --network attention"
        )
    attention = np.asarray(output.attention)
    acts = {key: np.asarray(v) for key, v in output.activations.items()}
    num_frames = attention.shape[0]
    peaks = attention_peaks(attention, config.num_peaks, config.min_peak_ratio, config.roots)

    frame, head, rank = np.nonzero(peaks.valid)  # row-major: frame, then head, then rank
    levels = [
        _Level(
            layer="attention",
            frame=frame,
            y=peaks.y[frame, head, rank],
            x=peaks.x[frame, head, rank],
            channel=head,
            parent=np.full(frame.shape, -1),
            ids=[f"h{h}p{r}" for h, r in zip(head.tolist(), rank.tolist(), strict=True)],
            relevance=np.full(frame.shape, np.nan),
        )
    ]
    for depth in range(config.depth):
        level = levels[-1]
        spec = SPECS[level.layer]
        contrib4 = _contributions(acts, params, level.layer, level.frame, level.y, level.x,
                                  level.channel)  # [N, k, k, C_below]
        contrib = contrib4.reshape(len(level.frame), -1)
        level.input_total = contrib.sum(axis=1)
        key = contrib if config.rank == "signed" else np.abs(contrib)
        if config.channels:
            candidates = _channel_candidates(key.reshape(contrib4.shape), config.channels,
                                             config.cells(depth))
            key = np.where(candidates, key, -np.inf)
        keep = min(config.keep(depth), contrib.shape[1])
        order = np.argsort(-key, axis=1, kind="stable")[:, :keep]  # ties: lower flat index
        chosen = np.take_along_axis(contrib, order, axis=1)
        # inactive inputs explain nothing; non-candidates are never kept
        kept = (chosen != 0.0) & (np.take_along_axis(key, order, axis=1) > -np.inf)
        parent, child_rank = np.nonzero(kept)
        dy, dx, cin = np.unravel_index(order[parent, child_rank], contrib4.shape[1:])
        levels.append(
            _Level(
                layer=spec.below,
                frame=level.frame[parent],
                y=level.y[parent] * spec.stride + dy,
                x=level.x[parent] * spec.stride + dx,
                channel=cin,
                parent=parent,
                ids=[f"{level.ids[p]}.{r}"
                     for p, r in zip(parent.tolist(), child_rank.tolist(), strict=True)],
                relevance=chosen[parent, child_rank],
            )
        )

    # assemble nested nodes bottom-up: each level's nodes, grouped by parent, become the
    # children of the level above
    grouped: list[list[Node]] | None = None
    for index in range(len(levels) - 1, -1, -1):
        level = levels[index]
        spec = SPECS[level.layer]
        where = (level.frame, level.y, level.x, level.channel)
        act = _value(acts, attention, spec.activation)[where]
        pre = acts[spec.pre_activation][where] if spec.pre_activation else None
        top, left, size = receptive_field(level.layer, level.y, level.x)
        nodes = [
            Node(
                id=level.ids[i],
                layer=level.layer,
                y=int(level.y[i]),
                x=int(level.x[i]),
                channel=int(level.channel[i]),
                activation=float(act[i]),
                pre_activation=None if pre is None else float(pre[i]),
                relevance=_maybe(level.relevance[i]),
                input_total=None if level.input_total is None else float(level.input_total[i]),
                rf=(int(top[i]), int(left[i]), int(size)),
                children=tuple(grouped[i]) if grouped is not None else (),
            )
            for i in range(len(level.frame))
        ]
        owners = level.parent if index > 0 else level.frame
        slots = len(levels[index - 1].frame) if index > 0 else num_frames
        grouped = [[] for _ in range(slots)]
        for node, owner in zip(nodes, owners.tolist(), strict=True):
            grouped[owner].append(node)

    return [
        RelevanceTree(roots=tuple(grouped[f]), attention=attention[f], config=config)
        for f in range(num_frames)
    ]


def _maybe(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
