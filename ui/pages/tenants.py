"""/tenants: my tenants (open one), create another; for the owner: transfer ownership, delete."""

from __future__ import annotations

import uuid

from nicegui import ui
from starlette.responses import Response

from core.auth.sessions import SessionState
from core.context import Role
from core.errors import CoreError
from ui.layout import frame
from ui.pages.signup import suggest_slug
from ui.session import current_context, current_state, login_url, page_state, session_id
from wiring.services import Services


def register(services: Services) -> None:
    @ui.page("/tenants")
    async def tenants_page() -> Response | None:
        state = await page_state(services)
        if not isinstance(state, SessionState):
            return state
        with frame("Tenants"):
            _tenant_list(services, state)
            _create_tenant(services)
            if state.context is not None and state.context.role is Role.OWNER:
                await _owner_zone(services, state)
        return None


async def _open(services: Services, slug: str) -> None:
    token = session_id()
    if token is None or await current_state(services) is None:
        ui.navigate.to(login_url())
        return
    try:
        await services.identity.sessions.switch(token, slug)
    except CoreError as exc:
        ui.notify(str(exc), type="negative")
        return
    ui.navigate.reload()


def _tenant_list(services: Services, state: SessionState) -> None:
    if not state.tenants:
        ui.label("You belong to no tenant yet: create one below, or ask for an invitation.").props(
            'data-testid="no-tenants"'
        )
        return
    current = state.context.tenant_slug if state.context else None
    with ui.column().classes("w-full gap-2").props('data-testid="tenant-list"'):
        for tenant in state.tenants:
            with ui.card().classes("w-full"), ui.row().classes("w-full items-center justify-between"):
                with ui.column().classes("gap-0"):
                    ui.label(tenant.tenant_name).classes("font-medium")
                    ui.label(f"{tenant.tenant_slug} · {tenant.role}").classes("text-sm text-slate-500")
                if tenant.tenant_slug == current:
                    ui.badge("current").props(f'data-testid="current-{tenant.tenant_slug}"')
                else:
                    ui.button("Open", on_click=lambda slug=tenant.tenant_slug: _open(services, slug)).props(
                        f'flat data-testid="open-{tenant.tenant_slug}"'
                    )


def _create_tenant(services: Services) -> None:
    with ui.card().classes("w-full"):
        ui.label("New tenant").classes("text-lg font-medium")
        with ui.row().classes("w-full items-end gap-3"):
            name = ui.input("Name").props('data-testid="new-tenant-name"')
            slug = ui.input("Id").props('data-testid="new-tenant-slug"')
            name.on_value_change(lambda: slug.set_value(suggest_slug(name.value or "")))

            async def create() -> None:
                state = await current_state(services)
                token = session_id()
                if state is None or token is None:
                    ui.navigate.to(login_url())
                    return
                try:
                    made = await services.identity.members.create_tenant(
                        state.user.id, (slug.value or "").strip(), name.value or ""
                    )
                    await services.identity.sessions.switch(token, made.tenant_slug)
                except CoreError as exc:
                    ui.notify(str(exc), type="negative")
                    return
                ui.navigate.reload()

            ui.button("Create", on_click=create).props('data-testid="new-tenant-submit"')


async def _owner_zone(services: Services, state: SessionState) -> None:
    assert state.context is not None
    ctx = state.context
    others = [m for m in await services.identity.members.list_members(ctx) if m.user_id != ctx.user_id]
    with ui.card().classes("w-full border border-red-300"):
        ui.label(f"Owner of {ctx.tenant_slug}").classes("text-lg font-medium")
        if others:
            with ui.row().classes("items-end gap-3"):
                heir = ui.select({str(m.user_id): m.email for m in others}, label="New owner").classes("min-w-64")

                async def transfer() -> None:
                    fresh = await current_context(services, Role.OWNER)
                    if fresh is None or not heir.value:
                        return
                    try:
                        await services.identity.members.transfer_ownership(fresh, uuid.UUID(str(heir.value)))
                    except CoreError as exc:
                        ui.notify(str(exc), type="negative")
                        return
                    ui.navigate.reload()

                ui.button("Transfer ownership", on_click=transfer).props("outline color=negative")
        confirm = (
            ui.input(f"Type '{ctx.tenant_slug}' to delete it with all its data")
            .props('data-testid="delete-confirm"')
            .classes("w-96")
        )

        async def delete() -> None:
            fresh = await current_context(services, Role.OWNER)
            if fresh is None:
                return
            try:
                await services.identity.members.delete_tenant(fresh, confirm=(confirm.value or "").strip())
            except CoreError as exc:
                ui.notify(str(exc), type="negative")
                return
            ui.navigate.reload()

        ui.button("Delete tenant", on_click=delete).props('color=negative data-testid="delete-tenant"')
