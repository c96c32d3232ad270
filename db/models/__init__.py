"""SQLAlchemy models: control plane and tenant tables."""

from db.models.control import ApiKey, Membership, Tenant, User
from db.models.tenant import (
    Agent,
    ChatMessage,
    ChatSession,
    Crew,
    DataKey,
    Execution,
    ExecutionEvent,
    Flow,
    FlowVersion,
    Provider,
    Task,
    Tool,
    UsageRecord,
)

__all__ = [
    "Agent", "ApiKey", "ChatMessage", "ChatSession", "Crew", "DataKey", "Execution",
    "ExecutionEvent", "Flow", "FlowVersion", "Membership", "Provider", "Task", "Tenant",
    "Tool", "UsageRecord", "User",
]  # fmt: skip
