"""The flow canvas element in a real browser: tests/e2e/canvas_app.py (no database) in a subprocess.

The app appends every event the canvas sends to a file; the tests act in the browser and
read what Python received. Also here: rebuilding the bundle (and the pages' CSS) gives the same bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import ROOT, STARTUP_TIMEOUT_S, connected, free_port, stop_app

pytestmark = pytest.mark.e2e

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
EVENT_TIMEOUT_S = 10.0
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class CanvasApp:
    base_url: str
    events_path: Path
    log_path: Path

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines() if line]

    def mark(self) -> int:
        """Where the events of what follows begin."""
        return len(self.events())

    def since(self, mark: int, name: str | None = None) -> list[dict[str, Any]]:
        return [e["args"] for e in self.events()[mark:] if name is None or e["event"] == name]

    def wait(self, mark: int, name: str, timeout: float = EVENT_TIMEOUT_S) -> dict[str, Any]:
        """The first `name` event after `mark`, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.since(mark, name)
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no {name!r} event; events since: {self.events()[mark:]}")


@pytest.fixture(scope="module")
def canvas_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CanvasApp]:
    bundle = ROOT / "ui" / "elements" / "dist" / "vue_flow.js"
    if not bundle.exists():
        pytest.fail(f"{bundle} is missing: run `make jsbuild`")
    folder = tmp_path_factory.mktemp("canvas")
    port = free_port()
    app = CanvasApp(f"http://127.0.0.1:{port}", folder / "events.jsonl", folder / "app.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    with app.log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "tests/e2e/canvas_app.py", str(port), str(app.events_path)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the canvas app did not start:\n{app.log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{app.base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield app
    finally:
        stop_app(process)


def open_canvas(page: Page, app: CanvasApp) -> None:
    page.set_viewport_size({"width": 1200, "height": 800})
    page.goto(app.base_url)
    connected(page)
    expect(page.get_by_test_id("canvas-node-c")).to_be_visible()
    # set_flow(fit=True) frames the nodes once they are measured; wait until the view stops moving.
    page.wait_for_function(
        """() => new Promise(resolve => {
            const pane = document.querySelector('.vue-flow__transformationpane');
            const before = pane && pane.style.transform;
            setTimeout(() => resolve(before && before === pane.style.transform), 300);
        })"""
    )


def centre(locator: Locator) -> tuple[float, float]:
    box = locator.bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=10)
    page.mouse.up()


def zoom(page: Page) -> float:
    return float(
        page.evaluate(
            "() => new DOMMatrixReadOnly(getComputedStyle(document.querySelector('.vue-flow__transformationpane')).transform).a"
        )
    )


def test_the_bundle_loads_without_console_errors_or_requests_beyond_loopback(canvas_app: CanvasApp, page: Page) -> None:
    problems: list[str] = []
    hosts: set[str] = set()
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: hosts.add(urlsplit(request.url).hostname or request.url.split(":")[0]))
    open_canvas(page, canvas_app)
    page.wait_for_load_state("networkidle")
    assert page.locator("style#crewcanvas-vue-flow-css").count() == 1
    assert not problems
    assert hosts <= LOOPBACK | {"data"}, hosts


def test_nodes_and_their_named_handles_render(canvas_app: CanvasApp, page: Page) -> None:
    open_canvas(page, canvas_app)
    node = page.get_by_test_id("canvas-node-b")
    expect(node).to_contain_text("Summarise")
    expect(node).to_contain_text("local model")
    expect(node).to_have_attribute("data-status", "")
    for testid in ("handle-a-out-out", "handle-b-in-text", "handle-b-out-out", "handle-b-out-error", "handle-c-in-in"):
        expect(page.get_by_test_id(testid)).to_be_visible()
    expect(page.get_by_test_id("handle-b-out-error")).to_have_attribute("data-handleid", "error")
    expect(node.locator(".cc-port--out")).to_have_text(["Summary", "Error"])
    expect(page.get_by_test_id("canvas-problems-c")).to_have_attribute("title", "value: is not connected")
    expect(page.get_by_test_id("canvas-node-c")).to_have_class("cc-node cc-node--added cc-node--problems")
    expect(page.get_by_test_id("canvas-pin-a")).to_be_visible()
    expect(page.get_by_test_id("canvas-status-a")).to_contain_text("1.5s")
    expect(page.locator(".vue-flow__edge")).to_have_count(1)
    expect(page.locator(".vue-flow__minimap")).to_be_visible()
    expect(page.get_by_role("button", name="Zoom in")).to_be_visible()


