"""/invite#<token>: accept an invitation (signed in), or create an account through it.

The token travels in the URL fragment, which browsers never send to the server: it
stays out of access logs and Referer headers. The page reads it once connected.
"""

from __future__ import annotations

from nicegui import ui
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from core.auth.invites import InvitePreview
from core.errors import Conflict, InvalidInput, NotFound, Problem
from core.text import Name
from ui.forms import FieldOptions, ModelForm
from ui.layout import frame
from ui.pages.login import CREDENTIAL_FIELDS, Credentials, autocomplete
from ui.pages.members import checked_email
from ui.pages.signup import checked_password
from ui.session import DEFAULT_LANDING, client_address, current_state, session_id
from ui.sign_in import hand_over
from ui.tenant_page import Pages, notify_errors, page
from wiring.services import Services


class Newcomer(BaseModel):
    """An account made through an invitation (it joins the invitation's workspace, not one of its own)."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(default="", description="How others in the workspace see you (optional).")
    email: str = Field(max_length=320)
    password: SecretStr = Field(description="8 characters or more.")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        address = checked_email(value)
        if address is None:
            raise ValueError("enter your email address")
        return address

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr) -> SecretStr:
        return checked_password(value)


def register(pages: Pages) -> None:
    services = pages.services

    @page("/invite")
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
        ui.label("This invitation link is incomplete; ask for the whole link again.").props(
            'role=alert data-testid="invite-invalid"'
        )
        return
    try:
        preview = await services.identity.invites.preview(token)
    except (NotFound, Conflict) as exc:  # unknown, withdrawn, used or expired: that is the whole page
        ui.label(str(exc)).props('role=alert data-testid="invite-invalid"')
        return
    ui.label(f"You are invited to join {preview.tenant_name} as {preview.role}.").classes("text-lg").props(
        'data-testid="invite-summary"'
    )
    state = await current_state(services)
    if state is not None:
        _accept_as(services, token, state.user.email)
        return
    with ui.card().classes("w-full"):
        _new_account(services, token, preview)
    with ui.card().classes("w-full"):
        _existing_account(services, token)


def _accept_as(services: Services, token: str, email: str) -> None:
    ui.label(f"Signed in as {email}.")

    @notify_errors
    async def accept() -> None:
        state = await current_state(services)
        sid = session_id()
        if state is None or sid is None:
            ui.navigate.to("/login")
            return
        joined = await services.identity.invites.accept(token, state.user.id)
        await services.identity.sessions.switch(sid, joined.tenant_slug)
        ui.navigate.to(DEFAULT_LANDING)

    ui.button("Join", on_click=accept).props('data-testid="invite-accept"')


def _new_account(services: Services, token: str, preview: InvitePreview) -> None:
    ui.label("New here? Create your account:").classes("font-medium")

    async def create(newcomer: Newcomer) -> None:
        try:
            user, joined = await services.identity.invites.sign_up(
                token, newcomer.email, newcomer.password.get_secret_value(), display_name=newcomer.name
            )
        except InvalidInput as exc:  # core calls the name `display_name`
            problems = [Problem("name" if p.field == "display_name" else p.field, p.message) for p in exc.problems]
            raise InvalidInput(str(exc), problems=problems) from exc
        session = await services.identity.sessions.create(user.id, joined.tenant_id)
        ui.navigate.to(hand_over(session, DEFAULT_LANDING))

    email = autocomplete("username", "email")
    if preview.email:  # only that address can accept it
        email = FieldOptions(read_only=True, after=email.after, help="The invitation is for this address.")
    ModelForm(
        Newcomer,
        value={"email": preview.email} if preview.email else None,
        on_submit=create,
        submit_label="Create account and join",
        testid="join",
        fields={"name": FieldOptions(label="Your name"), "email": email},
    )


def _existing_account(services: Services, token: str) -> None:
    ui.label("Have an account? Sign in to join:").classes("font-medium")

    async def sign_in_and_join(credentials: Credentials) -> None:
        user = await services.identity.accounts.authenticate(
            credentials.email, credentials.password.get_secret_value(), address=client_address()
        )
        joined = await services.identity.invites.accept(token, user.id)
        session = await services.identity.sessions.create(user.id, joined.tenant_id)
        ui.navigate.to(hand_over(session, DEFAULT_LANDING))

    ModelForm(
        Credentials,
        on_submit=sign_in_and_join,
        submit_label="Sign in and join",
        testid="join-login",
        fields=CREDENTIAL_FIELDS,
    )
