"""/agents, /agents/new and /agents/{id}: list with search, the agent editor, read-only viewers, not-found."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing.user import User

from core.context import Role, TenantContext
from core.crew_specs import AgentSpec, TaskSpec
from core.providers import ProviderInput, parse_input
from core.tools import starter_spec
from tests.ui.conftest import sign_in
from wiring.services import Services

pytestmark = pytest.mark.ui_settings(master_key=True)


#: Retries (0.1 s apart) for what follows a database write or a navigation, on a busy machine.
SLOW = 50


def control(user: User, testid: str) -> Any:
    """The one element on the page with this `data-testid`."""
    elements = [e for e in user.current_layout.descendants() if e.props.get("data-testid") == testid]
    assert len(elements) == 1, f"{len(elements)} elements have the test id {testid}"
    return elements[0]


def put(user: User, testid: str, value: Any) -> None:
    """Set a control's value as the browser would (selects included)."""
    assert user.client is not None
    with user.client:
        control(user, testid).value = value


async def remove_examples(services: Services, ctx: TenantContext) -> None:
    """Delete the example crew, tasks and agent every new workspace starts with."""
    crews = services.crews
    for crew in await crews.list_crews(ctx):
        await crews.delete_crew(ctx, crew.id)
    for task in sorted(await crews.list_tasks(ctx), key=lambda task: -len(task.context_ids)):
        await crews.delete_task(ctx, task.id)
    for agent in await crews.list_agents(ctx):
        await crews.delete_agent(ctx, agent.id)


async def agent(services: Services, ctx: TenantContext, name: str, role: str, **fields: Any) -> uuid.UUID:
    spec = AgentSpec(name=name, role=role, goal=fields.pop("goal", "Find out about {topic}"), **fields)
    return (await services.crews.create_agent(ctx, spec)).id


