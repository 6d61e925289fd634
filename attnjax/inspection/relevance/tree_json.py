"""Relevance trees as JSON: the `--json` file of `visualize.py tree` and the viewer's data.

Why apart from `attnjax.inspection.relevance.tree`: that module grows the trees; this one only
writes and reads them (schema version, rounding, the layer table the viewer's legend shows), so the
format can change without touching the maths.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attnjax.errors import UserError
from attnjax.inspection.relevance.tree import SPECS, Node, RelevanceTree, TreeConfig, grid_layer
from attnjax.model.networks import CONV_GEOMETRY

SCHEMA_VERSION = 1

def _round(value: float | None, digits: int | None) -> float | None:
    if value is None or digits is None:
        return value
    return float(f"{value:.{digits}g}")


def node_to_dict(node: Node, digits: int | None = None) -> dict[str, Any]:
    """A node and its subtree as plain JSON types; `digits` rounds floats to that many
    significant digits (None: full float precision)."""
    return {
        "id": node.id,
        "layer": node.layer,
        "y": node.y,
        "x": node.x,
        "channel": node.channel,
        "activation": _round(node.activation, digits),
        "pre_activation": _round(node.pre_activation, digits),
        "relevance": _round(node.relevance, digits),
        "input_total": _round(node.input_total, digits),
        "rf": list(node.rf),
        "children": [node_to_dict(c, digits) for c in node.children],
    }


def tree_to_dict(tree: RelevanceTree, digits: int | None = None) -> dict[str, Any]:
    """One frame's trees as plain JSON types (see `trees_to_json`)."""
    return {
        "config": tree.config.to_dict(),
        "attention": [[[_round(float(v), digits) for v in cell] for cell in row]
                      for row in np.asarray(tree.attention).tolist()],
        "roots": [node_to_dict(r, digits) for r in tree.roots],
    }


def node_from_dict(d: Mapping[str, Any]) -> Node:
    return Node(
        id=d["id"], layer=d["layer"], y=d["y"], x=d["x"], channel=d["channel"],
        activation=d["activation"], pre_activation=d["pre_activation"],
        relevance=d["relevance"], input_total=d["input_total"], rf=tuple(d["rf"]),
        children=tuple(node_from_dict(c) for c in d["children"]),
    )


def tree_from_dict(d: Mapping[str, Any]) -> RelevanceTree:
    config = TreeConfig(**d["config"])
    return RelevanceTree(
        roots=tuple(node_from_dict(r) for r in d["roots"]),
        attention=np.asarray(d["attention"], dtype=np.float32),
        config=config,
    )


def layer_table() -> list[dict[str, Any]]:
    """Geometry of every layer, for documentation and the viewer's legend."""
    return [
        {"name": s.name, "grid": CONV_GEOMETRY[grid_layer(s.name)].grid, "jump": s.jump,
         "rf_size": s.rf_size, "description": s.description}
        for s in SPECS.values()
    ]


def trees_to_json(trees: Sequence[RelevanceTree], digits: int | None = None, indent: int | None
                  = None, **meta: Any) -> str:
    """JSON document of the trees of several frames: {"schema": 1, "layers": [...],
    "meta": {...}, "frames": [tree, ...]}."""
    doc = {
        "schema": SCHEMA_VERSION,
        "layers": layer_table(),
        "meta": meta,
        "frames": [tree_to_dict(t, digits) for t in trees],
    }
    return json.dumps(doc, indent=indent, allow_nan=False)


def trees_from_json(text: str) -> list[RelevanceTree]:
    doc = json.loads(text)
    if doc.get("schema") != SCHEMA_VERSION:
        raise UserError(f"relevance-tree JSON has schema {doc.get('schema')}, expected "
                        f"{SCHEMA_VERSION}; regenerate it with this version of attnjax")
    return [tree_from_dict(f) for f in doc["frames"]]
