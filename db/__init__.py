"""Data layer: SQLAlchemy models, tenant-scoped sessions, Alembic migrations."""
