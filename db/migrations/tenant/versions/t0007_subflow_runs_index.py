"""subflow runs: an index on executions.parent_execution_id

Revision ID: t0007
Revises: t0006
Create Date: 2026-12-13 10:00:00

A run's trace lists the runs its subflow nodes started; without the index that is a scan of
every run of the workspace. Nothing else changes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "t0007"
down_revision: str | None = "t0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema="tenant") as batch_op:
        batch_op.create_index(batch_op.f("ix_executions_parent_execution_id"), ["parent_execution_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("executions", schema="tenant") as batch_op:
        batch_op.drop_index(batch_op.f("ix_executions_parent_execution_id"))
