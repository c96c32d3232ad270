"""The event bus on both backends: in-process fan-out and Redis pub/sub on the real server."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.errors import BackendUnavailable
from core.events import DEFAULT_BUFFER_SIZE, EventBus, MemoryEventBus, RedisEventBus

REDIS_URL = "redis://127.0.0.1:6379/0"

MakeBus = Callable[..., EventBus]


@pytest.fixture
def prefix() -> str:
    """A channel prefix of this test's own, so tests sharing the Redis server never hear each other."""
    return f"test:events:{uuid.uuid4().hex}:"


@pytest.fixture
async def make_redis_bus(prefix: str) -> AsyncIterator[Callable[..., RedisEventBus]]:
    """Makes Redis buses, each on a client of its own (like app replicas); all closed afterwards."""
    made: list[tuple[RedisEventBus, Redis]] = []

    def make(buffer_size: int = DEFAULT_BUFFER_SIZE, client_name: str | None = None) -> RedisEventBus:
        client = Redis.from_url(REDIS_URL, client_name=client_name)
        bus = RedisEventBus(client, prefix=prefix, buffer_size=buffer_size)
        made.append((bus, client))
        return bus

    yield make
    for bus, client in made:
        await bus.aclose()
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def make_bus(
    request: pytest.FixtureRequest, make_redis_bus: Callable[..., RedisEventBus]
) -> AsyncIterator[MakeBus]:
    """Makes buses of one kind: in-process, or Redis on a fresh client per bus."""
    if request.param == "redis":
        yield make_redis_bus
        return
    made: list[MemoryEventBus] = []

    def make(buffer_size: int = DEFAULT_BUFFER_SIZE) -> MemoryEventBus:
        made.append(MemoryEventBus(buffer_size=buffer_size))
        return made[-1]

    yield make
    for bus in made:
        await bus.aclose()


@pytest.fixture
def bus(make_bus: MakeBus) -> EventBus:
    return make_bus()


