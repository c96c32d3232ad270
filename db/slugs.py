"""Tenant slugs: the one place that decides what may become a schema or file name."""

from __future__ import annotations

import re

from db.errors import InvalidTenantSlug

SLUG_PATTERN = re.compile(r"[a-z][a-z0-9_]{2,39}")
SCHEMA_PREFIX = "tenant_"

RESERVED_SLUGS = frozenset(
    {
        "public", "pg_catalog", "pg_toast", "information_schema", "postgres", "template0",
        "template1", "tenant", "tenants", "control", "admin", "api", "app", "root", "system",
        "default", "www", "static", "auth", "login", "logout", "signup", "settings", "health",
    }
)  # fmt: skip


def validate_slug(slug: object) -> str:
    """Return `slug` if it may name a tenant, else raise `InvalidTenantSlug` saying why."""
    if not isinstance(slug, str):
        raise InvalidTenantSlug("tenant slug must be a string")
    shown = slug if len(slug) <= 50 else slug[:47] + "..."
    if not SLUG_PATTERN.fullmatch(slug):
        raise InvalidTenantSlug(
            f"tenant slug {shown!r} is invalid: use 3-40 characters, lowercase letters, digits "
            "and '_', starting with a letter"
        )
    if slug in RESERVED_SLUGS or slug.startswith("pg_"):
        raise InvalidTenantSlug(f"tenant slug {shown!r} is reserved; choose another name")
    return slug


def schema_for(slug: str) -> str:
    """The PostgreSQL schema that holds the tenant's tables."""
    return SCHEMA_PREFIX + validate_slug(slug)
