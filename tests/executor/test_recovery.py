"""A process running an execution dies (SIGKILL): after a restart the run is `interrupted`, nothing lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

from core.context import Role, TenantContext
from tests.api.conftest import identity_settings
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from wiring.services import build_services

CHILD = Path(__file__).with_name("crash_child.py")


async def test_a_run_of_a_killed_process_is_interrupted_after_restart_with_its_events_and_node_runs(
    db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(Reply.hanging())
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        db_url,
        str(tmp_path),
        llm_server.base_url,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(CHILD.parents[2])},
    )
    assert child.stdout is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), timeout=120)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    started = json.loads(line)
    execution_id = uuid.UUID(started["execution_id"])

    settings = identity_settings(tmp_path, db_url)
    services = build_services(settings)
    await services.start()  # the restart: sweeps runs whose process is gone
    try:
        ctx = TenantContext(uuid.UUID(started["tenant_id"]), "acme", uuid.uuid4(), Role.VIEWER)
        execution = await services.executions.get(ctx, execution_id)
        assert execution.status == "interrupted"
        assert execution.finished_at is not None
        runs = {run.node_id: run for run in execution.node_runs}
        assert runs["in"].status == "completed"
        assert runs["in"].output == {}
        assert runs["ask"].status == "interrupted"
        events = await services.executions.events(ctx, execution_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert [e.type for e in events][:3] == ["execution_started", "node_started", "node_completed"]
        assert ("node_started", "ask") in [(e.type, e.node_id) for e in events]
        assert events[-1].type == "execution_interrupted"
        # A watcher that comes now is told the run ended, and is not left waiting.
        followed = [e async for e in services.executions.follow(ctx, execution_id)]
        assert followed[-1].type == "execution_interrupted"  # type: ignore[union-attr]
    finally:
        await services.aclose()
