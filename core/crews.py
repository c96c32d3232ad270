"""Agent, task and crew records of a tenant: stored, checked on every save, gathered to run or export.

The shapes and the crew rules are `core.crew_specs`'; this module stores them (the fields
beyond the table columns go in each row's `settings` JSON, ids as strings) and checks
every save against what the tenant has now:

- an agent's provider and tools exist, and an agent on the bundled local model has no tools;
- a task's agent and context tasks exist, and a task is not its own context;
- a crew passes `crew_problems`, its manager provider exists, and its agents pass the
  agent checks (a tool deleted since an agent was saved is a problem of its crews).

Every problem of a save is reported at once, in one `InvalidInput` whose problems name
the field and whose messages name the record. A record that others use cannot be
deleted (`Conflict` naming the users). Records change independently, so a crew's
`problems` are worked out whenever it is read, never stored.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Role, TenantContext
from core.crew_specs import AgentSpec, CrewProblem, CrewSpec, TaskSpec, crew_placeholders, crew_problems
from core.errors import Conflict, InvalidInput, NotFound, Problem
from core.llm.local import NO_TOOLS
from core.tools import ToolService, ToolView
from db.database import Database
from db.models import Agent, Crew, Task, Tool

#: Spec fields kept in each row's `settings` JSON rather than in columns.
AGENT_SETTINGS = frozenset({"allow_delegation", "max_iter", "max_execution_time", "verbose"})
TASK_SETTINGS = frozenset({"context_ids", "output_schema", "output_file"})
CREW_SETTINGS = frozenset({"manager_provider_id", "manager_model", "manager_agent_id", "planning", "inputs"})
LOCAL_KIND = "local"
# What CrewAI interpolates as `{name}`: an input's name must be one, or no placeholder can use it.
INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,199}$")


class AgentView(AgentSpec):
    """A stored agent: its fields, its id, the placeholders it needs and when it was saved."""

    id: uuid.UUID
    placeholders: list[str]
    created_at: datetime
    updated_at: datetime


class TaskView(TaskSpec):
    """A stored task: its fields, its id, the placeholders it needs and when it was saved."""

    id: uuid.UUID
    placeholders: list[str]
    created_at: datetime
    updated_at: datetime


class CrewProblemView(BaseModel):
    """Something that stops a crew from running: which record (`kind`, `name`), which field of it, and why."""

    kind: str
    name: str
    field: str
    message: str


class CrewView(CrewSpec):
    """A stored crew, with every placeholder of its agents and tasks and what stops it from running now."""

    id: uuid.UUID
    placeholders: list[str]
    problems: list[CrewProblemView]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CrewBundle:
    """Everything needed to run or export one crew."""

    crew: CrewView
    #: The crew's agents plus its manager agent (those that still exist).
    agents: dict[uuid.UUID, AgentView]
    #: The crew's tasks in the crew's order (those that still exist).
    tasks: list[TaskView]
    #: Every tool those agents use.
    tools: dict[uuid.UUID, ToolView]


class _ProviderLike(Protocol):
    @property
    def id(self) -> uuid.UUID: ...

    @property
    def kind(self) -> str: ...


class ProviderDirectory(Protocol):
    """What the records need of the providers (`core.providers.ProviderService` fits)."""

    async def list(self, ctx: TenantContext) -> Sequence[_ProviderLike]: ...


@dataclass
class _World:
    """What a save or a view is checked against: the tenant's providers (id -> kind), tools, agents and tasks."""

    providers: dict[uuid.UUID, str]
    tools: set[uuid.UUID]
    agents: dict[uuid.UUID, AgentSpec]
    tasks: dict[uuid.UUID, TaskSpec]


Fault = tuple[str, str]  # (field, message) of one record, before the record is named
R = TypeVar("R", Agent, Task, Crew)
S = TypeVar("S", AgentSpec, TaskSpec, CrewSpec)


