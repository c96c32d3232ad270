"""Migrations: control plane then every tenant, bounded, resumable after a failure."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from sqlalchemy import func, select, text

from core.tenants import TenantService
from db.database import Database
from db.errors import MigrationFailed
from db.migrate import _config, head_revision, migrate_all, tenant_revision, upgrade_tenant
from db.models import Tenant
from db.models.tenant import Execution, ExecutionEvent, NodeRun


async def register_without_storage(db: Database, slug: str) -> None:
    """A tenant row whose storage was never migrated (as after a crash mid-provisioning)."""
    async with db.control_session() as session:
        session.add(Tenant(slug=slug, name=slug, status="provisioning"))
        await session.commit()


async def test_migrate_all_brings_every_tenant_to_head(db: Database) -> None:
    for slug in ("one", "two", "three"):
        await register_without_storage(db, slug)
    seen: list[str] = []
    report = await migrate_all(db, concurrency=2, on_progress=lambda slug, error: seen.append(slug))
    assert sorted(report.migrated) == ["one", "three", "two"]
    assert sorted(seen) == ["one", "three", "two"]
    for slug in ("one", "two", "three"):
        assert await tenant_revision(db, slug) == head_revision("tenant")


async def test_failed_tenant_does_not_stop_the_others_and_a_rerun_resumes(db: Database) -> None:
    for slug in ("good", "broken", "other"):
        await register_without_storage(db, slug)
    # Sabotage one tenant: a table of the same name but another shape blocks its migration.
    await db.create_tenant_storage("broken")
    engine = await db.tenant_engine("broken")
    async with engine.begin() as conn:
        qualified = '"tenant_broken".agents' if db.is_postgres else "agents"
        await conn.execute(text(f"CREATE TABLE {qualified} (x INTEGER)"))

    with pytest.raises(MigrationFailed, match="broken") as info:
        await migrate_all(db, concurrency=3)
    assert set(info.value.failures) == {"broken"}
    assert await tenant_revision(db, "good") == head_revision("tenant")
    assert await tenant_revision(db, "other") == head_revision("tenant")
    assert await tenant_revision(db, "broken") is None

    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE {qualified}"))
    report = await migrate_all(db, concurrency=3)
    assert sorted(report.migrated) == ["broken", "good", "other"]
    assert await tenant_revision(db, "broken") == head_revision("tenant")


async def test_migrate_all_is_idempotent(db: Database) -> None:
    await TenantService(db).create("steady")
    await migrate_all(db)
    await migrate_all(db)
    assert await tenant_revision(db, "steady") == head_revision("tenant")


async def test_flow_engine_migration_keeps_existing_runs_and_events(db: Database) -> None:
    """t0003 adds columns to `executions` in place: the runs and events stored before it survive."""
    await db.create_tenant_storage("before")
    engine = await db.tenant_engine("before")
    schema = '"tenant_before".' if db.is_postgres else ""
    async with engine.begin() as conn:
        await conn.run_sync(
            lambda sync: command.upgrade(_config("tenant", sync, "tenant_before" if db.is_postgres else None), "t0002")
        )
    execution_id, event_id = uuid.uuid4(), uuid.uuid4()
    ids = {"e": str(execution_id), "v": str(event_id)} if db.is_postgres else {"e": execution_id.hex, "v": event_id.hex}
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"INSERT INTO {schema}executions (id, status, inputs, outputs, created_at, updated_at) "
                "VALUES (:e, 'completed', '{}', '{}', '2026-11-30 10:00:00+00', '2026-11-30 10:00:00+00')"
            ),
            ids,
        )
        await conn.execute(
            text(
                f"INSERT INTO {schema}execution_events (id, execution_id, seq, ts, type, data) "
                "VALUES (:v, :e, 1, '2026-11-30 10:00:00+00', 'execution_completed', '{}')"
            ),
            ids,
        )

    await upgrade_tenant(db, "before")

    assert await tenant_revision(db, "before") == head_revision("tenant")
    async with db.tenant_session("before") as session:
        execution = await session.get(Execution, execution_id)
        assert execution is not None
        assert (execution.last_seq, execution.options, execution.flow_id) == (0, {}, None)
        assert await session.scalar(select(func.count()).select_from(ExecutionEvent)) == 1
        assert await session.scalar(select(func.count()).select_from(NodeRun)) == 0