async def test_every_problem_shows_under_its_field_at_once(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    await user.open("/agents/new")
    await user.should_see("New agent")
    user.find(marker="agent-name").type("Bad Name")
    user.find(marker="agent-submit").click()
    await user.should_see("must be snake_case", retries=SLOW)
    assert "snake_case" in (control(user, "agent-name").error or "")
    assert control(user, "agent-role").error
    assert control(user, "agent-goal").error
    assert not control(user, "agent-backstory").error
    assert [a.name for a in await ui_services.crews.list_agents(account.ctx)] == ["assistant"]  # the example


async def test_enter_creates_an_agent_with_a_provider_model_and_tools(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    ctx = account.ctx
    data = {"name": "Fast", "kind": "openai", "api_key": "sk-test-123456", "models": ["gpt-4o-mini", "gpt-4o"]}
    provider = await ui_services.llm_stack.providers.create(ctx, parse_input(ProviderInput, data))
    tool = await ui_services.tools.create(ctx, starter_spec("python").model_copy(update={"name": "echo"}))
    await user.open("/agents/new")
    user.find(marker="agent-name").type("researcher")
    user.find(marker="agent-role").type("Senior {topic} researcher")
    user.find(marker="agent-goal").type("Tell {audience} about {topic}")
    await user.should_see("Inputs this agent needs: topic, audience", retries=SLOW)
    assert {"gpt-4o-mini", "gpt-4o"} <= set(control(user, "agent-model").options)  # no provider yet: all models
    put(user, "agent-provider_id", str(provider.id))
    put(user, "agent-model", "gpt-4o")
    put(user, "agent-tool_ids", [str(tool.id)])
    user.find(marker="agent-name").trigger("keydown.enter")
    await user.should_see("Created agent 'researcher'", retries=SLOW)
    [saved] = await ui_services.crews.list_agents(ctx, "researcher")
    assert (saved.provider_id, saved.model, saved.tool_ids) == (provider.id, "gpt-4o", [tool.id])
    assert saved.placeholders == ["topic", "audience"]
    await user.should_see(marker="agent-delete", retries=SLOW)  # landed on the record's own page
    assert control(user, "page-title").text == "researcher"


async def test_editing_an_agent_persists_and_offers_the_chosen_providers_models(
    user: User, ui_services: Services
) -> None:
    account = await sign_in(user, ui_services)
    ctx = account.ctx
    providers = ui_services.llm_stack.providers
    one = await providers.create(
        ctx, parse_input(ProviderInput, {"name": "One", "kind": "openai", "api_key": "sk-one-123456", "models": ["m1"]})
    )
    two = await providers.create(
        ctx,
        parse_input(
            ProviderInput, {"name": "Two", "kind": "openai", "api_key": "sk-two-123456", "models": ["m2", "m3"]}
        ),
    )
    agent_id = await agent(ui_services, ctx, "writer", "Writer", provider_id=one.id, model="m1")
    await user.open(f"/agents/{agent_id}")
    await user.should_see("writer")
    assert control(user, "agent-goal").value == "Find out about {topic}"
    assert set(control(user, "agent-model").options) == {"m1"}
    put(user, "agent-provider_id", str(two.id))
    assert set(control(user, "agent-model").options) == {"m2", "m3"}
    assert control(user, "agent-model").value is None  # m1 does not run on Two
    put(user, "agent-model", "m3")
    put(user, "agent-goal", "Write for {audience}")
    await user.should_see("Inputs this agent needs: audience", retries=SLOW)
    user.find(marker="agent-submit").click()
    await user.should_see("Saved agent 'writer'", retries=SLOW)
    saved = await ui_services.crews.get_agent(ctx, agent_id)
    assert (saved.goal, saved.provider_id, saved.model) == ("Write for {audience}", two.id, "m3")
    assert saved.placeholders == ["audience"]


async def test_a_taken_name_is_reported_in_the_form(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    await agent(ui_services, account.ctx, "researcher", "Researcher")
    await user.open("/agents/new")
    user.find(marker="agent-name").type("researcher")
    put(user, "agent-role", "Another")
    put(user, "agent-goal", "Another goal")
    user.find(marker="agent-submit").click()
    await user.should_see("exists already in this workspace", retries=SLOW)
    assert [a.name for a in await ui_services.crews.list_agents(account.ctx, "researcher")] == ["researcher"]


async def test_the_list_shows_agents_their_models_and_placeholders_and_search_filters_it(
    user: User, ui_services: Services
) -> None:
    account = await sign_in(user, ui_services)
    await remove_examples(ui_services, account.ctx)
    await user.open("/agents")
    await user.should_see("No agents yet.")
    await user.should_see(marker="new-agent")
    await agent(ui_services, account.ctx, "researcher", "Senior {topic} researcher", model="gpt-4o")
    await agent(ui_services, account.ctx, "writer", "Tech writer", goal="Explain things")
    await user.open("/agents")
    await user.should_see("Senior {topic} researcher", retries=SLOW)
    await user.should_see("model: gpt-4o")
    await user.should_see("{topic}")
    assert len(user.find(marker="agent-row").elements) == 2
    user.find(marker="agents-search").type("WRIT")
    await user.should_not_see("Senior {topic} researcher", retries=SLOW)
    assert len(user.find(marker="agent-row").elements) == 1
    await user.should_see("Tech writer", retries=SLOW)
    put(user, "agents-search", "nobody")
    user.find(marker="agents-search").trigger("keydown.enter")
    await user.should_see("Nothing matches 'nobody'", retries=SLOW)
    await user.should_not_see(marker="agent-row", retries=SLOW)


async def test_a_viewer_sees_agents_read_only(user: User, ui_services: Services) -> None:
    owner = await sign_in(User(user.http_client), ui_services)
    agent_id = await agent(ui_services, owner.ctx, "researcher", "Researcher", allow_delegation=True)
    await sign_in(user, ui_services, workspace=owner.ctx, role=Role.VIEWER)
    await user.open("/agents")
    await user.should_see("researcher")
    await user.should_not_see(marker="new-agent")
    await user.open(f"/agents/{agent_id}")
    await user.should_see("Inputs this agent needs: topic", retries=SLOW)
    await user.should_not_see(marker="agent-submit")
    await user.should_not_see(marker="agent-delete")
    for name in ("name", "role", "goal", "provider_id", "model", "tool_ids"):
        assert control(user, f"agent-{name}").props.get("readonly"), name
    assert not control(user, "agent-allow_delegation").enabled
    response = await user.http_client.get("/agents/new")
    assert response.status_code == 403


async def test_another_workspaces_agent_is_not_found_inside_the_shell(user: User, ui_services: Services) -> None:
    other = await sign_in(User(user.http_client), ui_services)
    theirs = await agent(ui_services, other.ctx, "secret_agent", "Spy")
    await sign_in(user, ui_services)
    for path in (f"/agents/{theirs}", "/agents/not-an-id"):
        response = await user.http_client.get(path)
        assert response.status_code == 404, path
        assert "not-found" in response.text
        assert "nav-drawer" in response.text  # inside the shell
        assert "secret_agent" not in response.text


async def test_deleting_asks_and_a_used_agent_is_refused_naming_its_users(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    ctx = account.ctx
    used = await agent(ui_services, ctx, "researcher", "Researcher")
    spare = await agent(ui_services, ctx, "spare", "Spare")
    await ui_services.crews.create_task(
        ctx, TaskSpec(name="research", description="d", expected_output="e", agent_id=used)
    )
    await user.open(f"/agents/{used}")
    user.find(marker="agent-delete").click()
    await user.should_see("Delete the agent 'researcher'?", retries=SLOW)
    with user.scope(ui.dialog):
        user.find(kind=ui.button, content="Delete").click()
    await user.should_see("agent 'researcher' is used by task 'research'", retries=SLOW)
    assert (await ui_services.crews.get_agent(ctx, used)).name == "researcher"
    await user.open(f"/agents/{spare}")
    user.find(marker="agent-delete").click()
    await user.should_see("Delete the agent 'spare'?", retries=SLOW)
    with user.scope(ui.dialog):
        user.find(kind=ui.button, content="Cancel").click()
    await user.should_not_see("Delete the agent 'spare'?", retries=SLOW)
    assert await ui_services.crews.list_agents(ctx, "spare")
    user.find(marker="agent-delete").click()
    await user.should_see("Delete the agent 'spare'?", retries=SLOW)
    with user.scope(ui.dialog):
        user.find(kind=ui.button, content="Delete").click()
    await user.should_see("Deleted agent 'spare'", retries=SLOW)
    assert await ui_services.crews.list_agents(ctx, "spare") == []
    await user.should_see(marker="agents-search", retries=SLOW)  # back on the list
