"""The event bus: publish dicts on named channels, fan them out to every live subscriber.

`EventBus` is the protocol. `MemoryEventBus` fans out inside this process (the embedded
default, and the test fake); `RedisEventBus` uses Redis pub/sub on a shared client, so
every app replica sees every message. The flow engine publishes execution events on
`executions:<id>`; the SSE endpoint and the UI subscribe.

    async with bus.subscribe("executions:42") as messages:
        async for message in messages:
            ...

A subscription is live once `async with` has entered: everything published after that
point arrives, in publish order per channel; nothing published before does. The bus is
not durable: events are stored in the database first and the bus only says "there is
more". A subscriber that falls more than `buffer_size` messages behind loses what it had
buffered and reads one `{"type": "overflow", "dropped": n}` marker instead, its cue to
re-read from the durable store; publishers never wait for subscribers. The same marker
follows a lost Redis connection that redis-py re-established: `n` then counts only what
the subscriber itself discarded (it may be 0), not what was published while it was away.

Errors (see `core.errors`):

CoreError
└── BackendUnavailable      Redis cannot be reached to publish or subscribe, or the
                            subscription's connection was lost (raised by iteration)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.errors import BackendUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger(__name__)

DEFAULT_BUFFER_SIZE = 10_000

# What a lost or refused Redis connection looks like from redis-py.
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class Subscription(Protocol):
    """An async context manager: entering subscribes and yields the messages, leaving unsubscribes."""

    async def __aenter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class EventBus(Protocol):
    """Publishes messages on channels and fans them out to the subscribers of each channel."""

    name: str

    async def start(self) -> None:
        """Check the backend answers; nothing connects before this (or the first use)."""

    async def aclose(self) -> None:
        """End every open subscription; shared clients are left to their owner."""

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Send `message` (JSON-serialisable) to everyone subscribed to `channel` now."""

    def subscribe(self, channel: str) -> Subscription:
        """A subscription to `channel`, live once its `async with` has entered."""


def _encode(message: dict[str, Any]) -> str:
    # Both buses encode, so a message only Redis could not carry fails in tests too.
    return json.dumps(message, separators=(",", ":"))


class _Inbox:
    """One subscriber's bounded buffer, read as an async iterator of messages.

    `put` never waits: when the buffer is full, what it holds is dropped and counted, and
    the reader gets one overflow marker before the messages that arrived after the drop.
    """

    def __init__(self, buffer_size: int) -> None:
        self._items: deque[dict[str, Any]] = deque()
        self._buffer_size = buffer_size
        self._dropped = 0
        self._gap = False
        self._ready = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None

    def mark_gap(self) -> None:
        """Messages may have been lost upstream: the reader gets an overflow marker next."""
        self._gap = True
        self._ready.set()

    def put(self, message: dict[str, Any]) -> None:
        if self._closed:
            return
        if len(self._items) >= self._buffer_size:
            self._dropped += len(self._items)
            self._items.clear()
        self._items.append(message)
        self._ready.set()

    def close(self, error: BaseException | None = None) -> None:
        """Stop accepting messages; the reader drains what is buffered, then stops (or raises `error`)."""
        if not self._closed:
            self._closed = True
            self._error = error
            self._ready.set()

    def __aiter__(self) -> _Inbox:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while True:
            if self._dropped or self._gap:
                dropped, self._dropped, self._gap = self._dropped, 0, False
                return {"type": "overflow", "dropped": dropped}
            if self._items:
                return self._items.popleft()
            if self._closed:
                error, self._error = self._error, None
                if error is not None:
                    raise error
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()


def _check_buffer_size(buffer_size: int) -> int:
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be at least 1, not {buffer_size}")
    return buffer_size


