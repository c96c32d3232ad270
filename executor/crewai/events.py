"""CrewAI's events as ours: task, agent-step, tool and token events under the crew's node.

Each translated event names the task and the agent by the names of our records (CrewAI
knows agents by role and id; `Names` maps its ids back), carries CrewAI's
`emission_sequence` as `crew_seq`, and clips long texts so one event stays small (the
whole output of a task is kept in the node run; events are for watching).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Texts in events are cut to this many characters; the node run keeps the whole output.
EVENT_TEXT_LIMIT = 4000

# Our event type for each CrewAI event type (by its `type` field) that is worth watching.
TASK_STARTED, TASK_COMPLETED, TASK_FAILED = "crew_task_started", "crew_task_completed", "crew_task_failed"
AGENT_STEP, TOOL_STARTED, TOOL_FINISHED, TOOL_FAILED = "agent_step", "tool_started", "tool_finished", "tool_failed"
TOKEN = "token"  # noqa: S105  (an event type, not a secret)


def clip(value: Any, limit: int = EVENT_TEXT_LIMIT) -> str:
    """`value` as text of at most `limit` characters (JSON for data), saying how much was left out."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= limit:
        return text
    return text[:limit] + f"... ({len(text) - limit} more characters)"


@dataclass
class Names:
    """Our names for CrewAI's agents (by CrewAI's agent id) and tasks (CrewAI's task name is ours)."""

    agents: dict[str, str] = field(default_factory=dict)
    # Some events (agent logs) carry only the role, as filled at kickoff: learned from events carrying both.
    roles: dict[str, str] = field(default_factory=dict)
    # The task each agent works on now: agent-log events do not say.
    tasks: dict[str, str] = field(default_factory=dict)

    def agent(self, event: Any, agent: Any = None) -> str | None:
        agent_id = str(agent.id) if agent is not None else getattr(event, "agent_id", None)
        role = getattr(agent, "role", None) if agent is not None else getattr(event, "agent_role", None)
        if agent_id and agent_id in self.agents:
            if role:
                self.roles.setdefault(str(role), self.agents[agent_id])
            return self.agents[agent_id]
        if role:
            return self.roles.get(str(role), str(role))
        return None


def _task_agent(event: Any) -> Any:
    task = getattr(event, "task", None)
    return getattr(task, "agent", None) if task is not None else None


def translate(event: Any, names: Names) -> tuple[str, dict[str, Any]] | None:
    """Our (type, data) for a CrewAI event, or None for the events nobody watches."""
    kind = getattr(event, "type", None)
    where: dict[str, Any] = {"task": getattr(event, "task_name", None)}
    sequence = getattr(event, "emission_sequence", None)
    if sequence is not None:
        where["crew_seq"] = sequence
    if kind == "task_started":
        agent = names.agent(event, _task_agent(event))
        if agent and where["task"]:
            names.tasks[agent] = where["task"]
        return TASK_STARTED, {**where, "agent": agent}
    if kind == "task_completed":
        output = event.output
        return TASK_COMPLETED, {
            **where,
            "agent": names.agent(event, _task_agent(event)),
            "output": clip(getattr(output, "raw", output)),
        }
    if kind == "task_failed":
        return TASK_FAILED, {**where, "agent": names.agent(event, _task_agent(event)), "error": clip(event.error)}
    agent = names.agent(event)
    if not where["task"] and agent:
        where["task"] = names.tasks.get(agent)
    if kind == "llm_stream_chunk":
        return (TOKEN, {**where, "agent": agent, "text": event.chunk}) if event.chunk else None
    if kind == "tool_usage_started":
        return TOOL_STARTED, {**where, "agent": agent, "tool": event.tool_name, "arguments": clip(event.tool_args)}
    if kind == "tool_usage_finished":
        return TOOL_FINISHED, {**where, "agent": agent, "tool": event.tool_name, "output": clip(event.output)}
    if kind == "tool_usage_error":
        return TOOL_FAILED, {**where, "agent": agent, "tool": event.tool_name, "error": clip(event.error)}
    if kind == "agent_logs_execution":
        return AGENT_STEP, {**where, "agent": agent, **_step(event.formatted_answer)}
    if kind == "llm_call_completed" and isinstance(event.response, list):
        calls = [
            {"tool": call["function"]["name"], "arguments": clip(call["function"].get("arguments") or "", 1000)}
            for call in event.response
            if isinstance(call, dict) and isinstance(call.get("function"), dict)
        ]
        return (AGENT_STEP, {**where, "agent": agent, "tool_calls": calls}) if calls else None
    return None


def _step(answer: Any) -> dict[str, Any]:
    """An agent's step (CrewAI's AgentAction or AgentFinish) as plain data."""
    thought = getattr(answer, "thought", "") or ""
    # CrewAI's stand-in when a reply is not in its Thought/Action format (the reply becomes the answer).
    if thought == "Failed to parse LLM response":
        thought = ""
    step: dict[str, Any] = {"thought": clip(thought)}
    if hasattr(answer, "tool"):
        step.update(tool=answer.tool, arguments=clip(answer.tool_input or ""), final=False)
    else:
        step.update(output=clip(getattr(answer, "output", "") or ""), final=True)
    return step


def coalesce(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Join runs of token events of the same task and agent into one event (fewer, larger events)."""
    joined: list[tuple[str, dict[str, Any]]] = []
    for kind, data in events:
        if kind == TOKEN and joined:
            last_kind, last = joined[-1]
            if last_kind == TOKEN and last.get("task") == data.get("task") and last.get("agent") == data.get("agent"):
                joined[-1] = (TOKEN, {**last, "text": last["text"] + data["text"]})
                continue
        joined.append((kind, dict(data)))
    return joined
