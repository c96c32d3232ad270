"""The flow document: `{schema: "crewcanvas.flow/v1", nodes, edges, inputs, viewport}`.

This module checks the document's *shape* (`parse_document`): every field of the right
kind, sizes capped. Whether the flow makes sense (types exist, edges connect real handles,
no cycles, templates refer upstream) is `executor.validation`'s job. It also checks the
inputs a run is started with against the flow's declared inputs (`check_inputs`), and
says what changed between two versions (`diff_documents`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, StringConstraints, ValidationError

from core.errors import InvalidInput, Problem, problems_of
from core.text import JsonObject, Text, json_problem
from executor.errors import FlowInvalid, FlowProblem

SCHEMA: Final = "crewcanvas.flow/v1"
MAX_NODES = 1000
MAX_EDGES = 5000
MAX_INPUTS = 100

InputType = Literal["string", "number", "integer", "boolean", "object", "array"]


def _acceptable_json(value: Any) -> Any:
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


#: A node, edge or handle id: letters, digits, `_` and `-`.
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
#: A name usable in templates and CEL without quoting (`inputs.topic`).
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
#: A node type's registry name.
TypeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]
#: Any JSON value from a user, with `core.text`'s depth, size and text rules.
Json = Annotated[JsonValue, AfterValidator(_acceptable_json)]
Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-1e7, le=1e7)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Position(_Model):
    """Where a node sits on the canvas."""

    x: Coordinate = 0.0
    y: Coordinate = 0.0


class Viewport(_Model):
    """The editor's pan and zoom when the flow was saved."""

    x: Coordinate = 0.0
    y: Coordinate = 0.0
    zoom: float = Field(default=1.0, gt=0, le=100, allow_inf_nan=False)


class FlowNode(_Model):
    """One node: its type's name and its data, which that type parses (`NodeType.parse`)."""

    id: Id
    type: TypeName
    position: Position = Field(default_factory=Position)
    data: JsonObject = Field(default_factory=dict)
    pinned_output: Json | None = Field(
        default=None, description="Used instead of running the node (while designing); null runs it."
    )


class FlowEdge(_Model):
    """A connection from one node's output handle to another node's input handle."""

    id: Id
    source: Id
    source_handle: Id = "out"
    target: Id
    target_handle: Id = "in"


class FlowInputSpec(_Model):
    """One input a run of the flow takes (`{{ inputs.<name> }}`)."""

    name: Identifier
    type: InputType = "string"
    required: bool = True
    default: Json | None = None
    description: Text = ""


class FlowDocument(_Model):
    """A whole flow, as saved in one version."""

    schema_: Literal["crewcanvas.flow/v1"] = Field(default=SCHEMA, alias="schema")
    nodes: list[FlowNode] = Field(default_factory=list, max_length=MAX_NODES)
    edges: list[FlowEdge] = Field(default_factory=list, max_length=MAX_EDGES)
    inputs: list[FlowInputSpec] = Field(default_factory=list, max_length=MAX_INPUTS)
    viewport: Viewport = Field(default_factory=Viewport)


def parse_document(raw: Any) -> FlowDocument:
    """The flow in `raw` (decoded JSON, or JSON text); `FlowInvalid` naming each malformed field."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise FlowInvalid([FlowProblem(None, "document", f"is not JSON: {exc}")]) from exc
    if not isinstance(raw, Mapping):
        problem = FlowProblem(None, "document", f"must be a JSON object, not {_json_type(raw)}")
        raise FlowInvalid([problem])
    try:
        document = FlowDocument.model_validate(raw)
    except ValidationError as exc:
        raise FlowInvalid([FlowProblem(None, p.field, p.message) for p in problems_of(exc)]) from exc
    problems = _input_problems(document)
    if problems:
        raise FlowInvalid(problems)
    return document


def _input_problems(document: FlowDocument) -> list[FlowProblem]:
    problems: list[FlowProblem] = []
    seen: set[str] = set()
    for index, spec in enumerate(document.inputs):
        if spec.name in seen:
            message = f"flow input '{spec.name}' is declared twice; rename or remove one"
            problems.append(FlowProblem(None, f"inputs.{index}.name", message))
        seen.add(spec.name)
        if spec.default is not None and not _matches(spec.default, spec.type):
            message = f"the default of '{spec.name}' is {_json_type(spec.default)}, not {spec.type}; change one of them"
            problems.append(FlowProblem(None, f"inputs.{index}.default", message))
    return problems


def dump_document(document: FlowDocument) -> dict[str, Any]:
    """The document as JSON-ready data, with its JSON key names (`schema`)."""
    return document.model_dump(mode="json", by_alias=True)


def check_inputs(document: FlowDocument, given: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs of one run: `given` checked against the declared inputs, with defaults filled in.

    Inputs left out take their default (a required input with a non-null default may be left out);
    optional ones without a default become null, so every declared input exists in templates.
    `InvalidInput` names each problem as `inputs.<name>`.
    """
    specs = {spec.name: spec for spec in document.inputs}
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for name in given:
        if name not in specs:
            known = ", ".join(specs) or "none"
            problems.append(Problem(f"inputs.{name}", f"the flow has no input '{name}'; its inputs are: {known}"))
    for name, spec in specs.items():
        if name not in given:
            if spec.required and spec.default is None:
                problems.append(Problem(f"inputs.{name}", f"input '{name}' is required; give a {spec.type}"))
            else:
                values[name] = spec.default
            continue
        value = given[name]
        problem = json_problem(value)
        if value is None and not spec.required:
            values[name] = None
        elif problem is not None:
            problems.append(Problem(f"inputs.{name}", f"input '{name}' {problem}"))
        elif not _matches(value, spec.type):
            message = f"input '{name}' must be {_article(spec.type)}, not {_json_type(value)}"
            problems.append(Problem(f"inputs.{name}", message))
        else:
            values[name] = value
    if problems:
        summary = "; ".join(p.message for p in problems[:5])
        raise InvalidInput(f"the run's inputs are not valid: {summary}", problems=problems)
    return values


def _matches(value: Any, kind: InputType) -> bool:
    # bool is an int in Python, but not a number in JSON Schema's sense
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "object":
        return isinstance(value, dict)
    return isinstance(value, list)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def diff_documents(old: FlowDocument, new: FlowDocument) -> dict[str, Any]:
    """What changed from `old` to `new`: added, removed and changed node and edge ids and input names.

    A node whose only change is its position is listed under both `changed` and `moved`,
    so a history view can tell layout edits from real ones.
    """
    old_nodes = {node.id: node.model_dump(mode="json") for node in old.nodes}
    new_nodes = {node.id: node.model_dump(mode="json") for node in new.nodes}
    nodes = _diff(old_nodes, new_nodes)
    nodes["moved"] = [
        node_id
        for node_id in nodes["changed"]
        if _without_position(old_nodes[node_id]) == _without_position(new_nodes[node_id])
    ]
    edges = _diff(
        {edge.id: edge.model_dump(mode="json") for edge in old.edges},
        {edge.id: edge.model_dump(mode="json") for edge in new.edges},
    )
    inputs = _diff(
        {spec.name: spec.model_dump(mode="json") for spec in old.inputs},
        {spec.name: spec.model_dump(mode="json") for spec in new.inputs},
    )
    return {"nodes": nodes, "edges": edges, "inputs": inputs}


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str]]:
    return {
        "added": [key for key in new if key not in old],
        "removed": [key for key in old if key not in new],
        "changed": [key for key in new if key in old and old[key] != new[key]],
    }


def _without_position(node: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in node.items() if key != "position"}
