"""What users write for CrewAI: agents, tasks and crews as plain models, their placeholders and their checks.

Nothing here imports CrewAI (it lives in `executor/crewai/`); these are the records'
shapes (the API's request bodies too) and the rules a crew must follow before it can run:

- a name is snake_case, because it becomes a key of CrewAI's `agents.yaml` / `tasks.yaml`
  and a method name in an exported `crew.py`;
- `{placeholders}` in an agent's role, goal and backstory and in a task's description,
  expected output and output file are the crew's inputs (CrewAI fills them at kickoff);
- `crew_problems` names the record and field of everything that would stop a crew from
  running: a sequential task without an agent, a hierarchical crew without a manager, a
  context task that comes later, a task or agent that is not part of the crew.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from core.text import JsonObject, Line, Name, Text
from core.tool_schemas import json_schema_or_none

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# CrewAI's own rule for what it interpolates: `{name}` with an identifier-like name.
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_\-]*)\}")
Process = Literal["sequential", "hierarchical"]
RequiredText = Annotated[Text, StringConstraints(min_length=1)]
ModelName = Annotated[Line, StringConstraints(max_length=200)]


def placeholders(*texts: str | None) -> list[str]:
    """The `{placeholders}` in `texts`, each once, in the order they first appear."""
    found: dict[str, None] = {}
    for text in texts:
        for match in PLACEHOLDER.finditer(text or ""):
            found.setdefault(match.group(1), None)
    return list(found)


def _snake_case(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError(
            "must be snake_case: a lowercase letter, then up to 63 lowercase letters, digits or underscores "
            "(e.g. 'researcher')"
        )
    return value


class AgentSpec(BaseModel):
    """An agent: who it is (role, goal, backstory), which model it thinks with and which tools it may use."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="snake_case, unique in the workspace, e.g. researcher.")
    role: RequiredText = Field(description="What the agent is, e.g. Senior {topic} researcher.")
    goal: RequiredText = Field(description="What it tries to achieve.")
    backstory: Text = Field(default="", description="Who it is; shapes how it works.")
    provider_id: uuid.UUID | None = Field(default=None, description="The LLM provider; empty for the default.")
    model: ModelName | None = Field(default=None, description="The model; empty for the provider's first model.")
    tool_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50, description="Saved tools it may call.")
    allow_delegation: bool = Field(default=False, description="May hand work to the crew's other agents.")
    max_iter: int = Field(default=25, ge=1, le=100, description="Most reasoning steps before it must answer.")
    max_execution_time: int | None = Field(default=None, ge=1, le=86_400, description="Seconds before it stops.")
    verbose: bool = False

    _check_name = field_validator("name")(_snake_case)

    def find_placeholders(self) -> list[str]:
        return placeholders(self.role, self.goal, self.backstory)


class TaskSpec(BaseModel):
    """A task: what to do, what a good result looks like, who does it and which tasks' results it reads."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="snake_case, unique in the workspace, e.g. research_task.")
    description: RequiredText = Field(description="What to do; {placeholders} are the crew's inputs.")
    expected_output: RequiredText = Field(description="What the result should look like.")
    agent_id: uuid.UUID | None = Field(default=None, description="Who does it; empty in a hierarchical crew.")
    context_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=50, description="Earlier tasks whose results this one reads."
    )
    output_schema: JsonObject | None = Field(
        default=None, description="When set, the result must be JSON valid against this schema."
    )
    output_file: Line | None = Field(
        default=None, description="A file name CrewAI would write the result to (kept as a name only)."
    )

    _check_name = field_validator("name")(_snake_case)

    _check_schema = field_validator("output_schema")(json_schema_or_none)

    @field_validator("output_file")
    @classmethod
    def _plain_file_name(cls, value: str | None) -> str | None:
        if value is not None and ("/" in value or "\\" in value or value in {".", ".."} or not value.strip()):
            raise ValueError("must be a plain file name such as report.md, without folders")
        return value

    def find_placeholders(self) -> list[str]:
        return placeholders(self.description, self.expected_output, self.output_file)


class CrewSpec(BaseModel):
    """A crew: its agents, its tasks in order, and how they work together."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="snake_case, unique in the workspace, e.g. research_crew.")
    description: Text = ""
    process: Process = Field(
        default="sequential",
        description="sequential: tasks run in order; hierarchical: a manager plans and delegates them.",
    )
    agent_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)
    task_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100, description="In the order they run.")
    manager_provider_id: uuid.UUID | None = Field(default=None, description="Hierarchical: the manager's provider.")
    manager_model: ModelName | None = Field(default=None, description="Hierarchical: the manager's model.")
    manager_agent_id: uuid.UUID | None = Field(
        default=None, description="Hierarchical: an agent of yours that manages (instead of a manager model)."
    )
    planning: bool = Field(default=False, description="Plan every task before the crew starts.")
    inputs: dict[str, Line] = Field(
        default_factory=dict, description="Default values of the crew's {placeholders}, by name."
    )

    _check_name = field_validator("name")(_snake_case)

    def has_manager(self) -> bool:
        return (
            self.manager_agent_id is not None
            or self.manager_model is not None
            or (self.manager_provider_id is not None)
        )


