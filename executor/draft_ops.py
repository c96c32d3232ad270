"""Operations on a flow draft: what the visual editor sends, each with the operations that undo it.

An operation is one small model, named by its `op`: `add` nodes and edges (from the palette,
a pasted selection, or one connection), `remove` them, `move` nodes, `update` a node's data,
`pin` its output, set the flow's `inputs`, set the `viewport`. `apply_operation` is pure: it
returns the new document and the *inverse* operations, which restore the document exactly
(undo; their own inverse is the redo).

Refused here, with a reason for the user (`InvalidInput`), is only what makes no sense while
drawing: ids that do not exist or exist already, a connection to a handle the node does not
have, a node connected to itself, the same connection twice, a loop. Everything else wrong
with a flow (a required input not connected, a template naming a missing node) is left to
`executor.validation`, which reports it as problems: a half-drawn flow is worth keeping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from core.errors import InvalidInput, Problem, problems_from
from core.text import JsonObject
from executor.document import (
    MAX_EDGES,
    MAX_INPUTS,
    MAX_NODES,
    SCHEMA,
    FlowDocument,
    FlowEdge,
    FlowInputSpec,
    FlowNode,
    Id,
    Json,
    Position,
    Viewport,
    parse_document,
)
from executor.errors import FlowInvalid
from executor.graphs import shortest_path, strongly_connected
from executor.registry import Registry

_T = TypeVar("_T")


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddOp(_Op):
    """Add nodes and edges: new nodes, a pasted selection, or one connection (an `add` with one edge)."""

    op: Literal["add"] = "add"
    nodes: list[FlowNode] = Field(default_factory=list, max_length=MAX_NODES)
    edges: list[FlowEdge] = Field(default_factory=list, max_length=MAX_EDGES)
    node_at: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None, description="The place of each node in the document's list, as `nodes` (undo); None: the end."
    )
    edge_at: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None, description="The place of each edge in the document's list, as `edges` (undo); None: the end."
    )
    restore: bool = Field(
        default=False,
        description="Putting back what a remove took (undo, redo): the flow had these edges, so they are not checked.",
    )

    @model_validator(mode="after")
    def _places_match(self) -> AddOp:
        if self.node_at is not None and len(self.node_at) != len(self.nodes):
            raise ValueError("node_at needs one place per node")
        if self.edge_at is not None and len(self.edge_at) != len(self.edges):
            raise ValueError("edge_at needs one place per edge")
        return self


class RemoveOp(_Op):
    """Remove nodes and edges by id; a node's edges go with it."""

    op: Literal["remove"] = "remove"
    nodes: list[Id] = Field(default_factory=list, max_length=MAX_NODES)
    edges: list[Id] = Field(default_factory=list, max_length=MAX_EDGES)


class MoveOp(_Op):
    """Put nodes at new positions on the canvas."""

    op: Literal["move"] = "move"
    positions: dict[Id, Position] = Field(max_length=MAX_NODES)


class UpdateOp(_Op):
    """Replace a node's data (what its property form edits)."""

    op: Literal["update"] = "update"
    node: Id
    data: JsonObject


class PinOp(_Op):
    """Set a node's pinned output (used instead of running it), or clear it with null."""

    op: Literal["pin"] = "pin"
    node: Id
    output: Json | None = None


class InputsOp(_Op):
    """Replace the flow's declared inputs."""

    op: Literal["inputs"] = "inputs"
    inputs: list[FlowInputSpec] = Field(max_length=MAX_INPUTS)


class ViewportOp(_Op):
    """Keep the editor's pan and zoom."""

    op: Literal["viewport"] = "viewport"
    viewport: Viewport


Operation: TypeAlias = Annotated[
    AddOp | RemoveOp | MoveOp | UpdateOp | PinOp | InputsOp | ViewportOp, Field(discriminator="op")
]
OPERATION_TYPES = (AddOp, RemoveOp, MoveOp, UpdateOp, PinOp, InputsOp, ViewportOp)
_OPERATION: TypeAdapter[Operation] = TypeAdapter(Operation)
_TAGS = tuple(str(kind.model_fields["op"].default) for kind in OPERATION_TYPES)


