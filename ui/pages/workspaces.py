"""/workspaces: my workspaces (open one), create another; for the owner: transfer ownership, delete.

This page is open to every signed-in user, also to one who belongs to no workspace yet
(where every workspace page sends them), so it resolves the session itself with
`page_state` instead of `Pages.tenant_page`, whose "no workspace" redirect points here.
`/tenants`, the page's old address, redirects here.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from nicegui import app, ui
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from core.auth.sessions import SessionState
from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput, NotFound
from core.tenants import checked_slug
from core.text import Name
from ui.dialogs import confirm, confirm_typed
from ui.forms import FieldOptions, ModelForm
from ui.layout import frame
from ui.session import current_context, current_state, login_url, page_state, session_id
from ui.tenant_page import Pages, notify_errors, page
from wiring.services import Services

PATH = "/workspaces"
OLD_PATH = "/tenants"
ID_HELP = "Part of its storage's name: 3-40 lowercase letters, digits and '_', starting with a letter."


def suggest_slug(name: str) -> str:
    """A workspace id derived from a display name ("Acme Labs!" -> "acme_labs")."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40]
    if slug and not slug[0].isalpha():
        slug = ("w_" + slug)[:40]
    return slug


def checked_workspace_id(value: str) -> str:
    """`value` if it may name a workspace; else a ValueError in the UI's words (core decides the rule)."""
    try:
        return checked_slug(value.strip())
    except InvalidInput as exc:
        raise ValueError(str(exc).replace("tenant slug", "workspace id")) from None


async def taken_problem(services: Services, slug: str, field: str) -> None:
    """Refuse a workspace id that exists already, under the form's `field` (before anything is written)."""
    try:
        await services.tenants.get(slug)
    except NotFound:
        return
    raise InvalidInput(f"the workspace id {slug!r} is taken; choose another one", field=field)


