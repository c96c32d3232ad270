"""Draft operations: each one and its inverse restore the document exactly; each refusal says why."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidInput
from executor.document import MAX_NODES, FlowDocument, Position, dump_document, parse_document
from executor.draft_ops import (
    AddOp,
    InputsOp,
    MoveOp,
    Operation,
    PinOp,
    RemoveOp,
    UpdateOp,
    ViewportOp,
    apply_operation,
    apply_operations,
    dump_operation,
    new_edge_id,
    new_node_id,
    parse_operation,
)
from executor.registry import load_registry

REGISTRY = load_registry()


def node(node_id: str, node_type: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0}, "data": data}


def edge(source: str, target: str, source_handle: str = "out", edge_id: str | None = None) -> dict[str, Any]:
    return {
        "id": edge_id or f"{source}.{source_handle}-{target}",
        "source": source,
        "source_handle": source_handle,
        "target": target,
    }


def flow(nodes: list[dict[str, Any]], edges: list[dict[str, Any]] | None = None) -> FlowDocument:
    return parse_document({"schema": "crewcanvas.flow/v1", "nodes": nodes, "edges": edges or []})


def llm(node_id: str) -> dict[str, Any]:
    return node(node_id, "llm", prompt="hello")


def base() -> FlowDocument:
    """input -> write -> route (case 'yes') -> done, and a side node `note`."""
    return parse_document(
        {
            "schema": "crewcanvas.flow/v1",
            "nodes": [
                node("start", "input"),
                {**llm("write"), "position": {"x": 200, "y": 10}},
                node("route", "router", cases=[{"name": "yes", "expression": "true"}]),
                node("done", "output", value="{{ nodes.write.output }}"),
                llm("note"),
            ],
            "edges": [edge("start", "write"), edge("write", "route"), edge("route", "done", "yes")],
            "inputs": [{"name": "topic"}],
            "viewport": {"x": 5, "y": 6, "zoom": 1.5},
        }
    )


def apply(document: FlowDocument, op: Operation | dict[str, Any]) -> tuple[FlowDocument, list[Operation]]:
    parsed = parse_operation(op) if isinstance(op, dict) else op
    return apply_operation(document, parsed, REGISTRY)


def refused(document: FlowDocument, op: dict[str, Any]) -> str:
    with pytest.raises(InvalidInput) as info:
        apply(document, op)
    return str(info.value)


ROUND_TRIPS: dict[str, dict[str, Any]] = {
    "add a node": {"op": "add", "nodes": [llm("llm_1")]},
    "add a node and connect it": {"op": "add", "nodes": [llm("llm_1")], "edges": [edge("write", "llm_1")]},
    "connect two nodes": {"op": "add", "edges": [edge("start", "note")]},
    "remove a node with its edges": {"op": "remove", "nodes": ["write"]},
    "remove nodes and an edge": {"op": "remove", "nodes": ["note", "start"], "edges": ["route.yes-done"]},
    "remove an edge": {"op": "remove", "edges": ["write.out-route"]},
    "move nodes": {"op": "move", "positions": {"write": {"x": 1, "y": 2}, "done": {"x": 3, "y": 4}}},
    "update a node's data": {"op": "update", "node": "write", "data": {"prompt": "bye", "label": "Writer"}},
    "pin an output": {"op": "pin", "node": "write", "output": {"text": "pinned"}},
    "replace the inputs": {"op": "inputs", "inputs": [{"name": "lang", "type": "string", "default": "en"}]},
    "set the viewport": {"op": "viewport", "viewport": {"x": -10, "y": 20, "zoom": 0.5}},
}


@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_each_operation_is_undone_by_its_inverse_and_redone_by_the_inverse_of_that(name: str) -> None:
    original = base()
    before = dump_document(original)
    changed, undo = apply(original, ROUND_TRIPS[name])
    assert dump_document(changed) != before
    assert dump_document(original) == before  # the function is pure
    restored, redo = apply_operations(changed, undo, REGISTRY)
    assert dump_document(restored) == before
    again, _ = apply_operations(restored, redo, REGISTRY)
    assert dump_document(again) == dump_document(changed)


def test_inverse_operations_travel_as_json() -> None:
    changed, undo = apply(base(), {"op": "remove", "nodes": ["write"]})
    sent = [parse_operation(dump_operation(op)) for op in undo]
    restored, _ = apply_operations(changed, sent, REGISTRY)
    assert dump_document(restored) == dump_document(base())


def test_removing_a_node_returns_an_add_with_the_node_and_the_edges_it_took() -> None:
    _, undo = apply(base(), {"op": "remove", "nodes": ["write"]})
    assert len(undo) == 1
    assert isinstance(undo[0], AddOp)
    assert [n.id for n in undo[0].nodes] == ["write"]
    assert [e.id for e in undo[0].edges] == ["start.out-write", "write.out-route"]
    assert (undo[0].node_at, undo[0].edge_at, undo[0].restore) == ([1], [0, 1], True)


def test_simple_inverses_carry_the_old_values() -> None:
    document = base()
    assert apply(document, {"op": "update", "node": "write", "data": {"prompt": "x"}})[1] == [
        UpdateOp(node="write", data={"prompt": "hello"})
    ]
    assert apply(document, {"op": "pin", "node": "write", "output": 1})[1] == [PinOp(node="write", output=None)]
    assert apply(document, {"op": "move", "positions": {"write": {"x": 0}}})[1] == [
        MoveOp(positions={"write": Position(x=200, y=10)})
    ]
    assert apply(document, {"op": "viewport", "viewport": {}})[1] == [ViewportOp(viewport=document.viewport)]
    assert apply(document, {"op": "inputs", "inputs": []})[1] == [InputsOp(inputs=document.inputs)]
    assert apply(document, {"op": "add", "nodes": [llm("n")], "edges": [edge("write", "n")]})[1] == [
        RemoveOp(nodes=["n"], edges=["write.out-n"])
    ]


def test_a_batch_is_undone_by_its_inverses_in_reverse_order() -> None:
    batch = [
        parse_operation({"op": "add", "nodes": [llm("llm_1")]}),
        parse_operation({"op": "add", "edges": [edge("write", "llm_1")]}),
        parse_operation({"op": "update", "node": "llm_1", "data": {"prompt": "{{ nodes.write.output }}"}}),
        parse_operation({"op": "remove", "nodes": ["note"]}),
        parse_operation({"op": "move", "positions": {"llm_1": {"x": 9, "y": 9}}}),
    ]
    changed, undo = apply_operations(base(), batch, REGISTRY)
    assert [op.op for op in undo] == ["move", "add", "update", "remove", "remove"]
    restored, _ = apply_operations(changed, undo, REGISTRY)
    assert dump_document(restored) == dump_document(base())


def test_undoing_a_removal_puts_back_edges_the_checks_would_now_refuse() -> None:
    # The router's case is renamed, so its edge on 'yes' no longer fits (validation reports it);
    # removing the router and undoing must still bring back exactly that.
    renamed, _ = apply(
        base(), {"op": "update", "node": "route", "data": {"cases": [{"name": "no", "expression": "1"}]}}
    )
    removed, undo = apply(renamed, {"op": "remove", "nodes": ["route"]})
    restored, _ = apply_operations(removed, undo, REGISTRY)
    assert dump_document(restored) == dump_document(renamed)


@pytest.mark.parametrize(
    ("op", "reason"),
    [
        ({"op": "update", "node": "ghost", "data": {}}, "there is no node 'ghost' in this flow"),
        ({"op": "pin", "node": "ghost", "output": 1}, "there is no node 'ghost' in this flow"),
        ({"op": "move", "positions": {"ghost": {"x": 1}}}, "there is no node 'ghost' in this flow"),
        ({"op": "remove", "nodes": ["ghost"]}, "there is no node 'ghost' in this flow"),
        ({"op": "remove", "edges": ["ghost"]}, "there is no edge 'ghost' in this flow"),
        ({"op": "add", "nodes": [llm("write")]}, "there is a node 'write' already; give the new node another id"),
        (
            {"op": "add", "nodes": [llm("llm_1"), llm("llm_1")]},
            "there is a node 'llm_1' already; give the new node another id, such as 'llm_2'",
        ),
        (
            {"op": "add", "edges": [edge("start", "note", edge_id="start.out-write")]},
            "there is an edge 'start.out-write'",
        ),
        ({"op": "add", "edges": [edge("start", "ghost")]}, "connects to node 'ghost', which does not exist"),
        ({"op": "add", "edges": [edge("note", "note")]}, "node 'note' cannot be connected to itself"),
        (
            {"op": "add", "edges": [edge("note", "done", "result")]},
            "node 'note' has no output 'result'; its outputs: out",
        ),
        ({"op": "add", "edges": [edge("done", "note")]}, "node 'done' has no outputs to connect from"),
        ({"op": "add", "edges": [edge("note", "start")]}, "node 'start' takes no inputs"),
        (
            {"op": "add", "edges": [{**edge("start", "note"), "target_handle": "side"}]},
            "node 'note' has no input 'side'; its inputs: in",
        ),
        (
            {"op": "add", "edges": [edge("start", "write", edge_id="again")]},
            "'start' is connected to 'write' there already (edge 'start.out-write')",
        ),
        (
            {"op": "add", "edges": [edge("start", "note", edge_id="a"), edge("start", "note", edge_id="b")]},
            "'start' is connected to 'note' there already (edge 'a')",
        ),
        (
            {"op": "inputs", "inputs": [{"name": "topic"}, {"name": "topic"}]},
            "flow input 'topic' is declared twice",
        ),
        (
            {"op": "inputs", "inputs": [{"name": "count", "type": "integer", "default": "ten"}]},
            "the default of 'count' is a string, not integer",
        ),
    ],
)
def test_operations_that_make_no_sense_are_refused_with_the_reason(op: dict[str, Any], reason: str) -> None:
    assert reason in refused(base(), op)


def test_a_connection_that_closes_a_loop_names_the_way_round() -> None:
    document = flow([llm("a"), llm("b"), llm("c")], [edge("a", "b"), edge("b", "c")])
    reason = refused(document, {"op": "add", "edges": [edge("c", "a")]})
    assert reason == "connecting 'c' to 'a' would make a loop: 'a' already feeds 'c' (a -> b -> c)"
    reason = refused(document, {"op": "add", "edges": [edge("b", "a")]})
    assert reason == "connecting 'b' to 'a' would make a loop: 'a' already feeds 'b'"
    chain = flow([llm(f"n{i}") for i in range(20)], [edge(f"n{i}", f"n{i + 1}") for i in range(19)])
    reason = refused(chain, {"op": "add", "edges": [edge("n19", "n0")]})
    assert reason.endswith("'n0' already feeds 'n19' (n0 -> n1 -> n2 -> n3 -> ... -> n17 -> n18 -> n19)")


def test_a_loop_made_within_one_batch_is_refused() -> None:
    document = flow([llm("a"), llm("b")])
    reason = refused(
        document, {"op": "add", "nodes": [llm("c")], "edges": [edge("a", "b"), edge("b", "c"), edge("c", "a")]}
    )
    assert "would make a loop" in reason
    # A diamond is no loop.
    diamond = [edge("a", "b"), edge("a", "c"), edge("b", "d"), edge("c", "d")]
    changed, _ = apply(document, {"op": "add", "nodes": [llm("c"), llm("d")], "edges": diamond})
    assert len(changed.edges) == 4


def test_router_outputs_follow_its_cases_and_fall_back_to_default_when_its_data_is_invalid() -> None:
    document = base()
    changed, _ = apply(document, {"op": "add", "edges": [edge("route", "note", "default")]})
    assert changed.edges[-1].source_handle == "default"
    assert "its outputs: yes, default" in refused(document, {"op": "add", "edges": [edge("route", "note", "no")]})
    broken, _ = apply(document, {"op": "update", "node": "route", "data": {"cases": []}})
    assert "its outputs: default" in refused(broken, {"op": "add", "edges": [edge("route", "note", "yes")]})
    apply(broken, {"op": "add", "edges": [edge("route", "note", "default")]})


def test_a_human_nodes_outputs_depend_on_what_a_rejection_does() -> None:
    document = flow([node("ask", "human", on_reject="branch"), llm("next")])
    apply(document, {"op": "add", "edges": [edge("ask", "next", "rejected")]})
    assert "its outputs: approved, rejected" in refused(document, {"op": "add", "edges": [edge("ask", "next")]})


def test_nodes_of_unknown_types_are_kept_and_their_handles_not_judged() -> None:
    document = flow([llm("a")])
    changed, _ = apply(document, {"op": "add", "nodes": [node("x", "retired")], "edges": [edge("x", "a", "anything")]})
    assert [n.type for n in changed.nodes] == ["llm", "retired"]


def test_updates_are_not_checked_against_the_type_so_a_half_filled_form_is_kept() -> None:
    changed, _ = apply(base(), {"op": "update", "node": "write", "data": {"prompt": ""}})
    assert changed.nodes[1].data == {"prompt": ""}


def test_the_document_size_limit_applies() -> None:
    document = flow([llm(f"n{i}") for i in range(MAX_NODES - 1)])
    reason = refused(document, {"op": "add", "nodes": [llm("x"), llm("y")]})
    assert reason.startswith(f"a flow has at most {MAX_NODES} nodes, and this would make {MAX_NODES + 1}")


def test_a_refusal_in_a_batch_names_the_operation() -> None:
    batch = [
        parse_operation({"op": "move", "positions": {"write": {"x": 1}}}),
        parse_operation({"op": "add", "edges": [edge("note", "note")]}),
    ]
    with pytest.raises(InvalidInput, match=r"^operation 2 \(add\): node 'note' cannot") as info:
        apply_operations(base(), batch, REGISTRY)
    assert [p.field for p in info.value.problems] == ["operations.1.edges.0"]


def test_malformed_operations_name_the_field() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_operation({"op": "jump"}, index=0)
    assert [(p.field, p.message) for p in info.value.problems] == [
        ("operations.0.op", "'op' must be one of: add, remove, move, update, pin, inputs, viewport")
    ]
    with pytest.raises(InvalidInput, match=r"^operation is not valid: colour: Extra inputs") as info:
        parse_operation({"op": "pin", "node": "a", "colour": "red"})
    assert [p.field for p in info.value.problems] == ["operation.colour"]
    with pytest.raises(InvalidInput, match="node_at needs one place per node"):
        parse_operation({"op": "add", "nodes": [], "node_at": [0]})


def test_new_ids_count_on_from_the_highest_in_use() -> None:
    document = flow([llm("llm_1"), llm("llm_3"), node("router_x", "router"), llm("llm")])
    assert new_node_id(document, "llm") == "llm_4"
    assert new_node_id(document, "router") == "router_1"
    assert new_node_id(document, "llm", taken=["llm_4", "llm_5"]) == "llm_6"
    assert new_edge_id(flow([])) == "edge_1"
    connected = flow([llm("a"), llm("b")], [edge("a", "b", edge_id="edge_7")])
    assert new_edge_id(connected) == "edge_8"
    assert new_edge_id(connected, taken=["edge_8"]) == "edge_9"
    # A draft's document is a dumped one: the same answers.
    assert new_edge_id(dump_document(connected)) == "edge_8"
    assert new_node_id(dump_document(document), "llm") == "llm_4"
