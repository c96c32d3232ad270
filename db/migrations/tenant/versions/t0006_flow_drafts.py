"""flow drafts: the editor's unsaved state of each flow, one row per flow

Revision ID: t0006
Revises: t0005
Create Date: 2026-12-12 10:00:00

A new table only; nothing existing is altered. The row goes with its flow (ON DELETE
CASCADE), and `revision` is what concurrent changes are checked against.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "t0006"
down_revision: str | None = "t0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flow_drafts",
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["tenant.flows.id"],
            name=op.f("fk_flow_drafts_flow_id_flows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("flow_id", name=op.f("pk_flow_drafts")),
        schema="tenant",
    )


def downgrade() -> None:
    op.drop_table("flow_drafts", schema="tenant")