def parse_operation(raw: Mapping[str, Any], *, index: int | None = None) -> Operation:
    """The operation in `raw` (decoded JSON); `InvalidInput` naming each malformed field.

    `index`: the operation's place in a batch; its fields are then named `operations.<index>.<field>`.
    """
    field, label = ("operation", "operation") if index is None else (f"operations.{index}", f"operation {index + 1}")
    try:
        return _OPERATION.validate_python(raw)
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_input=False, include_url=False):
            loc = tuple(error["loc"])
            if loc[:1] and loc[0] in _TAGS:  # the union member pydantic tried: not a field
                loc = loc[1:]
            if error["type"] in {"union_tag_not_found", "union_tag_invalid"}:
                error = {**error, "loc": ("op",), "msg": f"'op' must be one of: {', '.join(_TAGS)}"}
            else:
                error = {**error, "loc": loc}
            errors.append(error)
        # A check of the whole operation has no field of its own ("input"): it is named by `field` alone.
        inner = problems_from(errors)
        found = [Problem(field if p.field == "input" else f"{field}.{p.field}", p.message) for p in inner]
        summary = "; ".join(p.message if p.field == "input" else f"{p.field}: {p.message}" for p in inner[:5])
        raise InvalidInput(f"{label} is not valid: {summary}", problems=found) from exc


def dump_operation(op: Operation) -> dict[str, Any]:
    """The operation as JSON-ready data (what the editor keeps on its undo stack)."""
    return op.model_dump(mode="json")


def apply_operation(document: FlowDocument, op: Operation, registry: Registry) -> tuple[FlowDocument, list[Operation]]:
    """The document with `op` applied, and the operations that undo it (in the order to apply them).

    `document` is left as it is. `InvalidInput` says why an operation makes no sense.
    """
    match op:
        case AddOp():
            return _add(document, op, registry)
        case RemoveOp():
            return _remove(document, op)
        case MoveOp():
            nodes = list(document.nodes)
            before: dict[str, Position] = {}
            for node_id, position in op.positions.items():
                index = _index(nodes, node_id, "positions")
                before[node_id] = nodes[index].position
                nodes[index] = nodes[index].model_copy(update={"position": position})
            return document.model_copy(update={"nodes": nodes}), [MoveOp(positions=before)]
        case UpdateOp():
            nodes = list(document.nodes)
            index = _index(nodes, op.node, "node")
            old_data = nodes[index].data
            nodes[index] = nodes[index].model_copy(update={"data": op.data})
            return document.model_copy(update={"nodes": nodes}), [UpdateOp(node=op.node, data=old_data)]
        case PinOp():
            nodes = list(document.nodes)
            index = _index(nodes, op.node, "node")
            old_output = nodes[index].pinned_output
            nodes[index] = nodes[index].model_copy(update={"pinned_output": op.output})
            return document.model_copy(update={"nodes": nodes}), [PinOp(node=op.node, output=old_output)]
        case InputsOp():
            _check_inputs(op.inputs)
            return document.model_copy(update={"inputs": list(op.inputs)}), [InputsOp(inputs=list(document.inputs))]
        case ViewportOp():
            return document.model_copy(update={"viewport": op.viewport}), [ViewportOp(viewport=document.viewport)]


def apply_operations(
    document: FlowDocument, operations: Sequence[Operation], registry: Registry
) -> tuple[FlowDocument, list[Operation]]:
    """The document with every operation applied in order, and the operations that undo the whole batch.

    All or nothing: `InvalidInput` for the first operation that makes no sense (named by its
    place when the batch has more than one).
    """
    inverse: list[Operation] = []
    for index, op in enumerate(operations):
        try:
            document, undo = apply_operation(document, op, registry)
        except InvalidInput as exc:
            if len(operations) == 1:
                raise
            problems = [Problem(f"operations.{index}.{p.field}", p.message) for p in exc.problems]
            raise InvalidInput(f"operation {index + 1} ({op.op}): {exc}", problems=problems) from exc
        inverse = [*undo, *inverse]
    return document, inverse


def new_node_id(document: FlowDocument | Mapping[str, Any], type_name: str, *, taken: Iterable[str] = ()) -> str:
    """A free id for a new node of `type_name`: `llm_1`, then `llm_2`, ... (never one used before it in the flow).

    `document` may be parsed or dumped (a draft's). `taken`: ids handed out already for nodes
    not yet added (a paste of several nodes).
    """
    return _next_id(f"{type_name}_", _ids(document, "nodes"), taken)


def new_edge_id(document: FlowDocument | Mapping[str, Any], *, taken: Iterable[str] = ()) -> str:
    """A free id for a new edge: `edge_1`, `edge_2`, ..."""
    return _next_id("edge_", _ids(document, "edges"), taken)


def _ids(document: FlowDocument | Mapping[str, Any], key: Literal["nodes", "edges"]) -> list[str]:
    if isinstance(document, FlowDocument):
        return [item.id for item in (document.nodes if key == "nodes" else document.edges)]
    items = document.get(key)
    return [
        item["id"]
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, Mapping) and isinstance(item.get("id"), str)
    ]


