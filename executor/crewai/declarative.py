"""A flow as CrewAI's declarative `crewai.flow/v1` document, where it maps; what does not map is listed.

Each node becomes a method named after its id (`[A-Za-z_][A-Za-z0-9_]*`; other characters
become `_`), and the edges become triggers: a node without incoming edges starts the flow,
one with incoming edges `listen`s to the methods (or branch events) upstream. Templates
and CEL move from CrewCanvas's scope to CrewAI's: `{{ nodes.<id>.output.x }}` becomes
`${outputs.<method>.x}` and `{{ inputs.<name> }}` becomes `${state.<name>}` (the flow's
inputs are its state); conditions keep their CEL with the same roots renamed.

| node | crewai.flow/v1 |
|---|---|
| input | start method: `expression` `state` (the declared inputs become a JSON schema state) |
| llm | `agent` action: a one-agent call with the prompt as input (CrewAI adds its agent prompt) |
| agent | `agent` action: the agent with the task (and expected output) as input |
| crew | `crew` action with the crew inline (`CrewDefinition`) and its inputs as templates |
| tool | `tool` action, `ref: tools.<name>:<Class>`; the module comes in `files` |
| condition, router | router methods whose CEL picks an event (`<method>_<handle>`) |
| human | `human_feedback` on an `expression` method (approve / reject become events when branching) |
| output | `expression` method; the flow's result is the last method's output |
| subflow | not mapped: crewai.flow/v1 has no action that runs another flow |

What does not map (a subflow, a template with filters or `{% %}`, a reference to a record
that no longer exists) is listed in `unmapped` with the reason, and its method stays in
the document as an `expression` returning null whose description says so, so the graph
around it keeps its shape. What maps only partly (retries, timeouts, JSON schemas,
approval semantics, several output nodes) is a note. Every document returned has been
validated with CrewAI's own `FlowDefinition`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from core.context import TenantContext
from core.crew_specs import placeholders
from core.errors import NotFound
from executor.crewai.declarative_scope import (
    CEL_RESERVED,
    IDENT,
    METHOD,
    DeclarativeNote,
    NoMapping,
    References,
    Scope,
)
from executor.crewai.project_sources import tool_class_name, tool_module
from executor.document import FlowDocument, FlowNode, parse_document
from executor.errors import ExecutorError

if TYPE_CHECKING:
    from core.crews import CrewBundle, CrewRecords
    from executor.crewai.project import ProviderSource, ToolSource
    from executor.flows import FlowService

SCHEMA = "crewai.flow/v1"


class Unmapped(BaseModel):
    """A node with no crewai.flow/v1 equivalent, and why."""

    node_id: str
    type: str
    reason: str


class DeclarativeExport(BaseModel):
    """The `crewai.flow/v1` document, what did not map, notes, and the tool modules its `tool` refs name."""

    document: dict[str, Any]
    unmapped: list[Unmapped]
    notes: list[DeclarativeNote]
    files: dict[str, str]


# -- the nodes -----------------------------------------------------------------------------

Mapper = Callable[[FlowNode, Scope], dict[str, Any]]


def _data(node: FlowNode, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(node.data)
    except ValidationError as exc:
        raise NoMapping(f"its data is not valid ({exc.error_count()} problem(s)); fix the node first") from exc


def _input(node: FlowNode, flow: Scope) -> dict[str, Any]:
    return {"description": "The flow's inputs.", "do": {"call": "expression", "expr": "state"}}


def _output(node: FlowNode, flow: Scope) -> dict[str, Any]:
    from executor.nodes.output import OutputData

    data = _data(node, OutputData)
    return {
        "description": f"The flow's result '{data.name}'.",
        "do": {"call": "expression", "expr": flow.expression(data.value, "value")},
    }


def _llm(node: FlowNode, flow: Scope) -> dict[str, Any]:
    from executor.nodes.llm import LLMData

    data = _data(node, LLMData)
    prompt = flow.template(data.prompt, "prompt")
    system = flow.template(data.system, "system")
    backstory = data.system
    if system != data.system:
        prompt, backstory = f"{system}\n\n{prompt}", ""
        flow.note(node.id, "the system prompt has templates: it is sent at the head of the agent's input")
    flow.note(node.id, "runs as a one-agent action: CrewAI wraps the prompt in its agent prompt")
    if data.json_schema is not None:
        flow.note(node.id, "the reply's JSON schema is not kept (an agent's response_format must be a Python class)")
    agent: dict[str, Any] = {
        "role": data.label or "Assistant",
        "goal": "Answer the request you are given.",
        "backstory": backstory or "A helpful assistant.",
        "input": prompt,
    }
    model = flow.references.llm(data.provider_id, data.model)
    if model is not None:
        settings = {"temperature": data.temperature, "max_tokens": data.max_tokens}
        extra = {key: value for key, value in settings.items() if value is not None}
        agent["llm"] = {"model": model, **extra} if extra else model
    return {"do": {"call": "agent", "with": agent}}


def _agent(node: FlowNode, flow: Scope) -> dict[str, Any]:
    from executor.nodes.agent import AgentData

    data = _data(node, AgentData)
    agent: dict[str, Any]
    if data.agent_id is not None:
        saved = flow.references.agents.get(str(data.agent_id))
        if saved is None:
            raise NoMapping(f"its agent {data.agent_id} does not exist in this workspace")
        agent = _agent_definition(saved, flow, node.id)
        needed = placeholders(saved.role, saved.goal, saved.backstory)
        if needed:
            names = ", ".join(f"{{{name}}}" for name in needed)
            flow.note(node.id, f"the agent's placeholders {names} are not filled by an agent action")
    else:
        agent = {"role": data.role, "goal": data.goal, "backstory": data.backstory}
        model = flow.references.llm(data.provider_id, data.model)
        if model is not None:
            agent["llm"] = model
        agent["tools"] = _tool_refs(data.tool_ids, flow, node.id)
    agent["max_iter"] = data.max_iter
    task = flow.template(data.task, "task")
    expected = flow.template(data.expected_output, "expected_output")
    agent["input"] = f"{task}\n\nExpected output: {expected}" if expected else task
    if data.output_schema is not None:
        flow.note(node.id, "the answer's JSON schema is not kept (an agent's response_format must be a Python class)")
    return {"do": {"call": "agent", "with": {key: value for key, value in agent.items() if value not in (None, [])}}}


def _agent_definition(agent: Any, flow: Scope, node_id: str) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "role": agent.role,
        "goal": agent.goal,
        "backstory": agent.backstory,
        "llm": flow.references.llm(agent.provider_id, agent.model),
        "allow_delegation": agent.allow_delegation,
        "max_iter": agent.max_iter,
        "max_execution_time": agent.max_execution_time,
        "verbose": agent.verbose,
        "tools": _tool_refs(agent.tool_ids, flow, node_id),
    }
    return {key: value for key, value in definition.items() if value not in (None, [])}


def _tool_refs(tool_ids: list[uuid.UUID], flow: Scope, node_id: str) -> list[str]:
    refs = []
    for tool_id in tool_ids:
        tool = flow.references.tools.get(str(tool_id))
        if tool is None:
            flow.note(node_id, f"tool {tool_id} does not exist in this workspace; left out")
            continue
        flow.files.setdefault(f"tools/{tool.name}.py", tool_module(tool, tool_class_name(tool.name)))
        refs.append(f"custom:{tool.name}")
    return refs


def _crew(node: FlowNode, flow: Scope) -> dict[str, Any]:
    from executor.nodes.crew import CrewData

    data = _data(node, CrewData)
    bundle = flow.references.crews.get(str(data.crew_id))
    if bundle is None:
        raise NoMapping(f"its crew {data.crew_id} does not exist in this workspace")
    crew = bundle.crew
    agents = {agent.name: _agent_definition(agent, flow, node.id) for agent in bundle.agents.values()}
    tasks = []
    for task in bundle.tasks:
        item: dict[str, Any] = {"name": task.name, "description": task.description}
        item["expected_output"] = task.expected_output
        if task.agent_id is not None and task.agent_id in bundle.agents:
            item["agent"] = bundle.agents[task.agent_id].name
        context = [t.name for t in bundle.tasks if t.id in task.context_ids]
        if context:
            item["context"] = context
        if task.output_file:
            item["output_file"] = task.output_file
        if task.output_schema:
            flow.note(node.id, f"the output schema of task '{task.name}' is not kept")
        tasks.append(item)
    definition: dict[str, Any] = {"name": crew.name, "agents": agents, "tasks": tasks, "inputs": dict(crew.inputs)}
    definition["process"] = crew.process
    if crew.process == "hierarchical":
        if crew.manager_agent_id is not None and crew.manager_agent_id in bundle.agents:
            definition["manager_agent"] = bundle.agents[crew.manager_agent_id].name
        else:
            definition["manager_llm"] = flow.references.llm(crew.manager_provider_id, crew.manager_model)
    if crew.planning:
        definition["planning"] = True
    inputs = {name: flow.template(value, f"inputs.{name}") for name, value in data.inputs.items()}
    action: dict[str, Any] = {"call": "crew", "with": definition}
    if inputs:
        action["inputs"] = inputs
    return {"description": crew.description or None, "do": action}


def _tool(node: FlowNode, flow: Scope) -> dict[str, Any]:
    from executor.nodes.tool import ToolData

    data = _data(node, ToolData)
    tool = flow.references.tools.get(str(data.tool_id))
    if tool is None:
        raise NoMapping(f"its tool {data.tool_id} does not exist in this workspace")
    module = f"tools/{tool.name}.py"
    flow.files.setdefault(module, tool_module(tool, tool_class_name(tool.name)))
    flow.note(node.id, f"the tool runs in-process from {module} (see files); put the folder on the import path")
    action: dict[str, Any] = {"call": "tool", "ref": f"tools.{tool.name}:{tool_class_name(tool.name)}"}
    if data.arguments:
        action["with"] = _templates(data.arguments, flow, "arguments")
    return {"do": action}


def _templates(value: Any, flow: Scope, where: str) -> Any:
    if isinstance(value, str):
        return flow.template(value, where)
    if isinstance(value, list):
        return [_templates(item, flow, f"{where}.{index}") for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _templates(item, flow, f"{where}.{key}") for key, item in value.items()}
    return value


def _condition(node: FlowNode, flow: Scope) -> dict[str, Any]:
    from executor.nodes.condition import ConditionData

    data = _data(node, ConditionData)
    chosen, other = flow.events[(node.id, "true")], flow.events[(node.id, "false")]
    expr = f"({flow.cel(data.expression, 'expression')}) ? {json.dumps(chosen)} : {json.dumps(other)}"
    flow.note(node.id, "its output is the name of the event it chose, not {result: true|false}")
    return {"do": {"call": "expression", "expr": expr}, "router": True, "emit": [chosen, other]}


def _router(node: FlowNode, flow: Scope) -> dict[str, Any]:
    from executor.nodes.router import DEFAULT, RouterData

    data = _data(node, RouterData)
    expr = json.dumps(flow.events[(node.id, DEFAULT)])
    for index, case in reversed(list(enumerate(data.cases))):
        test = flow.cel(case.expression, f"cases.{index}.expression")
        expr = f"({test}) ? {json.dumps(flow.events[(node.id, case.name)])} : ({expr})"
    emit = [flow.events[(node.id, case.name)] for case in data.cases] + [flow.events[(node.id, DEFAULT)]]
    flow.note(node.id, "its output is the name of the event it chose, not {route: <case>}")
    return {"do": {"call": "expression", "expr": expr}, "router": True, "emit": emit}


def _human(node: FlowNode, flow: Scope) -> dict[str, Any]:
    from executor.nodes.human import HumanData

    data = _data(node, HumanData)
    value = flow.expression(data.value, "value") if data.value else flow.upstream_output(node.id)
    feedback: dict[str, Any] = {"message": data.prompt}
    if flow.template(data.prompt, "prompt") != data.prompt:
        flow.note(node.id, "the prompt's templates are shown as written: a feedback message is plain text")
    if data.on_reject == "branch":
        approved, rejected = flow.events[(node.id, "approved")], flow.events[(node.id, "rejected")]
        feedback["emit"] = [approved, rejected]
        if data.respond_within_s is not None:
            feedback["default_outcome"] = approved if data.on_timeout == "approve" else rejected
    else:
        flow.note(node.id, "a rejection does not end a crewai flow: the feedback is recorded and the flow goes on")
    if data.notify or data.respond_within_s is not None:
        flow.note(node.id, "mail notices and the answer deadline are not kept")
    return {"do": {"call": "expression", "expr": value}, "human_feedback": feedback}


def _subflow(node: FlowNode, flow: Scope) -> dict[str, Any]:
    raise NoMapping("crewai.flow/v1 has no action that runs another flow; export that flow and call it in code")


MAPPERS: dict[str, Mapper] = {
    "input": _input,
    "output": _output,
    "llm": _llm,
    "agent": _agent,
    "crew": _crew,
    "tool": _tool,
    "condition": _condition,
    "router": _router,
    "human": _human,
    "subflow": _subflow,
}
#: Handles that are branches: each becomes an event the router method emits.
_BRANCHES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "condition": lambda data: ["true", "false"],
    "router": lambda data: [str(c.get("name")) for c in data.get("cases") or [] if isinstance(c, dict)] + ["default"],
    "human": lambda data: ["approved", "rejected"] if data.get("on_reject") == "branch" else [],
}


# -- the flow ------------------------------------------------------------------------------


def export_flow(
    document: FlowDocument | Mapping[str, Any],
    *,
    name: str,
    description: str = "",
    references: References | None = None,
) -> DeclarativeExport:
    """`document` as a `crewai.flow/v1` document (validated by CrewAI), with what did not map and why."""
    from crewai.flow.flow_definition import FlowDefinition

    parsed = document if isinstance(document, FlowDocument) else parse_document(document)
    methods: dict[str, str] = {}
    taken: set[str] = set()
    for node in parsed.nodes:
        plain = METHOD.sub("_", node.id)
        usable = IDENT.match(plain) and not CEL_RESERVED.match(plain)  # it is read as outputs.<method>
        methods[node.id] = _free(plain if usable else f"node_{plain}", taken)
    events: dict[tuple[str, str], str] = {}
    for node in parsed.nodes:
        for handle in _BRANCHES.get(node.type, lambda data: [])(node.data):
            events[(node.id, handle)] = _free(f"{methods[node.id]}_{handle}", taken)
    incoming: dict[str, list[tuple[str, str]]] = {node.id: [] for node in parsed.nodes}
    for edge in parsed.edges:
        if edge.source in methods and edge.target in incoming:
            incoming[edge.target].append((edge.source, edge.source_handle))
    flow = Scope(parsed, references or References(), methods, events, incoming)
    flow.answers = {
        node.id
        for node in parsed.nodes
        if (node.type == "agent" and not node.data.get("output_schema"))
        or (node.type == "llm" and not node.data.get("json_schema"))
    }
    unmapped: list[Unmapped] = []
    result: dict[str, dict[str, Any]] = {}
    for node in parsed.nodes:
        method_name = methods[node.id]
        kept_notes, kept_files = len(flow.notes), dict(flow.files)
        try:
            mapper = MAPPERS.get(node.type)
            if mapper is None:
                raise NoMapping(f"node type '{node.type}' has no crewai.flow/v1 equivalent")
            method = {key: value for key, value in mapper(node, flow).items() if value is not None}
            method |= _trigger(node, flow)
            _validate_method(FlowDefinition, method_name, method)
        except NoMapping as exc:
            del flow.notes[kept_notes:]  # what the mapper noted before it gave up is not true of the placeholder
            flow.files = kept_files
            unmapped.append(Unmapped(node_id=node.id, type=node.type, reason=str(exc)))
            method = {
                "description": f"NOT MAPPED from CrewCanvas ({node.type} node '{node.id}'): {exc}. Replace this step.",
                "do": {"call": "expression", "expr": "null"},
                **_trigger(node, flow),
            }
        _common_notes(node, flow)
        result[method_name] = method
    outputs = [node.id for node in parsed.nodes if node.type == "output"]
    if outputs:
        flow.note(None, "a crewai flow returns its last method's output, not named outputs: " + ", ".join(outputs))
    definition: dict[str, Any] = {"schema": SCHEMA, "name": name}
    if description:
        definition["description"] = description
    state = _state(parsed)
    if state is not None:
        definition["state"] = state
    definition["methods"] = result
    try:
        FlowDefinition.model_validate(definition)
    except (ValidationError, ValueError) as exc:
        raise ExecutorError(f"the crewai.flow/v1 export of '{name}' does not validate: {exc}") from exc
    return DeclarativeExport(document=definition, unmapped=unmapped, notes=flow.notes, files=flow.files)


def _free(name: str, taken: set[str]) -> str:
    chosen, number = name, 2
    while chosen in taken:
        chosen, number = f"{name}_{number}", number + 1
    taken.add(chosen)
    return chosen


def _trigger(node: FlowNode, flow: Scope) -> dict[str, Any]:
    sources = flow.incoming.get(node.id, [])
    if not sources:
        return {"start": True}
    triggers = list(
        dict.fromkeys(flow.events.get((source, handle), flow.methods[source]) for source, handle in sources)
    )
    if len(triggers) == 1:
        return {"listen": triggers[0]}
    branches = {source for source, handle in sources if (source, handle) in flow.events}
    if len(branches) == 1 and len({source for source, _ in sources}) == 1:
        return {"listen": {"or": triggers}}
    if branches:
        flow.note(
            node.id,
            "CrewCanvas runs it once every input is resolved and one ran; 'and' waits for all of them, "
            "so a branch not taken upstream stops it",
        )
    return {"listen": {"and": triggers}}


def _validate_method(definition: Any, name: str, method: dict[str, Any]) -> None:
    """Check one method on its own, so a CEL or template problem unmaps that node, not the whole flow."""
    probe = {key: value for key, value in method.items() if key not in {"listen"}}
    try:
        definition.model_validate({"schema": SCHEMA, "name": "probe", "methods": {name: probe}})
    except (ValidationError, ValueError) as exc:
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise NoMapping(f"crewai.flow/v1 refuses it: {reason.removeprefix('Value error, ')}") from exc


def _common_notes(node: FlowNode, flow: Scope) -> None:
    data = node.data
    retry = data.get("retry")
    retry = retry if isinstance(retry, dict) else {}
    if data.get("timeout_s") is not None or int(retry.get("attempts") or 1) > 1 or data.get("on_error") == "continue":
        flow.note(node.id, "its timeout, retries and on_error have no crewai.flow/v1 equivalent; not kept")
    if node.pinned_output is not None:
        flow.note(node.id, "its pinned output is not kept: the method runs")


_JSON_TYPES = {"string", "number", "integer", "boolean", "object", "array"}


def _state(document: FlowDocument) -> dict[str, Any] | None:
    if not document.inputs:
        return None
    properties: dict[str, Any] = {}
    required: list[str] = []
    defaults: dict[str, Any] = {}
    for spec in document.inputs:
        schema: dict[str, Any] = {"type": spec.type if spec.type in _JSON_TYPES else "string"}
        if spec.description:
            schema["description"] = spec.description
        properties[spec.name] = schema
        if spec.default is not None:
            defaults[spec.name] = spec.default
        elif spec.required:
            required.append(spec.name)
    json_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        json_schema["required"] = required
    state: dict[str, Any] = {"type": "json_schema", "json_schema": json_schema}
    if defaults:
        state["default"] = defaults
    return state


# -- a saved flow --------------------------------------------------------------------------


async def export_saved_flow(
    ctx: TenantContext,
    flow_id: uuid.UUID,
    *,
    flows: FlowService,
    crews: CrewRecords,
    tools: ToolSource,
    providers: ProviderSource,
    version: int | None = None,
) -> DeclarativeExport:
    """A saved flow's version (the latest by default) as `crewai.flow/v1`, with the records it names (viewers)."""
    import asyncio

    record = await flows.get(ctx, flow_id)
    saved = await flows.version(ctx, flow_id, version)
    document = parse_document(saved.document)
    wanted: dict[str, set[str]] = {"crew_id": set(), "agent_id": set()}
    for node in document.nodes:
        for key, found in wanted.items():
            if isinstance(node.data.get(key), str):
                found.add(node.data[key])
    bundles: dict[str, CrewBundle] = {}
    for crew_id in sorted(wanted["crew_id"]):
        try:
            bundles[crew_id] = await crews.bundle(ctx, uuid.UUID(crew_id))
        except (NotFound, ValueError):
            continue  # the node is reported as unmapped
    agents = {str(agent.id): agent for agent in await crews.list_agents(ctx) if str(agent.id) in wanted["agent_id"]}
    try:
        default: uuid.UUID | None = await providers.default_provider_id(ctx)
    except NotFound:
        default = None
    references = References(
        crews=bundles,
        agents=agents,
        tools={str(tool.id): tool for tool in await tools.list(ctx)},
        providers={str(provider.id): provider for provider in await providers.list(ctx)},
        default_provider_id=default,
    )
    return await asyncio.to_thread(
        export_flow, document, name=record.name, description=record.description, references=references
    )
