"""CrewRecords: agents, tasks and crews per tenant, every check on save, delete guards, bundles and the example crew."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass

import pytest
from alembic import command

from core.context import Role, TenantContext
from core.crew_specs import AgentSpec, CrewSpec, TaskSpec
from core.crews import CrewRecords
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.llm.local import NO_TOOLS
from core.llm.types import ProviderKind
from core.providers import ProviderInput, ProviderService
from core.tools import ToolService, ToolSpec, UnavailableSandbox
from db.database import Database
from db.migrate import _config, upgrade_tenant
from db.models import Agent
from tests.fixtures.llm_stack import make_stack, make_tenant

EXAMPLE = {"agents": ["assistant"], "tasks": ["draft_answer", "polish_answer"], "crews": ["example_crew"]}


@dataclass
class World:
    """Records for tenant acme (editor, viewer, admin) and an editor of tenant globex."""

    records: CrewRecords
    tools: ToolService
    providers: ProviderService
    editor: TenantContext
    viewer: TenantContext
    admin: TenantContext
    other: TenantContext
    local_id: uuid.UUID

    async def names(self, ctx: TenantContext | None = None) -> dict[str, list[str]]:
        ctx = ctx or self.viewer
        return {
            "agents": [a.name for a in await self.records.list_agents(ctx)],
            "tasks": [t.name for t in await self.records.list_tasks(ctx)],
            "crews": [c.name for c in await self.records.list_crews(ctx)],
        }

    async def remote_provider(self) -> uuid.UUID:
        view = await self.providers.create(
            self.admin,
            ProviderInput(
                name="vllm", kind=ProviderKind.OPENAI_COMPATIBLE, base_url="http://127.0.0.1:9/v1", models=["m1"]
            ),
        )
        return view.id

    async def tool(self, name: str = "search") -> uuid.UUID:
        return (await self.tools.create(self.editor, ToolSpec(name=name, code="def run(**kw):\n    return kw\n"))).id


@pytest.fixture
async def world(db: Database) -> World:
    stack = await make_stack(db)
    other, _ = await make_tenant(db, "globex")
    # Nothing here runs a tool: a sandbox that refuses every run is enough, and shows none was tried.
    tools = ToolService(db, UnavailableSandbox("bwrap", "tool runs are not part of these tests"))
    [local] = await stack.providers.list(stack.viewer)
    return World(
        records=CrewRecords(db, tools, stack.providers),
        tools=tools,
        providers=stack.providers,
        editor=dataclasses.replace(stack.admin, role=Role.EDITOR),
        viewer=stack.viewer,
        admin=stack.admin,
        other=dataclasses.replace(other, role=Role.EDITOR),
        local_id=local.id,
    )


def agent(name: str = "researcher", **fields: object) -> AgentSpec:
    values: dict[str, object] = {"role": "Senior {topic} researcher", "goal": "Find out about {topic}."} | fields
    return AgentSpec.model_validate({"name": name, **values})


def task(name: str = "research", agent_id: uuid.UUID | None = None, **fields: object) -> TaskSpec:
    values: dict[str, object] = {"description": "Research {topic}.", "expected_output": "Ten bullet points."} | fields
    return TaskSpec.model_validate({"name": name, "agent_id": agent_id, **values})


def crew(name: str = "research_crew", **fields: object) -> CrewSpec:
    return CrewSpec.model_validate({"name": name, **fields})


def fields_of(error: InvalidInput) -> list[str]:
    return [problem.field for problem in error.problems]


# -- the example crew ------------------------------------------------------------------------


async def test_a_new_tenant_has_the_example_crew_ready_to_run_on_the_local_model(world: World) -> None:
    assert await world.names() == EXAMPLE
    [example] = await world.records.list_crews(world.viewer)
    assert example.problems == []
    assert example.placeholders == ["question"]
    assert (example.process, example.inputs) == ("sequential", {"question": "What is CrewCanvas?"})

    bundle = await world.records.bundle(world.viewer, example.id)
    [assistant] = bundle.agents.values()
    assert (assistant.name, assistant.role, assistant.provider_id) == ("assistant", "Helpful assistant", world.local_id)
    assert (assistant.tool_ids, assistant.max_iter) == ([], 3)
    draft, polish = bundle.tasks
    assert (draft.name, polish.name) == ("draft_answer", "polish_answer")
    assert draft.placeholders == ["question"]
    assert (draft.agent_id, polish.agent_id, polish.context_ids) == (assistant.id, assistant.id, [draft.id])
    assert bundle.tools == {}
    assert bundle.crew == example


async def test_the_example_is_left_out_where_its_names_are_taken_and_its_downgrade_removes_only_it(
    db: Database,
) -> None:
    schema = "tenant_mine" if db.is_postgres else None
    await db.create_tenant_storage("mine")
    engine = await db.tenant_engine("mine")
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config("tenant", sync, schema), "t0003"))
    async with db.tenant_session("mine") as session:
        session.add(Agent(name="assistant", role="My own", goal="Mine.", tool_ids=[], settings={}))
        await session.commit()
    await upgrade_tenant(db, "mine")
    await make_tenant(db, "acme")
    records = CrewRecords(db, ToolService(db, UnavailableSandbox("bwrap", "unused")), _NoProviders())
    mine = TenantContext(uuid.uuid4(), "mine", None, Role.VIEWER)
    acme = TenantContext(uuid.uuid4(), "acme", None, Role.VIEWER)
    assert [a.role for a in await records.list_agents(mine)] == ["My own"]
    assert await records.list_tasks(mine) == []
    assert await records.list_crews(mine) == []

    for slug in ("mine", "acme"):
        engine = await db.tenant_engine(slug)
        async with engine.begin() as conn:
            target = f"tenant_{slug}" if db.is_postgres else None
            await conn.run_sync(lambda sync, target=target: command.downgrade(_config("tenant", sync, target), "t0003"))
    assert [a.role for a in await records.list_agents(mine)] == ["My own"]
    assert (await records.list_agents(acme), await records.list_tasks(acme)) == ([], [])


class _NoProviders:
    async def list(self, ctx: TenantContext) -> list[object]:
        return []


# -- agents ----------------------------------------------------------------------------------


async def test_an_editor_creates_reads_updates_and_deletes_an_agent(world: World) -> None:
    tool_id = await world.tool()
    provider_id = await world.remote_provider()
    created = await world.records.create_agent(
        world.editor, agent(provider_id=str(provider_id), model="m1", tool_ids=[str(tool_id)], max_iter=7)
    )
    assert (created.provider_id, created.model, created.tool_ids, created.max_iter) == (provider_id, "m1", [tool_id], 7)
    assert created.placeholders == ["topic"]
    fetched = await world.records.get_agent(world.viewer, created.id)
    assert fetched == created
    assert [a.name for a in await world.records.list_agents(world.viewer)] == ["assistant", "researcher"]

    changed = await world.records.update_agent(
        world.editor, created.id, agent("writer", role="Writer", goal="Write about {subject} for {audience}.")
    )
    assert (changed.id, changed.name, changed.tool_ids, changed.provider_id, changed.max_iter) == (
        created.id,
        "writer",
        [],
        None,
        25,
    )
    assert changed.placeholders == ["subject", "audience"]
    assert changed.updated_at >= created.updated_at

    await world.records.delete_agent(world.editor, created.id)
    with pytest.raises(NotFound, match=f"no agent with id {created.id}"):
        await world.records.get_agent(world.viewer, created.id)


async def test_search_matches_names_and_roles_or_descriptions_ignoring_case(world: World) -> None:
    researcher = await world.records.create_agent(world.editor, agent("researcher", role="Senior ÄRZTE researcher"))
    await world.records.create_agent(world.editor, agent("writer", role="Writer"))
    await world.records.create_task(world.editor, task("summarise", researcher.id, description="Sum UP the findings."))
    assert [a.name for a in await world.records.list_agents(world.viewer, "WRIT")] == ["writer"]
    assert [a.name for a in await world.records.list_agents(world.viewer, "ärzte")] == ["researcher"]
    assert [a.name for a in await world.records.list_agents(world.viewer, "r_")] == []  # no LIKE wildcards
    assert [t.name for t in await world.records.list_tasks(world.viewer, "sum up")] == ["summarise"]
    assert [t.name for t in await world.records.list_tasks(world.viewer, "ANSWER")] == ["draft_answer", "polish_answer"]
    assert [c.name for c in await world.records.list_crews(world.viewer, "polishes")] == ["example_crew"]
    assert await world.records.list_crews(world.viewer, "nothing like it") == []


async def test_every_problem_of_an_agent_is_reported_at_once_and_nothing_is_stored(world: World) -> None:
    known = await world.tool()
    missing_provider, missing_tool = uuid.uuid4(), uuid.uuid4()
    spec = agent(provider_id=str(missing_provider), tool_ids=[str(known), str(missing_tool), str(uuid.uuid4())])
    with pytest.raises(InvalidInput) as info:
        await world.records.create_agent(world.editor, spec)
    assert fields_of(info.value) == ["provider_id", "tool_ids.1", "tool_ids.2"]
    first, second, _ = info.value.problems
    assert first.message == (
        f"agent 'researcher', provider_id: no provider with id {missing_provider} in this workspace; "
        "choose one of the Providers page, or none for the default"
    )
    assert second.message.startswith(f"agent 'researcher', tool_ids.1: no tool with id {missing_tool}")
    assert str(info.value).startswith("cannot save agent 'researcher': ")
    assert (await world.names())["agents"] == ["assistant"]


async def test_an_agent_on_the_local_model_cannot_have_tools(world: World) -> None:
    tool_id = await world.tool()
    with pytest.raises(InvalidInput) as info:
        await world.records.create_agent(world.editor, agent(provider_id=str(world.local_id), tool_ids=[str(tool_id)]))
    assert [(p.field, p.message) for p in info.value.problems] == [
        ("provider_id", f"agent 'researcher', provider_id: {NO_TOOLS}")
    ]
    plain = await world.records.create_agent(world.editor, agent(provider_id=str(world.local_id)))
    with pytest.raises(InvalidInput, match="cannot use tools"):
        await world.records.update_agent(
            world.editor, plain.id, agent(provider_id=str(world.local_id), tool_ids=[str(tool_id)])
        )
    remote = await world.remote_provider()
    armed = await world.records.update_agent(
        world.editor, plain.id, agent(provider_id=str(remote), tool_ids=[str(tool_id)])
    )
    assert armed.tool_ids == [tool_id]


async def test_names_are_unique_per_kind_within_a_tenant(world: World) -> None:
    first = await world.records.create_agent(world.editor, agent("researcher"))
    with pytest.raises(Conflict) as info:
        await world.records.create_agent(world.editor, agent("researcher"))
    assert str(info.value) == "an agent named 'researcher' exists already in this workspace; choose another name"
    second = await world.records.create_agent(world.editor, agent("writer"))
    with pytest.raises(Conflict, match="an agent named 'researcher' exists already"):
        await world.records.update_agent(world.editor, second.id, agent("researcher"))
    assert (await world.records.update_agent(world.editor, first.id, agent("researcher", goal="New."))).goal == "New."
    with pytest.raises(Conflict, match=r"^a task named 'draft_answer' exists already in this workspace"):
        await world.records.create_task(world.editor, task("draft_answer", first.id))
    with pytest.raises(Conflict, match=r"^a crew named 'example_crew' exists already"):
        await world.records.create_crew(world.editor, (await world.records.list_crews(world.viewer))[0])
    assert (await world.records.create_agent(world.other, agent("researcher"))).name == "researcher"
    assert [a.name for a in await world.records.list_agents(world.viewer)] == ["assistant", "researcher", "writer"]


# -- tasks -----------------------------------------------------------------------------------


async def test_every_problem_of_a_task_is_reported_at_once(world: World) -> None:
    missing_agent, missing_task = uuid.uuid4(), uuid.uuid4()
    [draft, _] = await world.records.list_tasks(world.viewer)
    with pytest.raises(InvalidInput) as info:
        await world.records.create_task(
            world.editor, task("review", missing_agent, context_ids=[draft.id, missing_task])
        )
    assert fields_of(info.value) == ["agent_id", "context_ids.1"]
    assert info.value.problems[0].message.startswith(f"task 'review', agent_id: no agent with id {missing_agent}")
    assert f"no task with id {missing_task}" in info.value.problems[1].message

    with pytest.raises(InvalidInput) as info:
        await world.records.update_task(
            world.editor, draft.id, task("draft_answer", draft.agent_id, context_ids=[draft.id])
        )
    assert [(p.field, p.message) for p in info.value.problems] == [
        (
            "context_ids.0",
            "task 'draft_answer', context_ids.0: a task cannot read its own result; remove it from the context",
        )
    ]
    assert (await world.records.get_task(world.viewer, draft.id)).context_ids == []


async def test_a_task_keeps_its_output_settings_and_lists_its_placeholders(world: World) -> None:
    [assistant] = await world.records.list_agents(world.viewer)
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    created = await world.records.create_task(
        world.editor,
        task(
            "report", assistant.id, expected_output="A {style} report.", output_schema=schema, output_file="{topic}.md"
        ),
    )
    again = await world.records.get_task(world.viewer, created.id)
    assert (again.output_schema, again.output_file, again.agent_id) == (schema, "{topic}.md", assistant.id)
    assert again.placeholders == ["topic", "style"]


# -- crews -----------------------------------------------------------------------------------


async def test_a_crew_that_could_not_run_is_refused_with_every_problem_under_a_crew_field(world: World) -> None:
    [assistant] = await world.records.list_agents(world.viewer)
    outsider = await world.records.create_agent(world.editor, agent("outsider"))
    first = await world.records.create_task(world.editor, task("first", assistant.id))
    later = await world.records.create_task(world.editor, task("later", outsider.id))
    reader = await world.records.create_task(world.editor, task("reader", assistant.id, context_ids=[later.id]))
    missing = uuid.uuid4()
    spec = crew(
        agent_ids=[assistant.id], task_ids=[first.id, reader.id, later.id, missing], manager_model="gpt-4o-mini"
    )
    with pytest.raises(InvalidInput) as info:
        await world.records.create_crew(world.editor, spec)
    found = {(p.field, p.message) for p in info.value.problems}
    assert found == {
        ("task_ids.1", "task 'reader', context_ids.0: task 'later' runs later; a task can only read earlier tasks"),
        ("task_ids.2", "task 'later', agent_id: agent 'outsider' is not one of the crew's agents; add it to the crew"),
        ("task_ids.3", f"crew 'research_crew', task_ids.3: no task with id {missing}; it may have been deleted"),
        (
            "process",
            "crew 'research_crew', process: a manager only works in a hierarchical crew; choose hierarchical",
        ),
    }
    with pytest.raises(InvalidInput) as info:
        await world.records.create_crew(
            world.editor, crew(process="hierarchical", agent_ids=[assistant.id], task_ids=[first.id])
        )
    assert [(p.field, p.message) for p in info.value.problems] == [
        (
            "manager_model",
            "crew 'research_crew', manager_model: a hierarchical crew needs a manager: "
            "choose a manager model or a manager agent",
        )
    ]
    assert (await world.names())["crews"] == ["example_crew"]


async def test_a_crew_lists_the_placeholders_of_its_agents_and_tasks(world: World) -> None:
    researcher = await world.records.create_agent(world.editor, agent("researcher", backstory="Knows {field}."))
    research = await world.records.create_task(world.editor, task("research", researcher.id))
    write = await world.records.create_task(
        world.editor, task("write", researcher.id, description="Write for {audience}.", context_ids=[research.id])
    )
    created = await world.records.create_crew(
        world.editor,
        crew(agent_ids=[researcher.id], task_ids=[research.id, write.id], inputs={"topic": "AI"}, planning=True),
    )
    assert created.problems == []
    assert created.placeholders == ["topic", "audience", "field"]
    fetched = await world.records.get_crew(world.viewer, created.id)
    assert (fetched.inputs, fetched.planning, fetched.task_ids) == ({"topic": "AI"}, True, [research.id, write.id])
    assert fetched == created


async def test_input_names_must_be_placeholder_names(world: World) -> None:
    [example] = await world.records.list_crews(world.viewer)
    spec = crew("other_crew", agent_ids=example.agent_ids, task_ids=example.task_ids, inputs={"two words": "x"})
    with pytest.raises(InvalidInput) as info:
        await world.records.create_crew(world.editor, spec)
    assert fields_of(info.value) == ["inputs"]


async def test_a_crews_problems_are_worked_out_whenever_it_is_read(world: World) -> None:
    tool_id = await world.tool()
    remote = await world.remote_provider()
    researcher = await world.records.create_agent(
        world.editor, agent("researcher", provider_id=str(remote), tool_ids=[str(tool_id)])
    )
    research = await world.records.create_task(world.editor, task("research", researcher.id))
    created = await world.records.create_crew(world.editor, crew(agent_ids=[researcher.id], task_ids=[research.id]))
    assert created.problems == []

    await world.records.update_task(world.editor, research.id, task("research", None))
    await world.tools.delete(world.editor, tool_id)
    problems = (await world.records.get_crew(world.viewer, created.id)).problems
    assert [(p.kind, p.name, p.field) for p in problems] == [
        ("task", "research", "agent_id"),
        ("agent", "researcher", "tool_ids.0"),
    ]
    assert problems[0].message == "a task of a sequential crew needs an agent; choose one"
    bundle = await world.records.bundle(world.viewer, created.id)
    assert bundle.tools == {}
    assert [p.field for p in (await world.records.list_crews(world.viewer, "research"))[0].problems] == [
        "agent_id",
        "tool_ids.0",
    ]


async def test_a_hierarchical_crew_bundles_its_manager_agent_and_every_tool(world: World) -> None:
    remote = await world.remote_provider()
    search, fetch = await world.tool("search"), await world.tool("fetch")
    boss = await world.records.create_agent(
        world.editor, agent("boss", provider_id=str(remote), tool_ids=[str(fetch)], allow_delegation=True)
    )
    worker = await world.records.create_agent(
        world.editor, agent("worker", provider_id=str(remote), tool_ids=[str(search), str(fetch)])
    )
    first = await world.records.create_task(world.editor, task("first"))
    second = await world.records.create_task(world.editor, task("second", worker.id, context_ids=[first.id]))
    created = await world.records.create_crew(
        world.editor,
        crew(process="hierarchical", agent_ids=[worker.id], task_ids=[first.id, second.id], manager_agent_id=boss.id),
    )
    assert created.problems == []
    bundle = await world.records.bundle(world.viewer, created.id)
    assert list(bundle.agents) == [worker.id, boss.id]
    assert bundle.agents[boss.id].allow_delegation
    assert [t.name for t in bundle.tasks] == ["first", "second"]
    assert {tool.name for tool in bundle.tools.values()} == {"search", "fetch"}
    assert list(bundle.tools) == [search, fetch]


async def test_a_hierarchical_crew_cannot_be_managed_by_the_local_model(world: World) -> None:
    [assistant] = await world.records.list_agents(world.viewer)
    [draft, polish] = await world.records.list_tasks(world.viewer)
    spec = crew(
        process="hierarchical",
        agent_ids=[assistant.id],
        task_ids=[draft.id, polish.id],
        manager_provider_id=world.local_id,
        manager_model="smollm2-135m-instruct",
    )
    with pytest.raises(InvalidInput) as info:
        await world.records.create_crew(world.editor, spec)
    assert fields_of(info.value) == ["manager_provider_id"]
    assert "delegates through tools" in info.value.problems[0].message


async def test_tools_by_id_names_a_missing_tool(world: World) -> None:
    first, second = await world.tool("first"), await world.tool("second")
    found = await world.records.tools_by_id(world.viewer, [second, first, second])
    assert list(found) == [second, first]
    missing = uuid.uuid4()
    with pytest.raises(NotFound, match=f"no tool with id {missing} in this workspace"):
        await world.records.tools_by_id(world.viewer, [first, missing])
    with pytest.raises(NotFound):
        await world.records.tools_by_id(world.other, [first])


# -- deleting --------------------------------------------------------------------------------


async def test_an_agent_in_use_cannot_be_deleted_and_says_by_whom(world: World) -> None:
    [assistant] = await world.records.list_agents(world.viewer)
    with pytest.raises(Conflict) as info:
        await world.records.delete_agent(world.editor, assistant.id)
    assert str(info.value) == (
        "agent 'assistant' is used by task 'draft_answer', task 'polish_answer' and crew 'example_crew'; "
        "give them another agent first, then delete it"
    )
    boss = await world.records.create_agent(world.editor, agent("boss", role="Manager"))
    [draft, _] = await world.records.list_tasks(world.viewer)
    await world.records.create_crew(
        world.editor,
        crew(process="hierarchical", agent_ids=[assistant.id], task_ids=[draft.id], manager_agent_id=boss.id),
    )
    with pytest.raises(Conflict, match=r"^agent 'boss' is used by crew 'research_crew' \(as its manager\);"):
        await world.records.delete_agent(world.editor, boss.id)
    assert (await world.names())["agents"] == ["assistant", "boss"]


async def test_a_task_in_use_cannot_be_deleted_and_says_by_whom(world: World) -> None:
    [draft, polish] = await world.records.list_tasks(world.viewer)
    [example] = await world.records.list_crews(world.viewer)
    with pytest.raises(Conflict) as info:
        await world.records.delete_task(world.editor, draft.id)
    assert str(info.value) == (
        "task 'draft_answer' is used by crew 'example_crew' and task 'polish_answer' (as context); "
        "remove it from them first, then delete it"
    )
    await world.records.delete_crew(world.editor, example.id)
    with pytest.raises(Conflict, match=r"^task 'draft_answer' is used by task 'polish_answer' \(as context\);"):
        await world.records.delete_task(world.editor, draft.id)
    await world.records.delete_task(world.editor, polish.id)
    await world.records.delete_task(world.editor, draft.id)
    [assistant] = await world.records.list_agents(world.viewer)
    await world.records.delete_agent(world.editor, assistant.id)
    assert await world.names() == {"agents": [], "tasks": [], "crews": []}


# -- roles and tenants -----------------------------------------------------------------------


async def test_viewers_read_but_cannot_write(world: World) -> None:
    [assistant] = await world.records.list_agents(world.viewer)
    [draft, _] = await world.records.list_tasks(world.viewer)
    [example] = await world.records.list_crews(world.viewer)
    attempts = [
        world.records.create_agent(world.viewer, agent()),
        world.records.update_agent(world.viewer, assistant.id, agent()),
        world.records.delete_agent(world.viewer, assistant.id),
        world.records.create_task(world.viewer, task()),
        world.records.update_task(world.viewer, draft.id, task()),
        world.records.delete_task(world.viewer, draft.id),
        world.records.create_crew(world.viewer, crew()),
        world.records.update_crew(world.viewer, example.id, crew()),
        world.records.delete_crew(world.viewer, example.id),
        world.records.save_all(world.viewer, {}, {}, crew()),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied, match="needs 'editor'"):
            await attempt
    assert await world.names() == EXAMPLE
    assert (await world.records.get_crew(world.viewer, example.id)).name == "example_crew"
    assert (await world.records.bundle(world.viewer, example.id)).crew.id == example.id


async def test_another_tenants_records_are_not_found_and_cannot_be_referred_to(world: World) -> None:
    [assistant] = await world.records.list_agents(world.viewer)
    [draft, _] = await world.records.list_tasks(world.viewer)
    [example] = await world.records.list_crews(world.viewer)
    theirs = world.other
    attempts = [
        world.records.get_agent(theirs, assistant.id),
        world.records.update_agent(theirs, assistant.id, agent()),
        world.records.delete_agent(theirs, assistant.id),
        world.records.get_task(theirs, draft.id),
        world.records.update_task(theirs, draft.id, task()),
        world.records.delete_task(theirs, draft.id),
        world.records.get_crew(theirs, example.id),
        world.records.update_crew(theirs, example.id, crew()),
        world.records.delete_crew(theirs, example.id),
        world.records.bundle(theirs, example.id),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound, match="in this workspace"):
            await attempt
    with pytest.raises(InvalidInput) as info:
        await world.records.create_task(theirs, task("steal", assistant.id, context_ids=[draft.id]))
    assert fields_of(info.value) == ["agent_id", "context_ids.0"]
    with pytest.raises(InvalidInput):
        await world.records.create_agent(theirs, agent(provider_id=str(world.local_id)))
    assert await world.names() == EXAMPLE


# -- importing -------------------------------------------------------------------------------


async def test_save_all_creates_the_crew_and_bundles_it(world: World) -> None:
    remote = await world.remote_provider()
    tool_id = await world.tool()
    researcher_id, writer_id, research_id, write_id = (uuid.uuid4() for _ in range(4))
    agents = {
        researcher_id: agent("researcher", provider_id=str(remote), tool_ids=[str(tool_id)]),
        writer_id: agent("writer", role="Writer for {audience}"),
    }
    tasks = {
        research_id: task("research", researcher_id),
        write_id: task("write", writer_id, context_ids=[research_id]),
    }
    saved = await world.records.save_all(
        world.editor, agents, tasks, crew(agent_ids=[researcher_id, writer_id], task_ids=[research_id, write_id])
    )
    assert (saved.problems, saved.placeholders) == ([], ["topic", "audience"])
    bundle = await world.records.bundle(world.viewer, saved.id)
    assert list(bundle.agents) == [researcher_id, writer_id]
    assert [t.id for t in bundle.tasks] == [research_id, write_id]
    assert list(bundle.tools) == [tool_id]
    assert (await world.records.get_task(world.viewer, write_id)).context_ids == [research_id]


async def test_save_all_creates_nothing_when_anything_is_wrong(world: World) -> None:
    researcher_id, research_id, write_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    missing_tool = uuid.uuid4()
    good_agents = {researcher_id: agent("researcher")}
    good_tasks = {research_id: task("research", researcher_id), write_id: task("write", researcher_id)}
    good_crew = crew(agent_ids=[researcher_id], task_ids=[research_id, write_id])

    with pytest.raises(InvalidInput) as info:
        await world.records.save_all(
            world.editor,
            {researcher_id: agent("researcher", tool_ids=[str(missing_tool)])},
            {research_id: task("research", researcher_id), write_id: task("write", None, context_ids=[write_id])},
            crew(agent_ids=[researcher_id], task_ids=[research_id, write_id], inputs={"bad name": "x"}),
        )
    assert fields_of(info.value) == ["tool_ids.0", "context_ids.0", "task_ids.1", "task_ids.1", "inputs"]
    assert info.value.problems[0].message.startswith("agent 'researcher', tool_ids.0: no tool with id")
    assert info.value.problems[2].message == (
        "task 'write', agent_id: a task of a sequential crew needs an agent; choose one"
    )

    clashes = [
        ({researcher_id: agent("assistant")}, good_tasks, good_crew, "an agent named 'assistant' exists already"),
        (good_agents, {research_id: task("draft_answer", researcher_id)}, good_crew, "a task named 'draft_answer'"),
        (
            good_agents,
            {research_id: task("research", researcher_id), write_id: task("research", researcher_id)},
            good_crew,
            "^two tasks are named 'research'; each needs its own name$",
        ),
        (good_agents, good_tasks, crew("example_crew", **good_crew.model_dump(exclude={"name"})), "a crew named"),
    ]
    for agents, tasks, spec, message in clashes:
        with pytest.raises(Conflict, match=message):
            await world.records.save_all(world.editor, agents, tasks, spec)
    [assistant] = await world.records.list_agents(world.viewer)
    with pytest.raises(Conflict, match=f"agent id {assistant.id} exists already"):
        await world.records.save_all(world.editor, {assistant.id: agent("other")}, {}, good_crew)
    assert await world.names() == EXAMPLE

    await world.records.save_all(world.editor, good_agents, good_tasks, good_crew)
    assert await world.names() == {
        "agents": ["assistant", "researcher"],
        "tasks": ["draft_answer", "polish_answer", "research", "write"],
        "crews": ["example_crew", "research_crew"],
    }
