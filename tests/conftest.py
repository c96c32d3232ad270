"""Shared fixtures: real PostgreSQL on 127.0.0.1:5432 and SQLite, side by side."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from db.database import Database
from db.migrate import upgrade_control

for _name, _value in {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_TESTING": "true",
    "OTEL_SDK_DISABLED": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}.items():
    os.environ.setdefault(_name, _value)

# NiceGUI's test plugin: browser storage in a temporary folder, and its `user` fixture (tests/ui has its own).
pytest_plugins = ["nicegui.testing.user_plugin"]

PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PG_HOST = "127.0.0.1:5432"


async def create_pg_database() -> str:
    """Create an empty database of our own; returns its name."""
    name = f"cc_test_{os.getpid()}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def pg_url(name: str) -> str:
    return f"postgresql+asyncpg://postgres@{PG_HOST}/{name}"


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = await create_pg_database()
    try:
        yield name
    finally:
        await drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database on each backend: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"
        return
    name = await create_pg_database()
    try:
        yield pg_url(name)
    finally:
        await drop_pg_database(name)


@pytest.fixture
async def db(db_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated control plane on each backend."""
    database = Database(db_url, data_dir=tmp_path, pool_size=5, max_overflow=5)
    await upgrade_control(database)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CrewCanvas settings inherited from the shell; `data_dir` in a temporary folder."""
    for name in list(os.environ):
        if name.startswith(
            (
                "APP_",
                "DB_",
                "REDIS_",
                "MONGODB_",
                "SANDBOX_",
                "LLM_",
                "SECURITY_",
                "AUTH_",
                "OIDC_",
                "SMTP_",
                "TOOLS_",
                "EXECUTOR_",
            )
        ) or name in {
            "DATABASE_URL",
            "MASTER_KEYS",
            "SECRET_KEY",
        }:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APP_DATA_DIR", str(tmp_path / "data"))
    return tmp_path
