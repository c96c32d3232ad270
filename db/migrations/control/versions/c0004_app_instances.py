"""app instances: each running app process and its heartbeat

Runs record which process runs them; a run whose process stopped heartbeating is
interrupted by whichever process sweeps next, so replicas never interrupt each other's
live runs.

Revision ID: c0004
Revises: c0003
Create Date: 2026-12-03 01:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0004"
down_revision: str | None = "c0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_instances",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_instances")),
    )
    op.create_index(op.f("ix_app_instances_heartbeat_at"), "app_instances", ["heartbeat_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_app_instances_heartbeat_at"), table_name="app_instances")
    op.drop_table("app_instances")
