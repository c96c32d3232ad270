"""A process running an execution dies (SIGKILL): after a restart the run is `interrupted`, nothing lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

from core.context import Role, TenantContext
from core.errors import Conflict
from tests.api.conftest import identity_settings
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from wiring.services import build_services

CHILD = Path(__file__).with_name("crash_child.py")
# Replies without token counts: a priced call makes the process load LiteLLM's price list (seconds).
NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0}


async def test_a_run_of_a_killed_process_is_interrupted_after_restart_with_its_events_and_node_runs(
    db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(Reply.hanging())
    started = await killed_run(db_url, tmp_path, llm_server, "single")
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


async def killed_run(db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer, mode: str) -> dict[str, str]:
    """Start a `crash_child.py` run in `mode`, SIGKILL the child once its node `ask` hangs; what the child said."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        db_url,
        str(tmp_path),
        llm_server.base_url,
        mode,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(CHILD.parents[2])},
    )
    assert child.stdout is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), timeout=120)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    said: dict[str, str] = json.loads(line)
    return said


async def test_retry_of_a_run_interrupted_by_a_killed_process_reuses_what_completed_before_the_kill(
    db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(Reply.say("draft text", **NO_USAGE), Reply.hanging())
    started = await killed_run(db_url, tmp_path, llm_server, "chain")
    execution_id = uuid.UUID(started["execution_id"])
    assert len(llm_server.requests) == 2  # the draft, then the call that hung

    settings = identity_settings(tmp_path, db_url)
    settings.llm.allow_private_endpoints = True
    services = build_services(settings)
    await services.start()  # the restart: the killed process's run becomes interrupted
    try:
        ctx = TenantContext(uuid.UUID(started["tenant_id"]), "acme", uuid.uuid4(), Role.EDITOR)
        interrupted = await services.executions.get(ctx, execution_id)
        assert interrupted.status == "interrupted"
        before = interrupted.runs_by_node()
        assert before["draft"].status == "completed"
        assert before["draft"].output == "draft text"
        assert before["ask"].status == "interrupted"
        llm_server.script(Reply.say("improved text", **NO_USAGE))

        retried = await services.executions.retry(ctx, execution_id)
        ended = await services.executions.wait(ctx, retried.id, 30)

        assert ended.status == "completed", ended.error
        assert ended.outputs == {"result": "improved text"}
        assert ended.options["retry_of"] == str(execution_id)
        assert len(llm_server.requests) == 3  # only `ask` asked the model again
        assert llm_server.requests[-1].json["messages"][-1]["content"] == "Improve: draft text"
        runs = ended.runs_by_node()
        assert runs["draft"].status == "completed"
        assert runs["draft"].output == "draft text"
        assert runs["draft"].flags["reused_from"] == str(execution_id)
        assert "reused_from" not in runs["ask"].flags
        events = await services.executions.events(ctx, retried.id)
        assert [e.node_id for e in events if e.type == "node_started"] == ["ask", "out"]
        # The interrupted run stays as it was.
        assert (await services.executions.get(ctx, execution_id)).status == "interrupted"
    finally:
        await services.aclose()


async def test_a_person_cannot_answer_a_node_of_a_run_interrupted_by_a_killed_process(
    db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(Reply.hanging())
    started = await killed_run(db_url, tmp_path, llm_server, "human")
    execution_id = uuid.UUID(started["execution_id"])

    services = build_services(identity_settings(tmp_path, db_url))
    await services.start()  # the restart: the killed process's run becomes interrupted
    try:
        ctx = TenantContext(uuid.UUID(started["tenant_id"]), "acme", uuid.uuid4(), Role.EDITOR)
        execution = await services.executions.get(ctx, execution_id)
        assert execution.status == "interrupted"
        assert execution.runs_by_node()["ask"].status == "interrupted"
        with pytest.raises(Conflict):  # the run has ended
            await services.executions.pauses.respond(ctx, execution_id, "review", "approve")
        after = await services.executions.get(ctx, execution_id)
        assert after.status == "interrupted"
        assert after.runs_by_node()["review"].status == "interrupted"  # nothing of an ended run waits any more
    finally:
        await services.aclose()


async def test_a_paused_run_outlives_its_killed_process_and_completes_when_answered_in_a_new_one(
    db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(Reply.say("draft text", **NO_USAGE))
    started = await killed_run(db_url, tmp_path, llm_server, "paused")
    execution_id = uuid.UUID(started["execution_id"])

    services = build_services(identity_settings(tmp_path, db_url))
    await services.start()  # a new process: nothing of the paused run is interrupted
    try:
        ctx = TenantContext(uuid.UUID(started["tenant_id"]), "acme", uuid.uuid4(), Role.EDITOR)
        paused = await services.executions.get(ctx, execution_id)
        assert paused.status == "waiting"
        assert paused.runs_by_node()["review"].flags["waiting"]["proposal"] == "draft text"

        await services.executions.pauses.respond(ctx, execution_id, "review", "approve")
        ended = await services.executions.wait(ctx, execution_id, 30)

        assert ended.status == "completed", ended.error
        assert ended.outputs == {"result": "draft text"}
        assert len(llm_server.requests) == 1  # the draft was not written again
        events = await services.executions.events(ctx, execution_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert sorted(str(e.node_id) for e in events if e.type == "node_started") == ["draft", "in", "out", "review"]
    finally:
        await services.aclose()
