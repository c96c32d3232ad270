"""The node-type registry: every built-in type is there, described for the editor."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from executor.registry import load_registry

BUILT_IN = {"input", "output", "llm", "tool", "condition", "router", "subflow"}


def test_every_built_in_type_is_registered() -> None:
    registry = load_registry()
    assert {node_type.type for node_type in registry} >= BUILT_IN
    assert all(name in registry for name in BUILT_IN)


def test_describe_gives_json_serialisable_types_with_their_metadata() -> None:
    described = {entry["type"]: entry for entry in load_registry().describe()}
    json.dumps(list(described.values()))
    for name in BUILT_IN:
        entry = described[name]
        assert entry["label"]
        assert entry["category"]
        assert entry["icon"]
        assert entry["help"]
        assert entry["data_schema"]["type"] == "object"
    assert described["condition"]["outputs"] == [{"name": "true", "label": "True"}, {"name": "false", "label": "False"}]
    assert described["input"]["inputs"] == []
    assert described["output"]["outputs"] == []
    assert "prompt" in described["llm"]["data_schema"]["required"]


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_each_types_data_refuses_unknown_fields(name: str) -> None:
    with pytest.raises(ValidationError, match="colour"):
        load_registry().get(name).parse({"colour": "red"})
