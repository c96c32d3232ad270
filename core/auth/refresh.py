"""Refresh tokens: opaque, stored hashed, rotated on every use.

Each sign-in starts a *family*. Refreshing marks the presented token used and issues
its child in the same family. Presenting a used token again means it was copied: the
whole family is revoked, so both the thief and the owner must sign in again. Access
tokens carry the family id (`sid`) and stop working when their family is revoked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import exists, select, update

from core.auth.directory import aware
from core.auth.opaque import digest, new_secret
from core.errors import AuthenticationFailed
from db.base import utcnow
from db.database import Database
from db.models.control import RefreshToken


@dataclass(frozen=True, slots=True)
class IssuedRefresh:
    """A new refresh token (shown once) and where it belongs."""

    token: str
    family_id: uuid.UUID
    user_id: uuid.UUID
    tenant_id: uuid.UUID | None


class RefreshTokens:
    """Issues, rotates and revokes refresh-token families."""

    PREFIX = "ccr_"

    def __init__(self, db: Database, *, ttl_s: int) -> None:
        self._db = db
        self._ttl = timedelta(seconds=ttl_s)

    async def start_family(self, user_id: uuid.UUID, tenant_id: uuid.UUID | None) -> IssuedRefresh:
        """A new sign-in: a new family with its first token."""
        family_id = uuid.uuid4()
        token = new_secret(self.PREFIX)
        async with self._db.control_session() as session:
            session.add(self._row(token, family_id, None, user_id, tenant_id))
            await session.commit()
        return IssuedRefresh(token, family_id, user_id, tenant_id)

    def _row(
        self,
        token: str,
        family_id: uuid.UUID,
        parent_id: uuid.UUID | None,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID | None,
    ) -> RefreshToken:
        return RefreshToken(
            family_id=family_id,
            parent_id=parent_id,
            user_id=user_id,
            tenant_id=tenant_id,
            token_hash=digest(token),
            expires_at=utcnow() + self._ttl,
        )

    async def rotate(self, token: str) -> IssuedRefresh:
        """Spend `token` and return its successor; a reused token revokes its family."""
        now = utcnow()
        async with self._db.control_session() as session:
            row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest(token)))
        if row is None:
            raise AuthenticationFailed("refresh token is not recognised; sign in again")
        if row.revoked_at is not None:
            raise AuthenticationFailed("refresh token was revoked; sign in again")
        if aware(row.expires_at) <= now:
            raise AuthenticationFailed("refresh token has expired; sign in again")
        # A new transaction that starts with the write: SQLite (WAL) cannot upgrade a read
        # transaction that a concurrent refresh has overtaken ("database is locked"), but it
        # waits for the write lock, and then the conditional UPDATE sees the other's work.
        async with self._db.control_session() as session:
            spent = await session.execute(
                update(RefreshToken)
                .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
                .values(used_at=now)
            )
            if spent.rowcount != 1:  # type: ignore[attr-defined]  # UPDATE results carry rowcount
                await session.execute(
                    update(RefreshToken)
                    .where(RefreshToken.family_id == row.family_id, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                await session.commit()
                raise AuthenticationFailed(
                    "refresh token was already used, so it may have been stolen: every token of this "
                    "sign-in is now revoked; sign in again"
                )
            successor = new_secret(self.PREFIX)
            session.add(self._row(successor, row.family_id, row.id, row.user_id, row.tenant_id))
            await session.commit()
            return IssuedRefresh(successor, row.family_id, row.user_id, row.tenant_id)

    async def family_of(self, token: str) -> uuid.UUID | None:
        """The family a refresh token belongs to (whatever its state), or None."""
        async with self._db.control_session() as session:
            return await session.scalar(select(RefreshToken.family_id).where(RefreshToken.token_hash == digest(token)))

    async def revoke_family(self, family_id: uuid.UUID) -> None:
        """Revoke every token of one sign-in (logout, or reuse detected)."""
        async with self._db.control_session() as session:
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            await session.commit()

    async def revoke_user(self, user_id: uuid.UUID) -> None:
        """Revoke every sign-in of a user (password change, deactivation)."""
        async with self._db.control_session() as session:
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            await session.commit()

    async def family_is_live(self, family_id: uuid.UUID) -> bool:
        """True while the sign-in has a token that is neither revoked nor expired."""
        async with self._db.control_session() as session:
            live = await session.scalar(
                select(
                    exists().where(
                        RefreshToken.family_id == family_id,
                        RefreshToken.revoked_at.is_(None),
                        RefreshToken.expires_at > utcnow(),
                    )
                )
            )
        return bool(live)

    async def set_tenant(self, family_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
        """Remember the tenant a sign-in switched to, for the tokens it refreshes next."""
        async with self._db.control_session() as session:
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.family_id == family_id, RefreshToken.used_at.is_(None))
                .values(tenant_id=tenant_id)
            )
            await session.commit()