class CrewRecords:
    """Create, read, change and delete a tenant's agents, tasks and crews; bundle a crew to run it."""

    def __init__(self, db: Database, tools: ToolService, providers: ProviderDirectory) -> None:
        self._db = db
        self._tools = tools
        self._providers = providers

    # -- agents ----------------------------------------------------------------------------

    async def list_agents(self, ctx: TenantContext, search: str | None = None) -> list[AgentView]:
        """The tenant's agents by name; `search` keeps those whose name or role contains it, ignoring case."""
        ctx.require(Role.VIEWER, "see agents")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            rows = await session.scalars(select(Agent).order_by(Agent.name))
            return [_agent_view(row) for row in rows if _matches(search, row.name, row.role)]

    async def get_agent(self, ctx: TenantContext, agent_id: uuid.UUID) -> AgentView:
        ctx.require(Role.VIEWER, "see agents")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            return _agent_view(await _load(session, Agent, agent_id))

    async def create_agent(self, ctx: TenantContext, spec: AgentSpec) -> AgentView:
        """Store a new agent after checking its provider and tools."""
        ctx.require(Role.EDITOR, "create agents")
        world = await self._world(ctx)
        _refuse(_named("agent", spec.name, _agent_faults(spec, world)), "agent", spec.name)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await _write(session, Agent(id=uuid.uuid4()), _values(spec, AGENT_SETTINGS))
            return _agent_view(row)

    async def update_agent(self, ctx: TenantContext, agent_id: uuid.UUID, spec: AgentSpec) -> AgentView:
        """Replace every field of an agent."""
        ctx.require(Role.EDITOR, "change agents")
        world = await self._world(ctx)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await _load(session, Agent, agent_id)
            _refuse(_named("agent", spec.name, _agent_faults(spec, world)), "agent", spec.name)
            return _agent_view(await _write(session, row, _values(spec, AGENT_SETTINGS)))

    async def delete_agent(self, ctx: TenantContext, agent_id: uuid.UUID) -> None:
        """Delete an agent no task or crew uses."""
        ctx.require(Role.EDITOR, "delete agents")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await _load(session, Agent, agent_id)
            users = [f"task '{task.name}'" for task in await _all(session, Task) if task.agent_id == agent_id]
            for crew in await _all(session, Crew):
                spec = _crew_spec(crew)
                if agent_id in spec.agent_ids:
                    users.append(f"crew '{crew.name}'")
                elif spec.manager_agent_id == agent_id:
                    users.append(f"crew '{crew.name}' (as its manager)")
            if users:
                raise Conflict(
                    f"agent '{row.name}' is used by {_and(users)}; give them another agent first, then delete it"
                )
            await session.delete(row)
            await session.commit()

    # -- tasks -----------------------------------------------------------------------------

    async def list_tasks(self, ctx: TenantContext, search: str | None = None) -> list[TaskView]:
        """The tenant's tasks by name; `search` keeps those whose name or description contains it, ignoring case."""
        ctx.require(Role.VIEWER, "see tasks")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            rows = await session.scalars(select(Task).order_by(Task.name))
            return [_task_view(row) for row in rows if _matches(search, row.name, row.description)]

    async def get_task(self, ctx: TenantContext, task_id: uuid.UUID) -> TaskView:
        ctx.require(Role.VIEWER, "see tasks")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            return _task_view(await _load(session, Task, task_id))

    async def create_task(self, ctx: TenantContext, spec: TaskSpec) -> TaskView:
        """Store a new task after checking its agent and context tasks."""
        ctx.require(Role.EDITOR, "create tasks")
        task_id = uuid.uuid4()
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            world = await _records(session)
            _refuse(_named("task", spec.name, _task_faults(task_id, spec, world)), "task", spec.name)
            row = await _write(session, Task(id=task_id), _values(spec, TASK_SETTINGS))
            return _task_view(row)

    async def update_task(self, ctx: TenantContext, task_id: uuid.UUID, spec: TaskSpec) -> TaskView:
        """Replace every field of a task."""
        ctx.require(Role.EDITOR, "change tasks")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await _load(session, Task, task_id)
            world = await _records(session)
            _refuse(_named("task", spec.name, _task_faults(task_id, spec, world)), "task", spec.name)
            return _task_view(await _write(session, row, _values(spec, TASK_SETTINGS)))

    async def delete_task(self, ctx: TenantContext, task_id: uuid.UUID) -> None:
        """Delete a task that is in no crew and no other task's context."""
        ctx.require(Role.EDITOR, "delete tasks")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await _load(session, Task, task_id)
            users = [
                f"crew '{crew.name}'" for crew in await _all(session, Crew) if task_id in _crew_spec(crew).task_ids
            ]
            users += [
                f"task '{task.name}' (as context)"
                for task in await _all(session, Task)
                if task.id != task_id and task_id in _task_spec(task).context_ids
            ]
            if users:
                raise Conflict(f"task '{row.name}' is used by {_and(users)}; remove it from them first, then delete it")
            await session.delete(row)
            await session.commit()

    # -- crews -----------------------------------------------------------------------------

    async def list_crews(self, ctx: TenantContext, search: str | None = None) -> list[CrewView]:
        """The tenant's crews by name; `search` keeps those whose name or description contains it, ignoring case."""
        ctx.require(Role.VIEWER, "see crews")
        providers = await self._provider_kinds(ctx)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            world = await _records(session, providers)
            rows = await session.scalars(select(Crew).order_by(Crew.name))
            return [_crew_view(row, world) for row in rows if _matches(search, row.name, row.description)]

    async def get_crew(self, ctx: TenantContext, crew_id: uuid.UUID) -> CrewView:
        ctx.require(Role.VIEWER, "see crews")
        providers = await self._provider_kinds(ctx)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await _load(session, Crew, crew_id)
            return _crew_view(row, await _records(session, providers))

    async def create_crew(self, ctx: TenantContext, spec: CrewSpec) -> CrewView:
        """Store a new crew if nothing would stop it from running."""
        ctx.require(Role.EDITOR, "create crews")
        world = await self._world(ctx)
        _refuse(_crew_save_problems(spec, world), "crew", spec.name)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await _write(session, Crew(id=uuid.uuid4()), _values(spec, CREW_SETTINGS))
            return _crew_view(row, world)

    async def update_crew(self, ctx: TenantContext, crew_id: uuid.UUID, spec: CrewSpec) -> CrewView:
        """Replace every field of a crew, if nothing would stop it from running."""
        ctx.require(Role.EDITOR, "change crews")
        world = await self._world(ctx)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await _load(session, Crew, crew_id)
            _refuse(_crew_save_problems(spec, world), "crew", spec.name)
            return _crew_view(await _write(session, row, _values(spec, CREW_SETTINGS)), world)

    async def delete_crew(self, ctx: TenantContext, crew_id: uuid.UUID) -> None:
        """Delete a crew; its agents and tasks stay."""
        ctx.require(Role.EDITOR, "delete crews")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            await session.delete(await _load(session, Crew, crew_id))
            await session.commit()

    # -- running and importing -------------------------------------------------------------

    async def bundle(self, ctx: TenantContext, crew_id: uuid.UUID) -> CrewBundle:
        """The crew with its agents (and manager agent), its tasks in order and their agents' tools."""
        ctx.require(Role.VIEWER, "see crews")
        providers = await self._provider_kinds(ctx)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await _load(session, Crew, crew_id)
            world = await _records(session, providers)
            crew = _crew_view(row, world)
            agent_ids = [*crew.agent_ids, *([crew.manager_agent_id] if crew.manager_agent_id else [])]
            agent_rows = {a.id: a for a in await _all(session, Agent) if a.id in agent_ids}
            task_rows = {t.id: t for t in await _all(session, Task) if t.id in crew.task_ids}
        agents = {agent_id: _agent_view(agent_rows[agent_id]) for agent_id in agent_ids if agent_id in agent_rows}
        tasks = [_task_view(task_rows[task_id]) for task_id in crew.task_ids if task_id in task_rows]
        used = [tool_id for agent in agents.values() for tool_id in agent.tool_ids if tool_id in world.tools]
        return CrewBundle(crew=crew, agents=agents, tasks=tasks, tools=await self.tools_by_id(ctx, used))

    async def tools_by_id(self, ctx: TenantContext, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, ToolView]:
        """The tools with these ids (each once, in the order given); `NotFound` naming one that does not exist."""
        ctx.require(Role.VIEWER, "see tools")
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        known = {tool.id: tool for tool in await self._tools.list(ctx)}
        for tool_id in wanted:
            if tool_id not in known:
                raise NotFound(f"no tool with id {tool_id} in this workspace; it may have been deleted")
        return {tool_id: known[tool_id] for tool_id in wanted}

    async def save_all(
        self,
        ctx: TenantContext,
        agents: dict[uuid.UUID, AgentSpec],
        tasks: dict[uuid.UUID, TaskSpec],
        crew: CrewSpec,
    ) -> CrewView:
        """Create these agents and tasks (with the given ids) and the crew in one transaction: all or nothing.

        Every check of the single saves applies, against the tenant's records plus these; all
        problems are reported at once (`InvalidInput`), and a name or id that is taken is a
        `Conflict`. Either way nothing is created.
        """
        ctx.require(Role.EDITOR, "create crews")
        providers = await self._provider_kinds(ctx)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            world = await _records(session, providers)
            _refuse_taken(world, agents, tasks)
            world.agents.update(agents)
            world.tasks.update(tasks)
            problems = [p for spec in agents.values() for p in _named("agent", spec.name, _agent_faults(spec, world))]
            for task_id, task in tasks.items():
                problems += _named("task", task.name, _task_faults(task_id, task, world))
            # The crew's view of these agents' problems would repeat the ones just listed.
            problems += _crew_save_problems(crew, world, skip_agents={spec.name for spec in agents.values()})
            _refuse(problems, "crew", crew.name)
            await _check_name_free(session, Crew, crew.name)
            session.add_all(Agent(id=agent_id, **_values(spec, AGENT_SETTINGS)) for agent_id, spec in agents.items())
            session.add_all(Task(id=task_id, **_values(spec, TASK_SETTINGS)) for task_id, spec in tasks.items())
            row = Crew(id=uuid.uuid4(), **_values(crew, CREW_SETTINGS))
            session.add(row)
            await _commit(session, "crew", crew.name)
            return _crew_view(row, world)

    # -- helpers ---------------------------------------------------------------------------

    async def _provider_kinds(self, ctx: TenantContext) -> dict[uuid.UUID, str]:
        return {provider.id: str(provider.kind) for provider in await self._providers.list(ctx)}

    async def _world(self, ctx: TenantContext) -> _World:
        providers = await self._provider_kinds(ctx)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            return await _records(session, providers)


