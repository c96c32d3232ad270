"""App instances: every running app process registers itself and renews a heartbeat.

A run records the instance that runs it (`executions.runner_id`). A run is only ever
declared `interrupted` when its instance has stopped heartbeating for `stale_after_s`,
so several replicas on one database never interrupt each other's live runs, and the runs
of a replica that died are found by the others (not only at its own restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from db.base import utcnow
from db.database import Database
from db.models.control import AppInstance

log = logging.getLogger(__name__)


def _gone(pid: int) -> bool:
    """Whether `pid` on this host is not (or no longer) another app process."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        return False
    return False


class InstanceRegistry:
    """This process's entry in `app_instances`, kept fresh by a heartbeat task."""

    def __init__(self, db: Database, *, heartbeat_s: float = 10.0, stale_after_s: float = 45.0) -> None:
        self._db = db
        self.id = uuid.uuid4()
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register this process, forget instances long dead, and start heartbeating."""
        now = utcnow()
        async with self._db.control_session() as session:
            cutoff = now - timedelta(days=1)
            await session.execute(delete(AppInstance).where(AppInstance.heartbeat_at < cutoff))
            session.add(self._entry(now))
            await session.commit()
        self._task = asyncio.create_task(self._beat(), name="instance heartbeat")

    def _entry(self, now: datetime) -> AppInstance:
        host = socket.gethostname()[:255]
        return AppInstance(id=self.id, host=host, pid=os.getpid(), started_at=now, heartbeat_at=now)

    async def aclose(self) -> None:
        """Stop heartbeating and remove this process's entry (its runs were ended by then)."""
        if self._task is None:
            return  # never started: nothing registered
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        try:
            async with self._db.control_session() as session:
                await session.execute(delete(AppInstance).where(AppInstance.id == self.id))
                await session.commit()
        except Exception:  # shutting down: a stale entry only ages out
            log.warning("could not remove app instance %s; it will age out", self.id)

    async def live(self) -> set[uuid.UUID]:
        """Instances that heartbeated within `stale_after_s` and are not known dead, this one always included.

        An instance on this host whose process is gone, or that had this process's pid (an
        earlier life of this container), is dead however fresh its heartbeat: a restart
        right after a crash need not wait for the heartbeat to age.
        """
        cutoff = utcnow() - timedelta(seconds=self.stale_after_s)
        async with self._db.control_session() as session:
            rows = (
                await session.execute(
                    select(AppInstance.id, AppInstance.host, AppInstance.pid).where(AppInstance.heartbeat_at >= cutoff)
                )
            ).all()
        host = socket.gethostname()[:255]
        return {row.id for row in rows if not (row.host == host and _gone(row.pid))} | {self.id}

    async def reap(self) -> set[uuid.UUID]:
        """Remove the entries of instances that are dead (see `live`); their ids, empty when none died.

        Sweeps use it to learn cheaply whether any process died since the last look: a clean
        stop removes its own entry, so what is left stale was a crash.
        """
        live = await self.live()
        async with self._db.control_session() as session:
            dead = set(await session.scalars(select(AppInstance.id))) - live
            if dead:
                await session.execute(delete(AppInstance).where(AppInstance.id.in_(dead)))
                await session.commit()
        return dead

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                async with self._db.control_session() as session:
                    now = utcnow()
                    result = await session.execute(
                        update(AppInstance).where(AppInstance.id == self.id).values(heartbeat_at=now)
                    )
                    if getattr(result, "rowcount", 1) == 0:
                        # Reaped while it was too slow to beat (a long pause): it is alive, so register again.
                        session.add(self._entry(now))
                    await session.commit()
            except Exception:  # the database may be briefly away: beat again next time
                log.warning("app instance heartbeat failed; retrying in %.0f s", self.heartbeat_s, exc_info=True)
