"""The tools pages with the simulated user: the editor form, templates, Try it, roles and other workspaces."""

from __future__ import annotations

import uuid
from typing import Any

from nicegui.testing.user import User

from core.context import Role
from core.tools import ToolSpec, starter_spec
from tests.ui.conftest import sign_in
from wiring.services import Services


def one(user: User, marker: str) -> Any:
    """The one visible element with test id `marker`."""
    found = user.find(marker=marker).elements
    assert len(found) == 1, f"{len(found)} elements marked {marker!r}"
    return next(iter(found))


def error_of(user: User, marker: str) -> str:
    return str(one(user, marker).error or "")


async def test_every_problem_of_a_tool_is_shown_under_its_field_at_once(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    await user.open("/tools/new")
    await user.should_see("New tool")
    user.find(marker="tool-name").clear().type("Bad Name")
    user.find(marker="tool-description").clear().type("shouts \x07loud")
    one(user, "tool-code").value = "   "
    one(user, "tool-input_schema").value = "{not json"
    one(user, "tool-limits.memory_bytes").value = 1_000_000  # MiB: far above the operator's maximum
    user.find(marker="tool-name").trigger("keydown.enter")  # Enter submits
    await user.should_see("write a 'run' function")

    assert "snake_case" in error_of(user, "tool-name")
    assert "control character (U+0007)" in error_of(user, "tool-description")
    await user.should_see(marker="tool-code-error")
    assert "is not valid JSON" in one(user, "tool-input_schema-error").text
    assert "at most 1024 MiB" in error_of(user, "tool-limits.memory_bytes")
    await user.should_not_see(marker="tool-error")  # nothing left for the box, and no toast
    assert not user.notify.messages
    assert await ui_services.tools.list(account.ctx) == []


async def test_an_editor_creates_a_tool_from_the_template_with_enter_and_tries_it(
    user: User, ui_services: Services
) -> None:
    account = await sign_in(user, ui_services)
    await user.open("/tools")
    await user.should_see(marker="tools-empty")
    user.find(marker="new-command-tool").click()
    await user.should_see("New tool")
    assert one(user, "tool-kind").value == "command"
    assert one(user, "tool-code").value == starter_spec("command").code

    one(user, "tool-kind").value = "python"  # an untouched template follows the kind
    assert one(user, "tool-code").value == starter_spec("python").code
    assert one(user, "tool-code").language == "Python"
    user.find(marker="tool-name").clear().type("repeat")
    one(user, "tool-limits.memory_bytes").value = 128
    user.find(marker="tool-name").trigger("keydown.enter")
    await user.should_see("Saved tool 'repeat'")
    await user.should_see(marker="delete-tool", retries=100)  # on the saved tool's own page now

    (saved,) = await ui_services.tools.list(account.ctx)
    assert saved.name == "repeat"
    assert saved.kind == "python"
    assert saved.limits["memory_bytes"] == 128 * 1024 * 1024

    one(user, "try-input").value = '{"text": "hi", "times": 3}'
    user.find(marker="run-tool").click()
    await user.should_see(marker="result-reason", retries=200)
    assert one(user, "result-reason").text == "ok"
    assert '"result": "hi hi hi"' in one(user, "result-output").text

    await user.open("/tools")
    await user.should_see("repeat")


async def test_a_viewer_reads_a_tool_but_cannot_change_or_run_it(user: User, ui_services: Services) -> None:
    owner = await sign_in(User(user.http_client), ui_services)
    tool = await ui_services.tools.create(owner.ctx, ToolSpec(name="shout", code="def run():\n    return 1\n"))
    await sign_in(user, ui_services, workspace=owner.ctx, role=Role.VIEWER)
    await user.open("/tools")
    await user.should_see("shout")
    await user.should_not_see(marker="new-python-tool")
    await user.should_not_see(marker="new-command-tool")

    await user.open(f"/tools/{tool.id}")
    assert one(user, "tool-name").value == "shout"
    assert one(user, "tool-name").props.get("readonly") is True
    assert one(user, "tool-code").enabled is False
    await user.should_see(marker="tool-read-only")
    for marker in ("tool-submit", "delete-tool", "run-tool", "try-panel"):
        await user.should_not_see(marker=marker)


async def test_another_workspaces_tool_is_not_found_inside_the_shell(user: User, ui_services: Services) -> None:
    other = await sign_in(User(user.http_client), ui_services)
    theirs = await ui_services.tools.create(other.ctx, ToolSpec(name="secret_tool", code="def run():\n    return 1\n"))
    await sign_in(user, ui_services)
    for address in (f"/tools/{theirs.id}", f"/tools/{uuid.uuid4()}", "/tools/not-an-id"):
        response = await user.http_client.get(address)
        assert response.status_code == 404, address
        assert "not-found" in response.text
        assert "nav-drawer" in response.text  # inside the shell, with the way back
        assert "secret_tool" not in response.text


async def test_a_taken_name_is_said_in_the_form_and_delete_asks_first(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    code = "def run():\n    return 1\n"
    await ui_services.tools.create(account.ctx, ToolSpec(name="taken", code=code))
    mine = await ui_services.tools.create(account.ctx, ToolSpec(name="mine", code=code))
    await user.open(f"/tools/{mine.id}")
    await user.should_see(marker="delete-tool")
    user.find(marker="tool-name").clear().type("taken")
    user.find(marker="tool-submit").click()
    await user.should_see("exists already in this workspace")
    await user.should_see(marker="tool-error")  # a conflict fits no field: the form's own box says it

    user.find(marker="delete-tool").click()
    await user.should_see("Delete the tool 'mine'?")
    user.find(marker="confirm-delete").click()
    await user.should_see(marker="tool-list", retries=100)  # back on the list
    assert [view.name for view in await ui_services.tools.list(account.ctx)] == ["taken"]
