"""`/api/health` answers and names the active backends, on both databases."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.app import install_api
from core.settings import AppSettings
from wiring.services import build_services


@pytest.fixture
async def client(db_url: str, tmp_path: Path) -> httpx.AsyncClient:
    settings = AppSettings(env="test", data_dir=tmp_path)
    settings.db.url = db_url
    services = build_services(settings)
    await services.start()
    app = FastAPI()
    install_api(app, services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http  # type: ignore[misc]  # async generator fixture
    await services.aclose()


async def test_health_reports_backends_and_database_check(client: httpx.AsyncClient, db_url: str) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok"}
    assert body["backends"]["database"] == ("postgresql" if db_url.startswith("postgresql") else "sqlite")
    assert "postgres@" not in response.text


async def test_health_is_degraded_when_the_database_is_gone(tmp_path: Path) -> None:
    settings = AppSettings(env="test", data_dir=tmp_path)
    settings.db.url = "postgresql+asyncpg://postgres@127.0.0.1:1/none"  # nothing listens on port 1
    services = build_services(settings)
    app = FastAPI()
    install_api(app, services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        response = await http.get("/api/health")
    await services.aclose()
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("failing")


@pytest.mark.parametrize(
    ("redis_url", "expected"), [("redis://127.0.0.1:6379/0", "ok"), ("redis://127.0.0.1:1/0", "failing")]
)
async def test_health_checks_redis_when_it_is_configured(tmp_path: Path, redis_url: str, expected: str) -> None:
    settings = AppSettings(env="test", data_dir=tmp_path)
    settings.redis.url = redis_url
    services = build_services(settings)
    app = FastAPI()
    install_api(app, services)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            body = (await http.get("/api/health")).json()
    finally:
        await services.aclose()
    assert body["backends"]["event_bus"] == "redis"
    assert body["checks"]["redis"].startswith(expected)
    assert body["status"] == "degraded"  # not started (and, on port 1, no Redis)


async def test_health_says_starting_until_storage_is_migrated_and_components_started(tmp_path: Path) -> None:
    """The app serves while its start-up runs: a readiness probe must not send traffic before it ends."""
    services = build_services(AppSettings(env="test", data_dir=tmp_path))
    app = FastAPI()
    install_api(app, services)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            before = await http.get("/api/health")
            await services.start()
            after = await http.get("/api/health")
    finally:
        await services.aclose()
    assert before.status_code == 503
    assert before.json()["checks"]["startup"].startswith("starting")
    assert after.status_code == 200
    assert "startup" not in after.json()["checks"]
