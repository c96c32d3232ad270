"""Chat with a crew or a flow: each message runs it with the conversation so far; the reply streams back.

A chat with a **crew** runs, per message, an unsaved flow built here (`crew_document`):
`input -> crew -> output "reply"`, the crew node reading the conversation from
`{{ inputs.messages }}` (CrewAI adds it to every task) and answering with its final
result. Its placeholders are filled so:

- the *text placeholder* takes each message's text: `message` if the crew has that
  placeholder, else the first of `question`, `query`, `topic` it has, else its only
  placeholder left without a value (none in the chat's inputs, no default). A crew with
  none of these reads the message in the conversation alone;
- every other placeholder takes the chat's `inputs`, else the crew's default.

A chat with a **flow** runs the flow's latest version. The flow must declare a string
input `message`, which takes the text; an input `messages` or `history` gets the
conversation (a list of {role, content} for an array input, that list as JSON for a
string input); the chat's `inputs` fill the others. The reply is the output named
`reply`, else the flow's only output, else all its outputs as JSON.

The conversation is the last `MAX_CONTEXT_MESSAGES` messages (failed and cancelled
replies left out), ending with the new message.

One reply at a time: a reply is being written while the session's last user message has
no reply and either its run has not ended or it has no run yet and was stored less than
`START_GRACE_S` ago (the run is being started). That is read from the stored messages and
runs, so it holds across reconnects and processes. A run that ended while nobody
watched gets its reply stored by whoever reads the session next (`_settle`), so no reply
is lost to a closed socket or a restart.

A reply streams as frames (`reply_stream`), the same for every client:

    {"type": "token", "text", "agent", "task", "node"}         a chunk of a reply being written
    {"type": "step", "kind", "node", "task", "agent", ...}     an agent step, tool call or task (CrewAI's)
    {"type": "reply", "message": {...}}                        the stored reply; ends the stream
    {"type": "error", "message": "why", "reply": {...}}        the run failed (the stored failed reply)
    {"type": "cancelled", "reply": {...}}                      the run was cancelled
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from core.chat import REPLY_PENDING, ChatMessageRecord, ChatSessionRecord, ChatStore, MessageStatus, check_message
from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput, NotFound, Problem
from core.executions import TERMINAL_STATUSES as FINAL
from core.executions import EventRecord, ExecutionRecord
from core.text import text_problem
from executor.document import SCHEMA, FlowDocument, parse_document
from executor.service import ExecutionService

if TYPE_CHECKING:
    from core.crews import CrewView

#: Placeholders that take a message's text, in order of preference (after `message`).
TEXT_PLACEHOLDERS: Final = ("message", "question", "query", "topic")
#: Flow inputs the chat fills itself: the text, and the conversation.
FLOW_TEXT_INPUT: Final = "message"
FLOW_CONVERSATION_INPUTS: Final = ("messages", "history")
#: How many messages of the conversation a run gets (the newest ones).
MAX_CONTEXT_MESSAGES = 40
#: How long a message may wait for its run to be stored before it counts as never started.
START_GRACE_S = 30.0
#: Execution events that become `step` frames.
STEP_EVENTS: Final = frozenset(
    {"agent_step", "tool_started", "tool_finished", "tool_failed", "crew_task_started", "crew_task_completed",
     "crew_task_failed"}
)  # fmt: skip
CREW_NODE: Final = "crew"
REPLY_OUTPUT: Final = "reply"
NEVER_STARTED = "the run for this message never started; send the message again"


class CrewLookup(Protocol):
    """The crews a chat can talk to (`core.crews.CrewRecords` fits)."""

    async def get_crew(self, ctx: TenantContext, crew_id: uuid.UUID) -> CrewView: ...


@dataclass(frozen=True, slots=True)
class Pending:
    """A user message whose reply is being written; `execution` is None while its run is being started."""

    message: ChatMessageRecord
    execution: ExecutionRecord | None


class ChatService:
    """Sessions, history, sending, streaming the reply and cancelling it."""

    def __init__(
        self,
        store: ChatStore,
        executions: ExecutionService,
        crews: CrewLookup,
        *,
        start_grace_s: float = START_GRACE_S,
    ) -> None:
        self._store = store
        self._executions = executions
        self._crews = crews
        self._start_grace = timedelta(seconds=start_grace_s)

    # -- sessions ----------------------------------------------------------------------------

    async def create(
        self,
        ctx: TenantContext,
        *,
        crew_id: uuid.UUID | None = None,
        flow_id: uuid.UUID | None = None,
        inputs: Mapping[str, Any] | None = None,
        title: str | None = None,
    ) -> ChatSessionRecord:
        """Start a chat with a crew or a flow, checking now that it can be chatted with (`InvalidInput` if not)."""
        ctx.require(Role.EDITOR, "chat")
        given = dict(inputs or {})
        if (crew_id is None) == (flow_id is None):
            raise InvalidInput("a chat is with a crew or with a flow: give crew_id or flow_id, not both")
        if crew_id is not None:
            crew = await self._crew(ctx, crew_id)
            _check_crew(crew, given)
            name = crew.name
        else:
            assert flow_id is not None
            name = await self._check_flow(ctx, flow_id, given)
        return await self._store.create_session(
            ctx, title=(title or "").strip() or name, crew_id=crew_id, flow_id=flow_id, inputs=given
        )

    async def list(self, ctx: TenantContext, *, limit: int = 100) -> builtins.list[ChatSessionRecord]:
        """The caller's chats, the most recently used first."""
        return await self._store.list_sessions(ctx, limit=limit)

    async def get(self, ctx: TenantContext, session_id: uuid.UUID) -> ChatSessionRecord:
        """One of the caller's chats; `NotFound` for anyone else's."""
        return await self._store.get_session(ctx, session_id)

    async def delete(self, ctx: TenantContext, session_id: uuid.UUID) -> None:
        """Delete one of the caller's chats; a reply being written is cancelled first."""
        ctx.require(Role.EDITOR, "delete chats")
        session = await self._store.get_session(ctx, session_id)
        pending = await self._settle(ctx, session)
        if pending is not None and pending.execution is not None:
            with contextlib.suppress(Conflict):  # it ended meanwhile
                await self._executions.cancel(ctx, pending.execution.id)
        await self._store.delete_session(ctx, session_id)

    async def history(
        self, ctx: TenantContext, session_id: uuid.UUID, *, last: int | None = None
    ) -> builtins.list[ChatMessageRecord]:
        """The chat's messages in order, with the reply of a run that ended meanwhile stored first."""
        session = await self._store.get_session(ctx, session_id)
        await self._settle(ctx, session)
        return await self._store.messages(ctx, session_id, last=last)

    async def replying(self, ctx: TenantContext, session_id: uuid.UUID) -> uuid.UUID | None:
        """The run writing the chat's reply now, if any (waiting a moment for one that is being started)."""
        session = await self._store.get_session(ctx, session_id)
        pending = await self._settle(ctx, session)
        waited = timedelta()
        while pending is not None and pending.execution is None and waited < self._start_grace:
            await asyncio.sleep(0.1)
            waited += timedelta(seconds=0.1)
            pending = await self._settle(ctx, session)
        return pending.execution.id if pending is not None and pending.execution is not None else None

    # -- sending and replies -------------------------------------------------------------------

    async def send(self, ctx: TenantContext, session_id: uuid.UUID, text: str) -> ExecutionRecord:
        """Store the caller's message and start the run that answers it; the run (follow it with `reply_stream`).

        `Conflict` while the previous reply is still being written: messages never interleave."""
        ctx.require(Role.EDITOR, "chat")
        text = check_message(text)
        session = await self._store.get_session(ctx, session_id)
        if await self._settle(ctx, session) is not None:
            raise Conflict(REPLY_PENDING)
        earlier = await self._store.messages(ctx, session_id, last=MAX_CONTEXT_MESSAGES)
        message = await self._store.add_user_message(ctx, session_id, text)
        conversation = _conversation(earlier, message.content)
        try:
            execution = await self._start(ctx, session, message.content, conversation)
        except BaseException:
            # The turn is given back, so the person can send again once the cause is fixed.
            await asyncio.shield(self._store.withdraw(ctx, session_id, message.id))
            raise
        await self._store.attach_execution(ctx, session_id, message.id, execution.id)
        return execution

    async def reply_stream(
        self, ctx: TenantContext, session_id: uuid.UUID, execution_id: uuid.UUID
    ) -> AsyncIterator[dict[str, Any]]:
        """The frames of the reply that `execution_id` writes: what it streamed so far, then live, then the end.

        Ends with one `reply`, `error` or `cancelled` frame carrying the stored reply."""
        session = await self._store.get_session(ctx, session_id)
        turn = await self._store.turn_of(ctx, session_id, execution_id)
        async for item in self._executions.follow(ctx, execution_id):
            if isinstance(item, EventRecord) and (frame := chat_frame(item)) is not None:
                yield frame
        message, reply = await self._store.turn(ctx, session_id, turn)
        if reply is None and message is not None:
            execution = await self._executions.get(ctx, execution_id)
            if execution.status in FINAL:
                reply = await self._answer(ctx, session, message, execution)
        if reply is None:
            yield {"type": "error", "message": "the run stopped reporting before it ended; reload the chat"}
            return
        yield final_frame(reply)

    async def cancel(self, ctx: TenantContext, session_id: uuid.UUID) -> ExecutionRecord:
        """Cancel the reply being written; its run, ended `cancelled` (a `cancelled` reply is stored)."""
        ctx.require(Role.EDITOR, "cancel replies")
        session = await self._store.get_session(ctx, session_id)
        pending = await self._settle(ctx, session)
        if pending is None:
            raise Conflict("no reply is being written in this chat; there is nothing to cancel")
        if pending.execution is None:
            raise Conflict("the reply is just starting; cancel it again in a moment")
        try:
            record = await self._executions.cancel(ctx, pending.execution.id)
        except Conflict:  # it ended meanwhile: its reply is stored below like any other
            record = await self._executions.get(ctx, pending.execution.id)
        await self._settle(ctx, session)
        return record

    # -- helpers -------------------------------------------------------------------------------

    async def _settle(self, ctx: TenantContext, session: ChatSessionRecord) -> Pending | None:
        """The reply being written now, if any; a run that ended without its reply stored gets it stored."""
        message, reply = await self._store.last_turn(ctx, session.id)
        if message is None or reply is not None:
            return None
        if message.execution_id is None:
            if datetime.now(UTC) - message.created_at < self._start_grace:
                return Pending(message, None)
            await self._store.add_reply(ctx, session.id, message.turn, NEVER_STARTED, status="failed")
            return None
        try:
            execution = await self._executions.get(ctx, message.execution_id)
        except NotFound:
            gone = "the run of this message was deleted; send the message again"
            await self._store.add_reply(
                ctx, session.id, message.turn, gone, status="failed", execution_id=message.execution_id
            )
            return None
        if execution.status in FINAL:
            await self._answer(ctx, session, message, execution)
            return None
        return Pending(message, execution)

    async def _answer(
        self, ctx: TenantContext, session: ChatSessionRecord, message: ChatMessageRecord, execution: ExecutionRecord
    ) -> ChatMessageRecord:
        """Store the reply an ended run gave to `message` (once; a stored one is returned as it is)."""
        status: MessageStatus
        if execution.status == "completed":
            content, status = reply_text(execution.outputs), "ok"
        elif execution.status == "cancelled":
            content, status = "", "cancelled"
        else:
            content, status = execution.error or f"the run {execution.status}", "failed"
        return await self._store.add_reply(
            ctx,
            session.id,
            message.turn,
            content,
            status=status,
            execution_id=execution.id,
            created_at=execution.finished_at,
        )

    async def _start(
        self, ctx: TenantContext, session: ChatSessionRecord, text: str, conversation: builtins.list[dict[str, str]]
    ) -> ExecutionRecord:
        if session.crew_id is not None:
            crew = await self._crew(ctx, session.crew_id)
            if crew.problems:
                listed = "; ".join(problem.message for problem in crew.problems)
                raise Conflict(f"crew '{crew.name}' cannot run now: {listed}; fix it, then send the message again")
            placeholder = text_placeholder(crew, session.inputs)
            values = {k: v for k, v in session.inputs.items() if k in crew.placeholders and k != placeholder}
            missing = _missing_placeholders(crew, placeholder, values)
            if missing:
                raise Conflict(
                    f"crew '{crew.name}' now needs a value for {', '.join(missing)}; "
                    "start a new chat giving it in inputs"
                )
            inputs = {"messages": conversation, "message": text, "values": values}
            return await self._executions.start_document(
                ctx, crew_document(crew.id, placeholder, values), inputs, origin="chat"
            )
        if session.flow_id is not None:
            version = await self._executions.flows.version(ctx, session.flow_id)
            flow = parse_document(version.document)
            if _text_input_problem(flow) is not None:
                raise Conflict(
                    f"the flow of this chat no longer has a text input '{FLOW_TEXT_INPUT}'; "
                    "add it back or start a chat with another flow"
                )
            return await self._executions.start_run(
                ctx, session.flow_id, flow_inputs(flow, session.inputs, text, conversation)
            )
        raise Conflict("the crew or flow of this chat was deleted; start a new chat")

    async def _crew(self, ctx: TenantContext, crew_id: uuid.UUID) -> CrewView:
        try:
            return await self._crews.get_crew(ctx, crew_id)
        except NotFound as exc:
            raise InvalidInput(
                f"no crew with id {crew_id} in this workspace; pick one of /api/crews", field="crew_id"
            ) from exc

    async def _check_flow(self, ctx: TenantContext, flow_id: uuid.UUID, given: dict[str, Any]) -> str:
        """The flow's name, if its latest version can be chatted with using `given` for its other inputs."""
        try:
            flow = await self._executions.flows.get(ctx, flow_id)
        except NotFound as exc:
            raise InvalidInput(
                f"no flow with id {flow_id} in this workspace; pick one of /api/flows", field="flow_id"
            ) from exc
        document = parse_document((await self._executions.flows.version(ctx, flow_id)).document)
        problem = _text_input_problem(document)
        if problem is not None:
            raise InvalidInput(f"flow '{flow.name}' {problem}", field="flow_id")
        taken = [name for name in given if name in (FLOW_TEXT_INPUT, *FLOW_CONVERSATION_INPUTS)]
        if taken:
            problems = [
                Problem(f"inputs.{name}", f"'{name}' is filled by the chat itself; leave it out") for name in taken
            ]
            raise InvalidInput(f"inputs: {problems[0].message}", problems=problems)
        trial = [{"role": "user", "content": "hello"}]
        # Validates the flow and its other inputs now, so a chat that cannot run is never started.
        await self._executions.prepare(ctx, flow_id, flow_inputs(document, given, "hello", trial))
        return flow.name