def test_the_canvas_has_no_serious_accessibility_violations_in_light_or_dark_mode(
    canvas_app: CanvasApp, page: Page
) -> None:
    open_canvas(page, canvas_app)
    page.get_by_test_id("run-b").click()
    expect(page.get_by_test_id("canvas-node-b")).to_have_attribute("data-status", "running")
    page.add_script_tag(path=str(AXE))
    for mode in ("light", "dark"):
        if mode == "dark":
            page.get_by_test_id("dark").click()
            expect(page.locator("body.body--dark")).to_have_count(1)
        found = page.evaluate(
            """async () => (await axe.run('.cc-flow-canvas', {resultTypes: ['violations']})).violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => `${v.id}: ${v.nodes.slice(0, 3).map(n => n.html.slice(0, 120)).join(' | ')}`)"""
        )
        assert not found, f"{mode}: {found}"


def test_dragging_a_node_emits_moved_with_its_new_position(canvas_app: CanvasApp, page: Page) -> None:
    open_canvas(page, canvas_app)
    scale = zoom(page)
    node = page.get_by_test_id("canvas-node-a")
    before = node.bounding_box()
    mark = canvas_app.mark()
    x, y = centre(node.locator(".cc-node__label"))
    drag(page, (x, y), (x + 90, y + 120))
    moved = canvas_app.wait(mark, "moved")
    after = node.bounding_box()
    assert before is not None
    assert after is not None
    assert moved["layout"] is False
    assert list(moved["positions"]) == ["a"]
    # Where the node now is on screen, in flow coordinates (it started at 0, 0). Vue Flow drops the
    # first pointer step past its drag threshold, so this is not quite the pointer's way.
    position = moved["positions"]["a"]
    assert position["x"] > 50
    assert position["y"] > 70
    assert abs(position["x"] - (after["x"] - before["x"]) / scale) <= 1.5
    assert abs(position["y"] - (after["y"] - before["y"]) / scale) <= 1.5


def test_dragging_from_an_output_to_an_input_emits_connect_with_the_handle_names(
    canvas_app: CanvasApp, page: Page
) -> None:
    open_canvas(page, canvas_app)
    mark = canvas_app.mark()
    drag(page, centre(page.get_by_test_id("handle-b-out-error")), centre(page.get_by_test_id("handle-c-in-in")))
    assert canvas_app.wait(mark, "connect") == {
        "source": "b",
        "source_handle": "error",
        "target": "c",
        "target_handle": "in",
    }
    # Python decides: the canvas drew no edge of its own.
    page.wait_for_timeout(300)
    expect(page.locator(".vue-flow__edge")).to_have_count(1)


def test_a_palette_item_dropped_on_the_canvas_emits_drop_with_its_type(canvas_app: CanvasApp, page: Page) -> None:
    open_canvas(page, canvas_app)
    mark = canvas_app.mark()
    page.get_by_test_id("palette-llm").drag_to(page.locator(".vue-flow__pane"), target_position={"x": 200, "y": 420})
    dropped = canvas_app.wait(mark, "drop")
    assert dropped["type"] == "llm"
    assert set(dropped["position"]) == {"x", "y"}
    expect(page.locator(".vue-flow__node")).to_have_count(3)


