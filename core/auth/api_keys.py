"""Personal API keys: shown once, stored as a digest, scoped to one tenant and one role.

A key looks like `cck_<id>_<secret>`; the id part finds the row, the digest of the
whole key proves it. A key never outranks its creator: its role is capped when it is
created and again on every use (by the creator's current role), and it stops working
when the creator leaves the tenant.
"""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from core.auth.directory import aware, parse_role
from core.auth.opaque import digest, same_digest
from core.context import Role, TenantContext
from core.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from core.text import check_text
from db.base import utcnow
from db.database import Database
from db.models.control import ApiKey

KEY_PREFIX = "cck_"
_ALPHABET = string.ascii_letters + string.digits
_REFUSED = "API key is not valid: it is unknown, revoked or expired; create a new one"


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key as its owner sees it after creation (never the secret)."""

    id: uuid.UUID
    name: str
    prefix: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    """A new key and its secret, which is shown this once."""

    info: ApiKeyInfo
    key: str


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """Who a presented key speaks for."""

    key_id: uuid.UUID
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: Role


def _info(key: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        role=Role(key.role),
        created_at=aware(key.created_at),
        expires_at=aware(key.expires_at) if key.expires_at else None,
        last_used_at=aware(key.last_used_at) if key.last_used_at else None,
        revoked=key.revoked_at is not None,
    )


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(KEY_PREFIX)


class ApiKeyService:
    """Creates, lists, revokes and checks personal API keys."""

    TOUCH_EVERY = timedelta(minutes=1)

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, ctx: TenantContext, name: str, role: str | Role | None = None, *, expires_in_days: int | None = None
    ) -> CreatedApiKey:
        """A key for the caller in this tenant, with `role` (default: the caller's) at most the caller's."""
        ctx.require(Role.VIEWER, "create API keys")
        if ctx.user_id is None:
            raise PermissionDenied("only a signed-in user can create API keys")
        wanted = parse_role(str(role)) if role else ctx.role
        if wanted.rank > ctx.role.rank:
            raise PermissionDenied(f"a key cannot have the role '{wanted}', which is above your own '{ctx.role}'")
        label = check_text(name.strip(), "name")
        if not label:
            raise InvalidInput(
                "API key name must be 1-200 characters; name it after where you will use it", field="name"
            )
        if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
            raise InvalidInput("expires_in_days must be between 1 and 3650, or omitted for a key that never expires")
        key_id = "".join(secrets.choice(_ALPHABET) for _ in range(10))
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        row = ApiKey(
            tenant_id=ctx.tenant_id,
            user_id=ctx.user_id,
            name=label,
            prefix=KEY_PREFIX + key_id,
            key_hash=digest(key),
            role=wanted.value,
            expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
        )
        async with self._db.control_session() as session:
            session.add(row)
            await session.commit()
        return CreatedApiKey(_info(row), key)

    async def list_keys(self, ctx: TenantContext) -> list[ApiKeyInfo]:
        """The caller's keys in this tenant, newest first."""
        ctx.require(Role.VIEWER, "list API keys")
        async with self._db.control_session() as session:
            rows = await session.scalars(
                select(ApiKey)
                .where(ApiKey.tenant_id == ctx.tenant_id, ApiKey.user_id == ctx.user_id)
                .order_by(ApiKey.created_at.desc())
            )
            return [_info(r) for r in rows]

    async def revoke(self, ctx: TenantContext, key_id: uuid.UUID) -> None:
        """Revoke one of your keys in this tenant (admins may revoke anyone's)."""
        ctx.require(Role.VIEWER, "revoke API keys")
        async with self._db.control_session() as session:
            key = await session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == ctx.tenant_id))
            if key is None or (key.user_id != ctx.user_id and ctx.role.rank < Role.ADMIN.rank):
                raise NotFound("no such API key in this workspace")
            if key.revoked_at is None:
                key.revoked_at = utcnow()
                await session.commit()

    async def authenticate(self, presented: str) -> KeyHolder:
        """Who the key speaks for, or `AuthenticationFailed`."""
        body = presented[len(KEY_PREFIX) :] if looks_like_api_key(presented) else ""
        key_id, sep, _ = body.partition("_")
        if not sep or len(key_id) != 10:
            raise AuthenticationFailed(_REFUSED)
        now = utcnow()
        async with self._db.control_session() as session:
            key = await session.scalar(select(ApiKey).where(ApiKey.prefix == KEY_PREFIX + key_id))
        if key is None or not same_digest(presented, key.key_hash) or key.revoked_at is not None:
            raise AuthenticationFailed(_REFUSED)
        if key.expires_at is not None and aware(key.expires_at) <= now:
            raise AuthenticationFailed(_REFUSED)
        if key.last_used_at is None or aware(key.last_used_at) < now - self.TOUCH_EVERY:
            # Its own transaction, starting with the write: SQLite (WAL) refuses to upgrade a
            # read transaction that a concurrent request's touch has overtaken.
            async with self._db.control_session() as session:
                await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
                await session.commit()
        return KeyHolder(key.id, key.user_id, key.tenant_id, Role(key.role))
