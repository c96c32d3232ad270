"""Tenant isolation through the session factory, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from core.errors import InvalidInput
from core.tenants import TenantService
from db.database import Database
from db.migrate import upgrade_control
from db.models import Agent, Tenant

# Every tenant starts with the example crew's agent; these tests look only at the rows they write.
EXAMPLE_AGENT = "assistant"
OWN = Agent.name != EXAMPLE_AGENT

TENANTS = [f"tenant{i:02d}" for i in range(20)]


@pytest.fixture
async def small_pool_db(db_url: str, tmp_path: Path) -> Database:
    """A database whose pool holds two connections and no overflow."""
    database = Database(db_url, data_dir=tmp_path, pool_size=2, max_overflow=0)
    await upgrade_control(database)
    yield database  # type: ignore[misc]  # async generator fixture
    await database.dispose()


async def schema_state(db: Database) -> tuple[str, str]:
    """The connection's own idea of its schema: must never carry a tenant."""
    async with db.engine.connect() as conn:
        if db.is_postgres:
            row = (await conn.execute(text("SELECT current_schema(), current_setting('search_path')"))).one()
            return row[0], row[1]
        return "main", "main"


async def test_interleaved_reads_and_writes_stay_in_their_own_tenant(small_pool_db: Database) -> None:
    db = small_pool_db
    service = TenantService(db)
    for slug in TENANTS:
        await service.create(slug)
    default_schema = await schema_state(db)
    rng = random.Random(20)
    written: dict[str, int] = dict.fromkeys(TENANTS, 0)

    async def write(slug: str, n: int) -> None:
        async with db.tenant_session(slug) as session:
            session.add(Agent(name=f"{slug}-{n}", role=slug, goal="isolation"))
            await session.commit()

    async def read(slug: str) -> None:
        async with db.tenant_session(slug) as session:
            roles = set(await session.scalars(select(Agent.role).where(OWN)))
            assert roles <= {slug}, f"{slug} saw rows of {roles - {slug}}"
            if db.is_postgres:
                row = (await session.execute(text("SELECT current_schema(), current_setting('search_path')"))).one()
                assert (row[0], row[1]) == default_schema

    operations = []
    for n in range(500):
        slug = rng.choice(TENANTS)
        if rng.random() < 0.5:
            written[slug] += 1
            operations.append(write(slug, n))
        else:
            operations.append(read(slug))
    await asyncio.gather(*operations)

    for slug in TENANTS:
        async with db.tenant_session(slug) as session:
            roles = list(await session.scalars(select(Agent.role).where(OWN)))
        assert roles == [slug] * written[slug]
    if db.is_postgres:  # and the rows are physically where they belong
        async with db.engine.connect() as conn:
            for slug in TENANTS:
                count = await conn.scalar(
                    text(f'SELECT count(*) FROM "tenant_{slug}".agents WHERE role = :r'), {"r": slug}
                )
                total = await conn.scalar(
                    text(f'SELECT count(*) FROM "tenant_{slug}".agents WHERE name <> :example'),
                    {"example": EXAMPLE_AGENT},
                )
                assert count == total == written[slug]
            public_agents = await conn.scalar(
                text(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'agents'"
                )
            )
            assert public_agents == 0
    assert await schema_state(db) == default_schema


async def test_failed_statement_in_savepoint_leaves_connection_clean(db_url: str, tmp_path: Path) -> None:
    db = Database(db_url, data_dir=tmp_path, pool_size=1, max_overflow=0)
    try:
        await upgrade_control(db)
        service = TenantService(db)
        await service.create("alpha")
        await service.create("beta")
        async with db.tenant_session("alpha") as session:
            session.add(Agent(name="one", role="alpha", goal="g"))
            await session.flush()
            with pytest.raises(IntegrityError):
                async with session.begin_nested():
                    session.add(Agent(name="one", role="alpha", goal="duplicate"))
                    await session.flush()
            await session.commit()
        async with db.tenant_session("alpha") as session:
            session.add(Agent(name="one", role="alpha", goal="duplicate"))
            with pytest.raises(IntegrityError):
                await session.commit()  # fails the whole transaction, no savepoint
        async with db.tenant_session("beta") as session:  # same single pooled connection
            assert list(await session.scalars(select(Agent.name).where(OWN))) == []
            session.add(Agent(name="two", role="beta", goal="g"))
            await session.commit()
        async with db.tenant_session("alpha") as session:
            assert list(await session.scalars(select(Agent.name).where(OWN))) == ["one"]
    finally:
        await db.dispose()


async def test_cancelled_query_leaves_pool_clean_for_next_tenant(db_url: str, tmp_path: Path) -> None:
    db = Database(db_url, data_dir=tmp_path, pool_size=1, max_overflow=0)
    try:
        await upgrade_control(db)
        service = TenantService(db)
        await service.create("alpha")
        await service.create("beta")
        async with db.tenant_session("beta") as session:
            session.add(Agent(name="b", role="beta", goal="g"))
            await session.commit()
        slow = (
            "SELECT pg_sleep(5)"
            if db.is_postgres
            else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000000) SELECT max(x) FROM c"
        )
        started = asyncio.Event()

        async def long_query() -> None:
            async with db.tenant_session("alpha") as session:
                session.add(Agent(name="never", role="alpha", goal="g"))
                await session.flush()
                started.set()
                await session.execute(text(slow))
                await session.commit()

        task = asyncio.create_task(long_query())
        await started.wait()
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(10):
            async with db.tenant_session("beta") as session:
                assert list(await session.scalars(select(Agent.name).where(OWN))) == ["b"]
            async with db.tenant_session("alpha") as session:
                assert (
                    list(await session.scalars(select(Agent.name).where(OWN))) == []
                )  # the flushed row was rolled back
        if db.is_postgres:
            assert await schema_state(db) == ("public", '"$user", public')
    finally:
        await db.dispose()


HOSTILE = ["public", "pg_catalog", "a;drop schema x", "a" * 200, "ténant", "tenant_x\x00", "Robert'); DROP TABLE"]


@pytest.mark.parametrize("slug", HOSTILE)
async def test_hostile_slugs_are_refused_and_create_nothing(db: Database, slug: str) -> None:
    async def storage() -> set[str]:
        if db.is_postgres:
            async with db.engine.connect() as conn:
                return set(await conn.scalars(text("SELECT schema_name FROM information_schema.schemata")))
        return {p.name for p in db.data_dir.rglob("*")}

    before = await storage()
    with pytest.raises(InvalidInput, match="tenant slug"):
        await TenantService(db).create(slug)
    assert await storage() == before
    async with db.control_session() as session:
        assert await session.scalar(select(func.count()).select_from(Tenant)) == 0
