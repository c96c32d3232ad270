"""The shared page frame: header, navigation, content column."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import ui

from ui.account_bar import account_bar

NAV = [("Home", "/"), ("Tenants", "/tenants"), ("Members", "/members"), ("API keys", "/api-keys")]


@contextmanager
def frame(title: str) -> Iterator[None]:
    """Lay out a page: header with the product name and navigation, then the content."""
    ui.page_title(f"{title} · CrewCanvas")
    with ui.header().classes("items-center justify-between bg-slate-900"):
        ui.link("CrewCanvas", "/").classes("text-white text-lg font-semibold no-underline")
        with ui.row().classes("gap-4"):
            for label, target in NAV:
                ui.link(label, target).classes("text-white no-underline")
        account_bar()
    with ui.column().classes("w-full max-w-5xl mx-auto p-4 gap-4"):
        ui.label(title).classes("text-2xl font-semibold")
        yield
