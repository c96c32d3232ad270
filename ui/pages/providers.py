"""/providers: the tenant's LLM providers. Members see them; admins add, edit, test, disable and delete.

Keys go in through a password field and never come back: the page shows the masked hint
(`sk-...9f2c`) only, and a dialog holding a typed key is deleted as soon as it closes, so
the key does not linger in the page. Every handler resolves the session again
(`current_context`): a logout or a role change takes effect on the next click.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from nicegui import ui
from starlette.responses import Response

from core.context import Role, TenantContext
from core.errors import CoreError
from core.llm.local import MODEL_NAME as LOCAL_MODEL
from core.llm.types import ProviderKind
from core.providers import KIND_LABELS, LOCAL_NOTE, ProviderFields, ProviderInput, ProviderView, parse_input
from ui.dialogs import confirm
from ui.layout import frame
from ui.session import current_context, page_context
from wiring.services import Services

Need = Literal["required", "optional", "none"]


@dataclass(frozen=True)
class KindForm:
    """Which fields a provider kind takes, and examples to put in them."""

    base_url: Need
    key: Need
    models_hint: str
    base_url_hint: str = ""
    api_version: bool = False


FORMS: dict[ProviderKind, KindForm] = {
    ProviderKind.OPENAI: KindForm("optional", "required", "gpt-4o-mini", "empty for api.openai.com"),
    ProviderKind.ANTHROPIC: KindForm("optional", "required", "claude-3-5-haiku-latest", "empty for api.anthropic.com"),
    ProviderKind.AZURE: KindForm(
        "required", "required", "your deployment name", "https://<resource>.openai.azure.com", api_version=True
    ),
    ProviderKind.OLLAMA: KindForm("required", "none", "llama3.2", "http://ollama.internal:11434"),
    ProviderKind.OPENAI_COMPATIBLE: KindForm(
        "required", "optional", "meta-llama/Llama-3.1-8B-Instruct", "https://vllm.example.com/v1"
    ),
    ProviderKind.LOCAL: KindForm("none", "none", LOCAL_MODEL),
}


def testid(name: str) -> str:
    return f'data-testid="{name}"'


def split_models(text: str) -> list[str]:
    return [m.strip() for m in text.replace("\n", ",").split(",") if m.strip()]


class ProviderDialog:
    """Add or edit one provider; the dialog (and any key typed into it) is deleted when it closes."""

    def __init__(
        self,
        services: Services,
        providers: list[ProviderView],
        existing: ProviderView | None,
        on_saved: Callable[[], Awaitable[None]],
    ) -> None:
        self.services = services
        self.existing = existing
        self.on_saved = on_saved
        kind = existing.kind if existing else ProviderKind.OPENAI_COMPATIBLE
        others = {str(p.id): p.name for p in providers if existing is None or p.id != existing.id}
        with ui.dialog() as self.dialog, ui.card().classes("w-[36rem] gap-2").props(testid("provider-dialog")):
            ui.label("Edit provider" if existing else "Add a provider").classes("text-lg font-medium")
            self.kind = (
                ui.select(
                    {str(k): KIND_LABELS[k] for k in ProviderKind},
                    value=str(kind),
                    label="Kind",
                    on_change=self.kind_changed,
                )
                .classes("w-full")
                .props(testid("provider-kind"))
            )
            if existing:
                self.kind.disable()  # a provider's kind is fixed; add another one instead
            self.local_note = ui.label(LOCAL_NOTE).classes("text-orange-900 bg-orange-50 rounded p-2")
            self.local_note.props(testid("local-note"))
            self.name = ui.input("Name", value=existing.name if existing else "").classes("w-full")
            self.name.props(testid("provider-name"))
            self.models = ui.input("Models (comma separated; the first is the default)").classes("w-full")
            self.models.props(testid("provider-models"))
            self.models.value = ", ".join(existing.models) if existing else ""
            self.base_url = ui.input("Base URL", value=(existing.base_url or "") if existing else "").classes("w-full")
            self.base_url.props(testid("provider-base-url"))
            self.api_version = ui.input(
                "API version", value=str((existing.default_params if existing else {}).get("api_version", ""))
            ).classes("w-full")
            hint = (
                f"stored: {existing.credential_hint}; leave empty to keep it"
                if existing and existing.has_credential
                else ""
            )
            self.api_key = ui.input("API key", password=True, placeholder=hint).classes("w-full")
            self.api_key.props('autocomplete="off" ' + testid("provider-api-key"))
            self.clear_key = ui.checkbox("Remove the stored key")
            self.clear_key.set_visibility(bool(existing and existing.has_credential))
            self.fallback = (
                ui.select(
                    {"": "none", **others},
                    value=str(existing.fallback_provider_id) if existing and existing.fallback_provider_id else "",
                    label="Fallback provider (used when this one fails)",
                )
                .classes("w-full")
                .props(testid("provider-fallback"))
            )
            with ui.row().classes("w-full gap-4"):
                self.rpm = ui.number("Requests/min (0 = tenant limit only)", min=0, precision=0)
                self.rpm.value = (existing.rpm_limit or 0) if existing else 0
                self.tpm = ui.number("Tokens/min (0 = tenant limit only)", min=0, precision=0)
                self.tpm.value = (existing.tpm_limit or 0) if existing else 0
            self.error = ui.label("").classes("text-negative whitespace-pre-wrap").props(testid("provider-error"))
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                ui.button("Save", on_click=self.save).props(testid("provider-save"))
        self.dialog.on("hide", self.dialog.delete)
        self.kind_changed()
        self.dialog.open()

    def kind_changed(self) -> None:
        kind = ProviderKind(self.kind.value)
        form = FORMS[kind]
        self.local_note.set_visibility(kind is ProviderKind.LOCAL)
        self.base_url.set_visibility(form.base_url != "none")
        self.base_url.props(f'hint="{"required" if form.base_url == "required" else "optional"}: {form.base_url_hint}"')
        self.api_key.set_visibility(form.key != "none")
        self.api_version.set_visibility(form.api_version)
        self.models.props(f'hint="e.g. {form.models_hint}"')

    def fields(self) -> dict[str, Any]:
        kind = ProviderKind(self.kind.value)
        form = FORMS[kind]
        data: dict[str, Any] = {
            "name": (self.name.value or "").strip(),
            "models": split_models(self.models.value or ""),
            "rpm_limit": int(self.rpm.value or 0),
            "tpm_limit": int(self.tpm.value or 0),
        }
        if kind is ProviderKind.LOCAL and not data["models"]:
            data["models"] = [LOCAL_MODEL]
        if form.base_url != "none":
            data["base_url"] = (self.base_url.value or "").strip()
        if form.key != "none" and (self.api_key.value or "").strip():
            data["api_key"] = (self.api_key.value or "").strip()
        if self.clear_key.value and "api_key" not in data:
            data["clear_api_key"] = True
        if form.api_version:
            params = dict(self.existing.default_params) if self.existing else {}
            params["api_version"] = (self.api_version.value or "").strip()
            data["default_params"] = {k: v for k, v in params.items() if v != ""}
        if self.fallback.value:
            data["fallback_provider_id"] = self.fallback.value
        elif self.existing and self.existing.fallback_provider_id:
            data["clear_fallback"] = True
        return data

    async def save(self) -> None:
        ctx = await current_context(self.services, Role.ADMIN)
        if ctx is None:
            return
        providers = self.services.llm_stack.providers
        try:
            if self.existing is None:
                await providers.create(ctx, parse_input(ProviderInput, self.fields() | {"kind": self.kind.value}))
            else:
                await providers.update(ctx, self.existing.id, parse_input(ProviderFields, self.fields()))
        except CoreError as exc:
            self.error.text = str(exc)
            return
        self.api_key.value = ""
        self.dialog.close()
        ui.notify(f"Saved provider '{(self.name.value or '').strip()}'", type="positive")
        await self.on_saved()


class ProvidersPanel:
    """The list of providers with their actions; rebuilt after every change."""

    def __init__(self, services: Services, ctx: TenantContext) -> None:
        self.services = services
        self.is_admin = ctx.role.rank >= Role.ADMIN.rank
        self.views: list[ProviderView] = []
        with ui.row().classes("items-center gap-2"):
            if self.is_admin:
                ui.button("Add provider", icon="add", on_click=self.add).props(testid("add-provider"))
                self.add_local = ui.button("Add the bundled local model", icon="memory", on_click=self.add_local_model)
                self.add_local.props("outline " + testid("add-local-provider"))
                self.add_local.set_visibility(False)
            else:
                ui.label(f"Your role '{ctx.role}' can see providers; admins change and test them.").classes(
                    "text-slate-500"
                ).props(testid("read-only-note"))
        self.container = ui.column().classes("w-full gap-2").props(testid("provider-list"))

    async def refresh(self) -> None:
        ctx = await current_context(self.services, Role.VIEWER)
        if ctx is None:
            return
        self.views = await self.services.llm_stack.providers.list(ctx)
        if self.is_admin:
            self.add_local.set_visibility(not any(v.kind is ProviderKind.LOCAL for v in self.views))
        names = {v.id: v.name for v in self.views}
        self.container.clear()
        with self.container:
            if not self.views:
                ui.label("No providers yet. Add one, or the bundled local model, to run LLM calls.").classes(
                    "text-slate-600"
                )
            for view in self.views:
                self.row(view, names)

    def row(self, view: ProviderView, names: dict[uuid.UUID, str]) -> None:
        with ui.card().classes("w-full gap-1").props(testid("provider-row") + f' data-provider="{view.name}"'):
            with ui.row().classes("w-full items-center gap-3"):
                ui.label(view.name).classes("text-base font-medium").props(testid("provider-title"))
                ui.badge(KIND_LABELS[view.kind], color="slate-500")
                ui.badge("enabled" if view.enabled else "disabled", color="positive" if view.enabled else "grey").props(
                    testid("provider-state")
                )
            details = [f"models: {', '.join(view.models) or 'none'}"]
            if view.base_url:
                details.append(f"base URL: {view.base_url}")
            details.append(f"key: {view.credential_hint}" if view.has_credential else "key: none")
            if view.fallback_provider_id:
                details.append(f"falls back to: {names.get(view.fallback_provider_id, 'a deleted provider')}")
            if view.rpm_limit or view.tpm_limit:
                details.append(f"limits: {view.rpm_limit or '-'} req/min, {view.tpm_limit or '-'} tokens/min")
            ui.label(" · ".join(details)).classes("text-sm text-slate-600 font-mono").props(testid("provider-details"))
            if view.kind is ProviderKind.LOCAL:
                ui.label(LOCAL_NOTE).classes("text-sm text-orange-900").props(testid("local-note"))
            result = ui.label("").classes("text-sm").props(testid("provider-test-result"))
            if self.is_admin:
                with ui.row().classes("gap-2"):
                    ui.button("Test", icon="bolt", on_click=lambda v=view, r=result: self.test(v, r)).props(
                        "outline " + testid("provider-test")
                    )
                    ui.button("Edit", icon="edit", on_click=lambda v=view: self.edit(v)).props(
                        "flat " + testid("provider-edit")
                    )
                    ui.button(
                        "Disable" if view.enabled else "Enable",
                        on_click=lambda v=view: self.toggle(v),
                    ).props("flat " + testid("provider-toggle"))
                    ui.button("Delete", icon="delete", color="negative", on_click=lambda v=view: self.delete(v)).props(
                        "flat " + testid("provider-delete")
                    )

    async def add(self) -> None:
        if await current_context(self.services, Role.ADMIN) is not None:
            ProviderDialog(self.services, self.views, None, self.refresh)

    async def add_local_model(self) -> None:
        """One click: the bundled model, for running flows with no network (tiny, no tools)."""
        ctx = await current_context(self.services, Role.ADMIN)
        if ctx is None:
            return
        data = {"name": "Local model (SmolLM2-135M)", "kind": str(ProviderKind.LOCAL), "models": [LOCAL_MODEL]}
        try:
            await self.services.llm_stack.providers.create(ctx, parse_input(ProviderInput, data))
        except CoreError as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        await self.refresh()

    async def edit(self, view: ProviderView) -> None:
        if await current_context(self.services, Role.ADMIN) is not None:
            ProviderDialog(self.services, self.views, view, self.refresh)

    async def test(self, view: ProviderView, result: ui.label) -> None:
        ctx = await current_context(self.services, Role.ADMIN)
        if ctx is None:
            return
        result.classes(remove="text-positive text-negative")
        result.text = f"Sending a 1-token request to '{view.name}' ..."
        try:
            outcome = await self.services.llm_stack.llm.test_provider(ctx, view.id)
        except CoreError as exc:
            result.text = f"Not tested: {exc}"
            result.classes("text-negative")
            return
        if outcome.ok:
            result.text = f"OK: {outcome.model} answered in {outcome.latency_ms:.0f} ms"
            result.classes("text-positive")
        else:
            result.text = f"Failed after {outcome.latency_ms:.0f} ms: {outcome.message}"
            result.classes("text-negative")

    async def toggle(self, view: ProviderView) -> None:
        ctx = await current_context(self.services, Role.ADMIN)
        if ctx is None:
            return
        try:
            await self.services.llm_stack.providers.set_enabled(ctx, view.id, not view.enabled)
        except CoreError as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        await self.refresh()

    async def delete(self, view: ProviderView) -> None:
        if not await confirm(
            f"Delete the provider '{view.name}' and its stored key?",
            detail="Providers that fall back to it lose their fallback.",
        ):
            return
        ctx = await current_context(self.services, Role.ADMIN)
        if ctx is None:
            return
        try:
            await self.services.llm_stack.providers.delete(ctx, view.id)
        except CoreError as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        ui.notify(f"Deleted provider '{view.name}'")
        await self.refresh()


def register(services: Services) -> None:
    @ui.page("/providers")
    async def providers_page() -> Response | None:
        ctx = await page_context(services, Role.VIEWER)
        if not isinstance(ctx, TenantContext):
            return ctx
        with frame("LLM providers"):
            ui.label(
                "The models this tenant's agents and flows call. Keys are stored encrypted and never shown again: "
                "only a hint such as sk-...9f2c."
            ).classes("text-slate-600")
            panel = ProvidersPanel(services, ctx)
            await panel.refresh()
        return None
