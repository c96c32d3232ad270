"""/invite#<token>: accept an invitation (signed in), or create an account through it.

The token travels in the URL fragment, which browsers never send to the server: it
stays out of access logs and Referer headers. The page reads it once connected.
"""

from __future__ import annotations

from nicegui import ui

from core.auth.invites import InvitePreview
from core.errors import CoreError
from ui.layout import frame
from ui.session import DEFAULT_LANDING, client_address, current_state, session_id
from ui.sign_in import hand_over
from wiring.services import Services


def register(services: Services) -> None:
    @ui.page("/invite")
    async def invite_page() -> None:
        await current_state(services)  # for the header; the handlers check again
        with frame("Invitation"):
            body = ui.column().classes("w-full max-w-md gap-3")
        await ui.context.client.connected()
        token = str(await ui.run_javascript("return window.location.hash.slice(1)", timeout=5.0) or "")
        with body:
            await _render(services, token)


async def _render(services: Services, token: str) -> None:
    if not token:
        ui.label("This invitation link is incomplete; ask for the whole link again.")
        return
    try:
        preview = await services.identity.invites.preview(token)
    except CoreError as exc:
        ui.label(str(exc)).props('data-testid="invite-error"')
        return
    ui.label(f"You are invited to join {preview.tenant_name} as {preview.role}.").classes("text-lg").props(
        'data-testid="invite-summary"'
    )
    state = await current_state(services)
    if state is not None:
        await _accept_as(services, token, state.user.email)
        return
    _new_account(services, token, preview)
    ui.separator()
    _existing_account(services, token)


async def _accept_as(services: Services, token: str, email: str) -> None:
    ui.label(f"Signed in as {email}.")

    async def accept() -> None:
        state = await current_state(services)
        sid = session_id()
        if state is None or sid is None:
            ui.navigate.to("/login")
            return
        try:
            joined = await services.identity.invites.accept(token, state.user.id)
            await services.identity.sessions.switch(sid, joined.tenant_slug)
        except CoreError as exc:
            ui.notify(str(exc), type="negative")
            return
        ui.navigate.to(DEFAULT_LANDING)

    ui.button("Join", on_click=accept).props('data-testid="invite-accept"')


def _new_account(services: Services, token: str, preview: InvitePreview) -> None:
    ui.label("New here? Create your account:").classes("font-medium")
    name = ui.input("Your name").props('data-testid="invite-name"')
    email = ui.input("Email", value=preview.email or "").props('type=email data-testid="invite-email"')
    if preview.email:
        email.props("readonly")
    password = ui.input("Password (8 characters or more)", password=True).props(
        'autocomplete=new-password data-testid="invite-password"'
    )

    async def create() -> None:
        try:
            user, joined = await services.identity.invites.sign_up(
                token, email.value or "", password.value or "", display_name=name.value or ""
            )
            session = await services.identity.sessions.create(user.id, joined.tenant_id)
        except CoreError as exc:
            ui.notify(str(exc), type="negative")
            return
        ui.navigate.to(hand_over(session, DEFAULT_LANDING))

    ui.button("Create account and join", on_click=create).props('data-testid="invite-signup"')


def _existing_account(services: Services, token: str) -> None:
    ui.label("Have an account? Sign in to join:").classes("font-medium")
    email = ui.input("Email").props('type=email autocomplete=username data-testid="invite-login-email"')
    password = ui.input("Password", password=True).props(
        'autocomplete=current-password data-testid="invite-login-password"'
    )

    async def sign_in_and_join() -> None:
        try:
            user = await services.identity.accounts.authenticate(
                email.value or "", password.value or "", address=client_address()
            )
            joined = await services.identity.invites.accept(token, user.id)
            session = await services.identity.sessions.create(user.id, joined.tenant_id)
        except CoreError as exc:
            ui.notify(str(exc), type="negative")
            return
        ui.navigate.to(hand_over(session, DEFAULT_LANDING))

    ui.button("Sign in and join", on_click=sign_in_and_join).props('data-testid="invite-login"')
