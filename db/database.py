"""Engines and tenant-scoped sessions.

Tenant scoping happens here and nowhere else. PostgreSQL: one engine and pool for
everybody; a tenant session binds to `engine.execution_options(schema_translate_map=
{"tenant": "tenant_<slug>"})`, so every statement is schema-qualified and no
connection state (search_path) can leak through the pool. SQLite: one file per
tenant under `data/tenants/`, the placeholder schema mapped to the file's own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.schema import CreateSchema, DropSchema

from db.base import TENANT_SCHEMA_PLACEHOLDER
from db.errors import TenantStorageMissing
from db.slugs import schema_for, validate_slug


class Database:
    """Owns the engines; hands out control-plane and tenant-scoped sessions."""

    def __init__(
        self,
        url: str,
        *,
        data_dir: Path = Path("data"),
        pool_size: int = 10,
        max_overflow: int = 10,
        echo: bool = False,
    ) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect not in {"postgresql", "sqlite"}:
            raise ValueError(f"unsupported database {self.dialect!r}: use postgresql+asyncpg or sqlite+aiosqlite")
        self.data_dir = data_dir
        # Statement parameters never reach an error message or a log line: they hold password
        # hashes, key digests and user data (also with `echo`, which logs the SQL only).
        self._engine_kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.dialect == "postgresql":
            self._engine_kwargs |= {"pool_size": pool_size, "max_overflow": max_overflow, "pool_pre_ping": True}
        if self.dialect == "sqlite" and self.url.database not in (None, "", ":memory:"):
            private_file(Path(self.url.database))
        self.engine = self._create_engine(self.url)
        self._tenant_engines: dict[str, AsyncEngine] = {}
        self._tenant_engines_lock = asyncio.Lock()
        self._control_sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def _create_engine(self, url: Any) -> AsyncEngine:
        engine = create_async_engine(url, **self._engine_kwargs)
        if self.dialect == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine

    # -- control plane -------------------------------------------------------------------

    @asynccontextmanager
    async def control_session(self) -> AsyncIterator[AsyncSession]:
        """A session on the shared control-plane tables."""
        async with self._control_sessions() as session:
            yield session

    # -- tenants ---------------------------------------------------------------------------

    def tenant_file(self, slug: str) -> Path:
        return (self.data_dir / "tenants" / f"{validate_slug(slug)}.db").resolve()

    async def tenant_engine(self, slug: str) -> AsyncEngine:
        """The engine, already scoped by `schema_translate_map`, for one tenant."""
        validate_slug(slug)
        if self.is_postgres:
            return self.engine.execution_options(schema_translate_map={TENANT_SCHEMA_PLACEHOLDER: schema_for(slug)})
        engine = self._tenant_engines.get(slug)
        if engine is None:
            async with self._tenant_engines_lock:
                engine = self._tenant_engines.get(slug)
                if engine is None:
                    path = self.tenant_file(slug)
                    if path.exists():  # made before files were private: tighten them now
                        private_file(path)
                    url = self.url.set(database=str(path))
                    base = self._create_engine(url)
                    engine = base.execution_options(schema_translate_map={TENANT_SCHEMA_PLACEHOLDER: None})
                    self._tenant_engines[slug] = engine
        return engine

    @asynccontextmanager
    async def tenant_session(self, slug: str) -> AsyncIterator[AsyncSession]:
        """A session whose every statement runs against this tenant's schema (or file)."""
        if not self.is_postgres and not self.tenant_file(slug).exists():
            raise TenantStorageMissing(f"tenant {slug!r} has no database file; was it created?")
        engine = await self.tenant_engine(slug)
        async with AsyncSession(engine, expire_on_commit=False) as session:
            yield session

    async def tenant_storage_exists(self, slug: str) -> bool:
        if not self.is_postgres:
            return self.tenant_file(slug).exists()
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"),
                {"name": schema_for(slug)},
            )
        return found is not None

    async def create_tenant_storage(self, slug: str) -> None:
        """Create the empty schema (PostgreSQL) or file (SQLite); migrations fill it."""
        if self.is_postgres:
            async with self.engine.begin() as conn:
                await conn.execute(CreateSchema(schema_for(slug), if_not_exists=True))
            return
        private_file(self.tenant_file(slug))
        engine = await self.tenant_engine(slug)
        async with engine.begin() as conn:
            await conn.execute(text("SELECT 1"))

    async def drop_tenant_storage(self, slug: str) -> None:
        """Drop the tenant's schema with everything in it, or delete its file."""
        if self.is_postgres:
            async with self.engine.begin() as conn:
                await conn.execute(DropSchema(schema_for(slug), cascade=True, if_exists=True))
            return
        engine = self._tenant_engines.pop(slug, None)
        if engine is not None:
            await engine.dispose()
        for suffix in ("", *_SQLITE_COMPANIONS):
            Path(str(self.tenant_file(slug)) + suffix).unlink(missing_ok=True)

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            return (await conn.scalar(text("SELECT 1"))) == 1

    async def dispose(self) -> None:
        for engine in self._tenant_engines.values():
            await engine.dispose()
        self._tenant_engines.clear()
        await self.engine.dispose()


_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) readable by this user only (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """Make sure the SQLite file `path` exists with mode 0600 in a 0700 directory.

    SQLite creates a database with the process umask (usually 0644); its -wal, -shm and
    journal files copy the database file's mode, so setting it here covers them too.
    """
    private_dir(path.parent)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for companion in (path, *(Path(f"{path}{suffix}") for suffix in _SQLITE_COMPANIONS)):
        if companion.exists():
            os.chmod(companion, 0o600)
    return path


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling skips DDL and savepoints; we emit BEGIN ourselves
    # (see `_sqlite_begin`) so migrations and savepoints are transactional as on PostgreSQL.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit survives the app
    # crashing, and only an OS crash or power loss can undo the last ones (SQLite's own advice).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")