# -- crews -------------------------------------------------------------------------------------


def text_placeholder(crew: CrewView, inputs: Mapping[str, Any]) -> str | None:
    """The placeholder that takes each message's text (see the module's docstring), or None."""
    for name in TEXT_PLACEHOLDERS:
        if name in crew.placeholders:
            return name
    free = [name for name in crew.placeholders if name not in inputs and name not in crew.inputs]
    return free[0] if len(free) == 1 else None


def _missing_placeholders(crew: CrewView, placeholder: str | None, values: Mapping[str, Any]) -> list[str]:
    return [
        name for name in crew.placeholders if name != placeholder and name not in values and name not in crew.inputs
    ]


def _check_crew(crew: CrewView, given: Mapping[str, Any]) -> None:
    """`InvalidInput` naming each problem if the crew cannot be chatted with using `given` for its placeholders."""
    problems: list[Problem] = []
    if crew.problems:
        listed = "; ".join(problem.message for problem in crew.problems)
        problems.append(Problem("crew_id", f"crew '{crew.name}' cannot run: {listed}"))
    placeholder = text_placeholder(crew, given)
    known = ", ".join(crew.placeholders) or "none"
    for name, value in given.items():
        field = f"inputs.{name}"
        if name not in crew.placeholders:
            problems.append(
                Problem(field, f"crew '{crew.name}' has no placeholder '{name}'; its placeholders: {known}")
            )
        elif name == placeholder:
            problems.append(Problem(field, f"'{name}' takes the text of each message; leave it out"))
        elif not isinstance(value, str):
            problems.append(Problem(field, f"the value of '{name}' must be text"))
        elif (problem := text_problem(value, "text")) is not None:
            problems.append(Problem(field, f"the value of '{name}' {problem}"))
    missing = _missing_placeholders(crew, placeholder, given)
    if missing:
        problems.append(
            Problem("inputs", f"crew '{crew.name}' needs a value for {', '.join(missing)}; give it in inputs")
        )
    if problems:
        summary = "; ".join(problem.message for problem in problems[:3])
        raise InvalidInput(f"this crew cannot chat: {summary}", problems=problems)


