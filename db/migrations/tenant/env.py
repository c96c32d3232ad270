"""Alembic environment for one tenant schema; the connection carries its schema_translate_map."""

from alembic import context

from db.base import TenantBase
from db.models import tenant  # noqa: F401  (registers the tables)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=TenantBase.metadata,
    version_table_schema=context.config.attributes.get("schema"),
    render_as_batch=True,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
