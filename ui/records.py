"""What the agent, task and crew pages share: pickers of the workspace's records and a list with search.

The pickers return `{id: label}` with ids as text, which is what `FieldOptions(choices=...)`
takes (a form turns the text back into a UUID when it validates):

    providers = await provider_choices(services, ctx)     # {"3f..": "Fast (OpenAI)"}
    models = await provider_models(services, ctx)         # {"3f..": ["gpt-4o-mini", ...]}
    tools = await tool_choices(services, ctx)
    agents = await agent_choices(services, ctx)
    tasks = await task_choices(services, ctx, exclude=task_id)

`SearchList` is a search box over a list that follows what is typed (and Enter), showing the
newest answer only, so a slow early search cannot overwrite a later one.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, Protocol, TypeVar

from nicegui import ui

from core.context import Role, TenantContext
from core.providers import KIND_LABELS
from ui.tenant_page import PageView
from wiring.services import Services

E = TypeVar("E", bound=ui.element)
T = TypeVar("T")


class Named(Protocol):
    @property
    def id(self) -> uuid.UUID: ...

    @property
    def name(self) -> str: ...


R = TypeVar("R", bound=Named)


def tag(element: E, testid: str) -> E:
    """Give `element` a test id: a `data-testid` for browsers and a marker for NiceGUI's `user.find`."""
    element.props["data-testid"] = testid
    element.mark(testid)
    return element


# -- pickers -------------------------------------------------------------------------------


async def provider_choices(services: Services, ctx: TenantContext) -> dict[str, str]:
    """The workspace's providers as `{id: "name (kind)"}`, disabled ones marked."""
    views = await services.llm_stack.providers.list(ctx)
    return {
        str(view.id): f"{view.name} ({KIND_LABELS[view.kind]})" + ("" if view.enabled else " - disabled")
        for view in views
    }


async def provider_models(services: Services, ctx: TenantContext) -> dict[str, list[str]]:
    """Each provider's models by provider id (the first is the provider's default)."""
    return {str(view.id): list(view.models) for view in await services.llm_stack.providers.list(ctx)}


def model_choices(models: dict[str, list[str]], provider_id: str | None) -> dict[str, str]:
    """The models to offer for `provider_id`; with no provider chosen, every provider's models."""
    if provider_id:
        names: Iterable[str] = models.get(provider_id, [])
    else:
        names = (name for provider in models.values() for name in provider)
    return {name: name for name in dict.fromkeys(names)}


async def tool_choices(services: Services, ctx: TenantContext) -> dict[str, str]:
    """The workspace's saved tools as `{id: name}`."""
    return {str(view.id): view.name for view in await services.tools.list(ctx)}


async def agent_choices(services: Services, ctx: TenantContext) -> dict[str, str]:
    """The workspace's agents as `{id: "name - role"}` (the role shortened)."""
    return {str(view.id): f"{view.name} - {shorten(view.role, 60)}" for view in await services.crews.list_agents(ctx)}


async def task_choices(services: Services, ctx: TenantContext, *, exclude: uuid.UUID | None = None) -> dict[str, str]:
    """The workspace's tasks as `{id: name}`, without `exclude` (a task cannot be its own context)."""
    return {str(view.id): view.name for view in await services.crews.list_tasks(ctx) if view.id != exclude}


async def save_record(
    page: PageView,
    current: R | None,
    *,
    kind: str,
    path: str,
    create: Callable[[TenantContext], Awaitable[R]],
    update: Callable[[TenantContext, uuid.UUID], Awaitable[R]],
    created: str = "Created",
) -> R | None:
    """An editor's Save: create the record and open its page, or update it and retitle the page.

    Returns the updated record (None after creating, or when the session is gone)."""
    ctx = await page.fresh(Role.EDITOR)  # as of this click
    if ctx is None:
        return None
    if current is None:
        made = await create(ctx)
        ui.notify(f"{created} {kind} '{made.name}'", type="positive")
        ui.navigate.to(f"{path}/{made.id}")
        return None
    saved = await update(ctx, current.id)
    ui.notify(f"Saved {kind} '{saved.name}'", type="positive")
    page.heading.set_text(saved.name)
    return saved


def shorten(text: str, limit: int) -> str:
    """`text` on one line, cut at `limit` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


# -- placeholders --------------------------------------------------------------------------


def placeholder_text(names: list[str], *, record: str, fields: str) -> str:
    """The sentence under an editor saying which crew inputs a record needs."""
    if names:
        return f"Inputs this {record} needs: {', '.join(names)}"
    return f"No inputs yet: write {{topic}} in the {fields} to ask for a value when the crew starts."


def placeholder_chips(names: list[str], testid: str) -> None:
    """A record's placeholders as small chips (or nothing when it has none)."""
    if not names:
        return
    with tag(ui.row().classes("gap-1 items-center"), testid):
        ui.label("Inputs:").classes("text-sm text-slate-600")
        for name in names:
            ui.badge(f"{{{name}}}", color="indigo-1", text_color="indigo-10").classes("font-mono")


# -- list with search ----------------------------------------------------------------------


class SearchList(Generic[T]):
    """A search box and the records matching it; re-filtered on every keystroke and on Enter.

    `load(ctx, search)` fetches (search is None when the box is empty), `row(record)` shows
    one, `empty()` what to show when there are none at all.
    """

    def __init__(
        self,
        page: PageView,
        *,
        testid: str,
        label: str,
        load: Callable[[TenantContext, str | None], Awaitable[list[T]]],
        row: Callable[[T], None],
        empty: Callable[[], None],
    ) -> None:
        self._load = load
        self._row = row
        self._empty = empty
        self._testid = testid
        self._latest = 0
        self.box = tag(
            ui.input(label=label).props(f'clearable type=search aria-label="{label}"').classes("w-full max-w-md"),
            f"{testid}-search",
        )
        with self.box.add_slot("prepend"):
            ui.icon("search")
        self.results = tag(ui.column().classes("w-full gap-2"), f"{testid}-list")
        refresh = page.action(self.fill)
        self.box.on_value_change(refresh)
        self.box.on("keydown.enter", refresh)

    @property
    def search(self) -> str | None:
        return (self.box.value or "").strip() or None

    async def fill(self, ctx: TenantContext) -> None:
        """Fetch the records for what the box holds now and show them (unless a newer search started)."""
        self._latest += 1
        ticket, search = self._latest, self.search
        records = await self._load(ctx, search)
        if ticket != self._latest:
            return
        self.results.clear()
        with self.results:
            if records:
                for record in records:
                    self._row(record)
            elif search is None:
                self._empty()
            else:
                tag(ui.label(f"Nothing matches '{search}'. Clear the search to see all."), f"{self._testid}-no-match")
