"""The "ours" side of bench/ui.py: FlowCanvas in a small NiceGUI app (no database, no services).

    .venv/bin/python bench/_ui_app.py <port>

`/?nodes=N` draws `_ui_flow.flow(N)` in a 1000 x 520 box and frames it, as the editor does. The
`bench-patches` button sends every node of the page `running`, then `completed`, one
`FlowCanvas.patch_nodes` call every `PATCH_GAP_MS` on a fixed timetable, each stamped with
`time.time()` just before the call; when the run is over the stamps are sent to the page as
`window.__benchSent` (`[[node id, status, epoch ms], ...]`), so the browser can pair them with the
times its DOM changed.
`ui.run` is called with main.py's page options (`ui.theme.RUN_OPTIONS`) and the app's prebuilt
Tailwind CSS.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from _ui_flow import CANVAS_HEIGHT, CANVAS_WIDTH, PATCH_GAP_MS, Status, flow, run_patch
from nicegui import app, ui

from ui.elements.flow_canvas import FlowCanvas
from ui.theme import RUN_OPTIONS, serve_styles

STATUSES: tuple[Status, ...] = ("running", "completed")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


async def send_run(canvas: FlowCanvas, node_ids: list[str]) -> None:
    """Each node running, then completed, as the engine's events would come; then the send times to the page."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent: list[tuple[str, str, float]] = []
    steps = [(node_id, status) for node_id in node_ids for status in STATUSES]
    for step, (node_id, status) in enumerate(steps):
        # A fixed timetable, as the bare page keeps: the rate does not depend on how fast anything else is.
        await asyncio.sleep(max(0.0, start + step * PATCH_GAP_MS / 1000 - loop.time()))
        now_ms = time.time() * 1000
        canvas.patch_nodes({node_id: run_patch(status, now_ms)})
        sent.append((node_id, status, now_ms))
    canvas.client.run_javascript(f"window.__benchSent = {json.dumps(sent)}")


@ui.page("/")
def canvas_page(nodes: int = 100) -> None:
    view_nodes, view_edges = flow(nodes)
    node_ids = [node["id"] for node in view_nodes]
    canvas: FlowCanvas  # made below the button that uses it
    ui.button("bench-patches", on_click=lambda: send_run(canvas, node_ids)).props(
        'data-testid="bench-patches" no-caps flat dense'
    )
    with ui.element("div").style(f"width: {CANVAS_WIDTH}px; height: {CANVAS_HEIGHT}px"):
        canvas = FlowCanvas()
    canvas.set_flow(view_nodes, view_edges, fit=True)


if __name__ in {"__main__", "__mp_main__"}:
    serve_styles()
    ui.run(
        host="127.0.0.1",
        port=int(sys.argv[1]),
        title="Flow canvas bench",
        reload=False,
        show=False,
        uvicorn_logging_level="warning",
        **RUN_OPTIONS,
    )