class MemoryEventBus:
    """Fan-out inside this process: every subscriber has its own bounded inbox."""

    name: str = "in-process"

    def __init__(self, *, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        self._buffer_size = _check_buffer_size(buffer_size)
        self._channels: dict[str, set[_Inbox]] = {}

    async def start(self) -> None:
        """Nothing to connect."""

    async def aclose(self) -> None:
        for inboxes in self._channels.values():
            for inbox in inboxes:
                inbox.close()
        self._channels.clear()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        # Handed over as it is, never copied or encoded: publishing is on the engine's hot path,
        # and in-process subscribers treat messages as read-only (as every reader here does).
        for inbox in self._channels.get(channel, ()):
            inbox.put(message)

    def subscribe(self, channel: str) -> Subscription:
        return _MemorySubscription(self, channel)

    def subscriber_count(self, channel: str | None = None) -> int:
        """How many subscriptions are open on `channel`, or on every channel."""
        if channel is not None:
            return len(self._channels.get(channel, ()))
        return sum(len(inboxes) for inboxes in self._channels.values())

    def _add(self, channel: str) -> _Inbox:
        inbox = _Inbox(self._buffer_size)
        self._channels.setdefault(channel, set()).add(inbox)
        return inbox

    def _remove(self, channel: str, inbox: _Inbox) -> None:
        inbox.close()
        inboxes = self._channels.get(channel)
        if inboxes is not None:
            inboxes.discard(inbox)
            if not inboxes:
                del self._channels[channel]


class _MemorySubscription:
    def __init__(self, bus: MemoryEventBus, channel: str) -> None:
        self._bus = bus
        self._channel = channel
        self._inbox: _Inbox | None = None

    async def __aenter__(self) -> AsyncIterator[dict[str, Any]]:
        self._inbox = self._bus._add(self._channel)
        return self._inbox

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._inbox is not None:
            self._bus._remove(self._channel, self._inbox)
            self._inbox = None


class RedisEventBus:
    """Redis pub/sub on a shared client: JSON messages, one pub/sub connection per subscription.

    Channel names are prefixed (`crewcanvas:executions:42`) so several apps, or tests, can
    share one Redis. The client belongs to the caller, who closes it.
    """

    name: str = "redis"

    def __init__(
        self,
        client: Redis,
        prefix: str = "crewcanvas:",
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        subscribe_timeout_s: float = 5.0,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._buffer_size = _check_buffer_size(buffer_size)
        self._subscribe_timeout_s = subscribe_timeout_s
        self._open: set[_RedisSubscription] = set()

    async def start(self) -> None:
        """Ping Redis, so a wrong `REDIS_URL` is reported at start-up rather than at the first run."""
        try:
            await self._redis.ping()
        except _UNREACHABLE as exc:
            raise BackendUnavailable(f"Redis is unreachable for the event bus: {exc}; check REDIS_URL") from exc

    async def aclose(self) -> None:
        for subscription in list(self._open):
            await subscription.release()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        payload = _encode(message)
        try:
            await self._redis.publish(self._prefix + channel, payload)
        except _UNREACHABLE as exc:
            raise BackendUnavailable(
                f"Redis is unreachable, cannot publish on '{channel}': {exc}; check REDIS_URL"
            ) from exc

    def subscribe(self, channel: str) -> Subscription:
        return _RedisSubscription(self, channel)


class _RedisSubscription:
    """One pub/sub connection and the task that drains it into the subscriber's inbox.

    The reader task empties the socket as fast as Redis writes, so a slow consumer
    overflows its own inbox instead of growing Redis's output buffer until Redis
    disconnects it (or slowing anyone else).
    """

    def __init__(self, bus: RedisEventBus, channel: str) -> None:
        self._bus = bus
        self._channel = channel
        self._name = bus._prefix + channel
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._inbox = _Inbox(bus._buffer_size)

    async def __aenter__(self) -> AsyncIterator[dict[str, Any]]:
        self._pubsub = self._bus._redis.pubsub()
        self._bus._open.add(self)
        try:
            await self._pubsub.subscribe(self._name)
            await asyncio.wait_for(self._acknowledged(self._pubsub), timeout=self._bus._subscribe_timeout_s)
        except _UNREACHABLE as exc:  # includes the acknowledgement's timeout
            await self.release()
            raise BackendUnavailable(
                f"Redis is unreachable, cannot subscribe to '{self._channel}': {exc!r}; check REDIS_URL"
            ) from exc
        except BaseException:
            await self.release()
            raise
        self._reader = asyncio.create_task(self._read(self._pubsub), name=f"event-bus:{self._name}")
        return self._inbox

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()

    async def _acknowledged(self, pubsub: PubSub) -> None:
        # Redis promises delivery of everything published after it has answered SUBSCRIBE,
        # so the subscription is complete only once that answer has been read.
        while True:
            reply = await pubsub.get_message(timeout=self._bus._subscribe_timeout_s)
            if reply is not None and reply["type"] == "subscribe":
                return

    async def _read(self, pubsub: PubSub) -> None:
        try:
            while True:
                reply = await pubsub.get_message(timeout=None)
                if reply is None:
                    continue
                if reply["type"] == "subscribe":
                    # redis-py reconnected and subscribed again: whatever was published
                    # meanwhile is gone, so the consumer must re-read the durable store.
                    self._inbox.mark_gap()
                if reply["type"] != "message":
                    continue
                try:
                    message = json.loads(reply["data"])
                except (ValueError, UnicodeDecodeError) as exc:
                    log.warning("event bus: skipped an undecodable message on '%s': %s", self._channel, exc)
                    continue
                if not isinstance(message, dict):
                    log.warning("event bus: skipped a message on '%s' that is not an object", self._channel)
                    continue
                self._inbox.put(message)
        except (*_UNREACHABLE, RedisError) as exc:
            self._inbox.close(
                BackendUnavailable(f"lost the Redis subscription to '{self._channel}': {exc}; subscribe again")
            )
        except Exception as exc:
            # A reader that dies must not leave its consumer waiting forever: hand it the error.
            log.exception("event bus: the reader of '%s' failed", self._channel)
            self._inbox.close(exc)

    async def release(self) -> None:
        """Stop the reader, drop the pub/sub connection and end the iterator; safe to call twice."""
        self._bus._open.discard(self)
        self._inbox.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            # `wait` rather than awaiting the task: a cancellation of *our* caller must not be swallowed.
            await asyncio.wait([reader])
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            # Closing the connection ends the subscription on the server; no UNSUBSCRIBE round trip needed.
            with contextlib.suppress(*_UNREACHABLE):
                await pubsub.aclose()
