"""Browser sessions: the browser keeps only an opaque session id; this table knows the rest.

Every page view and every event handler resolves the id again, so a removed member,
a changed password or a logout takes effect on the next click.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update

from core.auth.directory import MembershipInfo, UserInfo, aware, membership_of, memberships_of, user_info
from core.auth.opaque import digest, new_secret
from core.context import TenantContext
from core.errors import AuthenticationFailed, NotFound
from db.base import utcnow
from db.database import Database
from db.models.control import UISession, User


@dataclass(frozen=True, slots=True)
class SessionState:
    """Who is signed in, the tenant they are working in (None if they belong to none), and their tenants."""

    user: UserInfo
    context: TenantContext | None
    tenants: list[MembershipInfo]


class SessionService:
    """Creates, resolves, switches and ends browser sessions."""

    PREFIX = "ccs_"

    def __init__(self, db: Database, *, ttl_s: int) -> None:
        self._db = db
        self._ttl = timedelta(seconds=ttl_s)

    async def create(self, user_id: uuid.UUID, tenant_id: uuid.UUID | None = None) -> str:
        """A new session for the user (in `tenant_id`, or their first tenant); returns its id."""
        token = new_secret(self.PREFIX)
        async with self._db.control_session() as session:
            user = await session.get(User, user_id)
            if user is None or not user.is_active:
                raise AuthenticationFailed("this account cannot sign in; ask an administrator")
            if tenant_id is None or await membership_of(session, user_id, tenant_id=tenant_id) is None:
                tenants = await memberships_of(session, user_id)
                tenant_id = tenants[0].tenant_id if tenants else None
            session.add(
                UISession(
                    id_hash=digest(token),
                    user_id=user_id,
                    tenant_id=tenant_id,
                    token_version=user.token_version,
                    expires_at=utcnow() + self._ttl,
                )
            )
            await session.commit()
        return token

    async def resolve(self, token: str | None) -> SessionState | None:
        """The signed-in state behind a session id, or None if it is unknown, expired or stale."""
        if not token or not isinstance(token, str):
            return None
        async with self._db.control_session() as session:
            row = (
                await session.execute(
                    select(UISession, User)
                    .join(User, User.id == UISession.user_id)
                    .where(UISession.id_hash == digest(token))
                )
            ).first()
            if row is None:
                return None
            ui_session, user = row[0], row[1]
            stale = (
                aware(ui_session.expires_at) <= utcnow()
                or not user.is_active
                or ui_session.token_version != user.token_version
            )
            tenants = [] if stale else await memberships_of(session, user.id)
        # Writes get transactions of their own that start with the write: SQLite (WAL) cannot
        # upgrade a read transaction that a concurrent resolve of the same session overtook.
        if stale:
            async with self._db.control_session() as session:
                await session.execute(delete(UISession).where(UISession.id == ui_session.id))
                await session.commit()
            return None
        current = next((t for t in tenants if t.tenant_id == ui_session.tenant_id), None)
        if current is None and tenants:  # removed from the tenant it was in: move to another
            current = tenants[0]
            async with self._db.control_session() as session:
                await session.execute(
                    update(UISession).where(UISession.id == ui_session.id).values(tenant_id=current.tenant_id)
                )
                await session.commit()
        context = current.context(user.id) if current else None
        return SessionState(user_info(user), context, tenants)

    async def switch(self, token: str, slug: str) -> TenantContext:
        """Work in tenant `slug` from now on; `NotFound` unless the user belongs to it."""
        async with self._db.control_session() as session:
            ui_session = await session.scalar(select(UISession).where(UISession.id_hash == digest(token)))
            if ui_session is None:
                raise AuthenticationFailed("your session has ended; sign in again")
            found = await membership_of(session, ui_session.user_id, slug=slug)
            if found is None:
                raise NotFound(f"you have no workspace named {slug[:50]!r}; pick one of yours")
            session_row, user_id = ui_session.id, ui_session.user_id
        # The write in a transaction of its own: SQLite (WAL) refuses to upgrade a read transaction.
        async with self._db.control_session() as session:
            moved = update(UISession).where(UISession.id == session_row).values(tenant_id=found.tenant_id)
            await session.execute(moved)
            await session.commit()
        return found.context(user_id)

    async def end(self, token: str | None) -> None:
        """Sign out: the session id stops working."""
        if not token:
            return
        async with self._db.control_session() as session:
            await session.execute(delete(UISession).where(UISession.id_hash == digest(token)))
            await session.commit()

    async def end_all(self, user_id: uuid.UUID) -> None:
        """Sign the user out of every browser."""
        async with self._db.control_session() as session:
            await session.execute(delete(UISession).where(UISession.user_id == user_id))
            await session.commit()
