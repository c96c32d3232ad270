"""Schema migrations: the control plane first, then every tenant, in parallel with a bound.

Each tenant keeps its own Alembic version table inside its schema (or file), so a run
that failed half-way is resumed simply by running it again: finished tenants are
already at head and cost one query.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, select

from db.base import TENANT_SCHEMA_PLACEHOLDER
from db.database import Database
from db.errors import MigrationFailed
from db.models.control import Tenant
from db.slugs import schema_for

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


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


def head_revision(kind: str) -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS / kind))
    return ScriptDirectory.from_config(config).get_current_head()


async def upgrade_control(db: Database) -> None:
    """Bring the control-plane tables to head."""
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config("control", sync, None), "head"))


async def upgrade_tenant(db: Database, slug: str) -> None:
    """Bring one tenant's schema (or file) to head."""
    schema = schema_for(slug) if db.is_postgres else None
    engine = await db.tenant_engine(slug)
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config("tenant", sync, schema), "head"))


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
    bound = asyncio.Semaphore(max(1, concurrency))

    async def one(slug: str) -> None:
        async with bound:
            try:
                await db.create_tenant_storage(slug)
                await upgrade_tenant(db, slug)
            except Exception as exc:  # one tenant's failure must not stop the others
                log.exception("migration of tenant %s failed", slug)
                report.failures[slug] = f"{type(exc).__name__}: {exc}"
                if on_progress:
                    on_progress(slug, report.failures[slug])
                return
            report.migrated.append(slug)
            if on_progress:
                on_progress(slug, None)

    await asyncio.gather(*(one(slug) for slug in slugs))
    if report.failures:
        raise MigrationFailed(report.failures)
    return report


__all__ = [
    "TENANT_SCHEMA_PLACEHOLDER",
    "MigrationReport",
    "head_revision",
    "migrate_all",
    "upgrade_control",
    "upgrade_tenant",
]
