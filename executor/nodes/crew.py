"""The `crew` node: runs a saved CrewAI crew with its placeholders filled from templates.

Its output mirrors CrewAI's `CrewOutput`: `raw` (the last task's result), `json` (when that
task has an output schema) and `tasks` (every task's name, agent and result), so a trace
shows each task and `{{ nodes.<id>.output.raw }}` reads the answer downstream. While it
runs, each task, agent step, tool call and streamed token is an event under the node.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import Field

from core.errors import CoreError
from core.text import Text
from executor.errors import NodeFailed, TemplateError
from executor.nodes.base import Catalog, NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType, ReferenceKind
from executor.registry import register
from executor.templates import templates_in


class CrewData(NodeData):
    """Which crew to run, and a template for each of its inputs."""

    crew_id: uuid.UUID = Field(description="The saved crew to run.")
    inputs: dict[str, Text] = Field(
        default_factory=dict,
        description="A template for each of the crew's {placeholders}, e.g. topic: {{ inputs.topic }}.",
    )
    conversation: Text = Field(
        default="",
        description=(
            "A chat's messages so far, for every task to read: a template giving a list of {role, content}, "
            "e.g. {{ inputs.messages }}."
        ),
    )
    stream: bool = Field(default=True, description="Show the agents' replies token by token.")


@register
class CrewNode(NodeType[CrewData]):
    """Fills the crew's placeholders, runs it (events per task, step and tool) and outputs its result."""

    type = "crew"
    data_model = CrewData
    meta = NodeMeta(
        label="Crew",
        category="AI",
        icon="groups",
        help="Runs one of your saved crews: its agents work through its tasks; outputs every task's result.",
    )

    def templates(self, data: CrewData) -> dict[str, str]:
        found = templates_in(data.inputs, "inputs")
        if data.conversation:
            found["conversation"] = data.conversation
        return found

    def references(self, data: CrewData) -> list[tuple[ReferenceKind, str, str]]:
        return [("crew", str(data.crew_id), "crew_id")]

    def check(self, data: CrewData, catalog: Catalog) -> list[tuple[str, str]]:
        crew = catalog.crews.get(str(data.crew_id))
        if crew is None:
            return []
        name = crew.get("name") or data.crew_id
        placeholders = list(crew.get("placeholders") or [])
        defaults = crew.get("inputs") or {}
        problems = [("crew_id", f"crew '{name}' cannot run: {message}") for message in crew.get("problems") or []]
        problems.extend(
            (f"inputs.{placeholder}", f"crew '{name}' needs the input '{placeholder}'; give it a template")
            for placeholder in placeholders
            if placeholder not in data.inputs and placeholder not in defaults
        )
        known = ", ".join(placeholders) or "none"
        problems.extend(
            (f"inputs.{given}", f"crew '{name}' has no placeholder '{given}'; its placeholders are: {known}")
            for given in data.inputs
            if given not in placeholders
        )
        return problems

    async def run(self, data: CrewData, ctx: NodeContext) -> NodeOutcome:
        from executor.crewai.factories import crew_result, run_crew

        if ctx.services.crews is None:
            raise NodeFailed("crews cannot run here: this server was started without crew records")
        try:
            bundle = await ctx.services.crews.bundle(ctx.tenant, data.crew_id)
        except CoreError as exc:
            raise NodeFailed(str(exc)) from exc
        crew = bundle.crew
        if crew.problems:
            listed = "; ".join(problem.message for problem in crew.problems)
            raise NodeFailed(f"crew '{crew.name}' cannot run: {listed}")
        try:
            given = {name: ctx.render(template) for name, template in data.inputs.items()}
            conversation = _messages(ctx.render_value(data.conversation)) if data.conversation else []
        except TemplateError as exc:
            raise NodeFailed(f"the crew's inputs could not be rendered: {exc}") from exc
        inputs: dict[str, Any] = {**crew.inputs, **given}
        missing = [name for name in crew.placeholders if name not in inputs]
        if missing:
            raise NodeFailed(f"crew '{crew.name}' needs the inputs {', '.join(missing)}; map each to a template")
        if conversation:
            # CrewAI's own way to hand a crew a chat: it adds the messages to every task's description
            # after filling the placeholders, so braces in them are never taken for placeholders.
            inputs["crew_chat_messages"] = json.dumps(conversation, ensure_ascii=False)
        output = await run_crew(ctx, lambda kit: kit.crew(bundle), inputs, stream=data.stream)
        result = crew_result(output)
        # CrewAI names a task's agent by role; ours have names.
        by_task = {
            task.name: bundle.agents[task.agent_id].name for task in bundle.tasks if task.agent_id in bundle.agents
        }
        for task in result["tasks"]:
            task["agent"] = by_task.get(task["name"], task["agent"])
        return NodeOutcome(output=result)


def _messages(value: Any) -> list[dict[str, str]]:
    """A conversation as a list of {role, content}; `NodeFailed` if it is something else."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            raise NodeFailed("the conversation must be a list of {role, content} messages, not text") from None
    if not isinstance(value, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    ):
        raise NodeFailed("the conversation must be a list of {role, content} messages")
    return [{"role": m["role"], "content": m["content"]} for m in value]
