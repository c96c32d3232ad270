"""App instances and their heartbeats: replicas never interrupt each other's live runs; dead ones' runs are found."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from datetime import timedelta

from sqlalchemy import delete, update

from core.executions import ExecutionStore
from core.flow_store import FlowStore
from core.instances import InstanceRegistry
from db.base import utcnow
from db.database import Database
from db.models.control import AppInstance
from tests.fixtures.llm_stack import make_tenant

DOCUMENT = {"schema": "crewcanvas.flow/v1", "nodes": [], "edges": []}


async def test_a_sweep_interrupts_only_runs_whose_instance_stopped_heartbeating(db: Database) -> None:
    admin, _ = await make_tenant(db, "acme")
    flow = await FlowStore(db).create(admin, "flow", "", DOCUMENT)
    version = await FlowStore(db).version(admin, flow.id)
    store = ExecutionStore(db)
    one, two = InstanceRegistry(db), InstanceRegistry(db)
    await one.start()
    await two.start()
    # Both live in this test's process; give one another host, as a replica on another machine would have.
    async with db.control_session() as session:
        await session.execute(update(AppInstance).where(AppInstance.id == one.id).values(host="replica-one"))
        await session.commit()
    try:
        fields = {"flow_id": flow.id, "flow_version_id": version.id, "version": 1, "inputs": {}, "options": {}}
        on_one = await store.create(admin, runner_id=one.id, **fields)
        on_two = await store.create(admin, runner_id=two.id, **fields)
        # Replica two restarts its sweep while replica one lives: nothing of one's is touched.
        assert await store.mark_interrupted(["acme"], live_runners=await two.live()) == 0
        assert (await store.get(admin, on_one.id)).status == "running"
        # Replica one stops heartbeating (a frozen or dead machine): the next sweep finds its run.
        async with db.control_session() as session:
            stale = utcnow() - timedelta(seconds=one.stale_after_s + 5)
            await session.execute(update(AppInstance).where(AppInstance.id == one.id).values(heartbeat_at=stale))
            await session.commit()
        assert one.id not in await two.live()
        assert await two.reap() == {one.id}  # the sweep's cheap question: did anyone die?
        assert await two.reap() == set()
        assert await store.mark_interrupted(["acme"], live_runners=await two.live()) == 1
        assert (await store.get(admin, on_one.id)).status == "interrupted"
        assert (await store.get(admin, on_two.id)).status == "running"
    finally:
        await one.aclose()
        await two.aclose()


async def test_an_instance_whose_process_is_gone_on_this_host_is_dead_at_once(db: Database) -> None:
    finished = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import os; print(os.getpid())", stdout=asyncio.subprocess.PIPE
    )
    output, _ = await finished.communicate()
    dead_pid = int(output)
    now = utcnow()
    dead, earlier_life = uuid.uuid4(), uuid.uuid4()
    async with db.control_session() as session:
        host = socket.gethostname()
        session.add(AppInstance(id=dead, host=host, pid=dead_pid, started_at=now, heartbeat_at=now))
        session.add(AppInstance(id=earlier_life, host=host, pid=os.getpid(), started_at=now, heartbeat_at=now))
        await session.commit()
    me = InstanceRegistry(db)
    await me.start()
    try:
        elsewhere = InstanceRegistry(db)
        async with db.control_session() as session:
            row = AppInstance(id=elsewhere.id, host="another-host", pid=dead_pid, started_at=now, heartbeat_at=now)
            session.add(row)
            await session.commit()
        live = await me.live()
        assert me.id in live
        assert elsewhere.id in live  # another machine's pids mean nothing here: its heartbeat decides
        assert dead not in live
        assert earlier_life not in live
    finally:
        await me.aclose()
    async with db.control_session() as session:
        assert await session.get(AppInstance, me.id) is None  # a clean stop removes its entry


async def test_the_heartbeat_keeps_an_instance_fresh(db: Database) -> None:
    registry = InstanceRegistry(db, heartbeat_s=0.05)
    await registry.start()
    try:
        async with db.control_session() as session:
            old = utcnow() - timedelta(hours=1)
            await session.execute(update(AppInstance).where(AppInstance.id == registry.id).values(heartbeat_at=old))
            await session.commit()
        await asyncio.sleep(0.3)
        async with db.control_session() as session:
            row = await session.get(AppInstance, registry.id)
            assert row is not None
            assert row.heartbeat_at > utcnow() - timedelta(seconds=5)
        # Reaped by another process during a long pause: the next beat registers it again.
        async with db.control_session() as session:
            await session.execute(delete(AppInstance).where(AppInstance.id == registry.id))
            await session.commit()
        await asyncio.sleep(0.3)
        async with db.control_session() as session:
            assert await session.get(AppInstance, registry.id) is not None
    finally:
        await registry.aclose()