def test_keys_with_focus_in_the_canvas_emit_delete_undo_redo_copy_and_paste(canvas_app: CanvasApp, page: Page) -> None:
    open_canvas(page, canvas_app)
    mark = canvas_app.mark()
    page.get_by_test_id("canvas-node-b").locator(".cc-node__label").click()
    assert canvas_app.wait(mark, "node_click") == {"id": "b"}
    assert canvas_app.wait(mark, "selection") == {"nodes": ["b"], "edges": []}
    for key in ("Delete", "Control+z", "Control+Shift+z", "Control+y", "Control+c", "Control+v"):
        page.keyboard.press(key)
    assert canvas_app.wait(mark, "delete") == {"nodes": ["b"], "edges": []}
    assert canvas_app.wait(mark, "undo") == {}
    assert canvas_app.wait(mark, "copy") == {"nodes": ["b"]}
    assert set(canvas_app.wait(mark, "paste")["position"]) == {"x", "y"}
    page.wait_for_timeout(300)
    assert len(canvas_app.since(mark, "redo")) == 2
    expect(page.locator(".vue-flow__node")).to_have_count(3)  # nothing deleted but by Python


def test_keys_typed_outside_the_canvas_are_left_alone_but_ctrl_s_saves(canvas_app: CanvasApp, page: Page) -> None:
    open_canvas(page, canvas_app)
    page.get_by_test_id("canvas-node-b").locator(".cc-node__label").click()
    notes = page.get_by_test_id("notes")
    notes.click()
    mark = canvas_app.mark()
    page.keyboard.type("abc")
    page.keyboard.press("Backspace")
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+s")
    assert canvas_app.wait(mark, "save") == {}
    page.wait_for_timeout(300)
    assert [e["event"] for e in canvas_app.events()[mark:]] == ["save"]
    expect(notes).to_have_value("abc")


def test_patching_a_node_to_running_shows_a_spinner_and_a_live_clock(canvas_app: CanvasApp, page: Page) -> None:
    open_canvas(page, canvas_app)
    node = page.get_by_test_id("canvas-node-b")
    page.get_by_test_id("run-b").click()
    expect(node).to_have_attribute("data-status", "running")
    expect(page.get_by_test_id("canvas-spinner-b")).to_be_visible()
    expect(page.get_by_test_id("canvas-status-b")).to_contain_text("1s", timeout=5_000)
    expect(page.get_by_test_id("canvas-node-a")).to_have_attribute("data-status", "completed")  # untouched
    expect(page.get_by_test_id("canvas-spinner-a")).to_be_hidden()  # a done node shows its icon instead
    page.get_by_test_id("flow-a-b").click()
    # A flowing edge is drawn dashed and moving (through its path's style: no class changes, see the JS).
    flowing = page.locator(".vue-flow__edge-path[style*='dashdraw']")
    expect(flowing).to_have_count(1)
    assert flowing.evaluate("path => getComputedStyle(path).animationName") == "dashdraw"


def test_a_read_only_canvas_refuses_dragging_and_dropping(canvas_app: CanvasApp, page: Page) -> None:
    open_canvas(page, canvas_app)
    page.get_by_test_id("read-only").click()
    expect(page.locator(".cc-flow-canvas[data-read-only=true]")).to_have_count(1)
    node = page.get_by_test_id("canvas-node-a")
    # The node's place in the flow (dragging a node that cannot move pans the view instead).
    wrapper = page.locator(".vue-flow__node[data-id=a]")
    before = wrapper.evaluate("element => element.style.transform")
    mark = canvas_app.mark()
    x, y = centre(node.locator(".cc-node__label"))
    drag(page, (x, y), (x + 90, y + 120))
    drag(page, centre(page.get_by_test_id("handle-b-out-error")), centre(page.get_by_test_id("handle-c-in-in")))
    page.get_by_test_id("palette-llm").drag_to(page.locator(".vue-flow__pane"), target_position={"x": 200, "y": 420})
    node.locator(".cc-node__label").click()
    page.keyboard.press("Delete")
    assert canvas_app.wait(mark, "node_click") == {"id": "a"}
    page.wait_for_timeout(500)
    assert wrapper.evaluate("element => element.style.transform") == before == "translate(0px, 0px)"
    expect(page.locator(".vue-flow__edge")).to_have_count(1)
    assert {e["event"] for e in canvas_app.events()[mark:]} <= {"selection", "node_click", "viewport"}


