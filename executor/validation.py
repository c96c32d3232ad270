"""Whether a well-formed flow document makes sense, as a list of `{node_id, field, message}` problems.

`executor.document.parse_document` checks the shape; this checks the meaning: node types
exist and their data parses, edges join existing handles, the graph has no cycle,
templates and expressions parse and use only upstream nodes and declared inputs, saved
things (providers, tools, flows) exist, and no subflow calls back into this flow.
Everything a node type knows about itself comes through its hooks; nothing here names a type
except `input`, of which a flow has at most one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from core.errors import problems_of
from executor.document import FlowDocument, FlowEdge, FlowNode
from executor.errors import FlowProblem, TemplateError
from executor.expressions import compile_expression, expression_references
from executor.graphs import shortest_path, strongly_connected
from executor.nodes.base import Catalog, NodeData, NodeType
from executor.registry import Registry
from executor.templates import compile_template, template_references

_CATALOG_WORDS = {
    "provider": ("LLM provider", "choose one of this workspace's providers, or leave it empty for the default"),
    "tool": ("tool", "choose one of this workspace's saved tools"),
    "flow": ("flow", "choose one of this workspace's flows"),
    "crew": ("crew", "choose one of this workspace's crews"),
    "agent": ("agent", "choose one of this workspace's agents, or describe the agent in the node"),
}


@dataclass
class _Node:
    """A node whose type is known, with its data parsed (None when the data is invalid)."""

    node: FlowNode
    type: NodeType[Any]
    data: NodeData | None


def validate_document(
    doc: FlowDocument,
    registry: Registry,
    catalog: Catalog,
    *,
    flow_id: str | None = None,
    subflow_graph: Mapping[str, set[str]] | None = None,
) -> list[FlowProblem]:
    """Every problem of the flow, sorted by node (in document order) then field; empty when it is valid.

    `flow_id` is this flow's own id and `subflow_graph` maps each flow id to the ids of the
    flows its latest version calls; with both, a subflow that would call back into this
    flow is reported.
    """
    problems: list[FlowProblem] = []
    node_ids = _check_nodes(doc, problems)
    typed = _parse_nodes(doc, registry, problems)
    edges = _check_edges(doc, node_ids, typed, problems)
    _check_cycles(doc, edges, problems)
    ancestors = _Ancestors(edges)
    declared = {spec.name for spec in doc.inputs}
    result_keys: dict[str, str] = {}
    for node_id, entry in typed.items():
        if entry.data is None:
            continue
        key = entry.type.result_key(entry.data)
        if key is not None and key in result_keys:
            message = f"node '{result_keys[key]}' already returns an output named {key!r}; give this one another name"
            problems.append(FlowProblem(node_id, "data.name", message))
        elif key is not None:
            result_keys[key] = node_id
        _check_scripts(node_id, entry, node_ids, declared, ancestors, problems)
        _check_references(node_id, entry, catalog, flow_id, subflow_graph or {}, problems)
        problems.extend(
            FlowProblem(node_id, field, message) for field, message in entry.type.check(entry.data, catalog)
        )
    return _sorted(doc, problems)


def _check_nodes(doc: FlowDocument, problems: list[FlowProblem]) -> set[str]:
    """Duplicate ids and extra input nodes; returns the set of node ids."""
    seen: set[str] = set()
    input_node: str | None = None
    for node in doc.nodes:
        if node.id in seen:
            problems.append(
                FlowProblem(node.id, "id", f"node id '{node.id}' is used by more than one node; give each its own id")
            )
        seen.add(node.id)
        if node.type == "input":
            if input_node is not None and input_node != node.id:
                message = f"a flow has at most one input node and '{input_node}' is one already; remove this one"
                problems.append(FlowProblem(node.id, "type", message))
            input_node = input_node or node.id
    return seen


def _parse_nodes(doc: FlowDocument, registry: Registry, problems: list[FlowProblem]) -> dict[str, _Node]:
    """The first node of each id whose type is known, with its data parsed; unknown types and bad data reported."""
    typed: dict[str, _Node] = {}
    for node in doc.nodes:
        if node.id in typed:
            continue
        if node.type not in registry:
            known = ", ".join(node_type.type for node_type in registry)
            message = f"there is no node type '{node.type}'; use one of: {known}"
            problems.append(FlowProblem(node.id, "type", message))
            continue
        node_type = registry.get(node.type)
        try:
            data: NodeData | None = node_type.parse(node.data)
        except ValidationError as exc:
            data = None
            problems.extend(FlowProblem(node.id, f"data.{p.field}", p.message) for p in problems_of(exc))
        typed[node.id] = _Node(node, node_type, data)
    return typed


def _check_edges(
    doc: FlowDocument, node_ids: set[str], typed: Mapping[str, _Node], problems: list[FlowProblem]
) -> list[FlowEdge]:
    """Duplicate, dangling and mis-handled edges reported; returns the edges between existing nodes."""
    edge_ids: set[str] = set()
    connections: set[tuple[str, str, str, str]] = set()
    usable: list[FlowEdge] = []
    for edge in doc.edges:
        field = f"edges.{edge.id}"
        if edge.id in edge_ids:
            owner = edge.source if edge.source in node_ids else None
            problems.append(FlowProblem(owner, field, f"edge id '{edge.id}' is used twice; give each edge its own id"))
            continue
        edge_ids.add(edge.id)
        missing = [end for end in (edge.source, edge.target) if end not in node_ids]
        if missing:
            existing = next((end for end in (edge.source, edge.target) if end in node_ids), None)
            names = " and ".join(f"'{end}'" for end in missing)
            message = f"edge '{edge.id}' connects to {names}, which {'do' if len(missing) > 1 else 'does'} not exist"
            problems.append(FlowProblem(existing, field, f"{message}; remove the edge"))
            continue
        connection = (edge.source, edge.source_handle, edge.target, edge.target_handle)
        if connection in connections:
            message = f"edge '{edge.id}' repeats another edge between the same handles; remove it"
            problems.append(FlowProblem(edge.target, field, message))
            continue
        connections.add(connection)
        if _check_handles(edge, typed, problems):
            usable.append(edge)
    _check_required_inputs(typed, usable, problems)
    return usable


def _check_handles(edge: FlowEdge, typed: Mapping[str, _Node], problems: list[FlowProblem]) -> bool:
    """Whether both handles exist (unknown when a node's type or data is invalid: then the edge is kept)."""
    fine = True
    source = typed.get(edge.source)
    if source is not None and source.data is not None:
        handles = [handle.name for handle in source.type.output_handles(source.data)]
        if edge.source_handle not in handles:
            have = ", ".join(handles) or "none"
            message = (
                f"node '{edge.source}' has no output '{edge.source_handle}' (edge '{edge.id}'); its outputs: {have}"
            )
            problems.append(FlowProblem(edge.source, "source_handle", message))
            fine = False
    target = typed.get(edge.target)
    if target is not None:
        handles = [handle.name for handle in target.type.inputs]
        if edge.target_handle not in handles:
            have = ", ".join(handles) or "none"
            message = f"node '{edge.target}' has no input '{edge.target_handle}' (edge '{edge.id}'); its inputs: {have}"
            problems.append(FlowProblem(edge.target, "target_handle", message))
            fine = False
    return fine


def _check_required_inputs(typed: Mapping[str, _Node], edges: list[FlowEdge], problems: list[FlowProblem]) -> None:
    connected = {(edge.target, edge.target_handle) for edge in edges}
    for node_id, entry in typed.items():
        for handle in entry.type.inputs:
            if handle.required and (node_id, handle.name) not in connected:
                message = f"input '{handle.name}' is not connected; connect an edge to it"
                problems.append(FlowProblem(node_id, f"inputs.{handle.name}", message))


def _check_cycles(doc: FlowDocument, edges: list[FlowEdge], problems: list[FlowProblem]) -> None:
    """One problem per strongly connected group of nodes that loops."""
    order: dict[str, int] = {}
    for position, flow_node in enumerate(doc.nodes):
        order.setdefault(flow_node.id, position)
    successors: dict[str, list[str]] = defaultdict(list)
    looped: set[str] = set()
    for edge in edges:
        successors[edge.source].append(edge.target)
        if edge.source == edge.target:
            looped.add(edge.source)
    for group in strongly_connected(order, successors):
        if len(group) == 1 and group[0] not in looped:
            continue
        members = sorted(group, key=order.__getitem__)
        listed = ", ".join(f"'{member}'" for member in members[:10])
        if len(members) > 10:
            listed += f" and {len(members) - 10} more"
        message = f"nodes {listed} form a cycle; remove one of the edges between them"
        if len(members) == 1:
            message = f"node '{members[0]}' is connected to itself; remove that edge"
        problems.append(FlowProblem(members[0], "edges", message))


class _Ancestors:
    """The nodes upstream of each node (via edges), computed on first use."""

    def __init__(self, edges: Iterable[FlowEdge]) -> None:
        self._parents: dict[str, set[str]] = defaultdict(set)
        for edge in edges:
            self._parents[edge.target].add(edge.source)
        self._known: dict[str, set[str]] = {}

    def of(self, node_id: str) -> set[str]:
        if node_id not in self._known:
            found: set[str] = set()
            pending = list(self._parents.get(node_id, ()))
            while pending:
                parent = pending.pop()
                if parent not in found:
                    found.add(parent)
                    pending.extend(self._parents.get(parent, ()))
            self._known[node_id] = found
        return self._known[node_id]


def _check_scripts(
    node_id: str,
    entry: _Node,
    node_ids: set[str],
    declared: set[str],
    ancestors: _Ancestors,
    problems: list[FlowProblem],
) -> None:
    """Templates and expressions: they compile, and use only upstream nodes and declared inputs."""
    assert entry.data is not None
    kinds: list[tuple[dict[str, str], Callable[[str], object], Callable[[str], set[tuple[str, str]]], str]] = [
        (entry.type.templates(entry.data), compile_template, template_references, "template"),
        (entry.type.expressions(entry.data), compile_expression, expression_references, "expression"),
    ]
    for sources, compile_source, references_of, what in kinds:
        for field, source in sources.items():
            try:
                compile_source(source)
                references = references_of(source)
            except TemplateError as exc:
                problems.append(FlowProblem(node_id, field, str(exc)))
                continue
            for kind, name in sorted(references):
                message = _reference_problem(node_id, kind, name, node_ids, declared, ancestors, what)
                if message is not None:
                    problems.append(FlowProblem(node_id, field, message))


def _reference_problem(
    node_id: str,
    kind: str,
    name: str,
    node_ids: set[str],
    declared: set[str],
    ancestors: _Ancestors,
    what: str,
) -> str | None:
    if kind == "nodes":
        if name == node_id:
            return f"the {what} uses this node's own output; a node can only use the nodes before it"
        if name not in node_ids:
            return f"the {what} uses node '{name}', which does not exist; check the node id"
        if name not in ancestors.of(node_id):
            return f"the {what} uses node '{name}', which does not run before this one; connect it upstream"
        return None
    if kind == "inputs":
        if name not in declared:
            return f"the {what} uses the flow input '{name}', which is not declared; add it to the flow's inputs"
        return None
    return f"the {what} uses '{name}', which is not defined; use nodes.<id>.output or inputs.<name>"


def _check_references(
    node_id: str,
    entry: _Node,
    catalog: Catalog,
    flow_id: str | None,
    subflow_graph: Mapping[str, set[str]],
    problems: list[FlowProblem],
) -> None:
    """Saved things the node uses exist for the tenant, and no called flow leads back to this one."""
    assert entry.data is not None
    known: dict[str, Container[str]] = {
        "provider": catalog.providers,
        "tool": catalog.tools,
        "flow": catalog.flows,
        "crew": catalog.crews,
        "agent": catalog.agents,
    }
    for kind, ref_id, field in entry.type.references(entry.data):
        if ref_id not in known[kind]:
            noun, hint = _CATALOG_WORDS[kind]
            problems.append(FlowProblem(node_id, field, f"the {noun} '{ref_id}' does not exist; {hint}"))
        if kind == "flow" and flow_id is not None:
            calls = {flow: sorted(callees) for flow, callees in subflow_graph.items()}  # one path, always the same
            path = shortest_path(ref_id, flow_id, calls)
            if path is not None:
                chain = " -> ".join(f"'{step}'" for step in [flow_id, *path])
                message = f"this subflow would call this flow again ({chain}); a flow cannot run itself"
                problems.append(FlowProblem(node_id, field, message))


def _sorted(doc: FlowDocument, problems: list[FlowProblem]) -> list[FlowProblem]:
    """Flow-wide problems first, then by node in document order, then by field; ties keep their order."""
    position: dict[str, int] = {}
    for index, node in enumerate(doc.nodes):
        position.setdefault(node.id, index)
    return sorted(
        problems,
        key=lambda p: (-1 if p.node_id is None else position.get(p.node_id, len(position)), p.field),
    )
