"""The flow canvas: Vue Flow in a NiceGUI element, controlled from Python.

Python sends the nodes and edges (`set_flow`) and cheap updates (`patch_nodes`,
`set_edge_states`); the canvas never adds or removes anything on its own. It reports what
the person did as events, and the page answers by sending the new state. Only a node drag
moves locally (so it stays smooth); the positions it reports are kept here too, so a
re-mounted canvas draws what the person saw.

Events (`canvas.on(name, handler)`; `event.args` is the dict shown):

- `moved` {positions: {id: {x, y}}, layout: bool}: a drag ended, or `auto_layout` placed the nodes
- `connect` {source, source_handle, target, target_handle}: a connection was dragged
- `drop` {type, position: {x, y}}: a palette item (`draggable="true"`, `data-node-type="<type>"`)
  was dropped; the position is in flow coordinates
- `selection` {nodes: [ids], edges: [ids]}; `node_click` {id}
- `delete` {nodes, edges}; `copy` {nodes}; `paste` {position}; `undo`; `redo`: keys with focus in the canvas
- `save`: Ctrl+S / Cmd+S anywhere on the page
- `viewport` {x, y, zoom}: after the view was panned or zoomed

Read-only canvases send only `selection`, `node_click` and `viewport`.

A view node: `{"id", "position": {"x", "y"}, "data": {"type", "label", "icon", "category",
"inputs": [{"name", "label"}], "outputs": [...], "status", "started_at", "ended_at" (epoch ms),
"problems": [str], "pinned", "highlight", "detail"}}`; a view edge: `{"id", "source",
"source_handle", "target", "target_handle", "highlight"}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from nicegui import events, ui

ViewNode = dict[str, Any]
ViewEdge = dict[str, Any]
EdgeState = Literal["", "flowing", "done"]

#: What the canvas emits, for pages that want to list them.
EVENTS = (
    "moved",
    "connect",
    "drop",
    "selection",
    "node_click",
    "delete",
    "copy",
    "paste",
    "undo",
    "redo",
    "save",
    "viewport",
)

BUNDLE = Path(__file__).with_name("dist") / "vue_flow.js"


def _copy_node(node: Mapping[str, Any]) -> ViewNode:
    position = node.get("position") or {}
    return {
        **node,
        "id": str(node["id"]),
        "position": {"x": position.get("x", 0), "y": position.get("y", 0)},
        "data": dict(node.get("data") or {}),
    }


class FlowCanvas(ui.element, component="flow_canvas.js", esm={"crewcanvas-flow": "dist"}):
    """A flow drawn with Vue Flow; it fills its parent, which needs a size of its own."""

    def __init__(self, *, read_only: bool = False) -> None:
        if not BUNDLE.is_file():
            raise FileNotFoundError(f"{BUNDLE} is missing: run `make jsbuild` (it bundles Vue Flow with esbuild)")
        super().__init__()
        self._rev = 0
        self._fit = False
        self._nodes: dict[str, ViewNode] = {}
        self._edges: dict[str, ViewEdge] = {}
        self._props["readOnly"] = read_only
        self._props["flow"] = self._flow()
        self.style("width: 100%; height: 100%")
        self.on("moved", self._remember_positions)

    def _flow(self) -> dict[str, Any]:
        # Tuples, not lists: NiceGUI would wrap every node of a list in an observable dict (46 ms
        # for 500 nodes), and changes made in place (patches, dragged positions) must not resend it.
        return {
            "rev": self._rev,
            "fit": self._fit,
            "nodes": tuple(self._nodes.values()),
            "edges": tuple(self._edges.values()),
        }

    @property
    def read_only(self) -> bool:
        return bool(self._props["readOnly"])

    def set_flow(
        self, nodes: Iterable[Mapping[str, Any]], edges: Iterable[Mapping[str, Any]], *, fit: bool = False
    ) -> None:
        """Replace every node and edge (copied: later changes to the arguments are not seen); `fit` frames them."""
        self._nodes = {str(node["id"]): _copy_node(node) for node in nodes}
        self._edges = {str(edge["id"]): {**edge, "id": str(edge["id"])} for edge in edges}
        self._rev += 1
        self._fit = fit
        self._props["flow"] = self._flow()

    def patch_nodes(self, patches: Mapping[str, Mapping[str, Any]]) -> None:
        """Merge fields into some nodes' `data` (node id -> fields); only those nodes are redrawn."""
        known = {node_id: dict(patch) for node_id, patch in patches.items() if node_id in self._nodes}
        for node_id, patch in known.items():
            self._nodes[node_id]["data"].update(patch)
        if known:
            self.run_method("patchNodes", known)

    def set_edge_states(self, states: Mapping[str, EdgeState]) -> None:
        """Mark edges (edge id -> "", "flowing" or "done"); flowing edges are animated."""
        known = {edge_id: state for edge_id, state in states.items() if edge_id in self._edges}
        for edge_id, state in known.items():
            self._edges[edge_id]["state"] = state
        if known:
            self.run_method("setEdgeStates", known)

    def set_read_only(self, read_only: bool) -> None:
        """Allow or refuse dragging, connecting, dropping and the editing keys."""
        self._props["readOnly"] = read_only

    def fit_view(self) -> None:
        """Frame every node."""
        self.run_method("fitView")

    def auto_layout(self) -> None:
        """Place the nodes left to right (dagre, from their drawn sizes); emits `moved` with `layout: True`."""
        self.run_method("autoLayout")

    def select(self, node_ids: Iterable[str]) -> None:
        """Select exactly these nodes (no `selection` event comes back for it)."""
        self.run_method("select", [str(node_id) for node_id in node_ids])

    def _remember_positions(self, event: events.GenericEventArguments) -> None:
        positions = event.args.get("positions") if isinstance(event.args, dict) else None
        if not isinstance(positions, dict):
            return
        for node_id, position in positions.items():
            node = self._nodes.get(str(node_id))
            if node is not None and isinstance(position, dict):
                node["position"] = {"x": position.get("x", 0), "y": position.get("y", 0)}