def _next_id(prefix: str, used: Iterable[str], taken: Iterable[str]) -> str:
    # One more than the highest number in use, so an id of a deleted node is not handed out again
    # while templates elsewhere may still name it.
    pattern = re.compile(re.escape(prefix) + r"(\d{1,9})")
    ids = {*used, *taken}
    highest = max((int(m.group(1)) for m in map(pattern.fullmatch, ids) if m is not None), default=0)
    candidate = highest + 1
    while f"{prefix}{candidate}" in ids:
        candidate += 1
    return f"{prefix}{candidate}"


# -- add and remove ------------------------------------------------------------------------


def _add(document: FlowDocument, op: AddOp, registry: Registry) -> tuple[FlowDocument, list[Operation]]:
    node_ids = {node.id for node in document.nodes}
    for index, node in enumerate(op.nodes):
        if node.id in node_ids:
            suggestion = new_node_id(document, node.type, taken=[n.id for n in op.nodes])
            message = f"there is a node '{node.id}' already; give the new node another id, such as '{suggestion}'"
            raise InvalidInput(message, field=f"nodes.{index}.id")
        if not op.restore:
            node_ids.add(node.id)
    edge_ids = {edge.id for edge in document.edges}
    for index, edge in enumerate(op.edges):
        if edge.id in edge_ids:
            suggestion = new_edge_id(document, taken=[e.id for e in op.edges])
            message = f"there is an edge '{edge.id}' already; give the new edge another id, such as '{suggestion}'"
            raise InvalidInput(message, field=f"edges.{index}.id")
        if not op.restore:
            edge_ids.add(edge.id)
    for what, count, limit in (
        ("nodes", len(document.nodes) + len(op.nodes), MAX_NODES),
        ("edges", len(document.edges) + len(op.edges), MAX_EDGES),
    ):
        if count > limit:
            message = f"a flow has at most {limit} {what}, and this would make {count}; split the flow into subflows"
            raise InvalidInput(message, field=what)
    nodes = _insert(document.nodes, op.nodes, op.node_at)
    if op.edges and not op.restore:
        _check_edges(nodes, document.edges, op.edges, registry)
    edges = _insert(document.edges, op.edges, op.edge_at)
    inverse = RemoveOp(nodes=[node.id for node in op.nodes], edges=[edge.id for edge in op.edges])
    return document.model_copy(update={"nodes": nodes, "edges": edges}), [inverse]


def _remove(document: FlowDocument, op: RemoveOp) -> tuple[FlowDocument, list[Operation]]:
    node_ids, edge_ids = set(op.nodes), set(op.edges)
    for index, node_id in enumerate(op.nodes):
        _index(document.nodes, node_id, f"nodes.{index}")
    known_edges = {edge.id for edge in document.edges}
    for index, edge_id in enumerate(op.edges):
        if edge_id not in known_edges:
            raise InvalidInput(
                f"there is no edge '{edge_id}' in this flow; it may have been removed", field=f"edges.{index}"
            )
    nodes, removed_nodes, node_at = _split(document.nodes, lambda node: node.id in node_ids)
    edges, removed_edges, edge_at = _split(
        document.edges, lambda edge: edge.id in edge_ids or edge.source in node_ids or edge.target in node_ids
    )
    inverse = AddOp(nodes=removed_nodes, edges=removed_edges, node_at=node_at, edge_at=edge_at, restore=True)
    return document.model_copy(update={"nodes": nodes, "edges": edges}), [inverse]


def _split(items: Sequence[_T], taken: Callable[[_T], bool]) -> tuple[list[_T], list[_T], list[int]]:
    """(kept, taken, the places the taken ones had)."""
    kept: list[_T] = []
    gone: list[_T] = []
    places: list[int] = []
    for index, item in enumerate(items):
        if taken(item):
            gone.append(item)
            places.append(index)
        else:
            kept.append(item)
    return kept, gone, places


def _insert(items: Sequence[_T], new: Sequence[_T], places: Sequence[int] | None) -> list[_T]:
    """`items` with `new` at `places` (the end when None); inserting by rising place undoes `_split` exactly."""
    if places is None:
        return [*items, *new]
    result = list(items)
    for place, item in sorted(zip(places, new, strict=True), key=lambda pair: pair[0]):
        result.insert(min(place, len(result)), item)
    return result


