"""Watching runs: follow one's events (stored, then live, each once) and wait for it to end or pause.

The store holds every event in order; the bus only says that more came. A follower
subscribes first and reads the store second, so nothing published in between is missed,
and reads the store again whenever the bus skipped something.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from core.context import TenantContext
from core.events import EventBus
from core.executions import TERMINAL_STATUSES as FINAL
from core.executions import EventRecord, ExecutionStore

HEARTBEAT_S = 15.0
ENDING_GRACE_S = 2.0


def channel(execution_id: uuid.UUID | str) -> str:
    """The bus channel of one execution's events."""
    return f"executions:{execution_id}"


async def follow(
    store: ExecutionStore, bus: EventBus, ctx: TenantContext, execution_id: uuid.UUID, *, after_seq: int = 0
) -> AsyncIterator[EventRecord | dict[str, Any]]:
    """Every event after `after_seq`, stored ones first, then live ones, each once; ends after the final one.

    Yields `EventRecord`s; a `{"type": "heartbeat"}` dict when nothing happened for `HEARTBEAT_S`.
    """
    seen = after_seq
    async with bus.subscribe(channel(execution_id)) as messages:
        # Subscribed first, read second: nothing published in between can be missed.
        async for event in _replay(store, ctx, execution_id, seen):
            seen = event.seq
            yield event
            if is_final(event.type):
                return
        # The status is stored just before the final event: a run that ended a moment ago has its final
        # event on the way, so wait for it briefly; one that ended without one (its process died between
        # the two) gets nothing more.
        wait_s = HEARTBEAT_S
        if (await store.get(ctx, execution_id)).status in FINAL:
            last = await store.events(ctx, execution_id, after_seq=seen - 1, limit=1) if seen else []
            if any(is_final(event.type) for event in last):
                return  # the watcher saw the final event before (it resumes after it)
            wait_s = ENDING_GRACE_S
        iterator = aiter(messages)
        while True:
            try:
                message = await asyncio.wait_for(anext(iterator), timeout=wait_s)
            except TimeoutError:
                if wait_s == HEARTBEAT_S:
                    yield {"type": "heartbeat"}
                if (await store.get(ctx, execution_id)).status in FINAL:
                    async for event in _replay(store, ctx, execution_id, seen):
                        yield event
                    return
                continue
            except StopAsyncIteration:
                return
            if message.get("type") == "overflow" or int(message.get("seq", 0)) > seen + 1:
                # Fell behind the bus, or missed a message: the store has everything, in order.
                async for event in _replay(store, ctx, execution_id, seen):
                    seen = event.seq
                    yield event
                    if is_final(event.type):
                        return
                continue
            seq = int(message.get("seq", 0))
            if seq <= seen:
                continue
            event = _event_of(message)
            seen = event.seq
            yield event
            if is_final(event.type):
                return


async def _replay(
    store: ExecutionStore, ctx: TenantContext, execution_id: uuid.UUID, after: int
) -> AsyncIterator[EventRecord]:
    while True:
        stored = await store.events(ctx, execution_id, after_seq=after, limit=500)
        for event in stored:
            after = event.seq
            yield event
        if len(stored) < 500:
            return


async def until_final(
    messages: AsyncIterator[dict[str, Any]], timeout_s: float, *, stop_at_pause: bool = False
) -> None:
    """Read bus messages until a run's final event (or its pause), or for `timeout_s` at most."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            async for message in messages:
                kind = str(message.get("type", ""))
                if is_final(kind) or (stop_at_pause and kind == "execution_waiting"):
                    return


def is_final(event_type: str) -> bool:
    return event_type.startswith("execution_") and event_type.removeprefix("execution_") in FINAL


def _event_of(message: Mapping[str, Any]) -> EventRecord:
    return EventRecord(
        execution_id=uuid.UUID(str(message["execution_id"])),
        seq=int(message["seq"]),
        ts=datetime.fromisoformat(str(message["ts"])),
        type=str(message["type"]),
        node_id=message.get("node_id"),
        data=dict(message.get("data") or {}),
    )


async def until_paused_or_ended(
    store: ExecutionStore, bus: EventBus, ctx: TenantContext, execution_id: uuid.UUID, timeout_s: float
) -> None:
    """Return once a run (of any process) has ended or paused, or after `timeout_s`."""
    async with bus.subscribe(channel(execution_id)) as messages:
        if (await store.get(ctx, execution_id)).status in FINAL | {"waiting"}:
            return
        await until_final(messages, timeout_s, stop_at_pause=True)
