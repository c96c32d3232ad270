"""Errors raised by the data layer.

DatabaseError
├── InvalidTenantSlug     a slug fails the pattern or is reserved; nothing was created
├── TenantStorageMissing  the tenant's schema or file does not exist
└── MigrationFailed       one or more tenant migrations failed (names them)
"""

from __future__ import annotations


class DatabaseError(Exception):
    """Root of every error the data layer raises."""


class InvalidTenantSlug(DatabaseError, ValueError):
    """A tenant slug fails the pattern or is reserved."""


class TenantStorageMissing(DatabaseError):
    """The tenant's schema (PostgreSQL) or file (SQLite) does not exist."""


class MigrationFailed(DatabaseError):
    """Some migrations failed; `failures` maps tenant slug to the error text."""

    def __init__(self, failures: dict[str, str]) -> None:
        names = ", ".join(sorted(failures))
        super().__init__(f"migration failed for {len(failures)} tenant(s): {names}; fix and run migrate again")
        self.failures = failures
