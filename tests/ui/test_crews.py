"""/crews, /crews/new and /crews/{id}: the list, import and export, the crew editor and its Test panel.

The Test panel's runs answer through the scripted LLM server on loopback (this module's
services allow loopback endpoints), so what streams, and when, is known.
"""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from nicegui import ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing.user import User

from core.context import Role, TenantContext
from core.crew_specs import AgentSpec, CrewSpec, TaskSpec
from tests.fixtures import llm_server as _scripted
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from tests.ui.conftest import scripted_provider, sign_in
from ui.pages.crews import projects
from wiring.services import Services

pytestmark = pytest.mark.ui_settings(loopback_llm=True)

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server
SAVE_RETRIES = 50  # x 0.1 s: a save checks every record of the workspace
RUN_RETRIES = 600  # x 0.1 s: a test run imports CrewAI on its first kickoff (slow on a busy machine)
T = TypeVar("T")


def control(user: User, testid: str) -> Any:
    """The one element with this test id."""
    elements = user.find(marker=testid).elements
    assert len(elements) == 1, f"{len(elements)} elements are marked {testid}"
    return next(iter(elements))


def put(user: User, testid: str, value: Any) -> None:
    """Set a control's value as the browser would."""
    assert user.client is not None
    with user.client:
        control(user, testid).value = value


async def eventually(read: Callable[[], Awaitable[T]], check: Callable[[T], bool]) -> T:
    """What `read` gives once `check` holds (a handler of the page works on); fails after SAVE_RETRIES tries."""
    for _ in range(SAVE_RETRIES):
        value = await read()
        if check(value):
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"never came true; last: {value!r}")


async def run_status(user: User, status: str) -> None:
    """Wait until the Test panel's status badge says `status`."""
    for _ in range(RUN_RETRIES):
        try:
            if control(user, "crew-test-status").text == status:
                return
        except AssertionError:
            pass  # no status yet
        await asyncio.sleep(0.1)
    raise AssertionError(f"the test run's status never became {status!r}")


def task_order(user: User) -> list[str]:
    rows = sorted(user.find(marker="crew-task").elements, key=lambda row: int(row.props["data-index"]))
    return [row.props["data-task"] for row in rows]


async def agent(services: Services, ctx: TenantContext, name: str, **fields: Any) -> uuid.UUID:
    spec = AgentSpec(name=name, role=fields.pop("role", f"The {name}"), goal=fields.pop("goal", "Help"), **fields)
    return (await services.crews.create_agent(ctx, spec)).id


async def task(
    services: Services, ctx: TenantContext, name: str, agent_id: uuid.UUID | None, **fields: Any
) -> uuid.UUID:
    spec = TaskSpec(
        name=name,
        description=fields.pop("description", f"Do {name}"),
        expected_output=fields.pop("expected_output", "A sentence"),
        agent_id=agent_id,
        **fields,
    )
    return (await services.crews.create_task(ctx, spec)).id


async def crew(services: Services, ctx: TenantContext, name: str, **fields: Any) -> uuid.UUID:
    return (await services.crews.create_crew(ctx, CrewSpec(name=name, **fields))).id