@dataclass(frozen=True, slots=True)
class CrewProblem:
    """Something that stops a crew from running: which record (`kind`, `name`), which field, and why."""

    kind: Literal["crew", "agent", "task"]
    name: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind} '{self.name}', {self.field}: {self.message}"


def crew_placeholders(agents: Iterable[AgentSpec], tasks: Iterable[TaskSpec]) -> list[str]:
    """Every placeholder of a crew's agents and tasks, each once (tasks first: they are read first)."""
    found: dict[str, None] = {}
    for task in tasks:
        found.update(dict.fromkeys(task.find_placeholders()))
    for agent in agents:
        found.update(dict.fromkeys(agent.find_placeholders()))
    return list(found)


def crew_problems(
    crew: CrewSpec,
    agents: Mapping[uuid.UUID, AgentSpec],
    tasks: Mapping[uuid.UUID, TaskSpec],
) -> list[CrewProblem]:
    """What stops `crew` from running, given the agents and tasks it refers to (by id; missing ones are named)."""
    problems: list[CrewProblem] = []

    def add(kind: Literal["crew", "agent", "task"], name: str, field: str, message: str) -> None:
        problems.append(CrewProblem(kind, name, field, message))

    if not crew.task_ids:
        add("crew", crew.name, "task_ids", "a crew needs at least one task; add one")
    for index, agent_id in enumerate(crew.agent_ids):
        if agent_id not in agents:
            add("crew", crew.name, f"agent_ids.{index}", f"no agent with id {agent_id}; it may have been deleted")
    members = set(crew.agent_ids)
    position = {task_id: index for index, task_id in enumerate(crew.task_ids)}
    if len(position) != len(crew.task_ids):
        add("crew", crew.name, "task_ids", "a task is listed twice; each task runs once")
    for index, task_id in enumerate(crew.task_ids):
        task = tasks.get(task_id)
        if task is None:
            add("crew", crew.name, f"task_ids.{index}", f"no task with id {task_id}; it may have been deleted")
            continue
        if task.agent_id is None:
            if crew.process == "sequential":
                add("task", task.name, "agent_id", "a task of a sequential crew needs an agent; choose one")
        elif task.agent_id not in agents:
            add("task", task.name, "agent_id", f"no agent with id {task.agent_id}; it may have been deleted")
        elif task.agent_id not in members:
            name = agents[task.agent_id].name
            add("task", task.name, "agent_id", f"agent '{name}' is not one of the crew's agents; add it to the crew")
        for context_index, context_id in enumerate(task.context_ids):
            where = f"context_ids.{context_index}"
            if context_id not in position:
                known = tasks.get(context_id)
                what = f"task '{known.name}'" if known else f"task {context_id}"
                add("task", task.name, where, f"{what} is not one of the crew's tasks")
            elif position[context_id] >= index:
                later = tasks[context_id].name
                add("task", task.name, where, f"task '{later}' runs later; a task can only read earlier tasks")
    if crew.process == "hierarchical":
        if not crew.has_manager():
            add(
                "crew",
                crew.name,
                "manager_model",
                "a hierarchical crew needs a manager: choose a manager model or a manager agent",
            )
        if crew.manager_agent_id is not None:
            if crew.manager_agent_id not in agents:
                add("crew", crew.name, "manager_agent_id", f"no agent with id {crew.manager_agent_id}")
            elif crew.manager_agent_id in members:
                add(
                    "crew", crew.name, "manager_agent_id", "the manager agent must not also be one of the crew's agents"
                )
    elif crew.manager_agent_id is not None or crew.manager_model is not None:
        add("crew", crew.name, "process", "a manager only works in a hierarchical crew; choose hierarchical")
    if not crew.agent_ids and crew.process == "sequential":
        add("crew", crew.name, "agent_ids", "a crew needs at least one agent; add one")
    return problems


def missing_inputs(needed: Iterable[str], given: Iterable[str]) -> list[str]:
    """The placeholders in `needed` with no value in `given`."""
    have = set(given)
    return [name for name in needed if name not in have]
