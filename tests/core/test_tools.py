"""ToolService: tool records per tenant, roles, limits, and "Try it" runs in the real bubblewrap sandbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from core.context import Role, TenantContext
from core.errors import ConfigurationError, Conflict, InvalidInput, NotFound, PermissionDenied
from core.settings import SandboxSettings
from core.tenants import TenantService
from core.tools import (
    LimitPolicy,
    SandboxUnavailableError,
    ToolRunner,
    ToolService,
    ToolSettings,
    ToolSpec,
    UnavailableSandbox,
    starter_spec,
)
from db.database import Database
from db.migrate import upgrade_control
from db.models import Tool
from sandbox.base import Availability, Limits, ToolResult, ToolRun
from sandbox.bwrap import BwrapBackend
from sandbox.factory import create_backend
from tests.conftest import pg_url
from wiring.backends import build_sandbox

MiB = 1024 * 1024


def context(slug: str, role: Role = Role.EDITOR) -> TenantContext:
    return TenantContext(tenant_id=uuid.uuid4(), tenant_slug=slug, user_id=uuid.uuid4(), role=role)


ACME = context("acme")
ACME_VIEWER = context("acme", Role.VIEWER)
GLOBEX = context("globex")


class RecordingRunner:
    """The real backend, plus a list of the runs it was handed (to show what never reached it)."""

    def __init__(self, inner: ToolRunner) -> None:
        self.inner = inner
        self.runs: list[ToolRun] = []

    @property
    def name(self) -> str:
        return self.inner.name

    async def run(self, run: ToolRun) -> ToolResult:
        self.runs.append(run)
        return await self.inner.run(run)

    async def available(self) -> Availability:
        return await self.inner.available()


@pytest.fixture(scope="module")
def bwrap() -> BwrapBackend:
    """The real bubblewrap backend; fails (never skips) when bubblewrap is missing."""
    backend = create_backend("bwrap")
    assert isinstance(backend, BwrapBackend)
    return backend


async def with_tenants(db: Database) -> Database:
    tenants = TenantService(db)
    await tenants.create("acme")
    await tenants.create("globex")
    return db


@pytest.fixture
async def service(db: Database, bwrap: BwrapBackend) -> ToolService:
    """A tool service on each database backend, with tenants acme and globex."""
    return ToolService(await with_tenants(db), RecordingRunner(bwrap), policy=LimitPolicy())


@pytest.fixture
async def sqlite_service(tmp_path: Path, bwrap: BwrapBackend) -> AsyncIterator[ToolService]:
    """The same on SQLite only, for behaviour that does not depend on the database."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", data_dir=tmp_path)
    await upgrade_control(db)
    yield ToolService(await with_tenants(db), RecordingRunner(bwrap), policy=LimitPolicy())
    await db.dispose()


def spec(name: str = "echo", code: str = "def run(**kw):\n    return kw\n", **fields: object) -> ToolSpec:
    return ToolSpec(name=name, code=code, **fields)  # type: ignore[arg-type]  # fields are ToolSpec's


def runs_of(service: ToolService) -> list[ToolRun]:
    runner = service._sandbox
    assert isinstance(runner, RecordingRunner)
    return runner.runs


# -- records ---------------------------------------------------------------------------------


async def test_editor_creates_reads_and_lists_tools(service: ToolService) -> None:
    second = await service.create(ACME, spec("zeta", description="  last  "))
    first = await service.create(ACME, starter_spec("python"))
    assert [t.name for t in await service.list(ACME)] == ["new_tool", "zeta"]
    fetched = await service.get(ACME_VIEWER, first.id)
    assert fetched.code == starter_spec("python").code
    assert fetched.input_schema["required"] == ["text", "times"]
    assert second.description == "last"
    assert fetched.effective_limits == LimitPolicy().defaults().model_dump()


async def test_update_replaces_the_fields_and_delete_removes_the_tool(service: ToolService) -> None:
    tool = await service.create(ACME, spec("echo"))
    changed = await service.update(ACME, tool.id, spec("shout", kind="command", code="echo '{}'\n"))
    assert (changed.id, changed.name, changed.kind) == (tool.id, "shout", "command")
    assert changed.updated_at >= tool.updated_at
    await service.delete(ACME, tool.id)
    assert await service.list(ACME) == []
    with pytest.raises(NotFound, match="no tool with id"):
        await service.get(ACME, tool.id)


async def test_a_name_is_unique_within_a_tenant_only(service: ToolService) -> None:
    await service.create(ACME, spec("echo"))
    with pytest.raises(Conflict, match="'echo' exists already"):
        await service.create(ACME, spec("echo"))
    other = await service.create(ACME, spec("other"))
    with pytest.raises(Conflict, match="exists already"):
        await service.update(ACME, other.id, spec("echo"))
    assert (await service.create(GLOBEX, spec("echo"))).name == "echo"
    assert [t.name for t in await service.list(ACME)] == ["echo", "other"]