async def test_every_problem_shows_under_its_field_at_once(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    ctx = account.ctx
    writer = await agent(ui_services, ctx, "writer")
    outline = await task(ui_services, ctx, "outline", writer)
    await task(ui_services, ctx, "draft", writer, context_ids=[outline])
    await user.open("/crews/new")
    await user.should_see("What stops this crew from running")
    put(user, "crew-name", "team")
    put(user, "crew-process", "hierarchical")
    user.find(marker="crew-task-add-select").click()
    user.find("draft").click()  # its context task 'outline' is not in the crew
    await user.should_see("Added writer to the crew's agents")
    assert control(user, "crew-agent_ids").value == [str(writer)]
    put(user, "crew-manager_agent_id", str(writer))  # the manager must not also be a member
    user.find(marker="crew-inputs-add").click()
    put(user, "crew-inputs.0.key", "not a name")
    put(user, "crew-inputs.0.value", "x")
    await user.should_see("task 'outline' is not one of the crew's tasks")  # the live check, before saving
    user.find(marker="crew-submit").click()
    await user.should_see("crew 'team', manager_agent_id: the manager agent must not", retries=SAVE_RETRIES)
    assert "must not also be one of the crew's agents" in (control(user, "crew-manager_agent_id").error or "")
    assert "must be a placeholder name" in control(user, "crew-inputs-error").text
    await user.should_see(marker="crew-task-problem-draft")
    assert "not one of the crew's tasks" in control(user, "crew-task-problem-draft").text
    assert not control(user, "crew-name").error
    assert "team" not in [c.name for c in await ui_services.crews.list_crews(ctx)]


async def test_creating_a_crew_and_reordering_its_tasks_with_the_arrows_persists(
    user: User, ui_services: Services
) -> None:
    account = await sign_in(user, ui_services)
    ctx = account.ctx
    writer = await agent(ui_services, ctx, "writer", goal="Write about {topic}")
    first = await task(ui_services, ctx, "first", writer)
    second = await task(ui_services, ctx, "second", writer, description="Answer {question}")
    await user.open("/crews/new")
    put(user, "crew-name", "pair")
    for task_id in (first, second):
        put(user, "crew-task-add-select", str(task_id))
    await user.should_see("Nothing stops this crew from running.")
    assert task_order(user) == ["first", "second"]
    await user.should_see("{question}")  # the crew's placeholders: tasks' first, then agents'
    await user.should_see("{topic}")
    user.find(marker="crew-submit").click()
    await user.should_see(marker="crew-delete", retries=SAVE_RETRIES)  # on the new crew's own page
    [saved] = await ui_services.crews.list_crews(ctx, "pair")
    assert saved.task_ids == [first, second]
    assert saved.agent_ids == [writer]
    assert not control(user, "crew-task-up-first").enabled
    user.find(marker="crew-task-down-first").click()
    assert task_order(user) == ["second", "first"]
    user.find(marker="crew-submit").click()
    await user.should_see("Crew pair saved.", retries=SAVE_RETRIES)
    assert (await ui_services.crews.get_crew(ctx, saved.id)).task_ids == [second, first]
    await user.open(f"/crews/{saved.id}")
    assert task_order(user) == ["second", "first"]
    user.find(marker="crew-task-up-first").click()
    user.find(marker="crew-task-remove-second").click()
    assert task_order(user) == ["first"]
    user.find(marker="crew-name").trigger("keydown.enter")  # Enter saves too
    await eventually(lambda: ui_services.crews.get_crew(ctx, saved.id), lambda view: view.task_ids == [first])


async def test_the_list_searches_and_shows_each_crews_size_and_problems(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    ctx = account.ctx
    for example in await ui_services.crews.list_crews(ctx):  # every new workspace has an example crew
        await ui_services.crews.delete_crew(ctx, example.id)
    await user.open("/crews")
    await user.should_see("No crews yet.")
    await user.should_see(marker="crews-empty-new")
    writer = await agent(ui_services, ctx, "writer")
    other = await agent(ui_services, ctx, "other")
    job = await task(ui_services, ctx, "job", writer)
    await crew(ui_services, ctx, "alpha", description="Writes things", agent_ids=[writer], task_ids=[job])
    await crew(ui_services, ctx, "beta", agent_ids=[writer], task_ids=[job])
    # The task's agent changes after the crew was saved: beta (and alpha) now has a problem.
    await ui_services.crews.update_task(
        ctx, job, TaskSpec(name="job", description="d", expected_output="e", agent_id=other)
    )
    await user.open("/crews")
    assert len(user.find(marker="crew-row").elements) == 2
    await user.should_see("1 agent · 1 task")
    assert len(user.find(marker="crew-row-problems").elements) == 2
    user.find(marker="crews-search").type("writes")
    await user.should_not_see("beta", retries=SAVE_RETRIES)
    assert [row.props["data-name"] for row in user.find(marker="crew-row").elements] == ["alpha"]


async def test_a_viewer_sees_a_crew_read_only(user: User, ui_services: Services) -> None:
    owner = await sign_in(User(user.http_client), ui_services)
    writer = await agent(ui_services, owner.ctx, "writer")
    job = await task(ui_services, owner.ctx, "job", writer, description="Answer {question}")
    crew_id = await crew(ui_services, owner.ctx, "team", agent_ids=[writer], task_ids=[job])
    await sign_in(user, ui_services, workspace=owner.ctx, role=Role.VIEWER)
    await user.open("/crews")
    await user.should_see("team")
    await user.should_not_see(marker="crews-new")
    await user.should_not_see(marker="crews-import")
    await user.open(f"/crews/{crew_id}")
    await user.should_see(marker="crew-read-only")
    await user.should_see("Running a crew needs the editor role")
    for hidden in ("crew-submit", "crew-delete", "crew-test-run", "crew-task-up-job", "crew-task-add-select"):
        await user.should_not_see(marker=hidden)
    for name in ("name", "description", "process", "agent_ids"):
        assert control(user, f"crew-{name}").props.get("readonly"), name
    assert control(user, "crew-test-input-question").props.get("readonly")
    await user.should_see(marker="crew-export")  # viewers may export
    response = await user.http_client.get("/crews/new")
    assert response.status_code == 403


async def test_another_workspaces_crew_is_not_found_inside_the_shell(user: User, ui_services: Services) -> None:
    other = await sign_in(User(user.http_client), ui_services)
    writer = await agent(ui_services, other.ctx, "writer")
    job = await task(ui_services, other.ctx, "job", writer)
    theirs = await crew(ui_services, other.ctx, "secret_crew", agent_ids=[writer], task_ids=[job])
    await sign_in(user, ui_services)
    for path in (f"/crews/{theirs}", "/crews/not-an-id"):
        response = await user.http_client.get(path)
        assert response.status_code == 404, path
        assert "not-found" in response.text
        assert "nav-drawer" in response.text
        assert "secret_crew" not in response.text


async def test_export_downloads_the_project_and_import_creates_its_records(user: User, ui_services: Services) -> None:
    source = await sign_in(User(user.http_client), ui_services)
    writer = await agent(ui_services, source.ctx, "writer", goal="Write about {topic}")
    outline = await task(ui_services, source.ctx, "outline", writer)
    draft = await task(ui_services, source.ctx, "draft", writer, context_ids=[outline])
    crew_id = await crew(ui_services, source.ctx, "writers", agent_ids=[writer], task_ids=[outline, draft])
    exported = await projects(ui_services).export(source.ctx, crew_id)
    account = await sign_in(user, ui_services)
    ctx = account.ctx
    await agent(ui_services, ctx, "writer")  # taken here: the import renames its own
    await user.open("/crews")
    user.find(marker="crews-import").click()
    upload = control(user, "crews-import-upload")
    assert user.client is not None
    with user.client:
        await upload.handle_uploads([SmallFileUpload("notes.txt", "text/plain", b"hello")])
    await user.should_see("Nothing was imported")
    with user.client:
        await upload.handle_uploads([SmallFileUpload(exported.filename, "application/zip", exported.data)])
    await user.should_see("Created crew writers (sequential).", retries=SAVE_RETRIES)
    await user.should_see("writer_2 (renamed from writer: the name was taken)")
    [imported] = await ui_services.crews.list_crews(ctx, "writers")
    assert control(user, "crews-import-open").props["href"] == f"/crews/{imported.id}"
    assert {"draft", "outline"} <= {t.name for t in await ui_services.crews.list_tasks(ctx)}
    assert imported.problems == []
    assert len(imported.task_ids) == 2
    await user.open(f"/crews/{imported.id}")
    assert task_order(user) == ["outline", "draft"]
    user.find(marker="crew-export").click()
    response = await user.download.next()
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert "writers/src/writers/config/tasks.yaml" in archive.namelist()


async def scripted_crew(services: Services, ctx: TenantContext, server: ScriptedLLMServer) -> uuid.UUID:
    """A crew of two tasks (the second reads the first) whose agent thinks with the scripted server."""
    provider = await scripted_provider(services, ctx, server.base_url)
    writer = await agent(services, ctx, "writer", provider_id=provider.id)
    notes = await task(services, ctx, "notes", writer, description="Take notes on {topic}")
    answer = await task(
        services, ctx, "answer", writer, description="Answer about {topic} for {audience}", context_ids=[notes]
    )
    return await crew(
        services, ctx, "explainers", agent_ids=[writer], task_ids=[notes, answer], inputs={"audience": "kids"}
    )


async def test_the_test_panel_streams_the_run_and_shows_the_answer(
    user: User, ui_services: Services, llm_server: ScriptedLLMServer
) -> None:
    account = await sign_in(user, ui_services)
    crew_id = await scripted_crew(ui_services, account.ctx, llm_server)
    llm_server.script(Reply.say("Owls hunt at night."), Reply.say("word " * 30 + "owls are birds", drip_s=0.1))
    await user.open(f"/crews/{crew_id}")
    assert control(user, "crew-test-input-audience").value == "kids"  # the crew's default
    user.find(marker="crew-test-run").click()
    await user.should_see("Give a value for topic")  # no default, nothing typed: nothing starts
    assert "give a value for {topic}" in control(user, "crew-test-input-topic").error
    put(user, "crew-test-input-topic", "owls")
    user.find(marker="crew-test-run").click()
    await user.should_see("Task answer started", retries=RUN_RETRIES)
    await user.should_see(marker="crew-test-cancel")
    [run] = (await ui_services.executions.list(account.ctx)).items
    assert control(user, "crew-test-run-link").props["href"] == f"/runs/{run.id}"
    assert run.options["origin"] == "crew_test"
    reply = control(user, "crew-test-reply")
    for _ in range(RUN_RETRIES):  # the second task drips a word every 0.1 s: text shows before the end
        if "word word" in reply.text:
            break
        await asyncio.sleep(0.1)
    assert "Owls hunt at night." in reply.text
    assert "word word" in reply.text
    await user.should_not_see(marker="crew-test-answer", retries=1)
    await user.should_see(marker="crew-test-answer", retries=RUN_RETRIES)
    assert control(user, "crew-test-answer").text.strip().endswith("owls are birds")
    await run_status(user, "completed")
    await user.should_not_see(marker="crew-test-cancel")
    asked = [request.json for request in llm_server.requests]
    assert "Take notes on owls" in str(asked[0])
    assert "for kids" in str(asked[1])


async def test_a_failing_run_shows_its_error_and_a_run_can_be_cancelled(
    user: User, ui_services: Services, llm_server: ScriptedLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="crewai")  # CrewAI logs the scripted failure as an ERROR itself
    account = await sign_in(user, ui_services)
    crew_id = await scripted_crew(ui_services, account.ctx, llm_server)
    llm_server.default = Reply.error(400, "the model refuses")
    await user.open(f"/crews/{crew_id}")
    put(user, "crew-test-input-topic", "owls")
    user.find(marker="crew-test-run").click()
    await run_status(user, "failed")
    assert "the model refuses" in control(user, "crew-test-error").text
    llm_server.reset()
    llm_server.default = Reply.say("slow " * 200, drip_s=0.1)
    user.find(marker="crew-test-run").click()
    await user.should_see(marker="crew-test-cancel", retries=RUN_RETRIES)
    await user.should_see("Task notes started", retries=RUN_RETRIES)
    await user.should_not_see(marker="crew-test-error")
    user.find(marker="crew-test-cancel").click()
    await run_status(user, "cancelled")
    await user.should_see(marker="crew-test-run")


async def test_deleting_a_crew_asks_first_and_keeps_its_agents_and_tasks(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    ctx = account.ctx
    writer = await agent(ui_services, ctx, "writer")
    job = await task(ui_services, ctx, "job", writer)
    crew_id = await crew(ui_services, ctx, "team", agent_ids=[writer], task_ids=[job])
    await user.open(f"/crews/{crew_id}")
    user.find(marker="crew-delete").click()
    await user.should_see("Delete crew team?")
    with user.scope(ui.dialog):
        user.find(kind=ui.button, content="Cancel").click()
    await user.should_not_see("Delete crew team?")
    assert len(await ui_services.crews.list_crews(ctx, "team")) == 1
    user.find(marker="crew-delete").click()
    await user.should_see("Delete crew team?")
    with user.scope(ui.dialog):
        user.find(kind=ui.button, content="Delete").click()
    await eventually(lambda: ui_services.crews.list_crews(ctx, "team"), lambda found: found == [])
    await user.should_see(marker="crews-search", retries=SAVE_RETRIES)  # back on the list
    assert "job" in [t.name for t in await ui_services.crews.list_tasks(ctx)]
