"""one owner per tenant: a partial unique index on owner memberships

Before it, concurrent ownership transfers on PostgreSQL could leave a tenant with several
owners. Tenants left that way keep the member who has been the owner longest (earliest
membership); the others become admins. Then the index makes a second owner impossible.

Revision ID: c0003
Revises: c0002
Create Date: 2026-12-01 23:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0003"
down_revision: str | None = "c0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    memberships = sa.table(
        "memberships",
        sa.column("id", sa.Uuid()),
        sa.column("tenant_id", sa.Uuid()),
        sa.column("role", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    owners = bind.execute(
        sa.select(memberships.c.id, memberships.c.tenant_id)
        .where(memberships.c.role == "owner")
        .order_by(memberships.c.tenant_id, memberships.c.created_at, memberships.c.id)
    ).all()
    seen: set[object] = set()
    extra = []
    for membership_id, tenant_id in owners:
        if tenant_id in seen:
            extra.append(membership_id)
        seen.add(tenant_id)
    if extra:
        bind.execute(sa.update(memberships).where(memberships.c.id.in_(extra)).values(role="admin"))
    op.create_index(
        "uq_memberships_one_owner",
        "memberships",
        ["tenant_id"],
        unique=True,
        postgresql_where=sa.text("role = 'owner'"),
        sqlite_where=sa.text("role = 'owner'"),
    )


def downgrade() -> None:
    op.drop_index("uq_memberships_one_owner", table_name="memberships")
