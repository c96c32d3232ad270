"""The flow both pages of bench/ui.py draw, and the run-state patches both apply.

`flow(count)` gives FlowCanvas view nodes and edges (see ui/elements/flow_canvas.py): `count`
LLM-like nodes on a 25-column grid, ids `n0`...; 1.6 edges per node between pseudo-random pairs,
so 200 nodes have 320 edges and 500 have 800. The bare page turns them into Vue Flow's default
nodes; the NiceGUI app sends them as they are.

A run sends each node `running`, then `completed`, one patch every `PATCH_GAP_MS` (a fast flow:
100 events a second), the way the editor forwards the engine's events.
"""

from __future__ import annotations

from typing import Any, Literal

CANVAS_WIDTH, CANVAS_HEIGHT = 1000, 520
PATCH_GAP_MS = 10
COLUMNS = 25
Status = Literal["running", "completed"]


def flow(count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`count` nodes and `count * 8 // 5` edges, the same on every call."""
    ids = [f"n{i}" for i in range(count)]
    nodes = [
        {
            "id": node_id,
            "position": {"x": (i % COLUMNS) * 300, "y": (i // COLUMNS) * 160},
            "data": {
                "type": "llm",
                "label": f"Summarise {i}",
                "icon": "smart_toy",
                "category": "AI",
                "inputs": [{"name": "text", "label": "Text"}],
                "outputs": [{"name": "out", "label": "Summary"}, {"name": "error", "label": "Error"}],
                "status": "",
                "started_at": None,
                "ended_at": None,
                "problems": [],
                "pinned": False,
                "highlight": "",
                "detail": "local model",
            },
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


def run_patch(status: Status, now_ms: float) -> dict[str, Any]:
    """What the editor sends a node when the engine reports it started or finished."""
    if status == "running":
        return {"status": "running", "started_at": now_ms, "ended_at": None}
    return {"status": "completed", "ended_at": now_ms}


def drag_target(count: int) -> str:
    """A node in the middle of the grid, to drag."""
    rows = max(1, count // COLUMNS)
    return f"n{min(count - 1, (rows // 2) * COLUMNS + COLUMNS // 2)}"
