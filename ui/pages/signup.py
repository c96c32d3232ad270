"""/signup: create an account together with a new workspace you own."""

from __future__ import annotations

from nicegui import ui
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from starlette.responses import RedirectResponse, Response

from core.auth.passwords import check_password_policy
from core.errors import InvalidInput, Problem
from core.text import Name
from ui.forms import FieldOptions, ModelForm
from ui.layout import frame
from ui.pages.login import autocomplete
from ui.pages.members import checked_email
from ui.pages.workspaces import ID_HELP, checked_workspace_id, follow_name, taken_problem
from ui.session import DEFAULT_LANDING, current_state
from ui.sign_in import hand_over
from ui.tenant_page import Pages, page

#: Core's names for the fields, as this form calls them.
CORE_FIELDS = {"tenant_slug": "workspace_id", "tenant_name": "workspace_name", "display_name": "name"}


def checked_password(value: SecretStr) -> SecretStr:
    """A new password that meets the policy, or a ValueError saying what it lacks."""
    try:
        check_password_policy(value.get_secret_value())
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    return value


class NewAccount(BaseModel):
    """The sign-up form."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(default="", description="How others in your workspaces see you (optional).")
    email: str = Field(max_length=320)
    password: SecretStr = Field(description="8 characters or more.")
    workspace_name: Name = Field(min_length=1, description="Your team or project, e.g. 'Acme Research'.")
    workspace_id: str = Field(description=ID_HELP)

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

    @field_validator("workspace_id")
    @classmethod
    def _workspace_id(cls, value: str) -> str:
        return checked_workspace_id(value)


def in_form_words(exc: InvalidInput) -> InvalidInput:
    """`exc` with core's field names replaced by this form's, so each problem shows under its field."""
    problems = [Problem(CORE_FIELDS.get(p.field, p.field), p.message) for p in exc.problems]
    return InvalidInput(str(exc), problems=problems)


def register(pages: Pages) -> None:
    services = pages.services

    @page("/signup")
    async def signup_page() -> Response | None:
        if await current_state(services) is not None:
            return RedirectResponse(DEFAULT_LANDING, status_code=303)

        async def submit(new: NewAccount) -> None:
            await taken_problem(services, new.workspace_id, "workspace_id")
            try:
                user, membership = await services.identity.accounts.signup(
                    new.email,
                    new.password.get_secret_value(),
                    tenant_slug=new.workspace_id,
                    tenant_name=new.workspace_name,
                    display_name=new.name,
                )
            except InvalidInput as exc:
                raise in_form_words(exc) from exc
            session = await services.identity.sessions.create(user.id, membership.tenant_id)
            ui.navigate.to(hand_over(session, DEFAULT_LANDING))

        with frame("Create an account"), ui.card().classes("w-full max-w-md"):
            if not services.settings.auth.signup_enabled:
                ui.label("Sign-up is closed here. Ask an administrator for an invitation link.").props(
                    'data-testid="signup-closed"'
                )
                return None
            form = ModelForm(
                NewAccount,
                on_submit=submit,
                submit_label="Create account",
                testid="signup",
                fields={
                    "name": FieldOptions(label="Your name"),
                    "email": autocomplete("username", "email"),
                    "password": FieldOptions(label="Password"),
                    "workspace_name": FieldOptions(label="Workspace name"),
                    "workspace_id": FieldOptions(label="Workspace id", placeholder="lowercase letters, digits, _"),
                },
            )
            follow_name(form, "workspace_name", "workspace_id")
            with ui.row().classes("gap-1 text-sm"):
                ui.label("Have an account?")
                ui.link("Sign in", "/login").props('data-testid="to-login"')
        return None
