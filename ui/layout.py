"""The shared page frame: header, navigation, content column."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import app, ui

from ui.account_bar import account_bar
from ui.session import STATE_KEY

NAV = [
    ("Home", "/"),
    ("Tools", "/tools"),
    ("Providers", "/providers"),
    ("Members", "/members"),
    ("API keys", "/api-keys"),
    ("Tenants", "/tenants"),
]


@contextmanager
def frame(title: str) -> Iterator[None]:
    """Lay out a page: header with the product name and navigation, then the content.

    The navigation is shown to signed-in visitors only (the pages behind it need a session);
    whether someone is signed in comes from the page's own session check (`ui.session`).
    """
    ui.page_title(f"{title} · CrewCanvas")
    signed_in = app.storage.client.get(STATE_KEY) is not None
    with ui.header().classes("items-center justify-between bg-slate-900"):
        ui.link("CrewCanvas", "/").classes("text-white text-lg font-semibold no-underline")
        if signed_in:
            with ui.row().classes("gap-4").props('data-testid="nav"'):
                for label, target in NAV:
                    ui.link(label, target).classes("text-white no-underline")
        account_bar()
    with ui.column().classes("w-full max-w-5xl mx-auto p-4 gap-4"):
        ui.label(title).classes("text-2xl font-semibold").props('data-testid="page-title"')
        yield