# -- rows and specs ------------------------------------------------------------------------


def _spec(row: Agent | Task | Crew, model: type[S], settings: frozenset[str]) -> S:
    # Id lists are stored as strings (validating turns them back into UUIDs); a setting left out of
    # the JSON takes the spec's default.
    columns = {name: getattr(row, name) for name in model.model_fields if name not in settings}
    stored = {name: value for name, value in (row.settings or {}).items() if name in settings}
    return model.model_validate(columns | stored)


def _agent_spec(row: Agent) -> AgentSpec:
    return _spec(row, AgentSpec, AGENT_SETTINGS)


def _task_spec(row: Task) -> TaskSpec:
    return _spec(row, TaskSpec, TASK_SETTINGS)


def _crew_spec(row: Crew) -> CrewSpec:
    return _spec(row, CrewSpec, CREW_SETTINGS)


def _values(spec: AgentSpec | TaskSpec | CrewSpec, settings: frozenset[str]) -> dict[str, Any]:
    """The row's columns and `settings` JSON for `spec` (ids in JSON as strings)."""
    values = spec.model_dump(exclude=set(settings))
    for name in ("tool_ids", "agent_ids", "task_ids"):
        if name in values:
            values[name] = [str(record_id) for record_id in values[name]]
    return values | {"settings": spec.model_dump(mode="json", include=set(settings))}


