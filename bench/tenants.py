"""Tenant provisioning and scoping cost on PostgreSQL (127.0.0.1:5432).

1. Create and migrate 200 tenant schemas through `migrate_all` (worker processes),
   print total seconds and milliseconds per tenant; also a few one-by-one
   `TenantService.create` calls, the path sign-up takes.
2. Per-query cost of tenant scoping: the same ORM query through a tenant session
   (`schema_translate_map`) and through an unscoped session on a schema literally
   named `tenant`, printed as a ratio measured in the same run.

Run: .venv/bin/python bench/tenants.py [--tenants 200] [--queries 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

sys.path.insert(0, str(Path(__file__).parents[1]))

from core.tenants import TenantService
from db.database import Database
from db.migrate import migrate_all, upgrade_control
from db.models import Agent, Tenant

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


async def timed_queries(session_factory, count: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        async with session_factory() as session:
            (await session.scalars(select(Agent).where(Agent.name == "a").limit(1))).first()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def main(tenants: int, queries: int, workers: int) -> None:
    name = f"cc_bench_{os.getpid()}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", pool_size=4, max_overflow=0)
    try:
        await upgrade_control(db)
        async with db.control_session() as session:
            session.add_all(Tenant(slug=f"bench{i:04d}", name=f"bench {i}") for i in range(tenants))
            await session.commit()
        started = time.perf_counter()
        report = await migrate_all(db, concurrency=workers)
        total = time.perf_counter() - started
        print(
            f"migrate_all: {len(report.migrated)} tenant schemas in {total:.1f} s "
            f"({total * 1000 / tenants:.0f} ms per tenant, {workers} worker processes)"
        )

        service = TenantService(db)
        one_by_one = []
        for i in range(10):
            started = time.perf_counter()
            await service.create(f"single{i:02d}")
            one_by_one.append((time.perf_counter() - started) * 1000)
        print(f"TenantService.create one by one: p50 {statistics.median(one_by_one):.0f} ms")

        async with db.engine.begin() as conn:  # an unscoped twin: a schema literally named "tenant"
            await conn.execute(text('CREATE SCHEMA IF NOT EXISTS "tenant"'))
        await _migrate_literal(db)
        scoped_engine = await db.tenant_engine("bench0000")

        def scoped() -> AsyncSession:
            return AsyncSession(scoped_engine)

        def unscoped() -> AsyncSession:
            return AsyncSession(db.engine)

        await timed_queries(scoped, 200)  # warm both statement caches and the pool
        await timed_queries(unscoped, 200)
        a = await timed_queries(scoped, queries)
        b = await timed_queries(unscoped, queries)
        ps, pu = statistics.median(a), statistics.median(b)
        print(f"query p50: scoped {ps:.3f} ms, unscoped {pu:.3f} ms, ratio scoped/unscoped {ps / pu:.3f}")
    finally:
        await db.dispose()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def _migrate_literal(db: Database) -> None:
    """Migrate the literal `tenant` schema through a connection with no translation."""
    from alembic import command

    from db.migrate import _ALEMBIC_LOCK, _config

    with _ALEMBIC_LOCK:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_config("tenant", sync, "tenant"), "head"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.tenants, args.queries, args.workers))
