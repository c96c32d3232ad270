"""Alembic environment for the control plane; run through `db.migrate`, not the alembic CLI."""

from alembic import context

from db.base import ControlBase
from db.models import control  # noqa: F401  (registers the tables)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=ControlBase.metadata, render_as_batch=True, transactional_ddl=True
)
with context.begin_transaction():
    context.run_migrations()
