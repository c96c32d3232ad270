"""Schema migrations: the control plane first, then every tenant, in parallel with a bound.

Each tenant keeps its own Alembic version table inside its schema (or file), so a run
that failed half-way is resumed simply by running it again: finished tenants are
already at head and cost one query.

Alembic keeps its `context` and `op` proxies in module globals, so two migrations may
never run at once in one process: in-process runs take `_ALEMBIC_LOCK`, and parallel
runs use a pool of worker processes, each with its own small engine.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, select

from db.database import Database
from db.errors import MigrationFailed
from db.models.control import Tenant
from db.slugs import schema_for

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"

# A threading lock (not asyncio's) because it must hold across event loops in one process.
_ALEMBIC_LOCK = threading.Lock()


async def _alembic_turn() -> None:
    while not _ALEMBIC_LOCK.acquire(blocking=False):  # noqa: ASYNC110  (a thread lock has no awaitable)
        await asyncio.sleep(0.005)


@dataclass
class MigrationReport:
    """What a full migration run did."""

    migrated: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def _config(kind: str, connection: Connection, schema: str | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS / kind))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def migration_schema() -> str | None:
    """Inside a tenant migration script: the real schema (PostgreSQL) or None (SQLite).

    `op.create_table(..., schema="tenant")` is mapped by the connection's
    schema_translate_map, but Alembic's ALTER and batch operations format the schema
    name themselves, so tenant migrations pass `schema=migration_schema()` everywhere.
    """
    from alembic import context

    schema: str | None = context.config.attributes.get("schema")
    return schema


def head_revision(kind: str) -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS / kind))
    return ScriptDirectory.from_config(config).get_current_head()


async def upgrade_control(db: Database) -> None:
    """Bring the control-plane tables to head."""
    await _alembic_turn()
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_config("control", sync, None), "head"))
    finally:
        _ALEMBIC_LOCK.release()


async def upgrade_tenant(db: Database, slug: str) -> None:
    """Bring one tenant's schema (or file) to head."""
    schema = schema_for(slug) if db.is_postgres else None
    engine = await db.tenant_engine(slug)
    await _alembic_turn()
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_config("tenant", sync, schema), "head"))
    finally:
        _ALEMBIC_LOCK.release()


async def provision_tenant(db: Database, slug: str) -> None:
    """Create the tenant's storage if missing and migrate it to head."""
    await db.create_tenant_storage(slug)
    await upgrade_tenant(db, slug)


def _provision_in_worker(url: str, data_dir: str, slug: str) -> None:
    """Entry point of a worker process: its own one-connection engine, one tenant."""

    async def run() -> None:
        db = Database(url, data_dir=Path(data_dir), pool_size=1, max_overflow=0)
        try:
            await provision_tenant(db, slug)
        finally:
            await db.dispose()

    asyncio.run(run())


async def tenant_revision(db: Database, slug: str) -> str | None:
    """The revision a tenant's schema is at (None before its first migration)."""
    schema = schema_for(slug) if db.is_postgres else None
    engine = await db.tenant_engine(slug)

    def current(sync: Connection) -> str | None:
        context = MigrationContext.configure(sync, opts={"version_table_schema": schema})
        return context.get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(current)


async def migrate_all(
    db: Database,
    *,
    concurrency: int = 4,
    on_progress: Callable[[str, str | None], None] | None = None,
) -> MigrationReport:
    """Upgrade the control plane, then every tenant; raise `MigrationFailed` naming failures."""
    await upgrade_control(db)
    async with db.control_session() as session:
        slugs = list(
            await session.scalars(select(Tenant.slug).where(Tenant.status != "deleting").order_by(Tenant.slug))
        )
    report = MigrationReport()

    def record(slug: str, exc: BaseException | None) -> None:
        if exc is None:
            report.migrated.append(slug)
        else:  # one tenant's failure must not stop the others
            log.error("migration of tenant %s failed: %s", slug, exc)
            report.failures[slug] = f"{type(exc).__name__}: {exc}"
        if on_progress:
            on_progress(slug, report.failures.get(slug))

    workers = min(max(1, concurrency), len(slugs))
    if workers <= 1:
        for slug in slugs:
            try:
                await provision_tenant(db, slug)
            except Exception as exc:
                record(slug, exc)
            else:
                record(slug, None)
    else:
        loop = asyncio.get_running_loop()
        url = db.url.render_as_string(hide_password=False)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:

            async def one(slug: str) -> None:
                try:
                    await loop.run_in_executor(pool, _provision_in_worker, url, str(db.data_dir), slug)
                except Exception as exc:
                    record(slug, exc)
                else:
                    record(slug, None)

            await asyncio.gather(*(one(slug) for slug in slugs))
    if report.failures:
        raise MigrationFailed(report.failures)
    return report