def _stored(row: Agent | Task | Crew, spec: AgentSpec | TaskSpec | CrewSpec) -> dict[str, Any]:
    return spec.model_dump() | {"id": row.id, "created_at": row.created_at, "updated_at": row.updated_at}


def _agent_view(row: Agent) -> AgentView:
    spec = _agent_spec(row)
    return AgentView(**_stored(row, spec), placeholders=spec.find_placeholders())


def _task_view(row: Task) -> TaskView:
    spec = _task_spec(row)
    return TaskView(**_stored(row, spec), placeholders=spec.find_placeholders())


def _crew_view(row: Crew, world: _World) -> CrewView:
    spec = _crew_spec(row)
    return CrewView(
        **_stored(row, spec),
        placeholders=crew_placeholders(
            (world.agents[agent_id] for agent_id in spec.agent_ids if agent_id in world.agents),
            (world.tasks[task_id] for task_id in spec.task_ids if task_id in world.tasks),
        ),
        problems=[
            CrewProblemView(kind=p.kind, name=p.name, field=p.field, message=p.message)
            for p in _crew_faults(spec, world)
        ],
    )


# -- loading -------------------------------------------------------------------------------


async def _load(session: AsyncSession, model: type[R], record_id: uuid.UUID) -> R:
    row = await session.get(model, record_id)
    if row is None:
        kind = model.__tablename__.removesuffix("s")
        raise NotFound(f"no {kind} with id {record_id} in this workspace; it may have been deleted")
    return row