def crew_document(crew_id: uuid.UUID, placeholder: str | None, values: Iterable[str]) -> dict[str, Any]:
    """The flow one message of a crew chat runs: input -> crew -> output `reply` (the crew's final answer).

    The text and the values reach the crew as flow inputs, never inside a template: a message
    with `{{` in it stays text."""
    templates = {name: "{{ inputs.values[" + json.dumps(name) + "] }}" for name in values}
    if placeholder is not None:
        templates[placeholder] = "{{ inputs.message }}"
    nodes = [
        {"id": "in", "type": "input", "data": {}},
        {
            "id": CREW_NODE,
            "type": "crew",
            "data": {"crew_id": str(crew_id), "inputs": templates, "conversation": "{{ inputs.messages }}"},
        },
        {"id": "out", "type": "output", "data": {"name": REPLY_OUTPUT, "value": "{{ nodes.crew.output.raw }}"}},
    ]
    edges = [
        {"id": "in-crew", "source": "in", "target": CREW_NODE},
        {"id": "crew-out", "source": CREW_NODE, "target": "out"},
    ]
    inputs = [
        {"name": "messages", "type": "array"},
        {"name": "message", "type": "string"},
        {"name": "values", "type": "object"},
    ]
    return {"schema": SCHEMA, "nodes": nodes, "edges": edges, "inputs": inputs}


