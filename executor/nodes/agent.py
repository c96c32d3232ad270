"""The `agent` node: one CrewAI agent doing one task written in the node, from upstream outputs.

The agent is a saved one (`agent_id`) or described in the node (role, goal, backstory,
provider, model, tools); the task and its expected output are templates. The output is
the agent's answer (text), or JSON when an output schema is set.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import Field, StringConstraints, ValidationError, field_validator

from core.crew_specs import AgentSpec, TaskSpec
from core.errors import CoreError
from core.text import JsonObject, Line, Text
from core.tool_schemas import json_schema_or_none
from executor.errors import NodeFailed, TemplateError
from executor.nodes.base import Catalog, NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType, ReferenceKind
from executor.registry import register

DEFAULT_EXPECTED_OUTPUT = "A clear, complete answer to the task."


class AgentData(NodeData):
    """A saved agent or one described here, and the task it does."""

    agent_id: uuid.UUID | None = Field(default=None, description="A saved agent; empty to describe one here.")
    role: Line = Field(default="", description="What the agent is (when no saved agent is chosen).")
    goal: Text = Field(default="", description="What it tries to achieve.")
    backstory: Text = Field(default="", description="Who it is.")
    provider_id: uuid.UUID | None = Field(default=None, description="The LLM provider; empty for the default.")
    model: Annotated[Line, StringConstraints(max_length=200)] | None = Field(default=None)
    tool_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50, description="Saved tools it may call.")
    task: Annotated[Text, StringConstraints(min_length=1)] = Field(
        description="What to do (a template), e.g. Summarise {{ nodes.fetch.output }}."
    )
    expected_output: Text = Field(default=DEFAULT_EXPECTED_OUTPUT, description="What the result should look like.")
    output_schema: JsonObject | None = Field(default=None, description="When set, the answer is JSON of this schema.")
    max_iter: int = Field(default=10, ge=1, le=100, description="Most reasoning steps before it must answer.")
    stream: bool = Field(default=True, description="Show the reply token by token.")

    _check_schema = field_validator("output_schema")(json_schema_or_none)


@register
class AgentNode(NodeType[AgentData]):
    """Renders the task, lets the agent work on it (events per step and tool) and outputs its answer."""

    type = "agent"
    data_model = AgentData
    meta = NodeMeta(
        label="Agent",
        category="AI",
        icon="support_agent",
        help="One agent with a role and goal does one task, using its tools; outputs its answer.",
    )

    def templates(self, data: AgentData) -> dict[str, str]:
        return {"task": data.task, "expected_output": data.expected_output}

    def references(self, data: AgentData) -> list[tuple[ReferenceKind, str, str]]:
        found: list[tuple[ReferenceKind, str, str]] = []
        if data.agent_id is not None:
            found.append(("agent", str(data.agent_id), "agent_id"))
        if data.provider_id is not None:
            found.append(("provider", str(data.provider_id), "provider_id"))
        found.extend(("tool", str(tool_id), f"tool_ids.{i}") for i, tool_id in enumerate(data.tool_ids))
        return found

    def check(self, data: AgentData, catalog: Catalog) -> list[tuple[str, str]]:
        if data.agent_id is None and not (data.role.strip() and data.goal.strip()):
            return [("role", "describe the agent (a role and a goal), or choose a saved agent")]
        if data.agent_id is not None and (data.role or data.goal or data.backstory or data.tool_ids):
            return [("agent_id", "a saved agent brings its own role, goal and tools; clear them here or the agent")]
        return []

    async def run(self, data: AgentData, ctx: NodeContext) -> NodeOutcome:
        from executor.crewai.factories import run_crew

        agent, tools = await _agent(data, ctx)
        try:
            task = TaskSpec(
                name="task",
                description=ctx.render(data.task),
                expected_output=ctx.render(data.expected_output) or DEFAULT_EXPECTED_OUTPUT,
                output_schema=data.output_schema,
            )
        except TemplateError as exc:
            raise NodeFailed(f"the task could not be rendered: {exc}") from exc

        def build(kit: Any) -> Any:
            from crewai import Crew

            built = kit.agent(agent, tools)
            return Crew(agents=[built], tasks=[kit.task(task, built)], memory=False, verbose=False)

        # No inputs: the task was rendered already, and braces in upstream text are not placeholders.
        output = await run_crew(ctx, build, None, stream=data.stream)
        if data.output_schema is not None:
            return NodeOutcome(output=output.json_dict)
        return NodeOutcome(output=output.raw)


async def _agent(data: AgentData, ctx: NodeContext) -> tuple[Any, dict[uuid.UUID, Any]]:
    """The agent record (saved, or described in the node) and the tools it uses."""
    crews = ctx.services.crews
    if crews is None:
        raise NodeFailed("agents cannot run here: this server was started without agent records")
    try:
        if data.agent_id is not None:
            record: Any = await crews.get_agent(ctx.tenant, data.agent_id)
        else:
            record = AgentSpec(
                name="agent",
                role=data.role,
                goal=data.goal,
                backstory=data.backstory,
                provider_id=data.provider_id,
                model=data.model,
                tool_ids=data.tool_ids,
                max_iter=data.max_iter,
            )
        tools = await crews.tools_by_id(ctx.tenant, record.tool_ids)
    except CoreError as exc:
        raise NodeFailed(str(exc)) from exc
    except ValidationError as exc:
        raise NodeFailed(f"the agent described in the node is incomplete: {exc.errors()[0]['msg']}") from exc
    return record, tools
