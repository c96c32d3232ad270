"""Usage records on both backends: the tenant's relational table (SQLite and PostgreSQL) and MongoDB."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from core.tenants import TenantService
from core.usage import DatabaseUsageStore, MongoUsageStore, UsageEntry, UsageStore, UsageTotals
from db.database import Database
from tests.fixtures import mongo

mongo_url = mongo.mongo_url

DAY = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["database", "mongodb"])
async def store(request: pytest.FixtureRequest, db: Database) -> AsyncIterator[UsageStore]:
    """A usage store on each backend, with tenants alpha and beta."""
    for slug in ("alpha", "beta"):
        await TenantService(db).create(slug)
    usage: UsageStore
    if request.param == "database":
        usage = DatabaseUsageStore(db)
    else:
        url = request.getfixturevalue("mongo_url")
        usage = MongoUsageStore(url, f"usage_{uuid.uuid4().hex[:8]}")
    await usage.start()
    try:
        yield usage
    finally:
        await usage.close()


def entry(tenant: str, ts: datetime, **fields: object) -> UsageEntry:
    values: dict[str, object] = {
        "tenant": tenant,
        "provider_id": uuid.uuid4(),
        "provider_kind": "openai",
        "provider_name": "main",
        "model": "gpt-x",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_usd": 0.002,
        "latency_ms": 120.0,
        "ts": ts,
    }
    return UsageEntry(**(values | fields))  # type: ignore[arg-type]  # test data, checked by the dataclass


async def test_records_round_trip_newest_first(store: UsageStore) -> None:
    execution = uuid.uuid4()
    first = entry("alpha", DAY, execution_id=execution, node_id="n1", user_id=uuid.uuid4())
    second = entry("alpha", DAY + timedelta(minutes=1), outcome="error", error="provider 'main' failed: timeout")
    await store.record(first)
    await store.record(second)
    assert await store.recent("alpha") == [second, first]


async def test_daily_totals_count_only_that_tenant_and_day(store: UsageStore) -> None:
    await store.record(entry("alpha", DAY))
    await store.record(entry("alpha", DAY + timedelta(hours=11), prompt_tokens=1, completion_tokens=1, cost_usd=None))
    await store.record(entry("alpha", DAY + timedelta(days=1)))
    await store.record(entry("beta", DAY))
    totals = await store.daily_totals("alpha", DAY.date())
    assert totals == UsageTotals(requests=2, prompt_tokens=11, completion_tokens=6, cost_usd=pytest.approx(0.002))
    assert await store.daily_totals("alpha", (DAY - timedelta(days=1)).date()) == UsageTotals()
    assert [e.tenant for e in await store.recent("beta")] == ["beta"]


async def test_mongo_collection_is_indexed_for_tenant_and_day(mongo_url: str) -> None:
    from pymongo import AsyncMongoClient

    name = f"usage_{uuid.uuid4().hex[:8]}"
    store = MongoUsageStore(mongo_url, name)
    await store.start()
    await store.close()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    try:
        indexes = await client[name]["usage_records"].index_information()
    finally:
        await client.close()
    keys = {tuple(spec["key"]) for spec in indexes.values()}  # type: ignore[index]  # index_information rows
    assert (("tenant", 1), ("day", 1)) in keys
