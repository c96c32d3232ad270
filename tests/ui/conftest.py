"""Page tests with NiceGUI's simulated user: the real pages and services, in process, no browser.

- `ui_services`: migrated services on SQLite (cheap Argon2, no Redis), like the API tests'.
- `user`: a NiceGUI `User` against every page of the app (`ui.app.install_ui`); JavaScript
  does not run, so what needs a browser lives in tests/e2e.
- `sign_in(user, services, email=..., role=...)`: an account (with a workspace of its own,
  or as a member of `workspace` with `role`) signed in through the real hand-over route.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from nicegui import core, ui
from nicegui.functions.download import download
from nicegui.functions.navigate import Navigate
from nicegui.functions.notify import notify
from nicegui.testing.general import nicegui_reset_globals, prepare_simulation
from nicegui.testing.user import User
from pydantic import SecretStr

from core.context import Role, TenantContext
from core.providers import ProviderInput, ProviderView
from core.settings import AppSettings
from tests.api.conftest import PASSWORD, identity_settings
from wiring.services import Services, build_services


def ui_settings(tmp_path: Path, *, loopback_llm: bool = False, master_key: bool = False) -> AppSettings:
    """The page tests' settings: SQLite, cheap Argon2; optionally LLM endpoints on loopback allowed
    (the scripted LLM server) and a master key (to seal provider keys)."""
    settings = identity_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'control.db'}")
    settings.llm.allow_private_endpoints = loopback_llm
    if master_key:
        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        settings.security.master_keys = SecretStr(f"test:{key}")
    return settings


@asynccontextmanager
async def started(settings: AppSettings) -> AsyncIterator[Services]:
    """Services built from `settings`, migrated, closed afterwards."""
    built = build_services(settings)
    await built.start()
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
async def ui_services(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Services]:
    """The services; a module marked `pytest.mark.ui_settings(loopback_llm=True, master_key=True)` gets those."""
    marker = request.node.get_closest_marker("ui_settings")
    async with started(ui_settings(tmp_path, **(marker.kwargs if marker else {}))) as built:
        yield built


@pytest.fixture
async def user(ui_services: Services, caplog: pytest.LogCaptureFixture) -> AsyncIterator[User]:
    """A simulated browser on the whole UI; the test fails if a page logged an ERROR."""
    handlers = dict(core.app.exception_handlers)  # the reset keeps them; our not-found page replaces one
    with nicegui_reset_globals():
        os.environ["NICEGUI_USER_SIMULATION"] = "true"
        try:
            from ui.app import install_ui  # imported afresh: the reset forgets page modules

            install_ui(ui_services)
            prepare_simulation()
            ui.run(storage_secret="simulated secret")
            async with core.app.router.lifespan_context(core.app):
                transport = httpx.ASGITransport(core.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                    yield User(client)
        finally:
            core.app.exception_handlers.clear()
            core.app.exception_handlers.update(handlers)
            os.environ.pop("NICEGUI_USER_SIMULATION", None)
            ui.navigate = Navigate()
            ui.notify = notify
            ui.download = download
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    if errors:
        pytest.fail(f"a page logged an error: {errors[0].getMessage()}", pytrace=False)


@dataclass(frozen=True)
class SignedIn:
    email: str
    ctx: TenantContext


async def sign_in(
    user: User,
    services: Services,
    *,
    email: str | None = None,
    workspace: TenantContext | None = None,
    role: Role = Role.OWNER,
    landing: str = "/",
) -> SignedIn:
    """Sign `user` in as a new account: owner of a new workspace, or `role` in `workspace`."""
    from ui.sign_in import hand_over

    email = email or f"user{secrets.token_hex(3)}@example.com"
    slug = f"ws_{secrets.token_hex(4)}"
    account, membership = await services.identity.accounts.signup(
        email, PASSWORD, tenant_slug=slug, tenant_name=f"Workspace {slug}"
    )
    tenant_id = membership.tenant_id
    if workspace is not None:
        invite = await services.identity.invites.create(workspace, role)
        joined = await services.identity.invites.accept(invite.token, account.id)
        tenant_id = joined.tenant_id
    session = await services.identity.sessions.create(account.id, tenant_id)
    state = await services.identity.sessions.resolve(session)
    assert state is not None
    assert state.context is not None
    await user.open(hand_over(session, landing))
    return SignedIn(email, state.context)


async def scripted_provider(services: Services, ctx: TenantContext, base_url: str) -> ProviderView:
    """A provider named `scripted` with the model `m1` on the scripted LLM server at `base_url`."""
    return await services.llm_stack.providers.create(
        ctx,
        ProviderInput.model_validate(
            {"name": "scripted", "kind": "openai_compatible", "base_url": base_url, "models": ["m1"]}
        ),
    )
