"""The flow editor in a real browser: draw, edit, undo, save, reload, run, pin, run from here, approve, trace.

One app process and one browser for the module; each test is one person's journey. The
screenshots in docs/screenshots (the README shows them) are written here, at a laptop's
1366x768.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import ROOT, Account, LiveApp, connected
from tests.e2e.styles import unstyled_classes
from tests.e2e.test_shell import violations

SHOTS = ROOT / "docs" / "screenshots"
LAPTOP = {"width": 1366, "height": 768}
RUN_TIMEOUT_MS = 30_000


def centre(locator: Locator) -> tuple[float, float]:
    box = locator.bounding_box()
    assert box is not None, "not on screen"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=12)
    page.mouse.up()


def connect(page: Page, source: str, target: str) -> None:
    drag(page, centre(page.get_by_test_id(source)), centre(page.get_by_test_id(target)))


def node(page: Page, node_id: str) -> Locator:
    return page.get_by_test_id(f"canvas-node-{node_id}")


def edges(page: Page) -> Locator:
    return page.locator(".vue-flow__edge")


def status_text(page: Page) -> Locator:
    return page.get_by_test_id("editor-status")


def select(page: Page, node_id: str) -> None:
    """Click a node and wait until the properties panel shows it (typing before that goes to the last one)."""
    node(page, node_id).click()
    expect(page.get_by_test_id("properties-id")).to_have_text(f"id: {node_id}")


def focus_canvas(page: Page) -> None:
    """Click an empty spot of the canvas, so the editing keys go to it."""
    pane = page.locator(".vue-flow__pane")
    box = pane.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] - 40, box["y"] + 40)


def open_new_flow(page: Page, base_url: str, name: str) -> None:
    page.goto(f"{base_url}/flows")
    page.get_by_test_id("flows-new").click()
    page.get_by_test_id("new-flow-name").fill(name)
    page.get_by_test_id("new-flow-submit").click()
    page.wait_for_url(re.compile(r"/flows/[0-9a-f-]{36}/edit$"))
    connected(page)
    expect(node(page, "input")).to_be_visible()


def import_flow(page: Page, base_url: str, tmp_path: Path, document: dict[str, object], name: str) -> None:
    """Import a flow file through the flows page, then open it in the editor."""
    path = tmp_path / "flow.json"
    payload = {"format": "crewcanvas.flow-export/v1", "name": name, "document": document, "references": {}}
    path.write_text(json.dumps(payload))
    page.goto(f"{base_url}/flows")
    connected(page)
    page.get_by_test_id("flows-import").click()
    page.get_by_test_id("import-file").locator("input[type=file]").set_input_files(str(path))
    expect(page.get_by_test_id("import-done")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    href = page.get_by_test_id("import-open").get_attribute("href")
    assert href is not None
    page.goto(f"{base_url}{href}/edit")
    connected(page)


def test_draw_connect_edit_undo_save_reload_and_run_a_flow(
    live_app: LiveApp, page: Page, sign_up: Callable[..., Account]
) -> None:
    page.set_viewport_size(LAPTOP)
    sign_up(page)
    open_new_flow(page, live_app.base_url, "Greeter")
    expect(status_text(page)).to_have_text("Version 1: no unsaved changes")
    expect(edges(page)).to_have_count(0)

    # Drag an output node from the palette onto the canvas; it is selected, its form shown.
    page.get_by_test_id("palette-output").drag_to(page.locator(".vue-flow__pane"), target_position={"x": 300, "y": 470})
    expect(node(page, "output_1")).to_be_visible()
    expect(page.get_by_test_id("properties-type")).to_have_text("Output")
    expect(status_text(page)).to_contain_text("Draft")

    # Connect two handles; undo and redo the connection with the keyboard.
    connect(page, "handle-input-out-out", "handle-output-in-in")
    expect(edges(page)).to_have_count(1)
    connect(page, "handle-input-out-out", "handle-output_1-in-in")
    expect(edges(page)).to_have_count(2)
    focus_canvas(page)
    page.keyboard.press("Control+z")
    expect(edges(page)).to_have_count(1)
    page.keyboard.press("Control+Shift+z")
    expect(edges(page)).to_have_count(2)
    # A connection the types do not allow is refused with the reason.
    connect(page, "handle-input-out-out", "handle-output_1-in-in")
    expect(page.get_by_text("already", exact=False).first).to_be_visible()
    expect(edges(page)).to_have_count(2)

    # Edit fields of both output nodes; each is stored as typed (two outputs need two names).
    select(page, "output_1")
    page.get_by_test_id("node-name").fill("greeting")
    page.get_by_test_id("node-value").fill("Hello from the canvas")
    select(page, "output")
    # A reference is completed as it is typed: "{{ no" offers the upstream node's output.
    value = page.get_by_test_id("node-value")
    value.fill("")
    value.press_sequentially("Hi {{ no")
    page.get_by_test_id("node-value-complete-nodes.input.output").click()
    expect(value).to_have_value("Hi {{ nodes.input.output }}")
    expect(page.get_by_test_id("node-value-complete-nodes.input.output")).to_be_hidden()
    value.fill("The other output")
    expect(page.get_by_test_id("editor-problems")).to_be_hidden(timeout=RUN_TIMEOUT_MS)

    # Save with Ctrl+S; a reload shows the version, and a later change is kept as a draft.
    page.keyboard.press("Control+s")
    expect(status_text(page)).to_have_text("Version 2: no unsaved changes", timeout=RUN_TIMEOUT_MS)
    page.reload()
    connected(page)
    expect(node(page, "output_1")).to_be_visible()
    expect(edges(page)).to_have_count(2)
    expect(status_text(page)).to_have_text("Version 2: no unsaved changes")
    select(page, "output_1")
    page.get_by_test_id("node-value").fill("Hello again")
    expect(status_text(page)).to_contain_text("Draft", timeout=RUN_TIMEOUT_MS)
    page.reload()
    connected(page)
    expect(status_text(page)).to_contain_text("Draft: changes since version 2")
    select(page, "output_1")
    expect(page.get_by_test_id("node-value")).to_have_value("Hello again")

    # Run: the draft is saved as version 3 and every node turns done on the canvas.
    page.get_by_test_id("editor-run").click()
    for node_id in ("input", "output", "output_1"):
        expect(node(page, node_id)).to_have_attribute("data-status", "completed", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("run-pane-outputs")).to_contain_text("Hello again")
    expect(page.get_by_test_id("run-pane-outputs")).to_contain_text("The other output")
    expect(status_text(page)).to_have_text("Version 3: no unsaved changes")
    page.screenshot(path=str(SHOTS / "editor.png"))

    problems = [f"{v['impact']} {v['id']} ({v['help']}) at {v['targets']}" for v in violations(page)]
    assert not problems, "accessibility violations in the editor:\n" + "\n".join(problems)
    assert not unstyled_classes(page), "classes with no CSS in the editor"


REVIEW = {
    "schema": "crewcanvas.flow/v1",
    "nodes": [
        {"id": "in", "type": "input", "position": {"x": 0, "y": 80}, "data": {}},
        {
            "id": "ask",
            "type": "human",
            "position": {"x": 300, "y": 80},
            "data": {
                "label": "Approve the headline",
                "prompt": "Publish this headline?",
                "value": "{{ inputs.topic }}",
            },
        },
        {
            "id": "out",
            "type": "output",
            "position": {"x": 600, "y": 80},
            "data": {"value": "Published: {{ nodes.ask.output }}"},
        },
    ],
    "edges": [
        {"id": "e1", "source": "in", "source_handle": "out", "target": "ask", "target_handle": "in"},
        {"id": "e2", "source": "ask", "source_handle": "out", "target": "out", "target_handle": "in"},
    ],
    "inputs": [{"name": "topic", "type": "string", "description": "The headline"}],
}


def run_with_topic(page: Page, topic: str) -> None:
    page.get_by_test_id("editor-run").click()
    page.get_by_test_id("run-topic").fill(topic)
    page.get_by_test_id("run-submit").click()


def test_approve_pin_run_from_here_and_open_the_trace(
    live_app: LiveApp, page: Page, sign_up: Callable[..., Account], tmp_path: Path
) -> None:
    page.set_viewport_size(LAPTOP)
    sign_up(page)
    import_flow(page, live_app.base_url, tmp_path, REVIEW, "Headline review")

    # The human node waits on the canvas; it is approved right there.
    run_with_topic(page, "Tea is back")
    expect(node(page, "ask")).to_have_attribute("data-status", "waiting", timeout=RUN_TIMEOUT_MS)
    expect(node(page, "in")).to_have_attribute("data-status", "completed")
    expect(page.get_by_text("Publish this headline?").first).to_be_visible()
    page.screenshot(path=str(SHOTS / "live-run.png"))
    assert not unstyled_classes(page), "classes with no CSS on the live run"
    page.get_by_test_id("answer-ask-approve").click()
    expect(node(page, "out")).to_have_attribute("data-status", "completed", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("run-pane-outputs")).to_contain_text("Published: Tea is back")
    approved_trace = page.get_by_test_id("run-pane-trace").get_attribute("href")

    # Pin the approved output: the next run uses it and does not wait.
    select(page, "ask")
    expect(page.get_by_test_id("node-run-output")).to_contain_text("Tea is back")
    page.get_by_test_id("node-run-pin").click()
    expect(page.get_by_test_id("node-run-pinned")).to_be_visible()
    run_with_topic(page, "Something else")
    expect(node(page, "ask")).to_have_attribute("data-status", "pinned", timeout=RUN_TIMEOUT_MS)
    expect(node(page, "out")).to_have_attribute("data-status", "completed", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("run-pane-outputs")).to_contain_text("Published: Tea is back")

    # Run from the last node: a new run of it alone, reusing what came before.
    page.get_by_test_id("tab-run").click()
    earlier = page.get_by_test_id("run-pane-page").get_attribute("href")
    select(page, "out")
    page.get_by_test_id("node-run-from").click()
    page.get_by_test_id("tab-run").click()
    expect(page.get_by_test_id("run-pane-page")).not_to_have_attribute("href", earlier or "", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("run-pane-status")).to_contain_text("completed", timeout=RUN_TIMEOUT_MS)
    expect(node(page, "out")).to_have_attribute("data-status", "completed")
    expect(page.get_by_test_id("run-pane-outputs")).to_contain_text("Published: Tea is back")

    # The trace of that run, and back to the canvas from it.
    page.get_by_test_id("run-pane-trace").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}/trace$"))
    connected(page)
    expect(page.get_by_test_id("trace-rows")).to_contain_text("reused from an earlier run")
    page.get_by_test_id("trace-canvas").click()
    page.wait_for_url(re.compile(r"/edit\?run="))
    expect(node(page, "out")).to_have_attribute("data-status", "completed", timeout=RUN_TIMEOUT_MS)
    expect(node(page, "ask")).to_have_attribute("data-status", "pinned")

    # The trace of the run that waited for the approval.
    page.goto(f"{live_app.base_url}{approved_trace}")
    connected(page)
    expect(page.get_by_test_id("trace-rows")).to_contain_text("ask")
    page.get_by_test_id("trace-rows").get_by_text("ask").first.click()
    page.screenshot(path=str(SHOTS / "trace.png"), full_page=True)
    problems = [f"{v['impact']} {v['id']} ({v['help']}) at {v['targets']}" for v in violations(page)]
    assert not problems, "accessibility violations in the trace:\n" + "\n".join(problems)
    assert not unstyled_classes(page), "classes with no CSS on the trace"
