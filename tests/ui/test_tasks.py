"""/tasks, /tasks/new and /tasks/{id}: list with search, the task editor, read-only viewers, not-found."""

from __future__ import annotations

import uuid
from typing import Any

from nicegui import ui
from nicegui.testing.user import User

from core.context import Role, TenantContext
from core.crew_specs import AgentSpec, CrewSpec, TaskSpec
from tests.ui.conftest import sign_in
from tests.ui.test_agents import SLOW, control, put, remove_examples
from wiring.services import Services


async def task(services: Services, ctx: TenantContext, name: str, **fields: Any) -> uuid.UUID:
    spec = TaskSpec(
        name=name,
        description=fields.pop("description", f"Do {name} about {{topic}}"),
        expected_output=fields.pop("expected_output", "A short report"),
        **fields,
    )
    return (await services.crews.create_task(ctx, spec)).id


async def researcher(services: Services, ctx: TenantContext) -> uuid.UUID:
    spec = AgentSpec(name="researcher", role="Researcher", goal="Find things out")
    return (await services.crews.create_agent(ctx, spec)).id


async def test_every_problem_shows_under_its_field_at_once(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    await remove_examples(ui_services, account.ctx)
    await user.open("/tasks/new")
    await user.should_see("New task")
    user.find(marker="task-name").type("Bad Name")
    put(user, "task-output_schema", "{not json")
    user.find(marker="task-submit").click()
    await user.should_see("must be snake_case", retries=SLOW)
    assert "snake_case" in (control(user, "task-name").error or "")
    assert control(user, "task-description").error
    assert control(user, "task-expected_output").error
    assert "not valid JSON" in (control(user, "task-output_schema").error or "")
    assert await ui_services.crews.list_tasks(account.ctx) == []


async def test_enter_creates_a_task_with_an_agent_context_and_output_schema(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    ctx = account.ctx
    await remove_examples(ui_services, ctx)
    agent_id = await researcher(ui_services, ctx)
    earlier = await task(ui_services, ctx, "gather")
    await user.open("/tasks/new")
    assert control(user, "task-agent_id").options == {str(agent_id): "researcher - Researcher"}
    assert control(user, "task-context_ids").options == {str(earlier): "gather"}
    user.find(marker="task-name").type("summarise")
    user.find(marker="task-description").type("Summarise {topic} for {audience}")
    put(user, "task-expected_output", "Three bullet points")
    await user.should_see("Inputs this task needs: topic, audience", retries=SLOW)
    put(user, "task-agent_id", str(agent_id))
    put(user, "task-context_ids", [str(earlier)])
    put(user, "task-output_schema", '{"type": "object", "properties": {"points": {"type": "array"}}}')
    user.find(marker="task-name").trigger("keydown.enter")
    await user.should_see("Created task 'summarise'", retries=SLOW)
    saved = next(t for t in await ui_services.crews.list_tasks(ctx) if t.name == "summarise")
    assert (saved.agent_id, saved.context_ids) == (agent_id, [earlier])
    assert saved.output_schema == {"type": "object", "properties": {"points": {"type": "array"}}}
    assert saved.placeholders == ["topic", "audience"]
    await user.should_see(marker="task-delete", retries=SLOW)  # landed on the record's own page
    assert control(user, "page-title").text == "summarise"
    assert control(user, "task-context_ids").options == {str(earlier): "gather"}  # never itself


async def test_editing_a_task_persists(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    ctx = account.ctx
    agent_id = await researcher(ui_services, ctx)
    task_id = await task(ui_services, ctx, "report", agent_id=agent_id, output_schema={"type": "object"})
    await user.open(f"/tasks/{task_id}")
    await user.should_see("Inputs this task needs: topic", retries=SLOW)
    assert control(user, "task-agent_id").value == str(agent_id)
    assert '"type": "object"' in control(user, "task-output_schema").value
    put(user, "task-expected_output", "A report on {topic} in {language}")
    await user.should_see("Inputs this task needs: topic, language", retries=SLOW)
    put(user, "task-agent_id", None)  # a hierarchical crew's manager will assign it
    put(user, "task-output_schema", "")
    user.find(marker="task-submit").click()
    await user.should_see("Saved task 'report'", retries=SLOW)
    saved = await ui_services.crews.get_task(ctx, task_id)
    assert (saved.expected_output, saved.agent_id, saved.output_schema) == (
        "A report on {topic} in {language}",
        None,
        None,
    )


async def test_the_list_shows_tasks_and_search_filters_it(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    ctx = account.ctx
    await remove_examples(ui_services, ctx)
    await user.open("/tasks")
    await user.should_see("No tasks yet.")
    await user.should_see(marker="new-task")
    agent_id = await researcher(ui_services, ctx)
    gather = await task(ui_services, ctx, "gather", agent_id=agent_id, description="Collect sources on {topic}")
    await task(ui_services, ctx, "write_up", description="Write the article", context_ids=[gather])
    await user.open("/tasks")
    await user.should_see("agent: researcher")
    await user.should_see("reads: gather")
    await user.should_see("{topic}")
    assert len(user.find(marker="task-row").elements) == 2
    user.find(marker="tasks-search").type("article")
    await user.should_not_see("Collect sources on {topic}", retries=SLOW)
    assert len(user.find(marker="task-row").elements) == 1
    put(user, "tasks-search", "")
    await user.should_see("Collect sources on {topic}", retries=SLOW)
    assert len(user.find(marker="task-row").elements) == 2


async def test_a_viewer_sees_tasks_read_only(user: User, ui_services: Services) -> None:
    owner = await sign_in(User(user.http_client), ui_services)
    task_id = await task(ui_services, owner.ctx, "report")
    await sign_in(user, ui_services, workspace=owner.ctx, role=Role.VIEWER)
    await user.open("/tasks")
    await user.should_see("report")
    await user.should_not_see(marker="new-task")
    await user.open(f"/tasks/{task_id}")
    await user.should_see("Inputs this task needs: topic", retries=SLOW)
    await user.should_not_see(marker="task-submit")
    await user.should_not_see(marker="task-delete")
    for name in ("name", "description", "expected_output", "agent_id", "context_ids", "output_schema"):
        assert control(user, f"task-{name}").props.get("readonly"), name
    response = await user.http_client.get("/tasks/new")
    assert response.status_code == 403


async def test_another_workspaces_task_is_not_found_inside_the_shell(user: User, ui_services: Services) -> None:
    other = await sign_in(User(user.http_client), ui_services)
    theirs = await task(ui_services, other.ctx, "secret_task")
    await sign_in(user, ui_services)
    for path in (f"/tasks/{theirs}", f"/tasks/{theirs}x"):
        response = await user.http_client.get(path)
        assert response.status_code == 404, path
        assert "not-found" in response.text
        assert "nav-drawer" in response.text  # inside the shell
        assert "secret_task" not in response.text


async def test_a_task_in_use_is_not_deleted_and_the_notification_names_its_users(
    user: User, ui_services: Services
) -> None:
    account = await sign_in(user, ui_services)
    ctx = account.ctx
    agent_id = await researcher(ui_services, ctx)
    gather = await task(ui_services, ctx, "gather", agent_id=agent_id)
    write = await task(ui_services, ctx, "write_up", agent_id=agent_id, context_ids=[gather])
    crew = CrewSpec(name="newsroom", agent_ids=[agent_id], task_ids=[gather, write])
    await ui_services.crews.create_crew(ctx, crew)
    await user.open(f"/tasks/{gather}")
    user.find(marker="task-delete").click()
    await user.should_see("Delete the task 'gather'?", retries=SLOW)
    with user.scope(ui.dialog):
        user.find(kind=ui.button, content="Delete").click()
    await user.should_see("task 'gather' is used by crew 'newsroom' and task 'write_up' (as context)", retries=SLOW)
    assert await ui_services.crews.list_tasks(ctx, "gather")
