"""Usage records: one per LLM call, in the tenant's relational store or in MongoDB.

`UsageStore` is the protocol; `DatabaseUsageStore` (embedded default, table
`usage_records` in each tenant's schema or file) and `MongoUsageStore` (PyMongo's
`AsyncMongoClient`, one collection indexed for per-tenant/day queries) implement it.
Records never carry secrets: the error text is scrubbed before it gets here.

Between `start()` and `close()`, `DatabaseUsageStore.record` does not wait for a commit:
it queues the record for a `core.journal.BatchWriter`, which inserts what accumulated in
one transaction per tenant (group commit). Its readers flush first, so they see every
record queued before they asked. Records still queued when the process dies are lost;
`close` writes what is left. A store that was never started writes each record at once,
so nothing is left running behind a caller that never closes it.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from sqlalchemy import func, insert, select

from core.journal import DEFAULT_MAX_BATCH, BatchWriter
from db.database import Database
from db.models import UsageRecord


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """One LLM call: who, where, which provider and model, tokens, cost, latency, outcome."""

    tenant: str
    provider_id: uuid.UUID | None
    provider_kind: str
    provider_name: str
    model: str
    outcome: str = "ok"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    latency_ms: float = 0.0
    user_id: uuid.UUID | None = None
    execution_id: uuid.UUID | None = None
    node_id: str | None = None
    error: str | None = None
    ts: datetime = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Sums over a tenant's calls in a period."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class UsageStore(Protocol):
    """Where usage records go."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def record(self, entry: UsageEntry) -> None:
        """Store one record."""

    async def recent(self, tenant: str, limit: int = 50) -> list[UsageEntry]:
        """The tenant's newest records, newest first."""

    async def daily_totals(self, tenant: str, day: date) -> UsageTotals:
        """The tenant's totals for one UTC day."""


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


class DatabaseUsageStore:
    """Usage in the `usage_records` table of each tenant (the embedded default), written in batches."""

    def __init__(self, db: Database, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self._db = db
        self._writer: BatchWriter[UsageEntry] = BatchWriter(self._write, name="usage", max_batch=max_batch)
        self._batching = False

    async def start(self) -> None:
        """Write in batches from now on (migrations create the table)."""
        self._writer.start()
        self._batching = True

    async def close(self) -> None:
        """Write what is still queued (for a bounded time); the database is closed by its owner."""
        self._batching = False
        await self._writer.aclose()

    async def flush(self) -> None:
        """Return once every record queued before the call is stored."""
        await self._writer.flush()

    async def record(self, entry: UsageEntry) -> None:
        """Queue one record for the next batch (or, before `start`, write it at once)."""
        if self._batching:
            self._writer.put(entry.tenant, entry)
        else:
            await self._write(entry.tenant, [entry])

    async def _write(self, tenant: str, entries: list[UsageEntry]) -> None:
        rows = [
            {
                "id": uuid.uuid4(),
                "ts": entry.ts,
                "user_id": entry.user_id,
                "execution_id": entry.execution_id,
                "node_id": entry.node_id,
                "provider_id": entry.provider_id,
                "provider_kind": entry.provider_kind,
                "provider_name": entry.provider_name,
                "model": entry.model,
                "prompt_tokens": entry.prompt_tokens,
                "completion_tokens": entry.completion_tokens,
                "cost_usd": entry.cost_usd,
                "latency_ms": entry.latency_ms,
                "outcome": entry.outcome,
                "error": entry.error,
            }
            for entry in entries
        ]
        async with self._db.tenant_session(tenant) as session:
            await session.execute(insert(UsageRecord), rows)
            await session.commit()

    async def recent(self, tenant: str, limit: int = 50) -> list[UsageEntry]:
        await self._writer.flush()
        async with self._db.tenant_session(tenant) as session:
            rows = await session.scalars(select(UsageRecord).order_by(UsageRecord.ts.desc()).limit(limit))
            return [
                UsageEntry(
                    tenant=tenant,
                    ts=_aware(r.ts),
                    user_id=r.user_id,
                    execution_id=r.execution_id,
                    node_id=r.node_id,
                    provider_id=r.provider_id,
                    provider_kind=r.provider_kind,
                    provider_name=r.provider_name,
                    model=r.model,
                    prompt_tokens=r.prompt_tokens,
                    completion_tokens=r.completion_tokens,
                    cost_usd=r.cost_usd,
                    latency_ms=r.latency_ms,
                    outcome=r.outcome,
                    error=r.error,
                )
                for r in rows
            ]

    async def daily_totals(self, tenant: str, day: date) -> UsageTotals:
        start, end = _day_bounds(day)
        query = select(
            func.count(UsageRecord.id),
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
            func.coalesce(func.sum(UsageRecord.cost_usd), 0.0),
        ).where(UsageRecord.ts >= start, UsageRecord.ts < end)
        await self._writer.flush()
        async with self._db.tenant_session(tenant) as session:
            count, prompt, completion, cost = (await session.execute(query)).one()
        return UsageTotals(int(count), int(prompt), int(completion), float(cost or 0.0))


_UUID_FIELDS = ("provider_id", "user_id", "execution_id")


class MongoUsageStore:
    """Usage in one MongoDB collection, indexed by tenant and day (with `MONGODB_URL`)."""

    def __init__(self, url: str, database: str, collection: str = "usage_records") -> None:
        from pymongo import AsyncMongoClient

        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True, connect=False)
        self._collection = self._client[database][collection]

    async def start(self) -> None:
        """Create the indexes the per-tenant/day queries use."""
        await self._collection.create_index([("tenant", 1), ("day", 1)], name="tenant_day")
        await self._collection.create_index([("tenant", 1), ("ts", -1)], name="tenant_ts")

    async def close(self) -> None:
        await self._client.close()

    async def record(self, entry: UsageEntry) -> None:
        document = asdict(entry)
        for name in _UUID_FIELDS:
            if document[name] is not None:
                document[name] = str(document[name])
        document["day"] = entry.ts.astimezone(UTC).date().isoformat()
        await self._collection.insert_one(document)

    async def recent(self, tenant: str, limit: int = 50) -> list[UsageEntry]:
        cursor = self._collection.find({"tenant": tenant}, {"_id": 0, "day": 0}).sort("ts", -1).limit(limit)
        entries = []
        async for document in cursor:
            for name in _UUID_FIELDS:
                if document.get(name) is not None:
                    document[name] = uuid.UUID(document[name])
            document["ts"] = _aware(document["ts"])
            entries.append(UsageEntry(**document))
        return entries

    async def daily_totals(self, tenant: str, day: date) -> UsageTotals:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"tenant": tenant, "day": day.isoformat()}},
            {
                "$group": {
                    "_id": None,
                    "requests": {"$sum": 1},
                    "prompt_tokens": {"$sum": "$prompt_tokens"},
                    "completion_tokens": {"$sum": "$completion_tokens"},
                    "cost_usd": {"$sum": {"$ifNull": ["$cost_usd", 0]}},
                }
            },
        ]
        cursor = await self._collection.aggregate(pipeline)
        async for row in cursor:
            return UsageTotals(
                int(row["requests"]), int(row["prompt_tokens"]), int(row["completion_tokens"]), float(row["cost_usd"])
            )
        return UsageTotals()
