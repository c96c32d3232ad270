"""chat: session inputs, message turns and statuses, one message per role and turn

Revision ID: t0005
Revises: t0004
Create Date: 2026-12-09 10:00:00

A user message and the reply to it share a `turn`; the unique index on (session_id, turn,
role) refuses a second user message while a reply is being written and a reply stored
twice. Messages stored before this migration are numbered in the order they were written
(a user message opens a turn, the next other message joins it).

Every change is made in place (ADD COLUMN, CREATE INDEX), never by rebuilding a table: on
SQLite, rebuilding `chat_sessions` would drop it while foreign keys are enforced, which
deletes every message through ON DELETE CASCADE.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.migrate import migration_schema

revision: str = "t0005"
down_revision: str | None = "t0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TURNS = "uq_chat_messages_session_id_turn_role"
SESSION_USERS = "ix_chat_sessions_user_id"


def upgrade() -> None:
    schema = migration_schema()
    op.add_column("chat_sessions", sa.Column("inputs", sa.JSON(), nullable=False, server_default="{}"), schema=schema)
    op.create_index(SESSION_USERS, "chat_sessions", ["user_id"], unique=False, schema=schema)
    op.add_column("chat_messages", sa.Column("turn", sa.Integer(), nullable=False, server_default="0"), schema=schema)
    op.add_column(
        "chat_messages", sa.Column("status", sa.String(length=20), nullable=False, server_default="ok"), schema=schema
    )
    _number_turns(schema)
    op.create_index(TURNS, "chat_messages", ["session_id", "turn", "role"], unique=True, schema=schema)


def _number_turns(schema: str | None) -> None:
    messages = sa.table(
        "chat_messages",
        sa.column("id", sa.Uuid()),
        sa.column("session_id", sa.Uuid()),
        sa.column("role", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("turn", sa.Integer()),
        schema=schema,
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(messages.c.id, messages.c.session_id, messages.c.role).order_by(
            messages.c.session_id, messages.c.created_at, messages.c.id
        )
    ).all()
    session: object = None
    turn = 0
    taken: set[str] = set()
    for row in rows:
        if row.session_id != session:
            session, turn, taken = row.session_id, 0, set()
        if row.role == "user" or row.role in taken:
            turn, taken = turn + 1, set()
        taken.add(row.role)
        bind.execute(messages.update().where(messages.c.id == row.id).values(turn=turn))


def downgrade() -> None:
    schema = migration_schema()
    op.drop_index(TURNS, table_name="chat_messages", schema=schema)
    op.drop_index(SESSION_USERS, table_name="chat_sessions", schema=schema)
    if op.get_bind().dialect.name == "sqlite":
        # SQLite (3.35+) drops a column in place; Alembic's batch mode would rebuild the tables.
        for table, column in (("chat_messages", "status"), ("chat_messages", "turn"), ("chat_sessions", "inputs")):
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        return
    op.drop_column("chat_messages", "status", schema=schema)
    op.drop_column("chat_messages", "turn", schema=schema)
    op.drop_column("chat_sessions", "inputs", schema=schema)