async def _all(session: AsyncSession, model: type[R]) -> list[R]:
    return list(await session.scalars(select(model).order_by(model.name)))


async def _records(session: AsyncSession, providers: dict[uuid.UUID, str] | None = None) -> _World:
    """The tenant's tools, agents and tasks as the checks see them."""
    return _World(
        providers=providers or {},
        tools=set(await session.scalars(select(Tool.id))),
        agents={row.id: _agent_spec(row) for row in await _all(session, Agent)},
        tasks={row.id: _task_spec(row) for row in await _all(session, Task)},
    )


async def _check_name_free(session: AsyncSession, model: type[R], name: str, own_id: uuid.UUID | None = None) -> None:
    query = select(model.id).where(model.name == name)
    if own_id is not None:
        query = query.where(model.id != own_id)
    taken = await session.scalar(query.limit(1))
    if taken is not None:
        raise Conflict(_name_taken(model.__tablename__.removesuffix("s"), name))


async def _write(session: AsyncSession, row: R, values: dict[str, Any]) -> R:
    """Give `row` (new or loaded) these values and commit; `Conflict` if another record has its name."""
    await _check_name_free(session, type(row), values["name"], row.id)
    for name, value in values.items():
        setattr(row, name, value)
    session.add(row)
    await _commit(session, row.__tablename__.removesuffix("s"), values["name"])
    await session.refresh(row)
    return row


async def _commit(session: AsyncSession, kind: str, name: str) -> None:
    try:
        await session.commit()
    except IntegrityError as exc:
        # The names were free a moment ago: another save took one since.
        await session.rollback()
        raise Conflict(_name_taken(kind, name)) from exc


def _name_taken(kind: str, name: str) -> str:
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{article} {kind} named '{name}' exists already in this workspace; choose another name"


def _refuse_taken(world: _World, agents: dict[uuid.UUID, AgentSpec], tasks: dict[uuid.UUID, TaskSpec]) -> None:
    """`Conflict` if an id or name of the records to create is taken (by the tenant's or by each other)."""
    for kind, new, old in (("agent", agents, world.agents), ("task", tasks, world.tasks)):
        taken = {spec.name for spec in old.values()}
        seen: set[str] = set()
        for record_id, spec in new.items():
            if record_id in old:
                raise Conflict(f"{kind} id {record_id} exists already in this workspace; import it under a new id")
            if spec.name in taken:
                raise Conflict(_name_taken(kind, spec.name))
            if spec.name in seen:
                raise Conflict(f"two {kind}s are named '{spec.name}'; each needs its own name")
            seen.add(spec.name)


# -- checks --------------------------------------------------------------------------------


def _agent_faults(spec: AgentSpec, world: _World) -> list[Fault]:
    faults: list[Fault] = []
    kind = None
    if spec.provider_id is not None:
        kind = world.providers.get(spec.provider_id)
        if kind is None:
            choose = "choose one of the Providers page, or none for the default"
            faults.append(("provider_id", f"no provider with id {spec.provider_id} in this workspace; {choose}"))
    for index, tool_id in enumerate(spec.tool_ids):
        if tool_id not in world.tools:
            missing = f"no tool with id {tool_id} in this workspace; it may have been deleted"
            faults.append((f"tool_ids.{index}", missing))
    if spec.tool_ids and kind == LOCAL_KIND:
        faults.append(("provider_id", NO_TOOLS))
    return faults


