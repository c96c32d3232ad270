"""Flow validation: one test per kind of problem, each naming the node and the field."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from executor.document import parse_document
from executor.errors import FlowProblem
from executor.nodes.base import Catalog, Handle, NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType
from executor.registry import Registry, load_registry
from executor.validation import validate_document

REGISTRY = load_registry()
PROVIDER = str(uuid.uuid4())
TOOL = str(uuid.uuid4())
CHILD_FLOW = str(uuid.uuid4())
THIS_FLOW = str(uuid.uuid4())
TOOL_SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
CATALOG = Catalog(
    providers=frozenset({PROVIDER}),
    tools={TOOL: {"name": "search", "input_schema": TOOL_SCHEMA}},
    flows={CHILD_FLOW: frozenset({1, 2})},
)


def node(node_id: str, node_type: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0}, "data": data}


def edge(source: str, target: str, edge_id: str | None = None, **handles: str) -> dict[str, Any]:
    return {"id": edge_id or f"{source}-{target}", "source": source, "target": target, **handles}


def validate(
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]] | None = None,
    *,
    inputs: list[dict[str, Any]] | None = None,
    registry: Registry = REGISTRY,
    **options: Any,
) -> list[FlowProblem]:
    raw = {"schema": "crewcanvas.flow/v1", "nodes": nodes, "edges": edges or [], "inputs": inputs or []}
    return validate_document(parse_document(raw), registry, CATALOG, **options)


def where(problems: list[FlowProblem]) -> list[tuple[str | None, str]]:
    return [(p.node_id, p.field) for p in problems]


def test_a_sound_flow_has_no_problems() -> None:
    nodes = [
        node("start", "input"),
        node(
            "write", "llm", provider_id=PROVIDER, system="About {{ inputs.topic }}", prompt="{{ nodes.start.output }}"
        ),
        node("check", "condition", expression="size(nodes.write.output) > 10 && inputs.topic != ''"),
        node("look", "tool", tool_id=TOOL, arguments={"q": "{{ nodes.write.output }}"}),
        node("route", "router", cases=[{"name": "found", "expression": "nodes.look.output.hits > 0"}]),
        node("each", "subflow", flow_id=CHILD_FLOW, version=2, for_each="{{ nodes.look.output.items }}"),
        node("done", "output", value="{{ nodes.each.output }}", name="results"),
    ]
    edges = [
        edge("start", "write"),
        edge("write", "check"),
        edge("check", "look", source_handle="true"),
        edge("look", "route"),
        edge("route", "each", source_handle="found"),
        edge("each", "done"),
    ]
    problems = validate(nodes, edges, inputs=[{"name": "topic"}], flow_id=THIS_FLOW, subflow_graph={CHILD_FLOW: set()})
    assert problems == []


def test_duplicate_node_ids_are_reported_on_the_id() -> None:
    problems = validate([node("a", "input"), node("a", "output")])
    assert where(problems) == [("a", "id")]


def test_an_unknown_node_type_is_reported_on_the_type() -> None:
    problems = validate([node("x", "teleport")])
    assert where(problems) == [("x", "type")]
    assert "'teleport'" in problems[0].message
    assert "llm" in problems[0].message


def test_node_data_that_does_not_parse_is_reported_field_by_field() -> None:
    problems = validate([node("l", "llm", prompt="", temperature=5, colour="red")])
    assert where(problems) == [("l", "data.colour"), ("l", "data.prompt"), ("l", "data.temperature")]


def test_duplicate_edge_ids_are_reported_on_the_edge() -> None:
    nodes = [node("a", "input"), node("b", "output"), node("c", "output", name="other")]
    problems = validate(nodes, [edge("a", "b", "e1"), edge("a", "c", "e1")])
    assert where(problems) == [("a", "edges.e1")]
    assert "used twice" in problems[0].message


def test_an_edge_repeating_another_is_reported_on_its_target() -> None:
    problems = validate([node("a", "input"), node("b", "output")], [edge("a", "b", "e1"), edge("a", "b", "e2")])
    assert where(problems) == [("b", "edges.e2")]


def test_a_dangling_edge_is_reported_on_its_existing_end_or_the_flow() -> None:
    problems = validate([node("a", "input")], [edge("a", "ghost", "e1"), edge("nowhere", "void", "e2")])
    assert where(problems) == [(None, "edges.e2"), ("a", "edges.e1")]
    assert "'ghost'" in problems[1].message


def test_an_edge_from_a_missing_output_handle_is_reported_on_the_source() -> None:
    nodes = [node("c", "condition", expression="true"), node("o", "output")]
    problems = validate(nodes, [edge("c", "o", source_handle="maybe")])
    assert where(problems) == [("c", "source_handle")]
    assert "true, false" in problems[0].message


def test_an_edge_into_a_missing_input_handle_is_reported_on_the_target() -> None:
    problems = validate([node("o", "output"), node("i", "input")], [edge("o", "i")])
    assert where(problems) == [("o", "source_handle"), ("i", "target_handle")]


class _JoinData(NodeData):
    pass


class _Join(NodeType[_JoinData]):
    """A test type with a required input handle."""

    type = "join"
    data_model = _JoinData
    meta = NodeMeta("Join", "Test", "merge", "Joins two branches.")
    inputs: ClassVar[tuple[Handle, ...]] = (Handle("left", required=True), Handle("right"))

    async def run(self, data: _JoinData, ctx: NodeContext) -> NodeOutcome:
        return NodeOutcome()


def test_a_required_input_handle_left_unconnected_is_reported() -> None:
    registry = Registry({"join": _Join(), **{node_type.type: node_type for node_type in REGISTRY}})
    problems = validate(
        [node("i", "input"), node("j", "join")], [edge("i", "j", target_handle="right")], registry=registry
    )
    assert where(problems) == [("j", "inputs.left")]


def test_a_cycle_is_reported_once_listing_its_nodes() -> None:
    nodes = [
        node("start", "input"),
        node("a", "llm", prompt="x"),
        node("b", "condition", expression="true"),
        node("c", "llm", prompt="y"),
    ]
    edges = [edge("start", "b"), edge("b", "c", source_handle="true"), edge("c", "b"), edge("a", "a")]
    problems = validate(nodes, edges)
    assert where(problems) == [("a", "edges"), ("b", "edges")]
    assert "connected to itself" in problems[0].message
    assert "nodes 'b', 'c' form a cycle" in problems[1].message


def test_template_and_expression_syntax_errors_are_reported_on_their_field() -> None:
    nodes = [
        node("l", "llm", prompt="{{ nodes.x.output "),
        node("r", "router", cases=[{"name": "ok", "expression": "true"}, {"name": "bad", "expression": "1 +"}]),
    ]
    problems = validate(nodes)
    assert where(problems) == [("l", "prompt"), ("r", "cases.1.expression")]
    assert "does not parse" in problems[0].message
    assert "does not parse" in problems[1].message


def test_a_template_using_a_node_that_is_not_upstream_is_reported() -> None:
    nodes = [
        node("start", "input"),
        node("side", "llm", prompt="x"),
        node("l", "llm", prompt="{{ nodes.side.output }}"),
    ]
    problems = validate(nodes, [edge("start", "l")])
    assert where(problems) == [("l", "prompt")]
    assert "'side'" in problems[0].message
    assert "connect it upstream" in problems[0].message


def test_an_expression_using_a_node_that_does_not_exist_is_reported() -> None:
    problems = validate([node("c", "condition", expression='nodes["gone"].output == 1')])
    assert where(problems) == [("c", "expression")]
    assert "'gone', which does not exist" in problems[0].message


def test_a_template_using_its_own_node_is_reported() -> None:
    problems = validate([node("o", "output", value="{{ nodes.o.output }}")])
    assert where(problems) == [("o", "value")]
    assert "own output" in problems[0].message


def test_a_template_using_an_undeclared_flow_input_is_reported() -> None:
    problems = validate([node("l", "llm", prompt="{{ inputs.topic }} {{ inputs.tone }}")], inputs=[{"name": "topic"}])
    assert where(problems) == [("l", "prompt")]
    assert "'tone'" in problems[0].message


def test_a_template_using_an_unknown_name_is_reported() -> None:
    problems = validate([node("t", "tool", tool_id=TOOL, arguments={"q": "{{ query }}"})])
    assert where(problems) == [("t", "arguments.q")]
    assert "'query', which is not defined" in problems[0].message


def test_references_to_unknown_providers_tools_and_flows_are_reported() -> None:
    nodes = [
        node("l", "llm", prompt="x", provider_id=str(uuid.uuid4())),
        node("t", "tool", tool_id=str(uuid.uuid4())),
        node("s", "subflow", flow_id=str(uuid.uuid4()), version=1),
    ]
    problems = validate(nodes)
    assert where(problems) == [("l", "provider_id"), ("t", "tool_id"), ("s", "flow_id")]
    assert "LLM provider" in problems[0].message
    assert "tool" in problems[1].message


def test_the_types_own_checks_are_reported() -> None:
    nodes = [node("t", "tool", tool_id=TOOL, arguments={}), node("s", "subflow", flow_id=CHILD_FLOW, version=7)]
    problems = validate(nodes)
    assert where(problems) == [("t", "arguments.q"), ("s", "version")]


def test_a_subflow_that_would_call_this_flow_again_is_reported() -> None:
    middle = str(uuid.uuid4())
    graph = {CHILD_FLOW: {middle}, middle: {THIS_FLOW}}
    problems = validate([node("s", "subflow", flow_id=CHILD_FLOW, version=1)], flow_id=THIS_FLOW, subflow_graph=graph)
    assert where(problems) == [("s", "flow_id")]
    assert f"'{THIS_FLOW}' -> '{CHILD_FLOW}' -> '{middle}' -> '{THIS_FLOW}'" in problems[0].message


def test_a_second_input_node_is_reported_on_its_type() -> None:
    problems = validate([node("in1", "input"), node("in2", "input")])
    assert where(problems) == [("in2", "type")]


def test_two_outputs_with_one_name_are_reported_on_the_second() -> None:
    problems = validate([node("o1", "output", name="answer"), node("o2", "output", name="answer")])
    assert where(problems) == [("o2", "data.name")]
    assert "'o1' already returns an output named 'answer'" in problems[0].message


def test_problems_come_flow_first_then_by_node_order_then_field() -> None:
    nodes = [node("b", "llm", prompt="{{ zz }}", temperature=9), node("a", "teleport")]
    problems = validate(nodes, [edge("ghost", "phantom", "e9")])
    assert where(problems) == [(None, "edges.e9"), ("b", "data.temperature"), ("a", "type")]
