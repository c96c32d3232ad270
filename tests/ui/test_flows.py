"""The flows pages as a person uses them: list, search, import and export, a flow's versions, and running it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from nicegui import ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing.user import User

from core.context import Role
from tests.executor.conftest import document, edge, node
from tests.ui.conftest import sign_in
from wiring.services import Services

SLOW = 100  # retries of 0.1 s for what a run or a dialog does in the background


def echo_flow(*inputs: dict[str, Any]) -> dict[str, Any]:
    """input -> output, returning the `topic` input; more inputs may be declared."""
    declared = [{"name": "topic", "type": "string", "description": "What to echo"}, *inputs]
    return document(
        [node("in", "input"), node("out", "output", value="{{ inputs.topic }}")], [edge("in", "out")], declared
    )


async def eventually(check: Callable[[], bool]) -> None:
    """Wait (up to 5 s) for what a handler does in the background."""
    for _ in range(50):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("it did not happen within 5 s")


def element(user: User, testid: str) -> ui.element:
    """The one element with this test id."""
    found = user.find(marker=testid).elements
    assert len(found) == 1, f"{len(found)} elements with test id {testid!r}"
    return next(iter(found))


async def test_an_empty_workspace_says_what_a_flow_is_and_how_to_get_one(user: User, ui_services: Services) -> None:
    await sign_in(user, ui_services)
    await user.open("/flows")
    await user.should_see(marker="flows-empty")
    await user.should_see("No flows in this workspace yet.")
    await user.should_see("Import flow")
    await user.should_see("POST /api/flows", retries=1)


async def test_flows_are_listed_and_searched(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    echo = await ui_services.flows.create(owner.ctx, "Echo", "Says the topic back", echo_flow())
    await ui_services.flows.create(owner.ctx, "Summarise news", "", echo_flow())
    await user.open("/flows")
    await user.should_see("Echo")
    await user.should_see("Says the topic back")
    await user.should_see("Summarise news")
    await user.should_see(marker=f"flow-open-{echo.version.flow_id}")
    user.find(marker="flows-search").type("summ")
    await user.should_not_see("Echo")
    await user.should_see("Summarise news")
    user.find(marker="flows-search").clear().type("nothing like it")
    await user.should_see("No flow matches 'nothing like it'.")


async def test_a_flow_exports_and_its_file_imports_reporting_what_this_workspace_lacks(
    user: User, ui_services: Services
) -> None:
    owner = await sign_in(user, ui_services)
    saved = await ui_services.flows.create(owner.ctx, "Echo", "", echo_flow())
    flow_id = saved.version.flow_id
    await user.open("/flows")
    user.find(marker=f"flow-export-{flow_id}").click()
    exported = json.loads((await user.download.next()).content)
    assert exported["format"] == "crewcanvas.flow-export/v1"
    assert exported["name"] == "Echo"
    assert [n["id"] for n in exported["document"]["nodes"]] == ["in", "out"]

    # The same file with a tool this workspace does not have: imported, and the tool is reported.
    tool_id = str(uuid.uuid4())
    exported["name"] = "Echo with a tool"
    exported["document"]["nodes"].append(node("shout", "tool", tool_id=tool_id, arguments={"text": "x"}))
    exported["references"]["tools"] = {tool_id: "shout"}
    user.find(marker="flows-import").click()
    await user.should_see(marker="import-dialog")
    upload = element(user, "import-file")
    assert isinstance(upload, ui.upload)
    data = json.dumps(exported).encode()
    await upload.handle_uploads([SmallFileUpload("echo.flow.json", "application/json", data)])
    await user.should_see("Imported as the flow 'Echo with a tool'.", retries=SLOW)
    await user.should_see(f"tool 'shout', id {tool_id}")
    await user.should_see("It cannot run yet")
    names = sorted(flow.name for flow in await ui_services.flows.list(owner.ctx))
    assert names == ["Echo", "Echo with a tool"]
    user.find(marker="import-close").click()
    await user.should_see(
        marker=f"flow-{next(f.id for f in await ui_services.flows.list(owner.ctx) if f.name != 'Echo')}"
    )


async def test_a_file_that_is_not_a_flow_export_is_refused_saying_why(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    await user.open("/flows")
    user.find(marker="flows-import").click()
    await user.should_see(marker="import-dialog")
    upload = element(user, "import-file")
    assert isinstance(upload, ui.upload)
    await upload.handle_uploads([SmallFileUpload("notes.txt", "text/plain", b"not json at all")])
    await user.should_see("'notes.txt' is not a JSON file", retries=SLOW)
    await upload.handle_uploads([SmallFileUpload("other.json", "application/json", b'{"document": {}}')])
    await user.should_see("not a flow export", retries=SLOW)
    assert await ui_services.flows.list(owner.ctx) == []


async def test_deleting_a_flow_asks_first(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    saved = await ui_services.flows.create(owner.ctx, "Doomed", "", echo_flow())
    flow_id = saved.version.flow_id
    await user.open("/flows")
    user.find(marker=f"flow-delete-{flow_id}").click()
    await user.should_see("Delete the flow 'Doomed'?")
    user.find(kind=ui.button, content="Cancel").click()  # the confirm dialog's test ids are props only
    await user.should_not_see("Delete the flow 'Doomed'?")
    assert len(await ui_services.flows.list(owner.ctx)) == 1
    user.find(marker=f"flow-delete-{flow_id}").click()
    await user.should_see("Delete the flow 'Doomed'?")
    user.find(kind=ui.button, content="Delete").click()
    await user.should_see("No flows in this workspace yet.", retries=SLOW)
    assert await ui_services.flows.list(owner.ctx) == []


async def test_a_flow_exports_as_a_crewai_flow(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    saved = await ui_services.flows.create(owner.ctx, "Echo", "", echo_flow())
    flow_id = saved.version.flow_id
    await user.open(f"/flows/{flow_id}")
    user.find(marker=f"flow-crewai-{flow_id}").click()
    await user.should_see(marker="crewai-dialog")  # at once, saying it is exporting
    await user.should_see(marker="crewai-document", retries=600)  # the first export imports CrewAI
    document_text = element(user, "crewai-document")
    assert isinstance(document_text, ui.code)
    assert "crewai.flow/v1" in document_text.content
    user.find(marker="crewai-yaml").click()
    assert (await user.download.next()).content.decode().strip() == document_text.content.strip()


async def test_running_a_flow_from_its_page_shows_every_missing_input_then_the_run(
    user: User, ui_services: Services
) -> None:
    owner = await sign_in(user, ui_services)
    extra = {"name": "tone", "type": "string", "description": "How it should sound"}
    saved = await ui_services.flows.create(owner.ctx, "Echo", "", echo_flow(extra))
    await user.open(f"/flows/{saved.version.flow_id}")
    await user.should_see("Run version 1")
    await user.should_see("What to echo")  # the input's description is the field's help
    user.find(marker="run-submit").click()
    topic, tone = element(user, "run-topic"), element(user, "run-tone")
    assert isinstance(topic, ui.input)
    assert isinstance(tone, ui.input)
    await eventually(lambda: bool(topic.error and tone.error))  # both problems at once, each under its field
    assert not (await ui_services.executions.list(owner.ctx)).items

    user.find(marker="run-topic").type("hello canvas")
    user.find(marker="run-tone").type("calm")
    user.find(marker="run-submit").click()
    await user.should_see(marker="run-summary", retries=SLOW)
    await user.should_see(kind=ui.badge, marker="run-status", content="completed", retries=SLOW)
    outputs = element(user, "run-outputs")
    assert isinstance(outputs, ui.code)
    assert json.loads(outputs.content) == {"result": "hello canvas"}
    await user.should_see(marker="node-out")
    await user.should_see("execution_completed")  # the event log
    runs = (await ui_services.executions.list(owner.ctx)).items
    assert [(run.status, run.inputs) for run in runs] == [("completed", {"topic": "hello canvas", "tone": "calm"})]


async def test_a_flow_that_cannot_run_says_why_instead_of_offering_run(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    broken = echo_flow()
    broken["nodes"][1]["data"]["value"] = "{{ nodes.nowhere.output }}"
    saved = await ui_services.flows.create(owner.ctx, "Broken", "", broken)
    await user.open(f"/flows/{saved.version.flow_id}")
    await user.should_see(marker="flow-problems")
    await user.should_not_see(marker="run-submit")


async def test_versions_are_listed_viewed_and_restored_and_details_saved(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    saved = await ui_services.flows.create(owner.ctx, "Echo", "", echo_flow())
    flow_id = saved.version.flow_id
    second = echo_flow({"name": "tone", "type": "string"})
    await ui_services.flows.save(owner.ctx, flow_id, second, message="ask for a tone")
    await user.open(f"/flows/{flow_id}")
    await user.should_see("ask for a tone")
    await user.should_see(marker="run-tone")
    await user.should_not_see(marker="version-restore-2")  # the latest needs no restoring
    user.find(marker="version-view-1").click()
    await user.should_see(marker="version-document", retries=SLOW)
    shown = element(user, "version-document")
    assert isinstance(shown, ui.code)
    assert json.loads(shown.content)["inputs"] == [
        {"name": "topic", "type": "string", "required": True, "default": None, "description": "What to echo"}
    ]
    user.find(marker="version-close").click()
    user.find(marker="version-restore-1").click()
    await user.should_see("restored from version 1", retries=SLOW)
    await user.should_not_see(marker="run-tone")  # the run form follows the latest version
    assert (await ui_services.flows.get(owner.ctx, flow_id)).latest_version == 3

    user.find(marker="flow-details-name").clear().type("Echo back")
    user.find(marker="flow-details-submit").click()
    await user.should_see("Saved", retries=SLOW)
    assert (await ui_services.flows.get(owner.ctx, flow_id)).name == "Echo back"
    user.find(marker="flow-details-name").clear()
    user.find(marker="flow-details-submit").click()
    name = element(user, "flow-details-name")
    assert isinstance(name, ui.input)
    await eventually(lambda: bool(name.error))


async def test_a_viewer_reads_flows_but_gets_no_run_import_delete_or_save(user: User, ui_services: Services) -> None:
    owner = await sign_in(User(user.http_client), ui_services)
    saved = await ui_services.flows.create(owner.ctx, "Echo", "", echo_flow())
    await ui_services.flows.save(owner.ctx, saved.version.flow_id, echo_flow(), message="again")
    flow_id = saved.version.flow_id
    await sign_in(user, ui_services, workspace=owner.ctx, role=Role.VIEWER)
    await user.open("/flows")
    await user.should_see("Echo")
    await user.should_see(marker=f"flow-export-{flow_id}")
    for hidden in ("flows-import", f"flow-delete-{flow_id}"):
        await user.should_not_see(marker=hidden, retries=1)
    await user.open(f"/flows/{flow_id}")
    await user.should_see("Editors of this workspace can run this flow.")
    await user.should_see(marker="version-view-1")
    for hidden in ("run-submit", "flow-details-submit", "version-restore-1", f"flow-delete-{flow_id}"):
        await user.should_not_see(marker=hidden, retries=1)


async def test_another_workspaces_flow_and_malformed_ids_are_not_found(user: User, ui_services: Services) -> None:
    other = await sign_in(User(user.http_client), ui_services)
    theirs = await ui_services.flows.create(other.ctx, "Theirs", "", echo_flow())
    await sign_in(user, ui_services)
    for flow_id in (str(theirs.version.flow_id), "not-a-flow", str(uuid.uuid4())):
        response = await user.http_client.get(f"/flows/{flow_id}")
        assert response.status_code == 404, flow_id
        assert "not-found" in response.text
        assert "Theirs" not in response.text
