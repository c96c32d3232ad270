"""The provider editor: a dialog holding a form of `ProviderDraft`, rebuilt whenever the kind changes.

Each kind takes different fields (`FORMS`): a base URL that some need and the local model
refuses, a key that Ollama and the local model do not take, Azure's API version. The kind
picker sits above the form and a new form is built for the chosen kind, carrying over what
was typed, so a field a kind does not take is not there at all. Everything the form can
tell before saving (no name, no models, a base URL that is no URL, a missing key) is shown
under its field at once.

A key goes in through a password field and never comes back: editing shows the masked hint
(`sk-...9f2c`) as the placeholder, and the dialog, with any key typed into it, is deleted as
soon as it closes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from nicegui import ui
from pydantic import Field

from core.context import Role, TenantContext
from core.errors import InvalidInput, Problem
from core.llm.local import MODEL_NAME as LOCAL_MODEL
from core.llm.types import ProviderKind, UnsafeEndpoint
from core.providers import KIND_LABELS, LOCAL_NOTE, ProviderFields, ProviderInput, ProviderView, parse_input
from core.text import Line
from ui.checked_form import CheckedForm, problems_in
from ui.forms import FieldOptions
from ui.records import tag
from ui.session import current_context
from ui.tenant_page import PageView

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
#: Fields of `ProviderInput` the form never shows: the list's buttons and the dialog handle them.
ALWAYS_EXCLUDED = ("default_params", "clear_fallback", "enabled")


class ProviderDraft(ProviderInput):
    """What the provider form edits: a `ProviderInput`, with Azure's API version as a field of its own."""

    api_version: Line | None = Field(default=None, description="Azure's api-version, e.g. 2024-10-21.")


def base_url_problem(url: str, kind: ProviderKind) -> str | None:
    """What is wrong with `url` as the base URL of a `kind` provider, if anything."""
    form = FORMS[kind]
    url = url.strip()
    if not url:
        return (
            f"a {KIND_LABELS[kind]} provider needs a base URL, e.g. {form.base_url_hint}"
            if form.base_url == "required"
            else None
        )
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is no number raises here
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host name, e.g. {form.base_url_hint or 'https://api.example.com/v1'}"
    return None