def _index(nodes: Sequence[FlowNode], node_id: str, field: str) -> int:
    for index, node in enumerate(nodes):
        if node.id == node_id:
            return index
    raise InvalidInput(f"there is no node '{node_id}' in this flow; it may have been removed", field=field)


def _check_inputs(inputs: Sequence[FlowInputSpec]) -> None:
    """The rules `parse_document` applies to inputs (names declared once, defaults of the declared type)."""
    try:
        parse_document({"schema": SCHEMA, "inputs": [spec.model_dump(mode="json") for spec in inputs]})
    except FlowInvalid as exc:
        problems = [Problem(p.field, p.message) for p in exc.problems]
        raise InvalidInput("; ".join(p.message for p in problems[:3]), problems=problems) from exc


# -- connections ---------------------------------------------------------------------------


def _check_edges(
    nodes: Sequence[FlowNode], existing: Sequence[FlowEdge], new: Sequence[FlowEdge], registry: Registry
) -> None:
    """Each new edge joins existing handles of two different nodes, once, and no new edge closes a loop."""
    by_id: dict[str, FlowNode] = {}
    for node in nodes:
        by_id.setdefault(node.id, node)
    connections = {(e.source, e.source_handle, e.target, e.target_handle): e.id for e in existing}
    for index, edge in enumerate(new):
        field = f"edges.{index}"
        for end in (edge.source, edge.target):
            if end not in by_id:
                raise InvalidInput(f"edge '{edge.id}' connects to node '{end}', which does not exist", field=field)
        if edge.source == edge.target:
            raise InvalidInput(f"node '{edge.source}' cannot be connected to itself", field=field)
        _check_handles(edge, by_id[edge.source], by_id[edge.target], registry, field)
        connection = (edge.source, edge.source_handle, edge.target, edge.target_handle)
        if connection in connections:
            message = (
                f"'{edge.source}' is connected to '{edge.target}' there already (edge '{connections[connection]}')"
            )
            raise InvalidInput(message, field=field)
        connections[connection] = edge.id
    _check_loops(by_id, existing, new)


def _check_handles(edge: FlowEdge, source: FlowNode, target: FlowNode, registry: Registry, field: str) -> None:
    # A node of an unknown type has unknown handles: validation reports the type, the edge is kept.
    if source.type in registry:
        source_type = registry.get(source.type)
        try:
            outputs = source_type.output_handles(source_type.parse(source.data))
        except ValidationError:
            outputs = source_type.outputs
        names = [handle.name for handle in outputs]
        if not names:
            raise InvalidInput(f"node '{source.id}' has no outputs to connect from", field=f"{field}.source")
        if edge.source_handle not in names:
            message = f"node '{source.id}' has no output '{edge.source_handle}'; its outputs: {', '.join(names)}"
            raise InvalidInput(message, field=f"{field}.source_handle")
    if target.type in registry:
        names = [handle.name for handle in registry.get(target.type).inputs]
        if not names:
            raise InvalidInput(f"node '{target.id}' takes no inputs; connect it from, not to", field=f"{field}.target")
        if edge.target_handle not in names:
            message = f"node '{target.id}' has no input '{edge.target_handle}'; its inputs: {', '.join(names)}"
            raise InvalidInput(message, field=f"{field}.target_handle")


def _check_loops(nodes: Mapping[str, FlowNode], existing: Sequence[FlowEdge], new: Sequence[FlowEdge]) -> None:
    """Refuse the first new edge that lies on a cycle (its ends in one strongly connected component)."""
    successors: dict[str, list[str]] = {}
    for edge in (*existing, *new):
        if edge.source in nodes and edge.target in nodes:
            successors.setdefault(edge.source, []).append(edge.target)
    component = _components(nodes, successors)
    for index, edge in enumerate(new):
        if component[edge.source] != component[edge.target]:
            continue
        without = {**successors, edge.source: list(successors[edge.source])}
        without[edge.source].remove(edge.target)
        path = shortest_path(edge.target, edge.source, without) or [edge.target, edge.source]
        if len(path) > 8:
            path = [*path[:4], "...", *path[-3:]]
        via = f" ({' -> '.join(path)})" if len(path) > 2 else ""
        message = (
            f"connecting '{edge.source}' to '{edge.target}' would make a loop: "
            f"'{edge.target}' already feeds '{edge.source}'{via}"
        )
        raise InvalidInput(message, field=f"edges.{index}")


def _components(nodes: Iterable[str], successors: Mapping[str, list[str]]) -> dict[str, int]:
    """Each node's strongly connected component, numbered."""
    groups = strongly_connected(nodes, successors)
    return {member: number for number, group in enumerate(groups) for member in group}