def test_python_selects_lays_out_and_fits_the_nodes(canvas_app: CanvasApp, page: Page) -> None:
    open_canvas(page, canvas_app)
    mark = canvas_app.mark()
    page.get_by_test_id("select-c").click()
    expect(page.locator(".vue-flow__node.selected")).to_have_count(1)
    expect(page.locator(".vue-flow__node.selected [data-testid=canvas-node-c]")).to_have_count(1)
    page.get_by_test_id("layout").click()
    laid_out = canvas_app.wait(mark, "moved")
    assert laid_out["layout"] is True
    assert set(laid_out["positions"]) == {"a", "b", "c"}
    # Left to right along the edge a -> b.
    assert laid_out["positions"]["a"]["x"] < laid_out["positions"]["b"]["x"]
    assert not canvas_app.since(mark, "selection")  # Python's own selection is not echoed


def test_zooming_with_the_wheel_reports_the_viewport(canvas_app: CanvasApp, page: Page) -> None:
    open_canvas(page, canvas_app)
    mark = canvas_app.mark()
    page.mouse.move(*centre(page.locator(".vue-flow__pane")))
    page.mouse.wheel(0, -300)
    viewport = canvas_app.wait(mark, "viewport")
    assert viewport["zoom"] > 0
    assert set(viewport) == {"x", "y", "zoom"}


def test_a_flow_of_500_nodes_and_800_edges_draws_and_patches_only_the_touched_node(
    canvas_app: CanvasApp, page: Page
) -> None:
    page.set_viewport_size({"width": 1200, "height": 800})
    page.goto(f"{canvas_app.base_url}/?nodes=500")
    connected(page)
    expect(page.locator(".vue-flow__edge")).to_have_count(800, timeout=30_000)
    page.evaluate(
        """() => {
            window.touched = new Set();
            new MutationObserver(records => records.forEach(record => {
                const target = record.target.nodeType === 1 ? record.target : record.target.parentElement;
                const node = target.closest('.vue-flow__node');
                if (node) window.touched.add(node.dataset.id);
            })).observe(document.querySelector('.vue-flow__nodes'),
                        {subtree: true, childList: true, attributes: true, characterData: true});
        }"""
    )
    page.get_by_test_id("run-b").click()
    expect(page.get_by_test_id("canvas-node-b")).to_have_attribute("data-status", "running")
    assert page.evaluate("() => [...window.touched]") == ["b"]


@pytest.mark.parametrize(
    ("variable", "name", "least"), [("JS_BUNDLE", "vue_flow.js", 100_000), ("CSS_BUNDLE", "tailwind.css", 5_000)]
)
def test_rebuilding_the_bundle_gives_the_same_bytes(tmp_path: Path, variable: str, name: str, least: int) -> None:
    outputs = [tmp_path / "one" / name, tmp_path / "two" / name]
    for output in outputs:
        # -o: never reinstall node_modules from here (the stamp counts as up to date).
        subprocess.run(
            ["make", "-s", "-o", ".stamps/jsdeps", f"{variable}={output}", str(output)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    first, second = (output.read_bytes() for output in outputs)
    assert len(first) > least
    assert first == second


def test_the_built_css_has_the_classes_ui_spells_out_and_nicegui_composes() -> None:
    css = (ROOT / "ui" / "elements" / "dist" / "tailwind.css").read_text()
    assert ".w-full{" in css  # written in ui/*.py
    assert ".items-baseline{" in css  # composed by NiceGUI from align_items=, listed in ui/tailwind.css
    assert ".bg-slate-600{" in css  # a Tailwind colour given as color=
