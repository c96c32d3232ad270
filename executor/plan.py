"""A flow version made ready to run: every node's data parsed by its type, edges indexed both ways.

Built once per version (`Plan.build`) and shared by every run of it; `NodeState` is the
per-run part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from core.errors import problems_of
from executor.document import FlowDocument, FlowEdge
from executor.errors import ExecutorError, FlowInvalid, FlowProblem
from executor.nodes.base import NodeData, NodeType
from executor.registry import Registry

if TYPE_CHECKING:
    from executor.engine import NodeState


@dataclass(frozen=True, slots=True)
class PlannedNode:
    """One node of a plan: its type, parsed data and edges."""

    id: str
    type: NodeType[Any]
    data: NodeData
    incoming: tuple[FlowEdge, ...]
    outgoing: tuple[FlowEdge, ...]


@dataclass(frozen=True)
class Plan:
    """A flow version made ready to run: node data parsed, edges indexed. Build once per version."""

    nodes: Mapping[str, PlannedNode]
    order: tuple[str, ...]  # the document's order

    @classmethod
    def build(cls, document: FlowDocument, registry: Registry) -> Plan:
        """Parse every node's data with its type; `FlowInvalid` if that fails (validate first for the rest)."""
        problems: list[FlowProblem] = []
        incoming: dict[str, list[FlowEdge]] = {node.id: [] for node in document.nodes}
        outgoing: dict[str, list[FlowEdge]] = {node.id: [] for node in document.nodes}
        for edge in document.edges:
            if edge.source in outgoing and edge.target in incoming:
                outgoing[edge.source].append(edge)
                incoming[edge.target].append(edge)
        nodes: dict[str, PlannedNode] = {}
        for node in document.nodes:
            try:
                node_type = registry.get(node.type)
                data = node_type.parse(node.data)
            except ExecutorError as exc:
                problems.append(FlowProblem(node.id, "type", str(exc)))
                continue
            except ValidationError as exc:
                problems.extend(FlowProblem(node.id, f"data.{p.field}", p.message) for p in problems_of(exc))
                continue
            nodes[node.id] = PlannedNode(node.id, node_type, data, tuple(incoming[node.id]), tuple(outgoing[node.id]))
        if problems:
            raise FlowInvalid(problems)
        return cls(nodes=nodes, order=tuple(node.id for node in document.nodes))

    def outputs(self, states: Mapping[str, NodeState]) -> dict[str, Any]:
        """The execution's outputs: each node with a `result_key` (the `output` nodes) that completed."""
        result: dict[str, Any] = {}
        for node_id in self.order:
            node = self.nodes[node_id]
            state = states.get(node_id)
            key = node.type.result_key(node.data)
            if key is not None and state is not None and state.passes:
                result[key] = state.output
        return result
