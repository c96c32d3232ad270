"""A tiny NiceGUI app around the flow canvas, for tests/e2e/test_flow_canvas.py (no database, no services).

    python tests/e2e/canvas_app.py <port> <events file>

The page shows a palette item, a text field outside the canvas, buttons that call the
canvas's Python methods, and a canvas with three nodes. Every event the canvas sends is
appended to the events file as one JSON line: `{"event": name, "args": {...}}`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from nicegui import app, events, ui

from ui.elements.flow_canvas import EVENTS, FlowCanvas
from ui.theme import RUN_OPTIONS, serve_styles

NODES: list[dict[str, Any]] = [
    {
        "id": "a",
        "position": {"x": 0, "y": 0},
        "data": {
            "type": "input",
            "label": "Question",
            "icon": "input",
            "category": "Flow",
            "inputs": [],
            "outputs": [{"name": "out", "label": "Question"}],
            "status": "completed",
            "started_at": 1_700_000_000_000,
            "ended_at": 1_700_000_001_500,
            "problems": [],
            "pinned": True,
            "highlight": "",
            "detail": "the flow's input",
        },
    },
    {
        "id": "b",
        "position": {"x": 320, "y": 0},
        "data": {
            "type": "llm",
            "label": "Summarise",
            "icon": "smart_toy",
            "category": "AI",
            "inputs": [{"name": "text", "label": "Text"}],
            "outputs": [{"name": "out", "label": "Summary"}, {"name": "error", "label": "Error"}],
            "status": "",
            "started_at": None,
            "ended_at": None,
            "problems": [],
            "pinned": False,
            "highlight": "changed",
            "detail": "local model",
        },
    },
    {
        "id": "c",
        "position": {"x": 640, "y": 60},
        "data": {
            "type": "output",
            "label": "Answer",
            "icon": "output",
            "category": "Flow",
            "inputs": [{"name": "in", "label": "Answer"}],
            "outputs": [],
            "status": "",
            "started_at": None,
            "ended_at": None,
            "problems": ["value: is not connected"],
            "pinned": False,
            "highlight": "added",
            "detail": "",
        },
    },
]
EDGES: list[dict[str, Any]] = [
    {"id": "a-b", "source": "a", "source_handle": "out", "target": "b", "target_handle": "text", "highlight": ""},
]


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


def record(log: Path, name: str, event: events.GenericEventArguments) -> None:
    with log.open("a") as file:
        file.write(json.dumps({"event": name, "args": event.args}) + "\n")


def big_flow(count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`count` nodes on a grid (the first is "b") and 1.6 edges per node, for trying the canvas at size."""
    template = NODES[1]
    ids = ["b", *(f"n{i}" for i in range(1, count))]
    nodes = [
        {
            **template,
            "id": node_id,
            "position": {"x": (i % 25) * 300, "y": (i // 25) * 160},
            "data": dict(template["data"]),
        }
        for i, node_id in enumerate(ids)
    ]
    edges = [
        {
            "id": f"e{i}",
            "source": ids[i % count],
            "source_handle": "out",
            "target": ids[(i * 7 + 1) % count],
            "target_handle": "text",
            "highlight": "",
        }
        for i in range(count * 8 // 5)
    ]
    return nodes, edges


@ui.page("/")
def canvas_page(nodes: int = 0) -> None:
    """The test page; `?nodes=500` draws a big generated flow instead of the three nodes."""
    log = Path(sys.argv[2])
    canvas: FlowCanvas  # made below the buttons that call it
    dark = ui.dark_mode(False)
    with ui.row().classes("items-center gap-2"):
        ui.label("LLM").props('draggable="true" data-node-type="llm" data-testid="palette-llm"').classes(
            "px-3 py-1 border rounded cursor-grab"
        )
        ui.input("Notes").props('data-testid="notes"')
        actions = {
            "run-b": lambda: canvas.patch_nodes({"b": {"status": "running", "started_at": time.time() * 1000}}),
            "flow-a-b": lambda: canvas.set_edge_states({"a-b": "flowing"}),
            "read-only": lambda: canvas.set_read_only(True),
            "editable": lambda: canvas.set_read_only(False),
            "layout": lambda: canvas.auto_layout(),
            "fit": lambda: canvas.fit_view(),
            "select-c": lambda: canvas.select(["c"]),
            "dark": lambda: dark.set_value(True),
        }
        for testid, action in actions.items():
            ui.button(testid, on_click=action).props(f'data-testid="{testid}" no-caps flat dense')
    with ui.element("div").style("width: 1000px; height: 520px; border: 1px solid #94a3b8"):
        canvas = FlowCanvas()
    for name in EVENTS:
        canvas.on(name, lambda event, name=name: record(log, name, event))
    canvas.set_flow(*(big_flow(nodes) if nodes else (NODES, EDGES)), fit=True)


if __name__ in {"__main__", "__mp_main__"}:
    serve_styles()
    ui.run(host="127.0.0.1", port=int(sys.argv[1]), reload=False, show=False, title="Flow canvas", **RUN_OPTIONS)
