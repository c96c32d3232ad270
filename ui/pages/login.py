"""/login: sign in with email and password (or the configured OpenID Connect provider).

Why a sign-in failed (a wrong password, a refused OIDC answer kept for one view) shows in
the form's box (`login-error`), never as a toast.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from nicegui import ui
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.responses import RedirectResponse, Response

from core.errors import Problem
from ui.forms import FieldOptions, ModelForm
from ui.layout import frame
from ui.session import client_address, current_state, safe_next, take_login_error
from ui.sign_in import hand_over
from ui.tenant_page import Pages, page


class Credentials(BaseModel):
    """An email address and a password (the sign-in form, also on the invitation page)."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    password: SecretStr = Field(max_length=4096)


def autocomplete(kind: str, input_type: str | None = None) -> FieldOptions:
    """Field options that let password managers fill the control (`username`, `current-password`, ...)."""

    def tag(control: ui.element) -> None:
        control.props["autocomplete"] = kind
        if input_type is not None:
            control.props["type"] = input_type

    return FieldOptions(after=tag)


CREDENTIAL_FIELDS = {
    "email": autocomplete("username", "email"),
    "password": autocomplete("current-password"),
}


def register(pages: Pages) -> None:
    services = pages.services

    @page("/login")
    async def login_page(request: Request) -> Response | None:
        target = safe_next(request.query_params.get("next"))
        if await current_state(services) is not None:
            return RedirectResponse(target, status_code=303)

        async def submit(credentials: Credentials) -> None:
            user = await services.identity.accounts.authenticate(
                credentials.email, credentials.password.get_secret_value(), address=client_address()
            )
            session = await services.identity.sessions.create(user.id)
            ui.navigate.to(hand_over(session, target))

        with frame("Sign in"), ui.card().classes("w-full max-w-md"):
            form = ModelForm(
                Credentials, on_submit=submit, submit_label="Sign in", testid="login", fields=CREDENTIAL_FIELDS
            )
            if problem := take_login_error(request):  # why the last sign-in that left this page failed
                form.show_problems([Problem("", problem)])
            oidc = services.settings.oidc
            if oidc.enabled:
                ui.button(
                    f"Sign in with {oidc.display_name}",
                    on_click=lambda: ui.navigate.to("/auth/oidc/login?next=" + quote(target, safe="/")),
                ).props('outline data-testid="login-oidc"').classes("w-full")
            with ui.row().classes("gap-1 text-sm"):
                ui.label("New here?")
                ui.link("Create an account", "/signup").props('data-testid="to-signup"')
        return None
