"""What executions used: tokens and cost summed over their node runs (the runs lists and history show them)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select

from core.context import Role, TenantContext
from db.database import Database
from db.models.tenant import NodeRun


@dataclass(frozen=True, slots=True)
class ExecutionUsage:
    """What one execution's own node runs used, summed; `cost_usd` is None when none knows its cost."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


async def execution_usage(
    db: Database, ctx: TenantContext, execution_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, ExecutionUsage]:
    """Tokens and cost of each of these executions, summed over its node runs in one query.

    A node run a retry reused from an earlier run counts for that run, not again here.
    Executions without node runs of their own are left out."""
    ctx.require(Role.VIEWER, "see executions")
    if not execution_ids:
        return {}
    query = (
        select(
            NodeRun.execution_id,
            func.sum(NodeRun.prompt_tokens),
            func.sum(NodeRun.completion_tokens),
            func.sum(NodeRun.cost_usd),  # NULL when no node run knows its cost
        )
        .where(
            NodeRun.execution_id.in_(list(execution_ids)),
            NodeRun.flags["reused_from"].as_string().is_(None),
        )
        .group_by(NodeRun.execution_id)
    )
    async with db.tenant_session(ctx.tenant_slug) as session:
        rows = (await session.execute(query)).tuples().all()
    return {
        execution_id: ExecutionUsage(int(prompt or 0), int(completion or 0), None if cost is None else float(cost))
        for execution_id, prompt, completion, cost in rows
    }
