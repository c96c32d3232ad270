"""/api-keys: your personal API keys in the current workspace: create (shown once), list, revoke.

A key acts for you in this workspace with the role chosen when it was made (at most yours,
and never more than your role of the moment). The secret is shown once, right after it
is created; afterwards only its public prefix is shown as a hint. Every member, viewers
included, manages their own keys.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nicegui import ui
from pydantic import BaseModel, ConfigDict, Field

from core.auth.api_keys import ApiKeyInfo, CreatedApiKey
from core.context import Role, TenantContext
from core.text import Name
from ui.dialogs import confirm
from ui.forms import FieldOptions, ModelForm
from ui.session import current_context
from ui.tenant_page import Pages, PageView

EXPIRY_CHOICES: dict[int, str] = {0: "never", 30: "in 30 days", 90: "in 90 days", 365: "in a year"}


def key_roles(ctx: TenantContext) -> dict[str, str]:
    """The roles a new key may have: the caller's own or lower, weakest first."""
    return {r.value: r.value for r in Role if r.rank <= ctx.role.rank}


def masked(info: ApiKeyInfo) -> str:
    """What the list shows of a key: its public prefix, the secret part elided."""
    return f"{info.prefix}_••••••••"


def when(moment: datetime | None, default: str = "never") -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else default


class NewApiKey(BaseModel):
    """The new-key form."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(min_length=1, description="Name it after where you will use it, e.g. 'ci pipeline'.")
    role: Role = Field(description="What programs using the key may do: at most your own role.")
    expires: int = Field(default=0, description="When the key stops working by itself.")


def register(pages: Pages) -> None:
    @pages.tenant_page("/api-keys", Role.VIEWER, title="API keys")
    async def api_keys_page(page: PageView) -> None:
        view = ApiKeysPage(page)
        view.create_form()
        await view.key_list()


class ApiKeysPage:
    """The API keys page of one visitor in one workspace."""

    def __init__(self, page: PageView) -> None:
        self.page = page
        self.services = page.services
        self.ctx = page.ctx  # replaced by the fresh context each handler resolves
        self.shown: ui.column | None = None
        self.form: ModelForm[NewApiKey] | None = None

    def create_form(self) -> None:
        with ui.card().classes("w-full"):
            ui.label("New API key").classes("text-lg font-medium")
            ui.label(
                f"Programs send it as 'Authorization: Bearer <key>'; it acts for you in {self.ctx.tenant_slug} "
                "with the role you choose here."
            ).classes("text-sm text-slate-600")
            self.form = ModelForm(
                NewApiKey,
                value={"role": self.ctx.role.value, "expires": 0},
                on_submit=self._create,
                submit_label="Create key",
                testid="api-key",
                fields={
                    "name": FieldOptions(placeholder="where you will use it"),
                    "role": FieldOptions(choices=key_roles(self.ctx)),
                    "expires": FieldOptions(choices=EXPIRY_CHOICES),
                },
            )
            self.shown = ui.column().classes("w-full")

    async def _create(self, new: NewApiKey) -> None:
        # Not `page.action`: what core refuses belongs in the form (under the name, or in its box).
        ctx = await current_context(self.services, Role.VIEWER)
        if ctx is None:
            return
        self.ctx = ctx
        created = await self.services.identity.api_keys.create(
            ctx, new.name, new.role, expires_in_days=new.expires or None
        )
        self._show_secret(created)
        if self.form is not None:
            self.form.set_values({"name": ""})
        self.key_list.refresh()

    def _show_secret(self, created: CreatedApiKey) -> None:
        slot = self.shown
        if slot is None:
            return
        slot.clear()
        secret = created.key
        with slot, ui.card().classes("w-full border-l-4 border-green-700").props('data-testid="api-key-created"'):
            ui.label(
                f"Key '{created.info.name}' ({created.info.role}). Copy it now: it is not shown again, "
                "and it cannot be recovered. If you lose it, revoke it and create another."
            )
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                box = ui.input("API key", value=secret).props('readonly dense outlined data-testid="api-key-secret"')
                box.classes("grow")
                ui.button(icon="content_copy", on_click=lambda: ui.clipboard.write(secret)).props(
                    'flat round aria-label="Copy the key" data-testid="api-key-copy"'
                ).tooltip("Copy the key")
                ui.button("Done", on_click=slot.clear).props('flat data-testid="api-key-done"')

    @ui.refreshable_method
    async def key_list(self) -> None:
        keys = await self.services.identity.api_keys.list_keys(self.ctx)
        with ui.card().classes("w-full"):
            ui.label(f"Your keys in {self.ctx.tenant_slug} ({len(keys)})").classes("text-lg font-medium")
            if not keys:
                ui.label("You have no API keys here yet: create one above for a program that calls the API.").props(
                    'data-testid="api-key-none"'
                )
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
                ).classes("text-sm text-slate-600")
            with ui.row().classes("items-center gap-2"):
                ui.badge(status, color="positive" if status == "active" else "grey-8").props(
                    'data-testid="api-key-status"'
                )
                if status == "active":
                    ui.button("Revoke", on_click=lambda k=key: self._confirm_revoke(k)).props(
                        'flat color=negative data-testid="api-key-revoke"'
                    )

    async def _confirm_revoke(self, key: ApiKeyInfo) -> None:
        if not await confirm(
            f"Revoke '{key.name}'?",
            detail="Programs using it are refused from now on; this cannot be undone.",
            action="Revoke",
            testid="confirm-revoke",
        ):
            return

        async def revoke(ctx: TenantContext) -> None:
            self.ctx = ctx
            await self.services.identity.api_keys.revoke(ctx, key.id)
            ui.notify(f"'{key.name}' is revoked", type="positive")
            self.key_list.refresh()

        await self.page.action(revoke, Role.VIEWER)()