async def take(messages: AsyncIterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The next `count` messages; fails instead of hanging when they do not come."""

    async def collect() -> list[dict[str, Any]]:
        return [await anext(messages) for _ in range(count)]

    return await asyncio.wait_for(collect(), timeout=5)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_every_subscriber_gets_every_message_in_publish_order(bus: EventBus) -> None:
    async with bus.subscribe("executions:1") as first, bus.subscribe("executions:1") as second:
        for seq in range(100):
            await bus.publish("executions:1", {"seq": seq, "type": "token"})
        expected = [{"seq": seq, "type": "token"} for seq in range(100)]
        assert await take(first, 100) == expected
        assert await take(second, 100) == expected


async def test_nothing_published_before_subscribing_is_delivered(bus: EventBus) -> None:
    await bus.publish("executions:1", {"seq": 1})
    async with bus.subscribe("executions:1") as messages:
        await bus.publish("executions:1", {"seq": 2})
        await bus.publish("executions:1", {"seq": 3})
        assert await take(messages, 2) == [{"seq": 2}, {"seq": 3}]


async def test_channels_are_isolated(bus: EventBus) -> None:
    async with bus.subscribe("executions:a") as a, bus.subscribe("executions:b") as b:
        await bus.publish("executions:a", {"for": "a"})
        await bus.publish("executions:b", {"for": "b"})
        await bus.publish("executions:a", {"for": "a", "last": True})
        await bus.publish("executions:b", {"for": "b", "last": True})
        assert await take(a, 2) == [{"for": "a"}, {"for": "a", "last": True}]
        assert await take(b, 2) == [{"for": "b"}, {"for": "b", "last": True}]


async def test_leaving_the_subscription_unsubscribes_and_frees_everything(bus: EventBus, prefix: str) -> None:
    tasks_before = asyncio.all_tasks()
    async with bus.subscribe("executions:1") as messages:
        await bus.publish("executions:1", {"seq": 1})
        assert await take(messages, 1) == [{"seq": 1}]
    await bus.publish("executions:1", {"seq": 2})
    assert [message async for message in messages] == []  # ended, and nothing arrives any more
    assert asyncio.all_tasks() == tasks_before
    if isinstance(bus, MemoryEventBus):
        assert bus.subscriber_count() == 0
    else:
        client = Redis.from_url(REDIS_URL)
        try:
            assert await client.pubsub_numsub(f"{prefix}executions:1") == [(f"{prefix}executions:1".encode(), 0)]
        finally:
            await client.aclose()


async def test_a_slow_subscriber_overflows_with_a_marker_while_a_fast_one_gets_everything(make_bus: MakeBus) -> None:
    bus = make_bus(buffer_size=10)
    async with bus.subscribe("executions:1") as slow, bus.subscribe("executions:1") as fast:
        for seq in range(30):
            await bus.publish("executions:1", {"seq": seq})
            assert await take(fast, 1) == [{"seq": seq}]
        await asyncio.sleep(0.05)  # let the slow subscriber's Redis reader catch up; it is only slow to be read
        # Buffers of 10 were dropped at the 11th and the 21st message; what came after is kept.
        assert await take(slow, 11) == [{"type": "overflow", "dropped": 20}] + [{"seq": seq} for seq in range(20, 30)]
        await bus.publish("executions:1", {"seq": 30})
        assert await take(slow, 1) == [{"seq": 30}]


async def test_closing_the_bus_ends_open_subscriptions(bus: EventBus) -> None:
    async with bus.subscribe("executions:1") as messages:
        await bus.aclose()
        assert await asyncio.wait_for(anext(messages, None), timeout=5) is None


async def test_redis_messages_must_be_json(make_redis_bus: Callable[..., RedisEventBus]) -> None:
    with pytest.raises(TypeError):
        await make_redis_bus().publish("executions:1", {"at": object()})


async def test_two_redis_replicas_see_each_others_messages(make_redis_bus: Callable[..., RedisEventBus]) -> None:
    one, two = make_redis_bus(), make_redis_bus()
    async with one.subscribe("executions:1") as on_one, two.subscribe("executions:1") as on_two:
        await one.publish("executions:1", {"from": "one"})
        await two.publish("executions:1", {"from": "two"})
        assert await take(on_one, 2) == [{"from": "one"}, {"from": "two"}]
        assert await take(on_two, 2) == [{"from": "one"}, {"from": "two"}]


async def test_undecodable_redis_messages_are_logged_and_skipped(
    make_redis_bus: Callable[..., RedisEventBus], prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    bus = make_redis_bus()
    raw = Redis.from_url(REDIS_URL)
    try:
        async with bus.subscribe("executions:1") as messages:
            await raw.publish(f"{prefix}executions:1", b"\xff not json")
            await raw.publish(f"{prefix}executions:1", b"[1, 2]")
            await bus.publish("executions:1", {"seq": 1})
            with caplog.at_level(logging.WARNING, logger="core.events"):
                assert await take(messages, 1) == [{"seq": 1}]
    finally:
        await raw.aclose()
    assert [r.message for r in caplog.records if r.name == "core.events"] == [
        "event bus: skipped an undecodable message on 'executions:1': 'utf-8' codec can't decode byte 0xff "
        "in position 0: invalid start byte",
        "event bus: skipped a message on 'executions:1' that is not an object",
    ]


async def kill_pubsub_connections(client_name: str) -> None:
    """Make the server drop the pub/sub connections of the clients called `client_name`."""
    admin = Redis.from_url(REDIS_URL)
    try:
        for client in await admin.client_list(_type="pubsub"):
            if client["name"] == client_name:
                await admin.client_kill_filter(_id=client["id"])
    finally:
        await admin.aclose()


async def test_a_lost_redis_connection_ends_the_subscription_with_backend_unavailable(
    make_redis_bus: Callable[..., RedisEventBus],
) -> None:
    name = f"test-events-{uuid.uuid4().hex[:12]}"
    bus = make_redis_bus(client_name=name)
    async with bus.subscribe("executions:1") as messages:
        await bus.publish("executions:1", {"seq": 1})
        await kill_pubsub_connections(name)
        assert await take(messages, 1) == [{"seq": 1}]  # what arrived before is still read
        with pytest.raises(BackendUnavailable, match="lost the Redis subscription to 'executions:1'"):
            await take(messages, 1)


async def test_a_connection_redis_py_restores_is_reported_with_a_marker_and_the_subscription_goes_on(
    prefix: str,
) -> None:
    name = f"test-events-{uuid.uuid4().hex[:12]}"
    client = Redis.from_url(REDIS_URL, client_name=name, retry=Retry(NoBackoff(), retries=3))
    bus = RedisEventBus(client, prefix=prefix)
    try:
        async with bus.subscribe("executions:1") as messages:
            await kill_pubsub_connections(name)
            assert await take(messages, 1) == [{"type": "overflow", "dropped": 0}]
            await bus.publish("executions:1", {"seq": 1})
            assert await take(messages, 1) == [{"seq": 1}]
    finally:
        await bus.aclose()
        await client.aclose()


async def test_redis_down_raises_backend_unavailable() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    bus = RedisEventBus(client)
    try:
        with pytest.raises(BackendUnavailable, match="cannot publish on 'executions:1'"):
            await bus.publish("executions:1", {"seq": 1})
        with pytest.raises(BackendUnavailable, match="cannot subscribe to 'executions:1'"):
            async with bus.subscribe("executions:1"):
                pass
        with pytest.raises(BackendUnavailable, match="check REDIS_URL"):
            await bus.start()
    finally:
        await bus.aclose()
        await client.aclose()