class ProviderDialog:
    """Add, edit or (below admin) look at one provider; deleted, with any typed key, when it closes."""

    def __init__(
        self,
        page: PageView,
        providers: list[ProviderView],
        existing: ProviderView | None,
        on_saved: Callable[[TenantContext], Awaitable[None]],
    ) -> None:
        self.page = page
        self.existing = existing
        self.on_saved = on_saved
        self.read_only = not page.can(Role.ADMIN)
        self.others = {str(p.id): p.name for p in providers if existing is None or p.id != existing.id}
        kind = existing.kind if existing else ProviderKind.OPENAI_COMPATIBLE
        title = "Add a provider" if existing is None else ("Provider" if self.read_only else "Edit provider")
        with ui.dialog() as self.dialog, tag(ui.card().classes("w-[36rem] max-w-full gap-2"), "provider-dialog"):
            self.dialog.props["aria-label"] = title
            ui.label(title).classes("text-lg font-medium").props("role=heading aria-level=2")
            self.kind = tag(
                ui.select(
                    {str(k): KIND_LABELS[k] for k in ProviderKind},
                    value=str(kind),
                    label="Kind",
                    on_change=self.kind_changed,
                ).classes("w-full"),
                "provider-kind",
            )
            if existing is not None or self.read_only:
                self.kind.disable()  # a provider's kind is fixed; add another one instead
            self.local_note = tag(
                ui.label(LOCAL_NOTE).classes("text-orange-900 bg-orange-50 rounded p-2"), "local-note"
            )
            self.body = ui.column().classes("w-full gap-2 p-0")
            with ui.row().classes("w-full justify-end"):
                close = ui.button("Close" if self.read_only else "Cancel", on_click=self.dismiss).props("flat")
                tag(close, "provider-cancel")
        self.dialog.on("hide", self.dialog.delete)
        self.form: CheckedForm[ProviderDraft] | None = None
        self.render(kind, self.initial_values(kind))
        self.dialog.open()

    def dismiss(self) -> None:
        """Close and delete the dialog now (Escape and clicks outside do it through its "hide" event)."""
        self.dialog.close()
        self.dialog.delete()

    def initial_values(self, kind: ProviderKind) -> dict[str, Any]:
        view = self.existing
        if view is None:
            return {"kind": kind, "rpm_limit": 0, "tpm_limit": 0}
        return {
            "kind": kind,
            "name": view.name,
            "models": list(view.models),
            "base_url": view.base_url or "",
            "fallback_provider_id": str(view.fallback_provider_id) if view.fallback_provider_id else None,
            "rpm_limit": view.rpm_limit or 0,
            "tpm_limit": view.tpm_limit or 0,
            "api_version": str(view.default_params.get("api_version", "")),
        }

    def keeps_key(self, values: dict[str, Any]) -> bool:
        """Whether a key stays stored when nothing is typed (editing, and not asked to remove it)."""
        return bool(self.existing and self.existing.has_credential and not values.get("clear_api_key"))

    def render(self, kind: ProviderKind, values: dict[str, Any]) -> None:
        """Build the form for `kind` with `values` in it."""
        form = FORMS[kind]
        self.local_note.set_visibility(kind is ProviderKind.LOCAL)
        stored = self.existing is not None and self.existing.has_credential
        exclude = set(ALWAYS_EXCLUDED)
        if form.base_url == "none":
            exclude.add("base_url")
        if form.key == "none":
            exclude |= {"api_key", "clear_api_key"}
        if not stored:
            exclude.add("clear_api_key")
        if not form.api_version:
            exclude.add("api_version")
        key_needed = form.key == "required" and not stored
        hint = f"stored: {self.existing.credential_hint}; leave empty to keep it" if stored and self.existing else None
        models_label = "Models" if kind is ProviderKind.LOCAL else "Models *"
        self.body.clear()
        with self.body:
            self.form = CheckedForm(
                ProviderDraft,
                value=values,
                checks=self.checks,
                on_submit=self.save,
                submit_label="Add provider" if self.existing is None else "Save",
                read_only=self.read_only,
                testid="provider",
                exclude=exclude,
                fields={
                    "kind": FieldOptions(hidden=True),
                    "name": FieldOptions(help="How agents, flows and this list name it."),
                    "models": FieldOptions(
                        label=models_label,
                        help=f"Type a model id and press Enter, e.g. {form.models_hint}; the first is the default.",
                    ),
                    "base_url": FieldOptions(
                        label="Base URL *" if form.base_url == "required" else "Base URL",
                        help=("Required: " if form.base_url == "required" else "Optional: ") + form.base_url_hint,
                        placeholder=form.base_url_hint if form.base_url == "required" else None,
                    ),
                    "api_key": FieldOptions(
                        label="API key *" if key_needed else "API key",
                        help="Stored encrypted; afterwards only a hint such as sk-...9f2c is shown.",
                        placeholder=hint,
                    ),
                    "clear_api_key": FieldOptions(label="Remove the stored key"),
                    "fallback_provider_id": FieldOptions(
                        label="Fallback provider", choices=self.others, help="Used when this one fails."
                    ),
                    "rpm_limit": FieldOptions(
                        label="Requests per minute", help="0: only the workspace's own limit applies."
                    ),
                    "tpm_limit": FieldOptions(
                        label="Tokens per minute", help="0: only the workspace's own limit applies."
                    ),
                    "api_version": FieldOptions(label="API version", placeholder="2024-10-21"),
                },
            )

    def kind_changed(self) -> None:
        """A new form for the chosen kind, keeping what was typed that the kind takes."""
        if self.form is None:
            return
        kind = ProviderKind(self.kind.value)
        form = FORMS[kind]
        values = self.form.values()
        values["kind"] = kind
        if form.key == "none":
            values.pop("api_key", None)  # a typed key is not carried into a form that has no place for it
        if kind is ProviderKind.LOCAL and not values.get("models"):
            values["models"] = [LOCAL_MODEL]
        self.render(kind, values)

    def checks(self, values: dict[str, Any]) -> list[Problem]:
        """What the model alone cannot tell: which fields this kind needs, and a base URL's shape."""
        kind = ProviderKind(values.get("kind") or ProviderKind.OPENAI_COMPATIBLE)
        form = FORMS[kind]
        found: dict[str, str | None] = {}
        if kind is not ProviderKind.LOCAL and not values.get("models"):
            found["models"] = "add at least one model id (type it and press Enter); the first is the default"
        if form.base_url != "none":
            found["base_url"] = base_url_problem(str(values.get("base_url") or ""), kind)
        if form.key == "required" and not str(values.get("api_key") or "").strip() and not self.keeps_key(values):
            found["api_key"] = f"a {KIND_LABELS[kind]} provider needs an API key"
        return problems_in(found)

    def payload(self, draft: ProviderDraft) -> dict[str, Any]:
        """The fields to send for `draft` (an edit sends every field it shows, so clearing one clears it)."""
        form = FORMS[draft.kind]
        data: dict[str, Any] = {
            "name": draft.name.strip(),
            "models": draft.models or ([LOCAL_MODEL] if draft.kind is ProviderKind.LOCAL else []),
            "rpm_limit": draft.rpm_limit or 0,
            "tpm_limit": draft.tpm_limit or 0,
        }
        if form.base_url != "none":
            data["base_url"] = (draft.base_url or "").strip()
        key = draft.api_key.get_secret_value().strip() if draft.api_key is not None else ""
        if key:
            data["api_key"] = key
        elif draft.clear_api_key:
            data["clear_api_key"] = True
        if form.api_version:
            params = dict(self.existing.default_params) if self.existing else {}
            params["api_version"] = (draft.api_version or "").strip()
            data["default_params"] = {name: value for name, value in params.items() if value != ""}
        if draft.fallback_provider_id is not None:
            data["fallback_provider_id"] = draft.fallback_provider_id
        elif self.existing is not None and self.existing.fallback_provider_id is not None:
            data["clear_fallback"] = True
        return data

    async def save(self, draft: ProviderDraft) -> None:
        ctx = await current_context(self.page.services, Role.ADMIN)  # as of this click
        if ctx is None:
            return
        providers = self.page.services.llm_stack.providers
        data = self.payload(draft)
        try:
            if self.existing is None:
                await providers.create(ctx, parse_input(ProviderInput, data | {"kind": draft.kind}))
            else:
                await providers.update(ctx, self.existing.id, parse_input(ProviderFields, data))
        except UnsafeEndpoint as exc:  # the SSRF guard's verdict belongs under the base URL
            raise InvalidInput(str(exc), field="base_url") from exc
        self.dismiss()
        ui.notify(f"Saved provider '{data['name']}'", type="positive")
        await self.on_saved(ctx)
