"""LLM providers: per-provider rate limits, usage error details, the bundled local model

Revision ID: t0002
Revises: t0001
Create Date: 2026-11-25 16:00:00
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from db.migrate import migration_schema

revision: str = "t0002"
down_revision: str | None = "t0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCAL_PROVIDER_NAME = "Local model (SmolLM2-135M)"


def upgrade() -> None:
    with op.batch_alter_table("providers", schema=migration_schema()) as batch_op:
        batch_op.add_column(sa.Column("rpm_limit", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tpm_limit", sa.Integer(), nullable=True))
    with op.batch_alter_table("usage_records", schema=migration_schema()) as batch_op:
        batch_op.add_column(sa.Column("provider_name", sa.String(length=200), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))

    # Every tenant starts with the bundled local model, so a fresh install runs offline.
    providers = sa.table(
        "providers",
        sa.column("id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("base_url", sa.String()),
        sa.column("models", sa.JSON()),
        sa.column("default_params", sa.JSON()),
        sa.column("credential_hint", sa.String()),
        sa.column("enabled", sa.Boolean()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
        schema=migration_schema(),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        providers,
        [
            {
                "id": uuid.uuid4(),
                "name": LOCAL_PROVIDER_NAME,
                "kind": "local",
                "base_url": None,
                "models": ["smollm2-135m-instruct"],
                "default_params": {"max_tokens": 256},
                "credential_hint": "",
                "enabled": True,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )


def downgrade() -> None:
    providers = sa.table("providers", sa.column("kind", sa.String()), schema=migration_schema())
    op.execute(providers.delete().where(providers.c.kind == "local"))
    with op.batch_alter_table("usage_records", schema=migration_schema()) as batch_op:
        batch_op.drop_column("error")
        batch_op.drop_column("provider_name")
    with op.batch_alter_table("providers", schema=migration_schema()) as batch_op:
        batch_op.drop_column("tpm_limit")
        batch_op.drop_column("rpm_limit")
