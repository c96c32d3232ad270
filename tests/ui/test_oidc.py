"""`ui.oidc` when the provider is misconfigured or away: the login route ends on /login with a reason.

The routes run in-process on a bare Starlette app with the session middleware NiceGUI
adds; the provider is the real one from tests/fixtures, with its discovery document bent.
(The journeys that work, and the attacks, are in tests/e2e/test_oidc.py.)
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from core.settings import AppSettings, OIDCSettings, SecuritySettings
from tests.fixtures.oidc_provider import OIDCProvider, running_provider
from ui.oidc import CALLBACK_PATH, LOGIN_PATH, OIDCSignIn
from ui.session import take_login_error
from wiring.services import build_services

APP = "http://app.example"


@pytest.fixture(scope="module")
def provider() -> Iterator[OIDCProvider]:
    with running_provider() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_script(provider: OIDCProvider) -> None:
    provider.reset()


async def _client(tmp_path: Path, issuer: str, client_id: str = "crewcanvas-test") -> AsyncIterator[httpx.AsyncClient]:
    settings = AppSettings(
        env="test",
        data_dir=tmp_path / "data",
        base_url=APP,
        security=SecuritySettings(secret_key=SecretStr("s" * 40)),
        oidc=OIDCSettings(issuer=issuer, client_id=client_id, client_secret=SecretStr("secret")),
    )
    services = build_services(settings)
    flow = OIDCSignIn(services, settings.oidc)

    async def login_page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(take_login_error(request) or "")

    app = Starlette(
        routes=[
            Route(LOGIN_PATH, flow.login),
            Route(CALLBACK_PATH, flow.callback, name="oidc_callback"),
            Route("/login", login_page),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key="k" * 40)],
    )
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as client:
            yield client
    finally:
        await services.aclose()


@pytest.fixture
async def client(tmp_path: Path, provider: OIDCProvider) -> AsyncIterator[httpx.AsyncClient]:
    async for each in _client(tmp_path, provider.issuer):
        yield each


async def refused_with(client: httpx.AsyncClient, url: str) -> str:
    """Follow `url` to the login page; returns the message it shows."""
    response = await client.get(url)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/login?next="), location
    shown = await client.get(location)
    again = await client.get(location)
    assert again.text == ""  # shown once
    return shown.text


async def test_login_goes_to_the_provider_with_state_nonce_and_pkce(
    client: httpx.AsyncClient, provider: OIDCProvider
) -> None:
    response = await client.get(LOGIN_PATH, params={"next": "/members"})
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(f"{provider.issuer}/authorize?")
    params = location.params
    assert params["redirect_uri"] == f"{APP}{CALLBACK_PATH}"
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 32
    assert params["nonce"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"issuer": "https://impostor.invalid"}, "misconfigured"),
        ({"id_token_signing_alg_values_supported": ["HS256", "none"]}, "misconfigured"),
        ({"jwks_uri": None}, "misconfigured"),
    ],
    ids=["foreign-issuer", "symmetric-or-no-signature", "no-jwks"],
)
async def test_misconfigured_provider_ends_on_the_login_page(
    client: httpx.AsyncClient, provider: OIDCProvider, overrides: dict[str, Any], message: str
) -> None:
    provider.discovery_overrides.update(overrides)
    assert message in await refused_with(client, f"{LOGIN_PATH}?next=/members")
    assert provider.authorization_requests == []


async def test_unreachable_provider_ends_on_the_login_page(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket closes
    async for client in _client(tmp_path, closed):
        assert "cannot be reached" in await refused_with(client, LOGIN_PATH)


async def test_callback_that_nobody_started_ends_on_the_login_page(client: httpx.AsyncClient) -> None:
    message = await refused_with(client, f"{CALLBACK_PATH}?code=abc&state=xyz&next=https://evil.example/")
    assert "not started in this browser" in message


async def test_provider_error_in_the_callback_is_explained(client: httpx.AsyncClient) -> None:
    message = await refused_with(client, f"{CALLBACK_PATH}?error=access_denied&state=xyz")
    assert "did not allow" in message
