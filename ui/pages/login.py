"""/login: sign in with email and password (or the configured OpenID Connect provider)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from nicegui import ui
from starlette.responses import RedirectResponse, Response

from core.errors import CoreError
from ui.layout import frame
from ui.session import client_address, current_state, safe_next, take_login_error
from ui.sign_in import hand_over
from wiring.services import Services


def register(services: Services) -> None:
    @ui.page("/login")
    async def login_page(request: Request) -> Response | None:
        target = safe_next(request.query_params.get("next"))
        if await current_state(services) is not None:
            return RedirectResponse(target, status_code=303)
        with frame("Sign in"), ui.card().classes("w-full max-w-md"):
            if problem := take_login_error(request):  # why the last sign-in that left this page failed
                ui.label(problem).classes("text-negative").props('role=alert data-testid="login-error"')
            email = ui.input("Email").props('type=email autocomplete=username data-testid="login-email"')
            password = ui.input("Password", password=True).props(
                'autocomplete=current-password data-testid="login-password"'
            )

            async def submit() -> None:
                try:
                    user = await services.identity.accounts.authenticate(
                        email.value or "", password.value or "", address=client_address()
                    )
                    session = await services.identity.sessions.create(user.id)
                except CoreError as exc:
                    ui.notify(str(exc), type="negative")
                    return
                ui.navigate.to(hand_over(session, target))

            password.on("keydown.enter", submit)
            ui.button("Sign in", on_click=submit).props('data-testid="login-submit"').classes("w-full")
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