class NewWorkspace(BaseModel):
    """The create-workspace form."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(min_length=1, description="How the workspace is shown, e.g. in the header's switcher.")
    slug: str = Field(description=ID_HELP)

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        return checked_workspace_id(value)


def follow_name(form: ModelForm[Any], name_field: str, slug_field: str) -> None:
    """Keep the id suggested from the name until someone edits the id themselves (emptying it included)."""
    state = {"suggested": "", "following": True}

    def changed(values: dict[str, Any]) -> None:
        slug = values.get(slug_field) or ""
        if slug != state["suggested"]:
            state["following"] = False  # typed by hand: from now on it is theirs
        if not state["following"]:
            return
        suggestion = suggest_slug(values.get(name_field) or "")
        if suggestion != slug:
            state["suggested"] = suggestion
            form.set_values({slug_field: suggestion})

    form.on_change(changed)


def register(pages: Pages) -> None:
    services = pages.services

    @page(PATH)
    async def workspaces_page() -> Response | None:
        state = await page_state(services)
        if not isinstance(state, SessionState):
            return state
        with frame("Workspaces"):
            _workspace_list(services, state)
            _create_workspace(services)
            if state.context is not None and state.context.role is Role.OWNER:
                await _owner_zone(services, state)
        return None

    async def old_address(request: Request) -> Response:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(PATH + query, status_code=307)

    app.add_route(OLD_PATH, old_address, methods=["GET"], include_in_schema=False)


@notify_errors
async def _open(services: Services, slug: str) -> None:
    token = session_id()
    if token is None or await current_state(services) is None:
        ui.navigate.to(login_url())
        return
    await services.identity.sessions.switch(token, slug)
    ui.navigate.reload()


def _workspace_list(services: Services, state: SessionState) -> None:
    with ui.card().classes("w-full"):
        ui.label("Your workspaces").classes("text-lg font-medium")
        if not state.tenants:
            ui.label(
                "You belong to no workspace yet: create one below, or open an invitation link you were sent."
            ).props('data-testid="no-workspaces"')
            return
        current = state.context.tenant_slug if state.context else None
        with ui.column().classes("w-full gap-1").props('data-testid="workspace-list"'):
            for each in state.tenants:
                with ui.row().classes("w-full items-center justify-between").props('data-testid="workspace-row"'):
                    with ui.column().classes("gap-0"):
                        ui.label(each.tenant_name).classes("font-medium")
                        ui.label(f"{each.tenant_slug} · you are {each.role}").classes("text-sm text-slate-600")
                    if each.tenant_slug == current:
                        ui.badge("current").props(f'data-testid="current-{each.tenant_slug}"')
                    else:
                        ui.button("Open", on_click=lambda slug=each.tenant_slug: _open(services, slug)).props(
                            f'flat data-testid="open-{each.tenant_slug}"'
                        )


def _create_workspace(services: Services) -> None:
    async def create(new: NewWorkspace) -> None:
        state = await current_state(services)
        token = session_id()
        if state is None or token is None:
            ui.navigate.to(login_url())
            return
        await taken_problem(services, new.slug, "slug")
        try:
            made = await services.identity.members.create_tenant(state.user.id, new.slug, new.name)
        except Conflict as exc:  # taken a moment ago: shown under the id, like the check above
            raise InvalidInput(f"the workspace id {new.slug!r} is taken; choose another one", field="slug") from exc
        await services.identity.sessions.switch(token, made.tenant_slug)
        ui.navigate.reload()

    with ui.card().classes("w-full"):
        ui.label("New workspace").classes("text-lg font-medium")
        ui.label("A workspace has its own flows, crews, tools, providers and members; you become its owner.").classes(
            "text-sm text-slate-600"
        )
        form = ModelForm(
            NewWorkspace,
            on_submit=create,
            submit_label="Create workspace",
            testid="new-workspace",
            fields={"name": FieldOptions(label="Name"), "slug": FieldOptions(label="Workspace id")},
        )
        follow_name(form, "name", "slug")


async def _owner_zone(services: Services, state: SessionState) -> None:
    assert state.context is not None
    ctx = state.context
    others = [m for m in await services.identity.members.list_members(ctx) if m.user_id != ctx.user_id]

    async def still_owner() -> TenantContext | None:
        """The fresh context, if it is still the owner's of the workspace this page was built for."""
        fresh = await current_context(services, Role.OWNER)
        if fresh is not None and fresh.tenant_id != ctx.tenant_id:
            ui.notify("you switched to another workspace meanwhile; reload this page", type="warning")
            return None
        return fresh

    @notify_errors
    async def transfer(heir_id: str) -> None:
        heir = next((m for m in others if str(m.user_id) == heir_id), None)
        if heir is None:
            ui.notify("choose the member who becomes the owner", type="warning")
            return
        if not await confirm(
            f"Make {heir.email} the owner of {ctx.tenant_slug}?",
            detail="You become an admin. Only the owner can delete the workspace or transfer it again.",
            action="Transfer ownership",
            testid="confirm-transfer",
        ):
            return
        fresh = await still_owner()
        if fresh is None:
            return
        await services.identity.members.transfer_ownership(fresh, uuid.UUID(heir_id))
        ui.navigate.reload()

    @notify_errors
    async def delete() -> None:
        if not await confirm_typed(
            f"Delete {ctx.tenant_slug} with all its data?",
            expected=ctx.tenant_slug,
            detail="Its flows, runs, crews, tools, providers and memberships are deleted; this cannot be undone.",
            action="Delete workspace",
            testid="confirm-delete-workspace",
        ):
            return
        fresh = await still_owner()
        if fresh is None:
            return
        # The id that was typed, not the fresh one: core refuses if they differ.
        await services.identity.members.delete_tenant(fresh, confirm=ctx.tenant_slug)
        ui.navigate.reload()

    with ui.card().classes("w-full border border-red-300").props('data-testid="owner-zone"'):
        ui.label(f"Owner of {ctx.tenant_slug}").classes("text-lg font-medium")
        if others:
            with ui.row().classes("items-end gap-3"):
                heir = (
                    ui.select({str(m.user_id): m.email for m in others}, label="New owner")
                    .classes("min-w-64")
                    .props('data-testid="transfer-to"')
                )
                ui.button("Transfer ownership", on_click=lambda: transfer(str(heir.value or ""))).props(
                    'outline color=negative data-testid="transfer-ownership"'
                )
        else:
            ui.label("To hand this workspace to someone else, invite them on the Members page first.").classes(
                "text-sm text-slate-600"
            )
        ui.button("Delete workspace", on_click=delete).props('color=negative data-testid="delete-workspace"').mark(
            "delete-workspace"
        )
