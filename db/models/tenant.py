"""Tenant tables: everything a tenant owns. Scoped by the session, never by hand."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import IdMixin, TenantBase, TimestampMixin, UTCDateTime, utcnow

JsonDict = dict[str, Any]


class DataKey(IdMixin, TenantBase):
    """The tenant's data-encryption key, wrapped by a master key (`master_key_id`)."""

    __tablename__ = "data_keys"

    master_key_id: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Provider(IdMixin, TimestampMixin, TenantBase):
    """An LLM provider: kind, endpoint, models, encrypted credentials, optional fallback."""

    __tablename__ = "providers"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    base_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    default_params: Mapped[JsonDict] = mapped_column(JSON, default=dict)
    credential_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    credential_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    credential_hint: Mapped[str] = mapped_column(String(40), default="")
    fallback_provider_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("providers.id", ondelete="SET NULL"), nullable=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    rpm_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Agent(IdMixin, TimestampMixin, TenantBase):
    """A CrewAI agent definition."""

    __tablename__ = "agents"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(Text)
    goal: Mapped[str] = mapped_column(Text)
    backstory: Mapped[str] = mapped_column(Text, default="")
    provider_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("providers.id", ondelete="SET NULL"), nullable=True
    )
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tool_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    settings: Mapped[JsonDict] = mapped_column(JSON, default=dict)


class Task(IdMixin, TimestampMixin, TenantBase):
    """A CrewAI task definition."""

    __tablename__ = "tasks"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text)
    expected_output: Mapped[str] = mapped_column(Text, default="")
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True
    )
    settings: Mapped[JsonDict] = mapped_column(JSON, default=dict)


class Crew(IdMixin, TimestampMixin, TenantBase):
    """A saved crew: agents, tasks, process."""

    __tablename__ = "crews"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    process: Mapped[str] = mapped_column(String(20), default="sequential")
    agent_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    task_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    settings: Mapped[JsonDict] = mapped_column(JSON, default=dict)


class Tool(IdMixin, TimestampMixin, TenantBase):
    """A user-written tool: Python code or a command, run only in the sandbox."""

    __tablename__ = "tools"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(20), default="python")
    input_schema: Mapped[JsonDict] = mapped_column(JSON, default=dict)
    code: Mapped[str] = mapped_column(Text, default="")
    limits: Mapped[JsonDict] = mapped_column(JSON, default=dict)


class Flow(IdMixin, TimestampMixin, TenantBase):
    """A flow; its documents are the versions."""

    __tablename__ = "flows"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    latest_version: Mapped[int] = mapped_column(Integer, default=0)


class FlowVersion(IdMixin, TenantBase):
    """One immutable version of a flow document."""

    __tablename__ = "flow_versions"
    __table_args__ = (UniqueConstraint("flow_id", "version"),)

    flow_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("flows.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[JsonDict] = mapped_column(JSON)
    # A note saved with the version, such as "restored from v3".
    message: Mapped[str] = mapped_column(String(500), default="", server_default="")
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FlowDraft(TenantBase):
    """The editor's unsaved state of a flow: one per flow, changed by operations, saved as a new version."""

    __tablename__ = "flow_drafts"

    flow_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True)
    document: Mapped[JsonDict] = mapped_column(JSON)
    # The version the draft started from: saving it is refused when someone saved a newer one since.
    base_version: Mapped[int] = mapped_column(Integer)
    # 1 when first stored, +1 per change: a change names the revision it was made on (optimistic concurrency).
    revision: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Execution(IdMixin, TimestampMixin, TenantBase):
    """One run of a flow version."""

    __tablename__ = "executions"

    flow_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("flows.id", ondelete="CASCADE"), nullable=True, index=True
    )
    flow_version_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("flow_versions.id", ondelete="SET NULL"), nullable=True, index=True
    )
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # pending | running | waiting | completed | failed | cancelled | interrupted
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    inputs: Mapped[JsonDict] = mapped_column(JSON, default=dict)
    outputs: Mapped[JsonDict] = mapped_column(JSON, default=dict)
    options: Mapped[JsonDict] = mapped_column(JSON, default=dict, server_default="{}")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # Indexed: the run list pages newest first on it.
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # A subflow's run points at the run and node that started it (no foreign key: the parent
    # may be deleted while the child's history is still worth keeping).
    parent_execution_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    parent_node_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # The highest event `seq` stored, kept by the journal in the transaction that writes events.
    last_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The app process running it (`app_instances.id`): a run whose runner stopped heartbeating is interrupted.
    runner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class ExecutionEvent(IdMixin, TenantBase):
    """A durable, ordered event of an execution."""

    __tablename__ = "execution_events"
    __table_args__ = (UniqueConstraint("execution_id", "seq"),)

    execution_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("executions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    type: Mapped[str] = mapped_column(String(40))
    node_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    data: Mapped[JsonDict] = mapped_column(JSON, default=dict)


class NodeRun(IdMixin, TenantBase):
    """One node's run inside an execution: resolved inputs, output or error, attempts, timings, tokens."""

    __tablename__ = "node_runs"
    # The unique constraint leads with execution_id, so it is also the index for "runs of one execution".
    __table_args__ = (UniqueConstraint("execution_id", "node_id"),)

    execution_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("executions.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(100))
    node_type: Mapped[str] = mapped_column(String(40))
    # pending | running | completed | failed | skipped | cancelled | interrupted | waiting
    status: Mapped[str] = mapped_column(String(20))
    inputs: Mapped[JsonDict] = mapped_column(JSON, default=dict)
    output: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Debugging marks set later (pinned, overridden).
    flags: Mapped[JsonDict] = mapped_column(JSON, default=dict)


class ChatSession(IdMixin, TimestampMixin, TenantBase):
    """A conversation of one user with a crew or flow."""

    __tablename__ = "chat_sessions"

    title: Mapped[str] = mapped_column(String(200), default="")
    # Indexed: a person's chats are listed by it.
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    crew_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("crews.id", ondelete="SET NULL"), nullable=True)
    flow_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("flows.id", ondelete="SET NULL"), nullable=True)
    # Values for the crew's other placeholders, or the flow's other inputs, given when the chat started.
    inputs: Mapped[JsonDict] = mapped_column(JSON, default=dict, server_default="{}")


class ChatMessage(IdMixin, TenantBase):
    """One message of a chat session; a user message and the reply to it share a `turn`."""

    __tablename__ = "chat_messages"
    # One user message and one reply per turn: the index is what refuses a second message while a
    # reply is being written (whichever process takes the turn first wins) and a reply stored twice.
    __table_args__ = (Index("uq_chat_messages_session_id_turn_role", "session_id", "turn", "role", unique=True),)

    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("chat_sessions.id", ondelete="CASCADE"), index=True)
    turn: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text)
    # ok | failed | cancelled (replies whose run did not complete)
    status: Mapped[str] = mapped_column(String(20), default="ok", server_default="ok")
    execution_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UsageRecord(IdMixin, TenantBase):
    """One LLM call: who, what, how many tokens, how long, how it ended."""

    __tablename__ = "usage_records"

    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    execution_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    node_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    provider_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    provider_kind: Mapped[str] = mapped_column(String(40), default="")
    provider_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    model: Mapped[str] = mapped_column(String(200), default="")
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(40), default="ok")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
