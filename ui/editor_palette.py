"""The flow editor's palette: every node type from the registry, by category, with a search.

Items are dragged onto the canvas (the canvas element reads their `data-node-type` when the
drag starts, so the page carries no JavaScript of its own) or added with a click or Enter,
which puts the node in the middle of the view (for keyboards and small screens).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from executor.nodes.base import NodeType
from executor.registry import Registry
from ui.records import tag

#: Categories in the order the palette shows them; others follow alphabetically.
CATEGORY_ORDER = ("Flow", "AI", "Logic", "Tools")


def _order(category: str) -> tuple[int, str]:
    return (CATEGORY_ORDER.index(category) if category in CATEGORY_ORDER else len(CATEGORY_ORDER), category)


def matches(node_type: NodeType[Any], query: str) -> bool:
    """Whether a search for `query` finds the type (by label, name, category or help text)."""
    words = query.lower().split()
    text = " ".join((node_type.meta.label, node_type.type, node_type.meta.category, node_type.meta.help)).lower()
    return all(word in text for word in words)


class Palette:
    """The list of node types to drag from; `on_add(type_name)` adds one in the middle of the view."""

    def __init__(self, registry: Registry, on_add: Callable[[str], Any], *, enabled: bool = True) -> None:
        self.registry = registry
        self.on_add = on_add
        self.enabled = enabled
        with ui.column().classes("w-full gap-2 p-2") as self.element:
            tag(self.element, "palette")
            self.search = tag(
                ui.input(placeholder="Search nodes").props('dense outlined clearable aria-label="Search nodes"'),
                "palette-search",
            ).classes("w-full")
            self.search.on_value_change(lambda _: self.draw())
            self.items = ui.column().classes("w-full gap-1")
        self.draw()

    def draw(self) -> None:
        query = str(self.search.value or "")
        by_category: dict[str, list[NodeType[Any]]] = {}
        for node_type in self.registry:
            if matches(node_type, query):
                by_category.setdefault(node_type.meta.category, []).append(node_type)
        self.items.clear()
        with self.items:
            if not by_category:
                ui.label(f"No node type matches '{query}'.").classes("text-sm text-slate-600 p-2")
                return
            for category in sorted(by_category, key=_order):
                ui.label(category).classes("text-xs uppercase tracking-wide text-slate-600 pt-2 px-1")
                for node_type in sorted(by_category[category], key=lambda t: t.meta.label):
                    self._item(node_type)

    def _item(self, node_type: NodeType[Any]) -> None:
        with (
            tag(ui.row(), f"palette-{node_type.type}")
            .classes("cc-palette-item w-full items-center gap-2 rounded-md px-2 py-1 cursor-grab no-wrap")
            .props(f'data-node-type="{node_type.type}" tabindex=0 role=button')
            .tooltip(node_type.meta.help) as item
        ):
            ui.icon(node_type.meta.icon).classes("text-primary")
            ui.label(node_type.meta.label).classes("text-sm")
        if self.enabled:
            item.props('draggable="true"')
            item.props(f'aria-label="Add a {node_type.meta.label} node (or drag it onto the canvas)"')
            item.on("click", lambda _, name=node_type.type: self.on_add(name))
            item.on("keydown.enter", lambda _, name=node_type.type: self.on_add(name))
        else:
            item.props('aria-disabled="true"')
