"""The engines: statement parameters never reach errors or logs; SQLite files are private to the app."""

from __future__ import annotations

import logging
import stat
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from core.tenants import TenantService
from db.base import utcnow
from db.database import Database
from db.migrate import upgrade_control
from db.models.control import User

# Looks like what must never be logged: an Argon2 hash and an API-key digest.
CANARY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$Y2FuYXJ5LXNhbHQ$canary0hash0never0logged0anywhere00"
CANARY_DIGEST = "c0ffee" * 10 + "beef"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_failed_statement_never_carries_its_parameters(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(db_url, data_dir=tmp_path, echo=True)
    await upgrade_control(database)
    row = {"email": "alice@example.com", "display_name": CANARY_DIGEST, "password_hash": CANARY_HASH}
    try:
        async with database.control_session() as session:
            await session.execute(insert(User).values(id=uuid.uuid4(), **row))
            await session.commit()
        caplog.set_level(logging.INFO)
        with pytest.raises(IntegrityError) as failed:
            async with database.control_session() as session:
                await session.execute(insert(User).values(id=uuid.uuid4(), **row))  # the address is taken
                await session.commit()
        logging.getLogger("crewcanvas.test").exception("unhandled error", exc_info=failed.value)
    finally:
        await database.dispose()
    for text in (str(failed.value), repr(failed.value), caplog.text):
        assert CANARY_HASH not in text
        assert CANARY_DIGEST not in text
    assert "INSERT INTO users" in caplog.text  # the statement itself is logged with echo, its values are not


async def sqlite_with_a_tenant(data: Path) -> None:
    """A migrated SQLite control plane under `data` with one tenant, `acme`."""
    database = Database(f"sqlite+aiosqlite:///{data / 'control.db'}", data_dir=data)
    try:
        await upgrade_control(database)
        await TenantService(database).create("acme")
    finally:
        await database.dispose()


async def test_sqlite_files_are_private_to_the_app(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await sqlite_with_a_tenant(data)
    files = [data / "control.db", data / "tenants" / "acme.db"]
    files += [Path(f"{f}{suffix}") for f in files for suffix in ("-wal", "-shm") if Path(f"{f}{suffix}").exists()]
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert {d.name: mode(d) for d in (data, data / "tenants")} == {"data": 0o700, "tenants": 0o700}


async def test_files_made_before_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await sqlite_with_a_tenant(data)
    for path in (data / "control.db", data / "tenants" / "acme.db"):
        path.chmod(0o644)
    (data / "tenants").chmod(0o755)
    again = Database(f"sqlite+aiosqlite:///{data / 'control.db'}", data_dir=data)
    try:
        async with again.tenant_session("acme"):
            pass
        await again.tenant_engine("acme")
    finally:
        await again.dispose()
    assert mode(data / "control.db") == mode(data / "tenants" / "acme.db") == 0o600
    assert mode(data / "tenants") == 0o700


async def test_stored_moments_come_back_aware_in_utc(db: Database) -> None:
    """SQLite hands back naive datetimes; the column type attaches UTC, so no reader has to."""
    async with db.control_session() as session:
        session.add(User(email="alice@example.com", display_name="", password_hash=None))
        await session.commit()
    async with db.control_session() as session:
        user = await session.scalar(select(User))
    assert user is not None
    assert user.created_at.tzinfo is not None
    assert user.created_at.utcoffset() == timedelta(0)
    assert abs(user.created_at - utcnow()) < timedelta(minutes=5)