# -- flows -------------------------------------------------------------------------------------


def _text_input_problem(document: FlowDocument) -> str | None:
    spec = next((spec for spec in document.inputs if spec.name == FLOW_TEXT_INPUT), None)
    if spec is None:
        return (
            f"has no input named '{FLOW_TEXT_INPUT}'; add a string input '{FLOW_TEXT_INPUT}' "
            "(it takes each message's text) to chat with it"
        )
    if spec.type != "string":
        return f"has an input '{FLOW_TEXT_INPUT}' of type {spec.type}; make it a string to chat with it"
    return None


def flow_inputs(
    document: FlowDocument, given: Mapping[str, Any], text: str, conversation: list[dict[str, str]]
) -> dict[str, Any]:
    """A flow chat run's inputs: the chat's own, the text as `message`, the conversation where declared."""
    inputs = {**given, FLOW_TEXT_INPUT: text}
    for spec in document.inputs:
        if spec.name in FLOW_CONVERSATION_INPUTS:
            inputs[spec.name] = json.dumps(conversation, ensure_ascii=False) if spec.type == "string" else conversation
    return inputs


# -- messages and frames -----------------------------------------------------------------------


def _conversation(earlier: Iterable[ChatMessageRecord], text: str) -> list[dict[str, str]]:
    said = [{"role": m.role, "content": m.content} for m in earlier if m.status == "ok"]
    return [*said, {"role": "user", "content": text}][-MAX_CONTEXT_MESSAGES:]


