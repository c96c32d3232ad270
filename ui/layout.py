"""The shared page frame: header, left navigation, content column.

Signed-in visitors get the navigation drawer (Flows first, then Runs, the Inbox, the CrewAI records,
Tools, Providers, and the workspace settings), with the page they are on highlighted and
marked `aria-current="page"`. Signed-out pages (login, sign-up, home) get the header only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from nicegui import app, ui

from ui.account_bar import account_bar
from ui.session import STATE_KEY
from ui.theme import appearance_menu, apply_theme


@dataclass(frozen=True)
class NavItem:
    label: str
    target: str
    icon: str


NAV_SECTIONS: list[tuple[str, list[NavItem]]] = [
    (
        "Build",
        [
            NavItem("Flows", "/flows", "account_tree"),
            NavItem("Runs", "/runs", "play_circle"),
            NavItem("Inbox", "/inbox", "inbox"),
            NavItem("Crews", "/crews", "groups"),
            NavItem("Agents", "/agents", "smart_toy"),
            NavItem("Tasks", "/tasks", "task_alt"),
            NavItem("Tools", "/tools", "build"),
            NavItem("Providers", "/providers", "hub"),
        ],
    ),
    (
        "Settings",
        [
            NavItem("Members", "/members", "group"),
            NavItem("API keys", "/api-keys", "key"),
            NavItem("Workspaces", "/workspaces", "workspaces"),
        ],
    ),
]


def current_path() -> str:
    """The path of the page being built ('/' when there is no request, e.g. in a handler)."""
    try:
        request = ui.context.client.request
    except (AttributeError, RuntimeError):
        return "/"
    return request.url.path if request is not None else "/"


def nav_match(path: str) -> str | None:
    """The navigation target `path` belongs to (`/agents/3f..` -> `/agents`), if any."""
    for _, items in NAV_SECTIONS:
        for item in items:
            if path == item.target or path.startswith(item.target + "/"):
                return item.target
    return None


def _navigation(active: str | None) -> None:
    with ui.list().classes("cc-nav w-full").props('dense padding aria-label="Main" data-testid="nav"'):
        for section, items in NAV_SECTIONS:
            ui.item_label(section).props("header").classes("text-xs uppercase tracking-wide")
            for item in items:
                current = item.target == active
                with (
                    ui.item()
                    .props(f'clickable tag=a href={item.target} data-testid="nav-{item.target.strip("/")}"')
                    .classes("rounded-md" + (" cc-current" if current else "")) as entry
                ):
                    if current:
                        entry.props('aria-current="page"')
                    with ui.item_section().props("avatar"):
                        ui.icon(item.icon)
                    with ui.item_section():
                        ui.label(item.label)


@contextmanager
def frame(title: str, *, active: str | None = None, full_screen: bool = False) -> Iterator[ui.label]:
    """Lay out a page and yield its heading (pages may change its text, e.g. to a record's name).

    The navigation is shown to signed-in visitors only (the pages behind it need a session);
    whether someone is signed in comes from the page's own session check (`ui.session`).
    `active` is the navigation entry to highlight; by default the one the URL belongs to.
    A `full_screen` page (the flow editor) gets the whole window below the header: the
    navigation starts hidden (the menu button shows it) and the heading sits in the header.
    """
    ui.page_title(f"{title} · CrewCanvas")
    dark = apply_theme()
    signed_in = app.storage.client.get(STATE_KEY) is not None
    drawer = None
    if signed_in:
        with ui.left_drawer(value=not full_screen, bordered=True).props("width=232 breakpoint=800") as drawer:
            drawer.props('aria-label="Navigation" data-testid="nav-drawer"')
            _navigation(active or nav_match(current_path()))
    with ui.header().classes("items-center justify-between bg-slate-900 text-white"):
        with ui.row().classes("items-center gap-2"):
            if drawer is not None:
                ui.button(icon="menu", on_click=drawer.toggle).props(
                    'flat round color=white aria-label="Show or hide the navigation" data-testid="nav-toggle"'
                )
            ui.link("CrewCanvas", "/").classes("text-white text-lg font-semibold no-underline").props(
                'aria-label="CrewCanvas home"'
            ).style("color: white")
            if full_screen:
                heading = _heading(title).classes("text-lg pl-2")
        with ui.row().classes("items-center gap-2"):
            appearance_menu(dark)
            account_bar()
    if full_screen:  # the page's content fills the window below the header (`cc-full-screen` in ui.theme)
        ui.query("body").classes("cc-full-screen")
        with ui.element("main").classes("w-full h-full p-0 flex flex-col no-wrap"):
            yield heading
        return
    with ui.element("main").classes("w-full max-w-5xl mx-auto p-4 flex flex-col gap-4"):
        yield _heading(title).classes("text-2xl")


def _heading(title: str) -> ui.label:
    return ui.label(title).classes("font-semibold").props('role=heading aria-level=1 data-testid="page-title"')
