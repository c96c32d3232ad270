"""Server-sent events of an execution: replay after `Last-Event-ID`, an optional snapshot, then live events.

Each event goes out as `id: <seq>`, `event: <type>`, `data: <JSON>`; heartbeats are SSE
comments. With `snapshot`, the first event (`snapshot`, id = the seq it covers) holds
every node's state folded from the stored events, so a client that joins late draws the
whole run at once and then follows from there. The stream ends after the final event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from core.context import TenantContext
from core.executions import EventRecord
from executor.service import ExecutionService
from executor.snapshot import Snapshot


def format_event(event_id: int | None, kind: str, data: Any) -> bytes:
    """One SSE message."""
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines.append(f"event: {kind}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), default=str))
    return ("\n".join(lines) + "\n\n").encode()


async def event_stream(
    executions: ExecutionService,
    ctx: TenantContext,
    execution_id: uuid.UUID,
    *,
    after_seq: int,
    snapshot: bool,
) -> AsyncIterator[bytes]:
    """The SSE body for one execution."""
    if snapshot:
        state = await Snapshot.load(executions, ctx, execution_id, after_seq=after_seq)
        after_seq = state.seq
        yield format_event(state.seq, "snapshot", state.as_dict())
        if state.finished:
            return
    async for item in executions.follow(ctx, execution_id, after_seq=after_seq):
        if isinstance(item, EventRecord):
            yield format_event(item.seq, item.type, item.as_dict())
        else:
            yield b": heartbeat\n\n"
