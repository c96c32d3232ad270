"""Each node type's runner, against small fakes of the ports that really implement them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from core.context import Role, TenantContext
from core.errors import NotFound
from core.llm.types import CallMeta, ChatRequest, LLMResult, ProviderCallFailed, StreamChunk
from executor.errors import NodeFailed
from executor.expressions import evaluate
from executor.nodes.base import Catalog, NodeContext, NodeOutcome
from executor.nodes.condition import ConditionNode
from executor.nodes.input import InputNode
from executor.nodes.llm import LLMNode
from executor.nodes.output import OutputNode
from executor.nodes.router import RouterNode
from executor.nodes.subflow import SubflowNode
from executor.nodes.tool import ToolNode
from executor.ports import NodeServices
from executor.templates import render, render_value

TENANT = TenantContext(uuid.uuid4(), "acme", uuid.uuid4(), Role.EDITOR)
SCOPE: dict[str, Any] = {
    "inputs": {"topic": "otters", "n": 2},
    "nodes": {
        "search": {"output": {"items": ["a", "b", "c", "d", "e"], "count": 5, "label": "urgent"}},
        "empty": {"output": {"items": []}},
    },
}


@dataclass
class ScriptedLLM:
    """An LLM port answering with a scripted reply, streamed in the given pieces; records every call."""

    pieces: list[str] = field(default_factory=lambda: ["Otters ", "are ", "great."])
    delay_s: float = 0.0
    failure: Exception | None = None
    calls: list[tuple[str, ChatRequest, uuid.UUID | None, CallMeta | None]] = field(default_factory=list)

    def _result(self) -> LLMResult:
        return LLMResult(content="".join(self.pieces), prompt_tokens=12, completion_tokens=3, cost_usd=0.002)

    async def complete(
        self,
        ctx: TenantContext,
        request: ChatRequest,
        *,
        provider_id: uuid.UUID | None = None,
        meta: CallMeta | None = None,
    ) -> LLMResult:
        self.calls.append(("complete", request, provider_id, meta))
        if self.failure is not None:
            raise self.failure
        return self._result()

    async def stream(
        self,
        ctx: TenantContext,
        request: ChatRequest,
        *,
        provider_id: uuid.UUID | None = None,
        meta: CallMeta | None = None,
    ) -> AsyncIterator[StreamChunk]:
        self.calls.append(("stream", request, provider_id, meta))
        if self.failure is not None:
            raise self.failure
        for piece in self.pieces:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            yield StreamChunk(delta=piece)
        yield StreamChunk(result=self._result())


@dataclass
class Calculator:
    """A tool port whose only tool adds up `numbers`; other ids are not found."""

    tool_id: uuid.UUID = field(default_factory=uuid.uuid4)
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def run_saved(self, ctx: TenantContext, tool_id: uuid.UUID, arguments: Mapping[str, Any]) -> Any:
        self.calls.append(dict(arguments))
        if tool_id != self.tool_id:
            raise NotFound(f"tool {tool_id} does not exist")
        return {"sum": sum(arguments["numbers"]), "label": arguments.get("label")}


@dataclass
class RecordingSubflows:
    """A subflow port echoing its inputs after a delay per `item` (failing on `fail_on`), tracking concurrency."""

    delays: dict[Any, float] = field(default_factory=dict)
    fail_on: Any = None
    started: list[Any] = field(default_factory=list)
    finished: list[Any] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    running: int = 0
    most_running: int = 0

    async def run_subflow(
        self,
        ctx: TenantContext,
        flow_id: uuid.UUID,
        version: int,
        inputs: Mapping[str, Any],
        *,
        parent_execution: uuid.UUID,
        parent_node: str,
    ) -> dict[str, Any]:
        call = {
            "flow_id": flow_id,
            "version": version,
            "inputs": dict(inputs),
            "parent": (parent_execution, parent_node),
        }
        self.calls.append(call)
        item = inputs.get("item")
        self.started.append(item)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delays.get(item, 0))
            if item is not None and item == self.fail_on:
                raise NotFound(f"item {item!r} broke the child flow")
            self.finished.append(item)
            return {"echo": dict(inputs)}
        finally:
            self.running -= 1


@dataclass
class Harness:
    llm: ScriptedLLM = field(default_factory=ScriptedLLM)
    tools: Calculator = field(default_factory=Calculator)
    subflows: RecordingSubflows = field(default_factory=RecordingSubflows)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    execution_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def context(self, node_id: str = "n1") -> NodeContext:
        return NodeContext(
            tenant=TENANT,
            execution_id=self.execution_id,
            node_id=node_id,
            attempt=1,
            scope=SCOPE,
            services=NodeServices(llm=self.llm, tools=self.tools, subflows=self.subflows),
            emit=lambda kind, data: self.events.append((kind, data)),
            render=lambda source: render(source, SCOPE),
            render_value=lambda value: render_value(value, SCOPE),
            evaluate=lambda source: evaluate(source, SCOPE),
        )


async def run(node_type: Any, data: dict[str, Any], harness: Harness | None = None) -> NodeOutcome:
    harness = harness or Harness()
    outcome: NodeOutcome = await node_type.run(node_type.parse(data), harness.context())
    return outcome


# input and output


async def test_input_outputs_the_runs_inputs() -> None:
    assert (await run(InputNode(), {})).output == {"topic": "otters", "n": 2}


async def test_output_keeps_the_type_of_a_single_expression() -> None:
    assert (await run(OutputNode(), {"value": "{{ nodes.search.output.count }}"})).output == 5


async def test_output_renders_text_templates() -> None:
    outcome = await run(OutputNode(), {"value": "{{ inputs.topic }} x{{ inputs.n }}", "name": "summary"})
    assert outcome.output == "otters x2"


async def test_output_fails_naming_what_is_undefined() -> None:
    with pytest.raises(NodeFailed, match="'missing'"):
        await run(OutputNode(), {"value": "{{ nodes.search.output.missing }}"})


# llm


async def test_llm_sends_the_rendered_prompts_and_outputs_the_reply() -> None:
    harness = Harness()
    provider = uuid.uuid4()
    data = {
        "provider_id": str(provider),
        "model": "gpt-test",
        "system": "You write about {{ inputs.topic }}.",
        "prompt": "Label: {{ nodes.search.output.label }}",
        "temperature": 0.2,
        "max_tokens": 100,
        "stream": False,
    }
    outcome = await run(LLMNode(), data, harness)
    assert outcome.output == "Otters are great."
    kind, request, provider_id, meta = harness.llm.calls[0]
    assert kind == "complete"
    assert provider_id == provider
    assert request.messages == [
        {"role": "system", "content": "You write about otters."},
        {"role": "user", "content": "Label: urgent"},
    ]
    assert (request.model, request.temperature, request.max_tokens, request.params) == ("gpt-test", 0.2, 100, {})
    assert meta == CallMeta(execution_id=harness.execution_id, node_id="n1")


async def test_llm_adds_the_calls_tokens_and_cost_to_the_nodes_usage() -> None:
    harness = Harness()
    ctx = harness.context()
    node = LLMNode()
    await node.run(node.parse({"prompt": "hi", "stream": False}), ctx)
    await node.run(node.parse({"prompt": "hi"}), ctx)
    assert (ctx.usage.prompt_tokens, ctx.usage.completion_tokens) == (24, 6)
    assert ctx.usage.cost_usd == pytest.approx(0.004)


async def test_llm_without_a_system_prompt_sends_only_the_user_message() -> None:
    harness = Harness()
    await run(LLMNode(), {"prompt": "hi", "stream": False}, harness)
    assert harness.llm.calls[0][1].messages == [{"role": "user", "content": "hi"}]


async def test_llm_streams_tokens_coalesced_into_few_events() -> None:
    harness = Harness(llm=ScriptedLLM(pieces=[f"{i} " for i in range(40)]))
    outcome = await run(LLMNode(), {"prompt": "count"}, harness)
    texts = [data["text"] for kind, data in harness.events if kind == "token"]
    assert "".join(texts) == outcome.output == "".join(f"{i} " for i in range(40))
    assert harness.llm.calls[0][0] == "stream"
    assert len(texts) <= 2


async def test_llm_sends_each_token_when_they_arrive_slowly() -> None:
    harness = Harness(llm=ScriptedLLM(pieces=["a", "b", "c"], delay_s=0.07))
    await run(LLMNode(), {"prompt": "slow"}, harness)
    assert [data["text"] for kind, data in harness.events if kind == "token"] == ["a", "b", "c"]


async def test_llm_with_a_json_schema_asks_for_json_and_outputs_the_parsed_reply() -> None:
    harness = Harness(llm=ScriptedLLM(pieces=['```json\n{"title": "Otters",', ' "stars": 5}\n```']))
    schema = {"type": "object", "properties": {"stars": {"type": "integer"}}, "required": ["stars"]}
    outcome = await run(LLMNode(), {"system": "Be brief.", "prompt": "Rate otters", "json_schema": schema}, harness)
    assert outcome.output == {"title": "Otters", "stars": 5}
    request = harness.llm.calls[0][1]
    assert request.params == {"response_format": {"type": "json_object"}}
    assert request.messages[0]["content"].startswith("Be brief.\n\n")
    assert '"required": ["stars"]' in request.messages[0]["content"]


async def test_llm_fails_when_the_reply_is_not_json() -> None:
    harness = Harness(llm=ScriptedLLM(pieces=["Sure! Here it is"]))
    with pytest.raises(NodeFailed, match="not JSON"):
        await run(LLMNode(), {"prompt": "x", "json_schema": {"type": "object"}}, harness)


async def test_llm_fails_naming_where_the_reply_breaks_the_schema() -> None:
    harness = Harness(llm=ScriptedLLM(pieces=['{"stars": "five"}']))
    schema = {"type": "object", "properties": {"stars": {"type": "integer"}}}
    with pytest.raises(NodeFailed, match=r"at stars: 'five' is not of type 'integer'"):
        await run(LLMNode(), {"prompt": "x", "json_schema": schema}, harness)


async def test_llm_turns_provider_errors_into_node_failures() -> None:
    failure = ProviderCallFailed("main", "auth", "bad key", status=401)
    harness = Harness(llm=ScriptedLLM(failure=failure))
    with pytest.raises(NodeFailed, match=r"provider 'main' failed: auth \(HTTP 401\)") as caught:
        await run(LLMNode(), {"prompt": "x"}, harness)
    assert caught.value.__cause__ is failure


async def test_llm_fails_when_the_prompt_uses_something_undefined() -> None:
    with pytest.raises(NodeFailed, match="prompt could not be rendered"):
        await run(LLMNode(), {"prompt": "{{ nodes.nowhere.output }}"})


def test_llm_data_needs_a_prompt_and_a_valid_json_schema() -> None:
    with pytest.raises(ValidationError, match="prompt"):
        LLMNode().parse({"prompt": ""})
    with pytest.raises(ValidationError, match="not a valid JSON schema"):
        LLMNode().parse({"prompt": "x", "json_schema": {"type": "banana"}})


def test_llm_declares_its_templates_and_its_provider() -> None:
    provider = uuid.uuid4()
    data = LLMNode().parse({"prompt": "p", "system": "s", "provider_id": str(provider)})
    assert LLMNode().templates(data) == {"prompt": "p", "system": "s"}
    assert LLMNode().references(data) == [("provider", str(provider), "provider_id")]
    assert LLMNode().references(LLMNode().parse({"prompt": "p"})) == []


# tool


async def test_tool_renders_arguments_keeping_types_and_outputs_the_tools_result() -> None:
    harness = Harness()
    data = {
        "tool_id": str(harness.tools.tool_id),
        "arguments": {
            "numbers": ["{{ inputs.n }}", "{{ nodes.search.output.count }}", 10],
            "label": "n={{ inputs.n }}",
        },
    }
    outcome = await run(ToolNode(), data, harness)
    assert outcome.output == {"sum": 17, "label": "n=2"}
    assert harness.tools.calls == [{"numbers": [2, 5, 10], "label": "n=2"}]


async def test_tool_turns_core_errors_into_node_failures() -> None:
    with pytest.raises(NodeFailed, match="does not exist"):
        await run(ToolNode(), {"tool_id": str(uuid.uuid4()), "arguments": {"numbers": [1]}})


def test_tool_check_reports_missing_and_unexpected_arguments() -> None:
    tool_id = uuid.uuid4()
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    catalog = Catalog(tools={str(tool_id): {"name": "weather", "input_schema": schema}})
    data = ToolNode().parse({"tool_id": str(tool_id), "arguments": {"city": "Oslo", "colour": "red"}})
    assert [field for field, _ in ToolNode().check(data, catalog)] == ["arguments.days", "arguments.colour"]


def test_tool_declares_its_argument_templates_and_the_tool() -> None:
    tool_id = uuid.uuid4()
    data = ToolNode().parse({"tool_id": str(tool_id), "arguments": {"q": "{{ inputs.topic }}", "n": 3}})
    assert ToolNode().templates(data) == {"arguments.q": "{{ inputs.topic }}"}
    assert ToolNode().references(data) == [("tool", str(tool_id), "tool_id")]


# condition


async def test_condition_takes_the_true_handle_when_the_expression_is_true() -> None:
    outcome = await run(ConditionNode(), {"expression": "nodes.search.output.count > inputs.n"})
    assert outcome == NodeOutcome(output={"result": True}, taken=frozenset({"true"}))


async def test_condition_takes_the_false_handle_when_the_expression_is_false() -> None:
    outcome = await run(ConditionNode(), {"expression": "nodes.search.output.label == 'calm'"})
    assert outcome == NodeOutcome(output={"result": False}, taken=frozenset({"false"}))


async def test_condition_fails_saying_what_type_a_non_bool_result_has() -> None:
    with pytest.raises(NodeFailed, match="gave an int"):
        await run(ConditionNode(), {"expression": "nodes.search.output.count"})


async def test_condition_fails_when_the_expression_fails() -> None:
    with pytest.raises(NodeFailed, match="'priority'"):
        await run(ConditionNode(), {"expression": "nodes.search.output.priority > 1"})


# router


ROUTES = {
    "cases": [
        {"name": "calm", "expression": "nodes.search.output.label == 'calm'"},
        {"name": "urgent", "expression": "nodes.search.output.label == 'urgent'"},
        {"name": "also_urgent", "expression": "true"},
    ]
}


async def test_router_takes_the_first_case_that_is_true() -> None:
    outcome = await run(RouterNode(), ROUTES)
    assert outcome == NodeOutcome(output={"route": "urgent"}, taken=frozenset({"urgent"}))


async def test_router_takes_default_when_no_case_is_true() -> None:
    outcome = await run(RouterNode(), {"cases": [{"name": "never", "expression": "false"}]})
    assert outcome == NodeOutcome(output={"route": "default"}, taken=frozenset({"default"}))


async def test_router_fails_naming_the_case_that_gave_no_bool() -> None:
    with pytest.raises(NodeFailed, match="case 'count' gave an int"):
        await run(RouterNode(), {"cases": [{"name": "count", "expression": "nodes.search.output.count"}]})


def test_router_has_one_handle_per_case_then_default() -> None:
    handles = RouterNode().output_handles(RouterNode().parse(ROUTES))
    assert [handle.name for handle in handles] == ["calm", "urgent", "also_urgent", "default"]


def test_router_case_names_must_be_distinct_and_not_default() -> None:
    with pytest.raises(ValidationError, match="two cases are named 'a'"):
        RouterNode().parse({"cases": [{"name": "a", "expression": "true"}, {"name": "a", "expression": "false"}]})
    with pytest.raises(ValidationError, match="'default' is the route taken"):
        RouterNode().parse({"cases": [{"name": "default", "expression": "true"}]})
    with pytest.raises(ValidationError):
        RouterNode().parse({"cases": []})


# subflow


async def test_subflow_runs_the_pinned_version_once_with_rendered_inputs() -> None:
    harness = Harness()
    flow_id = uuid.uuid4()
    data = {"flow_id": str(flow_id), "version": 3, "inputs": {"topic": "{{ inputs.topic }}", "n": "{{ inputs.n }}"}}
    outcome = await run(SubflowNode(), data, harness)
    assert outcome.output == {"echo": {"topic": "otters", "n": 2}}
    assert harness.subflows.calls == [
        {
            "flow_id": flow_id,
            "version": 3,
            "inputs": {"topic": "otters", "n": 2},
            "parent": (harness.execution_id, "n1"),
        }
    ]


async def test_subflow_for_each_outputs_results_in_item_order_within_the_concurrency_bound() -> None:
    # earlier items take longer, so the runs finish in another order than the items'
    harness = Harness(subflows=RecordingSubflows(delays={"a": 0.05, "b": 0.04, "c": 0.03, "d": 0.02, "e": 0.01}))
    data = {
        "flow_id": str(uuid.uuid4()),
        "version": 1,
        "inputs": {"topic": "{{ inputs.topic }}"},
        "for_each": "{{ nodes.search.output.items }}",
        "concurrency": 2,
    }
    outcome = await run(SubflowNode(), data, harness)
    assert outcome.output == [{"echo": {"topic": "otters", "item": item}} for item in "abcde"]
    assert harness.subflows.finished != list("abcde")
    assert harness.subflows.most_running == 2


async def test_subflow_for_each_gives_each_item_to_the_chosen_input() -> None:
    harness = Harness()
    data = {
        "flow_id": str(uuid.uuid4()),
        "version": 1,
        "for_each": "{{ nodes.search.output.items[:2] }}",
        "item_input": "letter",
    }
    outcome = await run(SubflowNode(), data, harness)
    assert outcome.output == [{"echo": {"letter": "a"}}, {"echo": {"letter": "b"}}]


async def test_subflow_for_each_of_an_empty_list_outputs_an_empty_list() -> None:
    data = {"flow_id": str(uuid.uuid4()), "version": 1, "for_each": "{{ nodes.empty.output.items }}"}
    assert (await run(SubflowNode(), data)).output == []


async def test_subflow_for_each_names_the_failed_item_and_cancels_the_rest() -> None:
    # with two at a time: a and b start; a ends, c starts and ends, d starts; b fails while d runs
    delays = {"a": 0.01, "b": 0.05, "c": 0.01, "d": 1.0, "e": 1.0}
    harness = Harness(subflows=RecordingSubflows(delays=delays, fail_on="b"))
    data = {"flow_id": str(uuid.uuid4()), "version": 1, "for_each": "{{ nodes.search.output.items }}", "concurrency": 2}
    with pytest.raises(NodeFailed, match="item 1 failed: the subflow failed: item 'b' broke the child flow"):
        await run(SubflowNode(), data, harness)
    assert harness.subflows.started == ["a", "b", "c", "d"]
    assert harness.subflows.finished == ["a", "c"]
    assert harness.subflows.running == 0


async def test_subflow_for_each_fails_when_the_value_is_not_a_list() -> None:
    data = {"flow_id": str(uuid.uuid4()), "version": 1, "for_each": "{{ nodes.search.output.count }}"}
    with pytest.raises(NodeFailed, match="for_each gave an int, not a list"):
        await run(SubflowNode(), data)


def test_subflow_check_reports_a_version_the_flow_does_not_have() -> None:
    flow_id = uuid.uuid4()
    data = SubflowNode().parse({"flow_id": str(flow_id), "version": 4})
    catalog = Catalog(flows={str(flow_id): frozenset({1, 2})})
    assert SubflowNode().check(data, catalog) == [("version", "the flow has no version 4; its versions are: 1, 2")]
    assert SubflowNode().references(data) == [("flow", str(flow_id), "flow_id")]


def test_subflow_check_reports_an_input_that_the_item_would_overwrite() -> None:
    data = SubflowNode().parse(
        {"flow_id": str(uuid.uuid4()), "version": 1, "for_each": "{{ inputs.list }}", "inputs": {"item": 1}}
    )
    assert [field for field, _ in SubflowNode().check(data, Catalog())] == ["inputs.item"]
