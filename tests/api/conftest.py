"""API fixtures: the real app (every router) over httpx, on SQLite and PostgreSQL.

`identity_settings` uses cheap Argon2 parameters so sign-ups stay fast; everything else
is the production code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from api.app import install_api
from core.settings import AppSettings, AuthSettings, OIDCSettings, RedisSettings, SecuritySettings
from wiring.services import Services, build_services

TEST_SECRET = "test-secret-key-for-tokens-0123456789abcdef"
PASSWORD = "correct horse battery"


def identity_settings(tmp_path: Path, db_url: str, **auth: object) -> AppSettings:
    """Settings for identity tests: a fixed secret, fast Argon2, no Redis, no OIDC unless asked."""
    settings = AppSettings(
        env="test",
        data_dir=tmp_path,
        security=SecuritySettings(secret_key=SecretStr(TEST_SECRET), master_keys=SecretStr("")),
        auth=AuthSettings(argon2_time_cost=1, argon2_memory_cost_kib=64, argon2_parallelism=1, **auth),  # type: ignore[arg-type]  # pydantic validates the overrides
        oidc=OIDCSettings(issuer="", client_id=""),
        redis=RedisSettings(url=""),
    )
    settings.db.url = db_url
    return settings


@asynccontextmanager
async def api_client(settings: AppSettings) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The whole API (every router) for `settings`, migrated, over httpx; closed afterwards."""
    built = build_services(settings)
    await built.start()
    application = FastAPI()
    install_api(application, built)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test") as http:
            yield http, built
    finally:
        await built.aclose()


@pytest.fixture
async def services(db_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    """Migrated services on each database backend."""
    built = build_services(identity_settings(tmp_path, db_url))
    await built.start()
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
def app(services: Services) -> FastAPI:
    application = FastAPI()
    install_api(application, services)
    return application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


@dataclass
class Account:
    """A signed-up user as an API client sees them."""

    email: str
    tenant: str
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


async def sign_up(client: httpx.AsyncClient, email: str, tenant: str) -> Account:
    """Sign up through the API and return the tokens."""
    response = await client.post(
        "/api/auth/signup",
        json={"email": email, "password": PASSWORD, "tenant_slug": tenant, "tenant_name": tenant.title()},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(email, tenant, body["access_token"], body["refresh_token"])


async def log_in(client: httpx.AsyncClient, email: str, tenant: str | None = None) -> Account:
    payload = {"email": email, "password": PASSWORD} | ({"tenant": tenant} if tenant else {})
    response = await client.post("/api/auth/login", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    return Account(email, body["tenant"], body["access_token"], body["refresh_token"])
