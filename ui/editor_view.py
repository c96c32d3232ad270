"""What the flow canvas draws: a flow document turned into the canvas element's view nodes and edges.

The canvas (`ui.elements.flow_canvas`) knows nothing of node types: each view node carries
its icon, label, named handles, problems and run state, worked out here from the registry.
A router's output handles follow its cases, so handles come from the node's data when it
parses and from the type's declared handles when it does not (a half-filled node still draws).

    nodes = view_nodes(document, registry, problems=problems, states={"ask": NodeState("running", t0)})
    edges = view_edges(document)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from executor.errors import FlowProblem, UnknownNodeType
from executor.nodes.base import Handle, NodeType
from executor.registry import Registry

#: Shown on the canvas instead of the problems' field names, which mean little on a node.
FLOW_WIDE = "flow"


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node's state in the run the canvas shows (times in epoch milliseconds, for the live clock)."""

    status: str
    started_at: float | None = None
    ended_at: float | None = None
    detail: str = ""


def handles(node_type: NodeType[Any], data: Mapping[str, Any]) -> tuple[tuple[Handle, ...], tuple[Handle, ...]]:
    """The node's input and output handles (outputs from its data where they depend on it)."""
    try:
        outputs = node_type.output_handles(node_type.parse(data))
    except ValidationError:
        outputs = node_type.outputs
    return node_type.inputs, outputs


def problems_by_node(problems: Iterable[FlowProblem] | None) -> dict[str, list[str]]:
    """Each node's problems as lines to show on it (`field: message`); flow-wide ones under `FLOW_WIDE`."""
    found: dict[str, list[str]] = {}
    for problem in problems or ():
        line = f"{problem.field}: {problem.message}" if problem.field else problem.message
        found.setdefault(problem.node_id or FLOW_WIDE, []).append(line)
    return found


def view_node(
    node: Mapping[str, Any],
    registry: Registry,
    *,
    problems: list[str] | None = None,
    state: NodeState | None = None,
    highlight: str = "",
) -> dict[str, Any]:
    """One node as the canvas draws it."""
    data = node.get("data") if isinstance(node.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    try:
        node_type: NodeType[Any] | None = registry.get(str(node["type"]))
    except UnknownNodeType:
        node_type = None
    if node_type is not None:
        inputs, outputs = handles(node_type, data)
        type_label, icon, category = node_type.meta.label, node_type.meta.icon, node_type.meta.category
    else:
        inputs, outputs = (), ()
        type_label, icon, category = f"unknown type {node['type']}", "help_outline", ""
    pinned = node.get("pinned_output") is not None
    status = state.status if state is not None else ""
    return {
        "id": node["id"],
        "position": dict(node.get("position") or {"x": 0, "y": 0}),
        "data": {
            "type": node["type"],
            "label": str(data.get("label") or node["id"]),
            "icon": icon,
            "category": category,
            "detail": (state.detail if state is not None and state.detail else type_label),
            "inputs": [{"name": h.name, "label": h.label or h.name} for h in inputs],
            "outputs": [{"name": h.name, "label": h.label or h.name} for h in outputs],
            "status": status or ("pinned" if pinned else ""),
            "started_at": state.started_at if state is not None else None,
            "ended_at": state.ended_at if state is not None else None,
            "problems": list(problems or []),
            "pinned": pinned,
            "highlight": highlight,
        },
    }


def view_nodes(
    document: Mapping[str, Any],
    registry: Registry,
    *,
    problems: Iterable[FlowProblem] | None = None,
    states: Mapping[str, NodeState] | None = None,
    highlight: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every node of `document` as the canvas draws it."""
    by_node = problems_by_node(problems)
    return [
        view_node(
            node,
            registry,
            problems=by_node.get(str(node["id"])),
            state=(states or {}).get(str(node["id"])),
            highlight=(highlight or {}).get(str(node["id"]), ""),
        )
        for node in document.get("nodes") or []
    ]


def view_edges(document: Mapping[str, Any], *, highlight: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Every edge of `document` as the canvas draws it."""
    return [
        {
            "id": edge["id"],
            "source": edge["source"],
            "source_handle": edge.get("source_handle", "out"),
            "target": edge["target"],
            "target_handle": edge.get("target_handle", "in"),
            "highlight": (highlight or {}).get(str(edge["id"]), ""),
        }
        for edge in document.get("edges") or []
    ]
