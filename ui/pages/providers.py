"""/providers: the workspace's LLM providers. Members see them; admins add, edit, test, disable and delete.

The list shows each provider's models, base URL, the masked hint of its key (never the
key), its fallback and limits; the editor is `ui.provider_form.ProviderDialog`. Members
below admin open the same form read-only. Every handler resolves the session again
(`PageView.action`), so a logout or a role change takes effect on the next click.
"""

from __future__ import annotations

import uuid

from nicegui import ui

from core.context import Role, TenantContext
from core.errors import CoreError
from core.llm.local import MODEL_NAME as LOCAL_MODEL
from core.llm.types import ProviderKind
from core.providers import KIND_LABELS, LOCAL_NOTE, ProviderInput, ProviderView
from ui.dialogs import confirm
from ui.provider_form import ProviderDialog
from ui.records import tag
from ui.tenant_page import Pages, PageView

INTRO = (
    "The models this workspace's agents and flows call. Keys are stored encrypted and never shown again: "
    "only a hint such as sk-...9f2c."
)


class ProvidersPanel:
    """The list of providers with their actions; rebuilt after every change."""

    def __init__(self, page: PageView) -> None:
        self.page = page
        self.is_admin = page.can(Role.ADMIN)
        self.views: list[ProviderView] = []
        with ui.row().classes("items-center gap-2"):
            if self.is_admin:
                tag(ui.button("Add provider", icon="add", on_click=page.action(self.add, Role.ADMIN)), "add-provider")
                self.add_local = ui.button(
                    "Add the bundled local model", icon="memory", on_click=page.action(self.add_local_model, Role.ADMIN)
                )
                tag(self.add_local, "add-local-provider").props("outline")
                self.add_local.set_visibility(False)
            else:
                note = f"Your role '{page.ctx.role}' can see providers; admins of the workspace change and test them."
                tag(ui.label(note).classes("text-slate-600"), "read-only-note")
        self.container = tag(ui.column().classes("w-full gap-2"), "provider-list")

    async def refresh(self, ctx: TenantContext) -> None:
        self.views = await self.page.services.llm_stack.providers.list(ctx)
        if self.is_admin:
            self.add_local.set_visibility(not any(v.kind is ProviderKind.LOCAL for v in self.views))
        names = {v.id: v.name for v in self.views}
        self.container.clear()
        with self.container:
            if not self.views:
                empty = "No providers yet. Add one, or the bundled local model, to run LLM calls."
                if not self.is_admin:
                    empty = "No providers yet. An admin of this workspace adds them; until then LLM calls cannot run."
                tag(ui.label(empty).classes("text-slate-600"), "providers-empty")
            for view in self.views:
                self.row(view, names)

    def row(self, view: ProviderView, names: dict[uuid.UUID, str]) -> None:
        card = tag(ui.card().classes("w-full gap-1"), "provider-row")
        card.props["data-provider"] = view.name  # set directly: a name may hold quotes
        card.mark("provider-row", f"provider-row-{view.id}")  # tests scope to one provider by its id
        with card:
            with ui.row().classes("w-full items-center gap-3"):
                tag(ui.label(view.name).classes("text-base font-medium"), "provider-title")
                ui.badge(KIND_LABELS[view.kind], color="slate-600")
                state = ui.badge(
                    "enabled" if view.enabled else "disabled", color="positive" if view.enabled else "grey-8"
                )
                tag(state, "provider-state")
            details = [f"models: {', '.join(view.models) or 'none'}"]
            if view.base_url:
                details.append(f"base URL: {view.base_url}")
            details.append(f"key: {view.credential_hint}" if view.has_credential else "key: none")
            if view.fallback_provider_id:
                details.append(f"falls back to: {names.get(view.fallback_provider_id, 'a deleted provider')}")
            if view.rpm_limit or view.tpm_limit:
                details.append(f"limits: {view.rpm_limit or '-'} req/min, {view.tpm_limit or '-'} tokens/min")
            tag(ui.label(" · ".join(details)).classes("text-sm text-slate-600 font-mono"), "provider-details")
            if view.kind is ProviderKind.LOCAL:
                tag(ui.label(LOCAL_NOTE).classes("text-sm text-orange-900"), "local-note")
            result = tag(ui.label("").classes("text-sm"), "provider-test-result")
            with ui.row().classes("gap-2"):
                self.buttons(view, result)

    def buttons(self, view: ProviderView, result: ui.label) -> None:
        action = self.page.action
        if not self.is_admin:
            tag(ui.button("View", icon="visibility", on_click=action(lambda _ctx: self.open(view))), "provider-view")
            return
        test = ui.button("Test", icon="bolt", on_click=action(lambda ctx: self.test(ctx, view, result), Role.ADMIN))
        tag(test, "provider-test").props("outline")
        edit = ui.button("Edit", icon="edit", on_click=action(lambda _ctx: self.open(view), Role.ADMIN))
        tag(edit, "provider-edit").props("flat")
        toggle = ui.button(
            "Disable" if view.enabled else "Enable", on_click=action(lambda ctx: self.toggle(ctx, view), Role.ADMIN)
        )
        tag(toggle, "provider-toggle").props("flat")
        delete = ui.button(
            "Delete", icon="delete", color="negative", on_click=action(lambda ctx: self.delete(ctx, view), Role.ADMIN)
        )
        tag(delete, "provider-delete").props("flat")

    async def add(self, _ctx: TenantContext) -> None:
        ProviderDialog(self.page, self.views, None, self.refresh)

    async def open(self, view: ProviderView) -> None:
        ProviderDialog(self.page, self.views, view, self.refresh)

    async def add_local_model(self, ctx: TenantContext) -> None:
        """One click: the bundled model, for running flows with no network (tiny, no tools)."""
        data = ProviderInput(name="Local model (SmolLM2-135M)", kind=ProviderKind.LOCAL, models=[LOCAL_MODEL])
        await self.page.services.llm_stack.providers.create(ctx, data)
        await self.refresh(ctx)

    async def test(self, ctx: TenantContext, view: ProviderView, result: ui.label) -> None:
        result.classes(remove="text-positive text-negative")
        result.text = f"Sending a 1-token request to '{view.name}' ..."
        try:
            outcome = await self.page.services.llm_stack.llm.test_provider(ctx, view.id)
        except CoreError as exc:  # the answer belongs beside the button, like a failed test's
            result.text = f"Not tested: {exc}"
            result.classes("text-negative")
            return
        if outcome.ok:
            result.text = f"OK: {outcome.model} answered in {outcome.latency_ms:.0f} ms"
            result.classes("text-positive")
        else:
            result.text = f"Failed after {outcome.latency_ms:.0f} ms: {outcome.message}"
            result.classes("text-negative")

    async def toggle(self, ctx: TenantContext, view: ProviderView) -> None:
        await self.page.services.llm_stack.providers.set_enabled(ctx, view.id, not view.enabled)
        await self.refresh(ctx)

    async def delete(self, ctx: TenantContext, view: ProviderView) -> None:
        if not await confirm(
            f"Delete the provider '{view.name}' and its stored key?",
            detail="Providers that fall back to it lose their fallback.",
        ):
            return
        await self.page.services.llm_stack.providers.delete(ctx, view.id)
        ui.notify(f"Deleted provider '{view.name}'")
        await self.refresh(ctx)


def register(pages: Pages) -> None:
    """/providers: every member sees the list; admins change it."""

    @pages.tenant_page("/providers", Role.VIEWER, title="LLM providers")
    async def providers_page(page: PageView) -> None:
        ui.label(INTRO).classes("text-slate-600")
        panel = ProvidersPanel(page)
        await panel.refresh(page.ctx)
