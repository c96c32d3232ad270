"""A run's trace and a flow's run history: the timeline model on its own, then the pages as a person uses them."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing.user import User

from core.context import Role, TenantContext
from core.executions import EventRecord, ExecutionRecord, NodeRunRecord
from tests.api.conftest import PASSWORD
from tests.executor.conftest import document, edge, node
from tests.fixtures import llm_server as _scripted
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from tests.ui.conftest import scripted_provider, sign_in
from ui.trace_model import MIN_BAR_PCT, Trace, build_trace
from ui.trace_rows import ATTEMPT, NODE, STEP, TASK, TOOL, TraceRow, row_label, seconds_text
from wiring.services import Services

pytestmark = pytest.mark.ui_settings(loopback_llm=True)

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RUN = uuid.uuid4()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def execution(
    status: str = "completed", finished: float | None = 10.0, runs: list[NodeRunRecord] | None = None
) -> ExecutionRecord:
    return ExecutionRecord(
        id=RUN,
        flow_id=uuid.uuid4(),
        flow_version_id=uuid.uuid4(),
        version=1,
        status=status,
        inputs={},
        outputs={},
        error=None,
        started_by=None,
        started_at=T0,
        finished_at=at(finished) if finished is not None else None,
        parent_execution_id=None,
        parent_node_id=None,
        options={},
        node_runs=runs or [],
    )


def run(
    node_id: str, node_type: str, status: str, start: float | None, end: float | None, **fields: Any
) -> NodeRunRecord:
    return NodeRunRecord(
        RUN,
        node_id,
        node_type,
        status,
        started_at=at(start) if start is not None else None,
        finished_at=at(end) if end is not None else None,
        **fields,
    )


class Events:
    """Events numbered in the order they are written."""

    def __init__(self) -> None:
        self.items: list[EventRecord] = []

    def __call__(self, seconds: float, kind: str, node_id: str | None = None, **data: Any) -> None:
        self.items.append(EventRecord(RUN, len(self.items) + 1, at(seconds), kind, node_id, data))


def by_key(trace: Trace) -> dict[str, TraceRow]:
    return {row.key: row for row in trace.rows}


# -- the timeline model ------------------------------------------------------------------------


def test_nodes_are_ordered_by_start_with_offsets_durations_tokens_and_cost() -> None:
    events = Events()
    events(0, "execution_started")
    events(0.1, "node_started", "in", attempt=1, type="input")
    events(0.1, "node_completed", "in", output={"topic": "owls"})
    events(2.5, "node_started", "out", attempt=1, type="output")
    events(0.3, "node_started", "ask", attempt=1, type="llm")
    events(2.3, "node_completed", "ask", output="hoot", prompt_tokens=7, completion_tokens=3, cost_usd=0.002)
    events(2.6, "node_completed", "out", output="hoot")
    events(2.6, "execution_completed")
    record = execution(
        finished=2.7,
        runs=[
            run("out", "output", "completed", 2.5, 2.6),
            run("in", "input", "completed", 0.1, 0.1, inputs={"nodes": {}}),
            run("ask", "llm", "completed", 0.3, 2.3, prompt_tokens=7, completion_tokens=3, cost_usd=0.002),
        ],
    )
    trace = build_trace(record, reversed(events.items), now=at(60))

    assert [row.node_id for row in trace.rows] == ["in", "ask", "out"]
    assert all(row.kind == NODE and row.depth == 0 for row in trace.rows)
    ask = trace.rows[1]
    assert ask.start_s == pytest.approx(0.3)
    assert ask.duration_s == pytest.approx(2.0)
    assert (ask.prompt_tokens, ask.completion_tokens, ask.cost_usd) == (7, 3, 0.002)
    assert not trace.running
    assert trace.duration_s == pytest.approx(2.7)
    assert (trace.tokens, trace.cost_usd) == (10, pytest.approx(0.002))
    assert trace.left_pct(ask) == pytest.approx(0.3 / 2.7 * 100)
    assert trace.width_pct(ask) == pytest.approx(2.0 / 2.7 * 100)
    assert trace.width_pct(trace.rows[0]) == MIN_BAR_PCT  # an instant still shows
    assert row_label(ask) == (
        "ask (llm): completed, from 300 ms to 2.3 s, took 2.0 s, 10 tokens (7 in, 3 out), cost $0.0020"
    )


def test_crew_tasks_agent_steps_and_tool_calls_nest_under_their_node() -> None:
    events = Events()
    events(1, "node_started", "crew", attempt=1, type="crew")
    events(1.5, "crew_task_started", "crew", task="research", agent="Researcher", crew_seq=1)
    events(2, "agent_step", "crew", task="research", agent="Researcher", thought="look", tool="search", final=False)
    events(2, "tool_started", "crew", task="research", agent="Researcher", tool="search", arguments="{}")
    events(3, "tool_finished", "crew", task="research", agent="Researcher", tool="search", output="found")
    events(4, "agent_step", "crew", task="research", agent="Researcher", thought="done", output="notes", final=True)
    events(4, "crew_task_completed", "crew", task="research", agent="Researcher", output="notes")
    events(4.1, "crew_task_started", "crew", task="write", agent="Writer")
    events(5, "agent_step", "crew", task="write", agent="Writer", tool_calls=[{"tool": "draft", "arguments": ""}])
    events(6, "crew_task_failed", "crew", task="write", agent="Writer", error="no ink")
    events(6.2, "node_failed", "crew", error="no ink", attempts=1)
    record = execution("failed", 6.3, [run("crew", "crew", "failed", 1, 6.2, error="no ink", attempts=1)])
    trace = build_trace(record, events.items, now=at(60))

    shown = [(row.kind, row.depth, row.title, row.status) for row in trace.rows]
    assert shown == [
        (NODE, 0, "crew", "failed"),
        (TASK, 1, "Task research", "completed"),
        (STEP, 2, "Step: uses search", "completed"),
        (TOOL, 2, "Tool search", "completed"),
        (STEP, 2, "Step: final answer", "completed"),
        (TASK, 1, "Task write", "failed"),
        (STEP, 2, "Step: calls draft", "completed"),
    ]
    research, first_step, tool, final_step, write, _ = trace.rows[1:]
    assert (research.start_s, research.end_s, research.subtitle) == (1.5, 4, "Researcher")
    assert (first_step.start_s, first_step.end_s) == (1.5, 2)  # from the task's start to the step event
    assert (tool.start_s, tool.end_s, tool.details["output"]) == (2, 3, "found")
    assert (final_step.start_s, final_step.end_s) == (3, 4)  # after the tool call before it
    assert write.details["error"] == "no ink"
    assert research.tokens is None  # CrewAI's events do not say; the node's row has the tokens


def test_a_retried_node_shows_each_attempt_under_it() -> None:
    events = Events()
    events(0.5, "node_started", "ask", attempt=1, type="llm")
    events(1.0, "node_retrying", "ask", attempt=1, error="HTTP 400: scripted failure", delay_s=1.0)
    events(2.0, "node_started", "ask", attempt=2, type="llm")
    events(3.0, "node_completed", "ask", output="ok", attempts=2)
    record = execution(finished=3.1, runs=[run("ask", "llm", "completed", 0.5, 3.0, attempts=2, output="ok")])
    rows = by_key(build_trace(record, events.items, now=at(60)))

    assert list(rows) == ["node:ask", "node:ask/attempt:1", "node:ask/attempt:2"]
    first, second = rows["node:ask/attempt:1"], rows["node:ask/attempt:2"]
    assert (first.kind, first.status, first.start_s, first.end_s) == (ATTEMPT, "failed", 0.5, 1.0)
    assert first.details["error"] == "HTTP 400: scripted failure"
    assert (second.status, second.start_s, second.end_s) == ("completed", 2.0, 3.0)
    assert rows["node:ask"].details["attempts"] == 2


def test_a_run_still_going_ends_its_open_rows_now_and_shows_what_is_not_written_yet() -> None:
    events = Events()
    events(0.1, "node_started", "in", attempt=1, type="input")
    events(0.2, "node_completed", "in")
    events(0.3, "node_started", "crew", attempt=1, type="crew")
    events(1.0, "crew_task_started", "crew", task="research", agent="Researcher")
    events(2.0, "node_started", "late", attempt=1, type="llm")  # its node run is not written yet
    record = execution(
        "running",
        None,
        [run("in", "input", "completed", 0.1, 0.2), run("crew", "crew", "running", 0.3, None, attempts=1)],
    )
    trace = build_trace(record, events.items, now=at(5))
    rows = by_key(trace)

    assert trace.running
    assert trace.duration_s == 5
    assert [row.node_id for row in trace.node_rows()] == ["in", "crew", "late"]
    crew, task, late = rows["node:crew"], rows["node:crew/task:1"], rows["node:late"]
    assert (crew.status, crew.open, crew.end_s) == ("running", True, 5)
    assert (task.status, task.open, task.end_s) == ("running", True, 5)
    assert (late.status, late.subtitle, late.open, late.start_s) == ("running", "llm", True, 2.0)
    assert not rows["node:in"].open
    assert "still going after 3.0 s" in row_label(late)


def test_an_interrupted_run_leaves_unfinished_rows_where_their_node_stopped() -> None:
    events = Events()
    events(0.3, "node_started", "crew", attempt=1, type="crew")
    events(1.0, "crew_task_started", "crew", task="research", agent="Researcher")
    events(4.0, "execution_interrupted", error="the process running it stopped")
    record = execution("interrupted", 4.0, [run("crew", "crew", "interrupted", 0.3, 4.0)])
    rows = by_key(build_trace(record, events.items, now=at(60)))

    task = rows["node:crew/task:1"]
    assert (task.status, task.open, task.end_s) == ("interrupted", False, 4.0)


def test_skipped_and_reused_nodes_have_no_bar_and_reused_tokens_count_for_their_own_run() -> None:
    earlier = str(uuid.uuid4())
    events = Events()
    events(0, "node_completed", "ask", output="old", reused_from=earlier)
    events(0.5, "node_skipped", "no", reason="no incoming branch was taken")
    events(0.6, "node_started", "out", attempt=1, type="output")
    events(0.7, "node_completed", "out")
    reused = run(
        "ask", "llm", "completed", -100, -90, prompt_tokens=50, completion_tokens=50, flags={"reused_from": earlier}
    )
    record = execution(
        finished=1,
        runs=[reused, run("no", "llm", "skipped", None, 0.5), run("out", "output", "completed", 0.6, 0.7)],
    )
    trace = build_trace(record, events.items, now=at(60))

    assert [row.node_id for row in trace.rows] == ["ask", "no", "out"]  # reused first, the skip where it was decided
    ask, skipped, _ = trace.rows
    assert ask.start_s is None
    assert skipped.start_s is None
    assert ask.details["reused_from"] == earlier
    assert "not run in this run" in row_label(ask)
    assert trace.tokens == 0


def test_seconds_read_in_the_unit_that_fits() -> None:
    assert [seconds_text(s) for s in (None, 0.0123, 2.04, 75, 3720)] == [
        "—",
        "12 ms",
        "2.0 s",
        "1 min 15 s",
        "1 h 2 min",
    ]


# -- the pages ---------------------------------------------------------------------------------

SLOW = 100


def echo_flow() -> dict[str, Any]:
    return document(
        [node("in", "input"), node("out", "output", value="{{ inputs.topic }}")],
        [edge("in", "out")],
        [{"name": "topic", "type": "string"}],
    )


async def run_flow(services: Services, ctx: TenantContext, flow_id: uuid.UUID, topic: str) -> ExecutionRecord:
    execution = await services.executions.start_run(ctx, flow_id, {"topic": topic})
    return await services.executions.wait(ctx, execution.id, 10)


def element(user: User, testid: str) -> ui.element:
    found = user.find(marker=testid).elements
    assert len(found) == 1, f"{len(found)} elements with test id {testid!r}"
    return next(iter(found))


def text_of(user: User, testid: str) -> str:
    label = element(user, testid)
    assert isinstance(label, ui.label)
    return label.text


async def test_a_completed_runs_trace_lists_every_node_with_its_duration(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    saved = await ui_services.flows.create(owner.ctx, "Echo", "", echo_flow())
    record = await run_flow(ui_services, owner.ctx, saved.version.flow_id, "owls")
    assert record.status == "completed"

    await user.open(f"/runs/{record.id}")
    trace_link = element(user, "run-trace")  # the run page links to its trace
    assert isinstance(trace_link, ui.link)
    assert trace_link.props["href"] == f"/runs/{record.id}/trace"

    await user.open(f"/runs/{record.id}/trace")
    await user.should_see("Trace of Echo")
    await user.should_see(kind=ui.badge, marker="trace-status", content="completed")
    assert text_of(user, "trace-who") == f"started by {owner.email}"
    for run_ in record.node_runs:
        assert run_.started_at is not None
        assert run_.finished_at is not None
        took = seconds_text((run_.finished_at - run_.started_at).total_seconds())
        assert text_of(user, f"trace-numbers-{run_.node_id}") == f"completed · {took}", run_.node_id
        bar = element(user, f"trace-bar-{run_.node_id}")
        assert f"took {took}" in str(bar.props["aria-label"])
        assert "left" in bar.style
        assert "width" in bar.style
    canvas = element(user, "trace-canvas")
    assert isinstance(canvas, ui.link)
    assert canvas.props["href"] == f"/flows/{saved.version.flow_id}/edit?run={record.id}"
    assert element(user, "trace-run").props["href"] == f"/runs/{record.id}"
    await user.should_not_see(marker="trace-running", retries=1)

    user.find(marker="trace-row-out").click()
    await user.should_see(marker="trace-details-output")
    output = element(user, "trace-details-output")
    assert isinstance(output, ui.code)
    assert "owls" in output.content
    assert "out (output): completed" in text_of(user, "trace-details-summary")


async def test_an_llm_nodes_tokens_and_retries_show_on_the_trace(
    user: User, ui_services: Services, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_in(user, ui_services)
    provider = await scripted_provider(ui_services, owner.ctx, llm_server.base_url)
    llm_server.script(Reply.error(400), Reply.say("hoot", prompt_tokens=7, completion_tokens=3))
    flow = document(
        [
            node("in", "input"),
            node(
                "ask",
                "llm",
                provider_id=str(provider.id),
                prompt="Tell me about {{ inputs.topic }}",
                retry={"attempts": 2, "backoff_s": 0.05},
            ),
            node("out", "output", value="{{ nodes.ask.output }}"),
        ],
        [edge("in", "ask"), edge("ask", "out")],
        [{"name": "topic", "type": "string"}],
    )
    saved = await ui_services.flows.create(owner.ctx, "Ask", "", flow)
    record = await run_flow(ui_services, owner.ctx, saved.version.flow_id, "owls")
    assert record.status == "completed", record.error

    await user.open(f"/runs/{record.id}/trace")
    await user.should_see(marker="trace-row-ask")
    assert "10 tokens" in text_of(user, "trace-numbers-ask")
    assert text_of(user, "trace-tokens") == "10 tokens (7 in, 3 out)"
    assert "10 tokens (7 in, 3 out)" in str(element(user, "trace-bar-ask").props["aria-label"])
    await user.should_see(marker="trace-row-ask-attempt-1")
    await user.should_see(marker="trace-row-ask-attempt-2")
    user.find(marker="trace-row-ask-attempt-1").click()
    await user.should_see(kind=ui.badge, marker="trace-details-status", content="failed")
    assert "400" in text_of(user, "trace-details-error")


async def test_a_waiting_run_shows_what_is_there_and_says_it_is_still_going(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    flow = document(
        [
            node("in", "input"),
            node("review", "human", prompt="Publish {{ inputs.topic }}?", value="{{ inputs.topic }}"),
            node("out", "output", value="{{ nodes.review.output }}"),
        ],
        [edge("in", "review"), edge("review", "out")],
        [{"name": "topic", "type": "string"}],
    )
    saved = await ui_services.flows.create(owner.ctx, "Review", "", flow)
    record = await run_flow(ui_services, owner.ctx, saved.version.flow_id, "the plan")
    assert record.status == "waiting"

    await user.open(f"/runs/{record.id}/trace")
    await user.should_see(marker="trace-running")
    await user.should_see(marker="trace-row-in")
    await user.should_see(marker="trace-row-review")
    await user.should_not_see(marker="trace-row-out", retries=1)  # it has not run
    assert "so far" in text_of(user, "trace-numbers-review")
    assert "so far" in text_of(user, "trace-duration")


async def test_the_flow_page_history_lists_runs_with_who_started_them_and_links_to_their_traces(
    user: User, ui_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await sign_in(user, ui_services)
    saved = await ui_services.flows.create(owner.ctx, "Echo", "", echo_flow())
    flow_id = saved.version.flow_id
    await user.open(f"/flows/{flow_id}")
    await user.should_see("History")
    await user.should_see(marker="flow-history-empty")
    await user.should_see("Fill in the Run form above and press Run; every run shows up here with its trace.")

    account, _ = await ui_services.identity.accounts.signup(
        f"ada{uuid.uuid4().hex[:6]}@example.com",
        PASSWORD,
        tenant_slug=f"ws_{uuid.uuid4().hex[:8]}",
        display_name="Ada Lovelace",
    )
    invite = await ui_services.identity.invites.create(owner.ctx, Role.EDITOR)
    await ui_services.identity.invites.accept(invite.token, account.id)
    ada = TenantContext(owner.ctx.tenant_id, owner.ctx.tenant_slug, account.id, Role.EDITOR)
    first = await run_flow(ui_services, owner.ctx, flow_id, "first")
    second = await run_flow(ui_services, ada, flow_id, "second")

    await user.open(f"/flows/{flow_id}")
    await user.should_see(marker=f"history-{first.id}")
    await user.should_see(marker=f"history-{second.id}")
    assert text_of(user, f"history-who-{first.id}") == owner.email
    assert text_of(user, f"history-who-{second.id}") == "Ada Lovelace"
    assert text_of(user, f"history-tokens-{first.id}") == "0"
    assert text_of(user, f"history-cost-{first.id}") == "—"
    await user.should_see(kind=ui.badge, marker=f"history-status-{first.id}", content="completed")
    trace = element(user, f"history-trace-{second.id}")
    assert isinstance(trace, ui.link)
    assert trace.props["href"] == f"/runs/{second.id}/trace"
    assert element(user, f"history-run-{second.id}").props["href"] == f"/runs/{second.id}"

    monkeypatch.setattr(sys.modules["ui.flow_history"], "PAGE_SIZE", 1)
    await user.open(f"/flows/{flow_id}")
    await user.should_see(marker=f"history-{second.id}")  # the newest
    await user.should_not_see(marker=f"history-{first.id}", retries=1)
    user.find(marker="history-older").click()
    await user.should_see(marker=f"history-{first.id}", retries=SLOW)
    await user.should_not_see(marker=f"history-{second.id}", retries=1)
    await user.should_not_see(marker="history-older", retries=1)
    user.find(marker="history-newer").click()
    await user.should_see(marker=f"history-{second.id}", retries=SLOW)

    await user.open(str(trace.props["href"]))
    await user.should_see("Trace of Echo")
    assert text_of(user, "trace-who") == "started by Ada Lovelace"


async def test_another_workspaces_trace_and_malformed_ids_are_not_found(user: User, ui_services: Services) -> None:
    other = await sign_in(User(user.http_client), ui_services)
    saved = await ui_services.flows.create(other.ctx, "Theirs", "", echo_flow())
    theirs = await run_flow(ui_services, other.ctx, saved.version.flow_id, "secret topic")
    await sign_in(user, ui_services)
    for execution_id in (str(theirs.id), "12345", str(uuid.uuid4())):
        response = await user.http_client.get(f"/runs/{execution_id}/trace")
        assert response.status_code == 404, execution_id
        assert "not-found" in response.text
        assert "secret topic" not in response.text


async def test_a_subflow_nodes_runs_link_to_their_traces_and_back(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    child = await ui_services.flows.create(owner.ctx, "Echo", "", echo_flow())
    parent_document = document(
        [
            node("in", "input"),
            node(
                "sub", "subflow", flow_id=str(child.version.flow_id), version=1, inputs={"topic": "{{ inputs.topic }}"}
            ),
        ],
        [edge("in", "sub")],
        [{"name": "topic", "type": "string"}],
    )
    parent = await ui_services.flows.create(owner.ctx, "Caller", "", parent_document)
    record = await run_flow(ui_services, owner.ctx, parent.version.flow_id, "otters")
    assert record.status == "completed"
    [child_run] = (await ui_services.executions.list(owner.ctx, parent_execution_id=record.id)).items
    assert child_run.flow_id == child.version.flow_id

    await user.open(f"/runs/{record.id}/trace")
    await user.should_not_see(marker="trace-parent", retries=1)  # a run started by someone, not by a node
    user.find(marker="trace-row-sub").click()
    await user.should_see(marker="trace-subflow-runs")
    link = element(user, "trace-subflow-run-1")
    assert isinstance(link, ui.link)
    assert link.props["href"] == f"/runs/{child_run.id}/trace"
    assert link.text.startswith("Run: completed")
    user.find(marker="trace-row-in").click()  # a node that started no run lists none
    await user.should_not_see(marker="trace-subflow-runs", retries=SLOW)

    await user.open(f"/runs/{child_run.id}/trace")
    await user.should_see("Trace of Echo")
    back = element(user, "trace-parent")
    assert isinstance(back, ui.link)
    assert back.props["href"] == f"/runs/{record.id}/trace"
    assert back.text == "Part of a run: its node sub"