def reply_text(outputs: Mapping[str, Any]) -> str:
    """The reply in a run's outputs: `reply`, else the only output, else every output as JSON."""
    if REPLY_OUTPUT in outputs:
        value = outputs[REPLY_OUTPUT]
    elif len(outputs) == 1:
        value = next(iter(outputs.values()))
    else:
        value = dict(outputs)
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def chat_frame(event: EventRecord) -> dict[str, Any] | None:
    """The frame a chat client gets for a run's event, or None for events it does not show."""
    data = event.data
    if event.type == "token":
        text = data.get("text")
        if not isinstance(text, str) or not text:
            return None
        return {
            "type": "token",
            "text": text,
            "agent": data.get("agent"),
            "task": data.get("task"),
            "node": event.node_id,
        }
    if event.type in STEP_EVENTS:
        details = {key: value for key, value in data.items() if key not in {"crew_seq", "type", "kind", "node"}}
        return {"type": "step", "kind": event.type, "node": event.node_id, **details}
    return None


def final_frame(reply: ChatMessageRecord) -> dict[str, Any]:
    """The frame that ends a reply's stream."""
    if reply.status == "ok":
        return {"type": "reply", "message": reply.as_dict()}
    if reply.status == "cancelled":
        return {"type": "cancelled", "reply": reply.as_dict()}
    return {"type": "error", "message": reply.content, "reply": reply.as_dict()}
