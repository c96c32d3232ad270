"""flow engine: node runs, executions tied to a flow and version, version notes

Revision ID: t0003
Revises: t0002
Create Date: 2026-12-02 10:00:00

SQLite cannot add a foreign key with ALTER TABLE ... ADD CONSTRAINT, and rebuilding
`executions` (Alembic's batch "recreate") would drop the old table while foreign keys are
enforced, which deletes every `execution_events` row through ON DELETE CASCADE. So on
SQLite `executions.flow_id` is added with its REFERENCES clause inline, which SQLite's
ALTER TABLE ADD COLUMN accepts for a nullable column.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.migrate import migration_schema

revision: str = "t0003"
down_revision: str | None = "t0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    schema = migration_schema()
    sqlite = op.get_bind().dialect.name == "sqlite"

    with op.batch_alter_table("flow_versions", schema=schema) as batch_op:
        batch_op.add_column(sa.Column("message", sa.String(length=500), nullable=False, server_default=""))

    if sqlite:
        op.execute(
            "ALTER TABLE executions ADD COLUMN flow_id CHAR(32) "
            "CONSTRAINT fk_executions_flow_id_flows REFERENCES flows (id) ON DELETE CASCADE"
        )
    with op.batch_alter_table("executions", schema=schema) as batch_op:
        if not sqlite:
            batch_op.add_column(sa.Column("flow_id", sa.Uuid(), nullable=True))
            batch_op.create_foreign_key(
                batch_op.f("fk_executions_flow_id_flows"),
                "flows",
                ["flow_id"],
                ["id"],
                ondelete="CASCADE",
                referent_schema=schema,
            )
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("options", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("parent_execution_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("parent_node_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("last_seq", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("runner_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_executions_flow_id"), ["flow_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_executions_started_at"), ["started_at"], unique=False)

    op.create_table(
        "node_runs",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("node_type", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["tenant.executions.id"],
            name=op.f("fk_node_runs_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_runs")),
        sa.UniqueConstraint("execution_id", "node_id", name=op.f("uq_node_runs_execution_id_node_id")),
        schema="tenant",
    )


def downgrade() -> None:
    """Undo t0003. On SQLite this rebuilds `executions`, and the rebuild deletes its events (see above)."""
    schema = migration_schema()
    op.drop_table("node_runs", schema="tenant")
    with op.batch_alter_table("executions", schema=schema) as batch_op:
        batch_op.drop_index(batch_op.f("ix_executions_started_at"))
        batch_op.drop_index(batch_op.f("ix_executions_flow_id"))
        if op.get_bind().dialect.name != "sqlite":
            batch_op.drop_constraint(batch_op.f("fk_executions_flow_id_flows"), type_="foreignkey")
        batch_op.drop_column("runner_id")
        batch_op.drop_column("last_seq")
        batch_op.drop_column("parent_node_id")
        batch_op.drop_column("parent_execution_id")
        batch_op.drop_column("options")
        batch_op.drop_column("version")
        batch_op.drop_column("flow_id")
    with op.batch_alter_table("flow_versions", schema=schema) as batch_op:
        batch_op.drop_column("message")
