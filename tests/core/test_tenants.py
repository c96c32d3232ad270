"""TenantService: creating a tenant creates and migrates its storage; deleting drops it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.errors import Conflict, InvalidInput, NotFound
from core.tenants import TenantService
from db.database import Database
from db.migrate import head_revision, tenant_revision
from db.models import Agent


async def test_create_makes_a_migrated_tenant(db: Database) -> None:
    info = await TenantService(db).create("acme", "Acme Inc.")
    assert (info.slug, info.name, info.status) == ("acme", "Acme Inc.", "active")
    assert await db.tenant_storage_exists("acme")
    assert await tenant_revision(db, "acme") == head_revision("tenant")
    assert [t.slug for t in await TenantService(db).list()] == ["acme"]


async def test_duplicate_slug_is_a_conflict(db: Database) -> None:
    service = TenantService(db)
    await service.create("acme")
    with pytest.raises(Conflict, match="exists already"):
        await service.create("acme")


async def test_delete_needs_the_slug_repeated(db: Database) -> None:
    service = TenantService(db)
    await service.create("acme")
    with pytest.raises(InvalidInput, match="confirm"):
        await service.delete("acme", confirm="yes")
    assert await db.tenant_storage_exists("acme")


async def test_delete_drops_the_storage_and_the_record(db: Database) -> None:
    service = TenantService(db)
    await service.create("acme")
    await service.create("globex")
    async with db.tenant_session("globex") as session:
        session.add(Agent(name="stays", role="r", goal="g"))
        await session.commit()
    await service.delete("acme", confirm="acme")
    assert not await db.tenant_storage_exists("acme")
    with pytest.raises(NotFound):
        await service.get("acme")
    async with db.tenant_session("globex") as session:
        assert list(await session.scalars(select(Agent.name).order_by(Agent.name))) == ["assistant", "stays"]
    await service.create("acme")  # the name is free again, and starts afresh: only the example crew's agent
    async with db.tenant_session("acme") as session:
        assert list(await session.scalars(select(Agent.name))) == ["assistant"]


async def test_unknown_tenant_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        await TenantService(db).get("nobody")
