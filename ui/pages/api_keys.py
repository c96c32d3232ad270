"""/api-keys: your personal API keys in the current tenant: create (shown once), list, revoke.

A key acts for you in this tenant with the role chosen when it was made (at most yours,
and never more than your role of the moment). The secret is shown once, right after it
is created; afterwards only its public prefix is shown as a hint.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nicegui import ui
from starlette.responses import Response

from core.auth.api_keys import ApiKeyInfo
from core.context import Role, TenantContext
from core.errors import CoreError
from ui.dialogs import confirm
from ui.layout import frame
from ui.session import current_context, page_context
from wiring.services import Services

EXPIRY_CHOICES: dict[int, str] = {0: "never", 30: "in 30 days", 90: "in 90 days", 365: "in a year"}


def key_roles(ctx: TenantContext) -> dict[str, str]:
    """The roles a new key may have: the caller's own or lower, weakest first."""
    return {r.value: r.value for r in Role if r.rank <= ctx.role.rank}


def masked(info: ApiKeyInfo) -> str:
    """What the list shows of a key: its public prefix, the secret part elided."""
    return f"{info.prefix}_••••••••"


def when(moment: datetime | None, default: str = "never") -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else default


def register(services: Services) -> None:
    @ui.page("/api-keys")
    async def api_keys_page() -> Response | None:
        ctx = await page_context(services, Role.VIEWER)
        if not isinstance(ctx, TenantContext):
            return ctx
        with frame("API keys"):
            page = ApiKeysPage(services, ctx)
            page.create_form()
            await page.key_list()
        return None


class ApiKeysPage:
    """The API keys page of one visitor in one tenant."""

    def __init__(self, services: Services, ctx: TenantContext) -> None:
        self.services = services
        self.ctx = ctx  # replaced by the fresh context each handler resolves
        self.shown: ui.column | None = None

    def create_form(self) -> None:
        with ui.card().classes("w-full"):
            ui.label("New API key").classes("text-lg font-medium")
            ui.label(
                f"Programs send it as 'Authorization: Bearer <key>'; it acts for you in {self.ctx.tenant_slug} "
                "with the role you choose here."
            ).classes("text-sm text-slate-600")
            with ui.row().classes("w-full items-end gap-3"):
                name = (
                    ui.input("Name", placeholder="where you will use it")
                    .props('data-testid="api-key-name"')
                    .classes("w-64")
                )
                role = (
                    ui.select(key_roles(self.ctx), value=self.ctx.role.value, label="Role")
                    .props('data-testid="api-key-role"')
                    .classes("min-w-32")
                )
                expiry = (
                    ui.select(EXPIRY_CHOICES, value=0, label="Expires")
                    .props('data-testid="api-key-expiry"')
                    .classes("min-w-36")
                )
                ui.button("Create key", on_click=lambda: self._create(name, role, expiry)).props(
                    'data-testid="api-key-create"'
                )
            self.shown = ui.column().classes("w-full")

    async def _create(self, name: ui.input, role: ui.select, expiry: ui.select) -> None:
        ctx = await current_context(self.services, Role.VIEWER)
        if ctx is None:
            return
        self.ctx = ctx
        days = int(expiry.value or 0)
        try:
            created = await self.services.identity.api_keys.create(
                ctx, name.value or "", str(role.value), expires_in_days=days or None
            )
        except CoreError as exc:
            ui.notify(str(exc), type="negative")
            return
        slot = self.shown
        if slot is None:
            return
        slot.clear()
        secret = created.key
        with slot, ui.card().classes("w-full bg-green-50").props('data-testid="api-key-created"'):
            ui.label(
                f"Key '{created.info.name}' ({created.info.role}). Copy it now: it is not shown again, "
                "and it cannot be recovered. If you lose it, revoke it and create another."
            )
            with ui.row().classes("w-full items-center gap-2"):
                ui.input(value=secret).props('readonly dense outlined data-testid="api-key-secret"').classes("grow")
                ui.button(icon="content_copy", on_click=lambda: ui.clipboard.write(secret)).props(
                    'flat data-testid="api-key-copy"'
                ).tooltip("Copy the key")
                ui.button("Done", on_click=slot.clear).props('flat data-testid="api-key-done"')
        name.value = ""
        self.key_list.refresh()

    @ui.refreshable_method
    async def key_list(self) -> None:
        try:
            keys = await self.services.identity.api_keys.list_keys(self.ctx)
        except CoreError as exc:
            ui.label(str(exc)).classes("text-red-700")
            return
        with ui.card().classes("w-full"):
            ui.label(f"Your keys in {self.ctx.tenant_slug} ({len(keys)})").classes("text-lg font-medium")
            if not keys:
                ui.label("You have no API keys here yet.").props('data-testid="api-key-none"')
                return
            with ui.column().classes("w-full gap-1").props('data-testid="api-key-list"'):
                for key in keys:
                    self._row(key)

    def _row(self, key: ApiKeyInfo) -> None:
        expired = key.expires_at is not None and key.expires_at <= datetime.now(UTC)
        status = "revoked" if key.revoked else "expired" if expired else "active"
        with ui.row().classes("w-full items-center justify-between").props('data-testid="api-key-row"'):
            with ui.column().classes("gap-0"):
                with ui.row().classes("items-baseline gap-2"):
                    ui.label(key.name).classes("font-medium")
                    ui.label(masked(key)).classes("font-mono text-sm").props('data-testid="api-key-hint"')
                ui.label(
                    f"{key.role} · created {when(key.created_at)} · last used {when(key.last_used_at)} · "
                    f"expires {when(key.expires_at)}"
                ).classes("text-sm text-slate-500")
            with ui.row().classes("items-center gap-2"):
                ui.badge(status, color="positive" if status == "active" else "grey").props(
                    'data-testid="api-key-status"'
                )
                if status == "active":
                    ui.button("Revoke", on_click=lambda k=key: self._confirm_revoke(k)).props(
                        'flat color=negative data-testid="api-key-revoke"'
                    )

    async def _confirm_revoke(self, key: ApiKeyInfo) -> None:
        if await confirm(
            f"Revoke '{key.name}'?",
            detail="Programs using it are refused from now on; this cannot be undone.",
            action="Revoke",
            testid="confirm-revoke",
        ):
            await self._revoke(key)

    async def _revoke(self, key: ApiKeyInfo) -> None:
        ctx = await current_context(self.services, Role.VIEWER)
        if ctx is None:
            return
        self.ctx = ctx
        try:
            await self.services.identity.api_keys.revoke(ctx, key.id)
        except CoreError as exc:
            ui.notify(str(exc), type="negative")
            return
        ui.notify(f"'{key.name}' is revoked", type="positive")
        self.key_list.refresh()
