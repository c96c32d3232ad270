"""/signup: create an account together with a new tenant you own."""

from __future__ import annotations

import re

from nicegui import ui
from starlette.responses import RedirectResponse, Response

from core.errors import CoreError
from ui.layout import frame
from ui.session import DEFAULT_LANDING, current_state
from ui.sign_in import hand_over
from wiring.services import Services


def suggest_slug(name: str) -> str:
    """A tenant slug derived from a display name ("Acme Labs!" -> "acme_labs")."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40]
    if slug and not slug[0].isalpha():
        slug = ("t_" + slug)[:40]
    return slug


def register(services: Services) -> None:
    @ui.page("/signup")
    async def signup_page() -> Response | None:
        if await current_state(services) is not None:
            return RedirectResponse(DEFAULT_LANDING, status_code=303)
        with frame("Create an account"), ui.card().classes("w-full max-w-md"):
            if not services.settings.auth.signup_enabled:
                ui.label("Sign-up is closed here. Ask an administrator for an invitation link.")
                return None
            name = ui.input("Your name").props('data-testid="signup-name"')
            email = ui.input("Email").props('type=email autocomplete=username data-testid="signup-email"')
            password = ui.input("Password (8 characters or more)", password=True).props(
                'autocomplete=new-password data-testid="signup-password"'
            )
            tenant_name = ui.input("Workspace name").props('data-testid="signup-tenant-name"')
            slug = ui.input("Workspace id", placeholder="lowercase letters, digits, _").props(
                'data-testid="signup-tenant-slug"'
            )
            touched = {"slug": False}
            slug.on("keydown", lambda: touched.update(slug=True))

            def follow_name() -> None:
                if not touched["slug"]:
                    slug.value = suggest_slug(tenant_name.value or "")

            tenant_name.on_value_change(follow_name)

            async def submit() -> None:
                try:
                    user, membership = await services.identity.accounts.signup(
                        email.value or "",
                        password.value or "",
                        tenant_slug=(slug.value or "").strip(),
                        tenant_name=tenant_name.value or "",
                        display_name=name.value or "",
                    )
                    session = await services.identity.sessions.create(user.id, membership.tenant_id)
                except CoreError as exc:
                    ui.notify(str(exc), type="negative")
                    return
                ui.navigate.to(hand_over(session, DEFAULT_LANDING))

            ui.button("Create account", on_click=submit).props('data-testid="signup-submit"').classes("w-full")
            with ui.row().classes("gap-1 text-sm"):
                ui.label("Have an account?")
                ui.link("Sign in", "/login")
        return None
