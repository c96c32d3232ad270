"""execution timers: deadlines of waiting nodes, fired by any app process

Revision ID: c0005
Revises: c0004
Create Date: 2026-12-03 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0005"
down_revision: str | None = "c0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "execution_timers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_slug", sa.String(length=40), nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_timers")),
        sa.UniqueConstraint(
            "tenant_slug", "execution_id", "node_id", name=op.f("uq_execution_timers_tenant_slug_execution_id_node_id")
        ),
    )
    op.create_index(op.f("ix_execution_timers_due_at"), "execution_timers", ["due_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_execution_timers_due_at"), table_name="execution_timers")
    op.drop_table("execution_timers")
