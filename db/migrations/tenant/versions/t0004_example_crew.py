"""example crew: an assistant that drafts an answer to {question}, then polishes it

Revision ID: t0004
Revises: t0003
Create Date: 2026-12-08 10:00:00

Every tenant gets a small crew that runs offline on the bundled local model, so there is
something to run (and to copy) on a fresh install. The texts are short: the local model's
context window is small. Nothing is added when one of the four names is taken already (a
tenant's own records are never touched); the rows carry `settings.example`, so the
downgrade deletes only what this migration added.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from db.migrate import migration_schema

revision: str = "t0004"
down_revision: str | None = "t0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MARK = "t0004"
AGENT = "assistant"
TASKS = ("draft_answer", "polish_answer")
CREW = "example_crew"


def _tables() -> dict[str, sa.TableClause]:
    schema = migration_schema()

    def common() -> list[sa.ColumnClause[object]]:
        return [
            sa.column("id", sa.Uuid()),
            sa.column("name", sa.String()),
            sa.column("settings", sa.JSON()),
            sa.column("created_at", sa.DateTime(timezone=True)),
            sa.column("updated_at", sa.DateTime(timezone=True)),
        ]

    return {
        "providers": sa.table("providers", sa.column("id", sa.Uuid()), sa.column("kind", sa.String()), schema=schema),
        "agents": sa.table(
            "agents",
            *common(),
            sa.column("role", sa.Text()),
            sa.column("goal", sa.Text()),
            sa.column("backstory", sa.Text()),
            sa.column("provider_id", sa.Uuid()),
            sa.column("model", sa.String()),
            sa.column("tool_ids", sa.JSON()),
            schema=schema,
        ),
        "tasks": sa.table(
            "tasks",
            *common(),
            sa.column("description", sa.Text()),
            sa.column("expected_output", sa.Text()),
            sa.column("agent_id", sa.Uuid()),
            schema=schema,
        ),
        "crews": sa.table(
            "crews",
            *common(),
            sa.column("description", sa.Text()),
            sa.column("process", sa.String()),
            sa.column("agent_ids", sa.JSON()),
            sa.column("task_ids", sa.JSON()),
            schema=schema,
        ),
    }


def upgrade() -> None:
    tables = _tables()
    bind = op.get_bind()
    wanted = {"agents": [AGENT], "tasks": list(TASKS), "crews": [CREW]}
    for name, names in wanted.items():
        table = tables[name]
        if bind.execute(sa.select(table.c.id).where(table.c.name.in_(names)).limit(1)).first() is not None:
            return
    providers = tables["providers"]
    local = bind.execute(sa.select(providers.c.id).where(providers.c.kind == "local").limit(1)).scalar()

    now = datetime.now(UTC)
    agent_id, draft_id, polish_id, crew_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stamps = {"created_at": now, "updated_at": now}
    op.bulk_insert(
        tables["agents"],
        [
            {
                "id": agent_id,
                "name": AGENT,
                "role": "Helpful assistant",
                "goal": "Answer questions clearly and briefly.",
                "backstory": "You explain things in plain words.",
                "provider_id": local,
                "model": None,
                "tool_ids": [],
                "settings": {
                    "allow_delegation": False,
                    "max_iter": 3,
                    "max_execution_time": None,
                    "verbose": False,
                    "example": MARK,
                },
                **stamps,
            }
        ],
    )
    op.bulk_insert(
        tables["tasks"],
        [
            {
                "id": draft_id,
                "name": TASKS[0],
                "description": "Answer this question: {question}",
                "expected_output": "A short answer.",
                "agent_id": agent_id,
                "settings": {"context_ids": [], "output_schema": None, "output_file": None, "example": MARK},
                **stamps,
            },
            {
                "id": polish_id,
                "name": TASKS[1],
                "description": "Make the draft answer clearer and fix any mistakes.",
                "expected_output": "The final answer, two or three sentences.",
                "agent_id": agent_id,
                "settings": {
                    "context_ids": [str(draft_id)],
                    "output_schema": None,
                    "output_file": None,
                    "example": MARK,
                },
                **stamps,
            },
        ],
    )
    op.bulk_insert(
        tables["crews"],
        [
            {
                "id": crew_id,
                "name": CREW,
                "description": "An example: the assistant drafts an answer, then polishes it.",
                "process": "sequential",
                "agent_ids": [str(agent_id)],
                "task_ids": [str(draft_id), str(polish_id)],
                "settings": {
                    "manager_provider_id": None,
                    "manager_model": None,
                    "manager_agent_id": None,
                    "planning": False,
                    "inputs": {"question": "What is CrewCanvas?"},
                    "example": MARK,
                },
                **stamps,
            }
        ],
    )


def downgrade() -> None:
    tables = _tables()
    bind = op.get_bind()
    # Crews first: tasks point at the agent.
    for name, names in (("crews", [CREW]), ("tasks", list(TASKS)), ("agents", [AGENT])):
        table = tables[name]
        rows = bind.execute(sa.select(table.c.id, table.c.settings).where(table.c.name.in_(names))).all()
        ids = [row.id for row in rows if (row.settings or {}).get("example") == MARK]
        if ids:
            op.execute(table.delete().where(table.c.id.in_(ids)))