def _task_faults(task_id: uuid.UUID, spec: TaskSpec, world: _World) -> list[Fault]:
    faults: list[Fault] = []
    if spec.agent_id is not None and spec.agent_id not in world.agents:
        faults.append(("agent_id", f"no agent with id {spec.agent_id} in this workspace; choose one of your agents"))
    for index, context_id in enumerate(spec.context_ids):
        if context_id == task_id:
            faults.append((f"context_ids.{index}", "a task cannot read its own result; remove it from the context"))
        elif context_id not in world.tasks:
            missing = f"no task with id {context_id} in this workspace; it may have been deleted"
            faults.append((f"context_ids.{index}", missing))
    return faults


def _crew_faults(crew: CrewSpec, world: _World) -> list[CrewProblem]:
    """`crew_problems`, plus what the crew's manager provider and its agents lack now."""
    problems = crew_problems(crew, world.agents, world.tasks)
    if crew.manager_provider_id is not None:
        kind = world.providers.get(crew.manager_provider_id)
        if kind is None:
            message = f"no provider with id {crew.manager_provider_id}; it may have been deleted"
            problems.append(CrewProblem("crew", crew.name, "manager_provider_id", message))
        elif kind == LOCAL_KIND and crew.process == "hierarchical":
            message = "the local model cannot use tools, and a manager delegates through tools; choose another provider"
            problems.append(CrewProblem("crew", crew.name, "manager_provider_id", message))
    members = [*crew.agent_ids, *([crew.manager_agent_id] if crew.manager_agent_id else [])]
    for agent_id in dict.fromkeys(members):
        agent = world.agents.get(agent_id)
        if agent is not None:
            problems += [
                CrewProblem("agent", agent.name, field, message) for field, message in _agent_faults(agent, world)
            ]
    return problems


def _crew_save_problems(crew: CrewSpec, world: _World, skip_agents: Iterable[str] = ()) -> list[Problem]:
    """What refuses a crew's save, each under the crew's field it concerns, its message naming the record."""
    skipped = set(skip_agents)
    problems = [
        Problem(_crew_field(crew, problem, world), str(problem))
        for problem in _crew_faults(crew, world)
        if not (problem.kind == "agent" and problem.name in skipped)
    ]
    if not all(INPUT_NAME.match(key) for key in crew.inputs):
        rule = "a letter or _, then letters, digits, _ or -"
        message = f"crew '{crew.name}', inputs: an input's name must be a placeholder name ({rule}), as in {{topic}}"
        problems.append(Problem("inputs", message))
    return problems


def _crew_field(crew: CrewSpec, problem: CrewProblem, world: _World) -> str:
    """The crew's own field for a problem of one of its records (a task's problem is at `task_ids.N`)."""
    if problem.kind == "crew":
        return problem.field
    if problem.kind == "task":
        for index, task_id in enumerate(crew.task_ids):
            task = world.tasks.get(task_id)
            if task is not None and task.name == problem.name:
                return f"task_ids.{index}"
        return "task_ids"
    for index, agent_id in enumerate(crew.agent_ids):
        agent = world.agents.get(agent_id)
        if agent is not None and agent.name == problem.name:
            return f"agent_ids.{index}"
    return "manager_agent_id" if crew.manager_agent_id is not None else "agent_ids"


def _named(kind: str, name: str, faults: list[Fault]) -> list[Problem]:
    return [Problem(field, f"{kind} '{name}', {field}: {message}") for field, message in faults]


def _refuse(problems: list[Problem], kind: str, name: str) -> None:
    if not problems:
        return
    summary = "; ".join(problem.message for problem in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    raise InvalidInput(f"cannot save {kind} '{name}': {summary}{more}", problems=problems)


def _matches(search: str | None, *texts: str) -> bool:
    if not search:
        return True
    wanted = search.casefold()
    return any(wanted in text.casefold() for text in texts)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
