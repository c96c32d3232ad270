"""The flow document: its shape, its JSON form, run inputs, and diffs between versions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import InvalidInput
from executor.document import FlowDocument, check_inputs, diff_documents, dump_document, parse_document
from executor.errors import FlowInvalid


def flow(**parts: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"schema": "crewcanvas.flow/v1", "nodes": [], "edges": [], "inputs": []}
    document.update(parts)
    return document


def node(node_id: str, node_type: str = "llm", **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0}, "data": {}, **extra}


def problems_of(raw: Any) -> list[tuple[str | None, str]]:
    with pytest.raises(FlowInvalid) as caught:
        parse_document(raw)
    return [(p.node_id, p.field) for p in caught.value.problems]


def test_a_minimal_document_gets_its_defaults() -> None:
    document = parse_document({"schema": "crewcanvas.flow/v1"})
    assert document.nodes == []
    assert document.edges == []
    assert document.inputs == []
    assert (document.viewport.x, document.viewport.y, document.viewport.zoom) == (0, 0, 1)


def test_dump_uses_the_json_key_schema_and_parses_back_to_the_same_document() -> None:
    raw = flow(
        nodes=[node("a", "input"), node("b", pinned_output={"text": "hi"})],
        edges=[{"id": "e1", "source": "a", "target": "b"}],
        inputs=[{"name": "topic", "type": "string", "description": "What to write about"}],
        viewport={"x": 10, "y": -5, "zoom": 1.5},
    )
    document = parse_document(raw)
    dumped = dump_document(document)
    assert dumped["schema"] == "crewcanvas.flow/v1"
    assert "schema_" not in dumped
    assert dumped["edges"][0] == {
        "id": "e1",
        "source": "a",
        "source_handle": "out",
        "target": "b",
        "target_handle": "in",
    }
    json.dumps(dumped)
    assert parse_document(dumped) == document


def test_json_text_is_accepted() -> None:
    assert parse_document(json.dumps(flow(nodes=[node("a")]))).nodes[0].id == "a"


def test_text_that_is_not_json_is_refused() -> None:
    assert problems_of("{not json") == [(None, "document")]


def test_a_document_that_is_not_an_object_is_refused() -> None:
    assert problems_of([1, 2]) == [(None, "document")]


def test_another_schema_is_refused() -> None:
    assert problems_of(flow(schema="crewai.flow/v1")) == [(None, "schema")]


def test_malformed_fields_are_named_by_their_dotted_path() -> None:
    raw = flow(nodes=[node("ok"), node("ok"), node("not ok!")], edges=[{"id": "e", "source": "ok"}])
    assert problems_of(raw) == [(None, "nodes.2.id"), (None, "edges.0.target")]


def test_unknown_keys_are_refused_everywhere() -> None:
    raw = flow(nodes=[node("a", colour="red")], extra=1)
    assert sorted(problems_of(raw), key=str) == [(None, "extra"), (None, "nodes.0.colour")]


def test_node_data_must_be_an_object() -> None:
    assert problems_of(flow(nodes=[node("a", data=[1])])) == [(None, "nodes.0.data")]


def test_the_number_of_nodes_is_capped() -> None:
    raw = flow(nodes=[node(f"n{i}") for i in range(1001)])
    assert problems_of(raw) == [(None, "nodes")]


def test_positions_must_be_finite() -> None:
    raw = flow(nodes=[node("a", position={"x": float("inf"), "y": 0})])
    assert problems_of(raw) == [(None, "nodes.0.position.x")]


def test_input_names_must_be_identifiers() -> None:
    assert problems_of(flow(inputs=[{"name": "my topic"}])) == [(None, "inputs.0.name")]


def test_an_input_declared_twice_is_refused() -> None:
    assert problems_of(flow(inputs=[{"name": "a"}, {"name": "a"}])) == [(None, "inputs.1.name")]


def test_an_input_default_must_have_the_declared_type() -> None:
    assert problems_of(flow(inputs=[{"name": "n", "type": "integer", "default": "3"}])) == [(None, "inputs.0.default")]


INPUTS = flow(
    inputs=[
        {"name": "topic", "type": "string"},
        {"name": "count", "type": "integer", "required": False, "default": 3},
        {"name": "ratio", "type": "number", "required": False},
        {"name": "tags", "type": "array", "required": False},
        {"name": "options", "type": "object", "default": {"fast": True}},
    ]
)


def input_problems(given: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        check_inputs(parse_document(INPUTS), given)
    return [p.field for p in caught.value.problems]


def test_check_inputs_applies_defaults_and_gives_null_for_optional_inputs_left_out() -> None:
    values = check_inputs(parse_document(INPUTS), {"topic": "otters"})
    assert values == {"topic": "otters", "count": 3, "ratio": None, "tags": None, "options": {"fast": True}}


def test_check_inputs_accepts_integers_as_numbers() -> None:
    values = check_inputs(parse_document(INPUTS), {"topic": "x", "ratio": 2, "tags": ["a"]})
    assert values["ratio"] == 2
    assert values["tags"] == ["a"]


def test_check_inputs_refuses_a_missing_required_input() -> None:
    assert input_problems({}) == ["inputs.topic"]


def test_check_inputs_refuses_values_of_the_wrong_type() -> None:
    assert input_problems({"topic": 1, "count": True, "ratio": "0.5", "options": []}) == [
        "inputs.topic",
        "inputs.count",
        "inputs.ratio",
        "inputs.options",
    ]


def test_check_inputs_refuses_inputs_the_flow_does_not_declare() -> None:
    assert input_problems({"topic": "x", "colour": "red"}) == ["inputs.colour"]


def test_diff_lists_added_removed_changed_and_moved_nodes() -> None:
    old = parse_document(
        flow(
            nodes=[node("keep"), node("move"), node("edit"), node("gone")],
            edges=[{"id": "e1", "source": "keep", "target": "move"}, {"id": "e2", "source": "keep", "target": "gone"}],
            inputs=[{"name": "a"}, {"name": "b"}],
        )
    )
    new = parse_document(
        flow(
            nodes=[
                node("keep"),
                node("move", position={"x": 50, "y": 0}),
                node("edit", data={"prompt": "new"}, position={"x": 9, "y": 9}),
                node("new"),
            ],
            edges=[{"id": "e1", "source": "keep", "target": "edit"}, {"id": "e3", "source": "keep", "target": "new"}],
            inputs=[{"name": "a", "required": False}, {"name": "c"}],
        )
    )
    assert diff_documents(old, new) == {
        "nodes": {"added": ["new"], "removed": ["gone"], "changed": ["move", "edit"], "moved": ["move"]},
        "edges": {"added": ["e3"], "removed": ["e2"], "changed": ["e1"]},
        "inputs": {"added": ["c"], "removed": ["b"], "changed": ["a"]},
    }


def test_diff_of_identical_documents_is_empty() -> None:
    document = parse_document(flow(nodes=[node("a")]))
    diff = diff_documents(document, FlowDocument.model_validate(dump_document(document)))
    assert all(not ids for part in diff.values() for ids in part.values())