async def test_another_tenants_tool_is_not_found(service: ToolService) -> None:
    tool = await service.create(ACME, spec("secret_sauce"))
    assert await service.list(GLOBEX) == []
    with pytest.raises(NotFound):
        await service.get(GLOBEX, tool.id)
    with pytest.raises(NotFound):
        await service.update(GLOBEX, tool.id, spec("stolen"))
    with pytest.raises(NotFound):
        await service.try_tool(GLOBEX, tool.id, {})
    with pytest.raises(NotFound):
        await service.delete(GLOBEX, tool.id)
    assert (await service.get(ACME, tool.id)).name == "secret_sauce"
    assert runs_of(service) == []


async def test_viewer_reads_but_cannot_write_or_try(service: ToolService) -> None:
    tool = await service.create(ACME, spec("echo"))
    assert [t.name for t in await service.list(ACME_VIEWER)] == ["echo"]
    attempts = [
        service.create(ACME_VIEWER, spec("mine")),
        service.update(ACME_VIEWER, tool.id, spec("mine")),
        service.delete(ACME_VIEWER, tool.id),
        service.try_tool(ACME_VIEWER, tool.id, {}),
        service.try_draft(ACME_VIEWER, spec("mine"), {}),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied, match="needs 'editor'"):
            await attempt
    assert [t.name for t in await service.list(ACME)] == ["echo"]
    assert runs_of(service) == []


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Echo", "snake_case"),
        ("2fast", "snake_case"),
        ("with space", "snake_case"),
        ("a" * 65, "snake_case"),
        ("", "snake_case"),
    ],
)
async def test_names_must_be_identifiers(sqlite_service: ToolService, name: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        await sqlite_service.create(ACME, spec(name))
    assert await sqlite_service.list(ACME) == []


async def test_bad_schema_code_or_description_is_refused_on_save(sqlite_service: ToolService) -> None:
    cases = [
        (spec(input_schema={"type": "array"}), '"type": "object"'),
        (spec(input_schema={"type": "object", "properties": {"a": {"type": "strng"}}}), "properties/a/type"),
        (spec(code="   \n"), "no code"),
        (spec(code="x" * (150 * 1024) + "é" * (100 * 1024)), "keep it under"),  # bytes, not characters
        (spec(description="d" * 2001), "description"),
    ]
    for bad, problem in cases:
        with pytest.raises(InvalidInput, match=problem):
            await sqlite_service.create(ACME, bad)
    with pytest.raises(ValidationError, match="at most 262144 characters"):
        spec(code="x" * (300 * 1024))  # `ToolSpec` itself caps the characters (`core.text.Code`)
    assert await sqlite_service.list(ACME) == []


# -- limits ----------------------------------------------------------------------------------


async def test_limits_are_clamped_to_the_operator_maxima(db: Database, bwrap: BwrapBackend) -> None:
    maxima = Limits(wall_seconds=5, memory_bytes=128 * MiB, output_bytes=64 * 1024)
    service = ToolService(await with_tenants(db), bwrap, policy=LimitPolicy(maxima=maxima))
    tool = await service.create(ACME, spec(limits={"wall_seconds": 3600, "memory_bytes": 64 * MiB}))
    assert tool.limits == {"wall_seconds": 5, "memory_bytes": 64 * MiB}
    assert tool.effective_limits["wall_seconds"] == 5
    assert tool.effective_limits["output_bytes"] == 64 * 1024  # the default (1 MiB) is capped too
    async with db.tenant_session("acme") as session:  # what is stored is what runs, never more
        assert (await session.scalar(select(Tool.limits))) == {"wall_seconds": 5, "memory_bytes": 64 * MiB}
    report = await service.try_tool(ACME, tool.id, {})
    assert report.limits["wall_seconds"] == 5


async def test_unknown_or_too_small_limits_are_refused(sqlite_service: ToolService) -> None:
    with pytest.raises(InvalidInput, match="unknown limit 'gpus'"):
        await sqlite_service.create(ACME, spec(limits={"gpus": 1}))
    with pytest.raises(InvalidInput, match="memory_bytes"):
        await sqlite_service.create(ACME, spec(limits={"memory_bytes": 1024}))
    for not_a_number in (True, "10", None):
        with pytest.raises(InvalidInput, match="must be a number"):
            await sqlite_service.create(ACME, spec(limits={"wall_seconds": not_a_number}))


def test_operator_maxima_come_from_tools_max_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLS_MAX_LIMITS", '{"wall_seconds": 7, "memory_bytes": 268435456}')
    policy = ToolSettings().policy()
    assert (policy.maxima.wall_seconds, policy.maxima.memory_bytes) == (7, 256 * MiB)
    assert policy.defaults().wall_seconds == 7
    monkeypatch.setenv("TOOLS_MAX_LIMITS", '{"wall": 7}')
    with pytest.raises(ConfigurationError, match="unknown limits"):
        ToolSettings().policy()


# -- runs ------------------------------------------------------------------------------------


async def test_a_saved_tool_runs_in_the_sandbox_and_reports_ok(service: ToolService) -> None:
    tool = await service.create(ACME, starter_spec("python"))
    report = await service.try_tool(ACME, tool.id, '{"text": "hi", "times": 3}')
    assert (report.reason, report.ok, report.backend) == ("ok", True, "bwrap")
    assert report.output == {"result": "hi hi hi", "length": 2}
    assert report.wall_seconds > 0
    assert report.tool_seconds is not None
    assert runs_of(service)[0].source == tool.code


@pytest.mark.parametrize("kind", ["python", "command"])
async def test_starter_tools_succeed_with_their_example_input(sqlite_service: ToolService, kind: str) -> None:
    starter = starter_spec(kind)  # type: ignore[arg-type]  # parametrized over ToolKind
    report = await sqlite_service.try_draft(ACME, starter, sqlite_service.example_input(starter))
    assert report.reason == "ok", report.error
    assert report.output is not None


MISBEHAVIOUR = {
    "timeout": ("import time\ndef run():\n    time.sleep(60)\n", {"wall_seconds": 0.5}),
    "output_limit": ("def run():\n    print('x' * 100_000)\n    return 1\n", {"output_bytes": 4096}),
    "memory": ("def run():\n    return len(bytearray(512 * 1024 * 1024))\n", {"memory_bytes": 64 * MiB}),
    "crashed": ("def run():\n    raise ValueError('boom')\n", {}),
    "refused": ("def main():\n    return 1\n", {}),
}


@pytest.mark.parametrize("reason", list(MISBEHAVIOUR))
async def test_each_misbehaviour_comes_back_with_its_exit_reason(sqlite_service: ToolService, reason: str) -> None:
    code, limits = MISBEHAVIOUR[reason]
    report = await sqlite_service.try_draft(ACME, spec(code=code, limits=limits), {})
    assert report.reason == reason
    assert not report.ok
    assert report.output is None
    assert report.error
    if reason == "crashed":
        assert report.error_type == "ValueError"
        assert "boom" in report.error


async def test_input_is_checked_against_the_schema_before_anything_runs(sqlite_service: ToolService) -> None:
    starter = starter_spec("python")
    cases = [
        ({"text": "hi"}, "'times' is a required property"),
        ({"text": "hi", "times": "2"}, "input field 'times'"),
        ({"text": "hi", "times": 2, "extra": 1}, "'extra' was unexpected"),
        ("[1, 2]", "must be a JSON object"),
        ("{not json", "not valid JSON"),
    ]
    for tool_input, problem in cases:
        with pytest.raises(InvalidInput, match=problem):
            await sqlite_service.try_draft(ACME, starter, tool_input)
    assert runs_of(sqlite_service) == []


async def test_an_unavailable_backend_refuses_every_run(db: Database) -> None:
    broken = BwrapBackend(bwrap_path="/nonexistent/bwrap")
    service = ToolService(await with_tenants(db), broken)
    tool = await service.create(ACME, starter_spec("python"))
    with pytest.raises(SandboxUnavailableError, match=r"bubblewrap not found.*Nothing was run"):
        await service.try_tool(ACME, tool.id, {"text": "a", "times": 1})
    status = await service.sandbox_status()
    assert (status.backend, status.available, status.unsafe) == ("bwrap", False, False)
    assert "/nonexistent/bwrap" in status.reason


async def test_a_backend_that_cannot_be_built_still_lets_the_app_start_but_refuses_runs(
    sqlite_service: ToolService,
) -> None:
    runner, unsafe = build_sandbox(SandboxSettings(python="/nonexistent/python3"))
    assert isinstance(runner, UnavailableSandbox)
    assert not unsafe
    service = ToolService(sqlite_service._db, runner)
    with pytest.raises(SandboxUnavailableError, match="python for the sandbox not found"):
        await service.try_draft(ACME, starter_spec("python"), {"text": "a", "times": 1})
    assert not (await service.sandbox_status()).available


def test_the_unsafe_backend_is_flagged_for_the_banner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_BACKEND", "unsafe-subprocess")
    runner, unsafe = build_sandbox(SandboxSettings())
    assert unsafe
    assert runner.name == "unsafe-subprocess"
    monkeypatch.setenv("SANDBOX_BACKEND", "bwrap")
    safe, flagged = build_sandbox(SandboxSettings())
    assert safe.name == "bwrap"
    assert not flagged


async def test_no_database_connection_is_held_while_a_tool_runs(
    pg_database: str, tmp_path: Path, bwrap: BwrapBackend
) -> None:
    db = Database(pg_url(pg_database), data_dir=tmp_path, pool_size=1, max_overflow=0)
    try:
        await upgrade_control(db)
        service = ToolService(await with_tenants(db), bwrap)
        slow = await service.create(
            ACME, spec("slow", code="import time\ndef run():\n    time.sleep(2)\n    return 1\n")
        )
        running = asyncio.create_task(service.try_tool(ACME, slow.id, {}))
        await asyncio.sleep(0.5)
        assert not running.done()
        async with asyncio.timeout(1):  # the only pooled connection is free while the tool sleeps
            assert [t.name for t in await service.list(ACME)] == ["slow"]
        assert (await running).reason == "ok"
    finally:
        await db.dispose()
