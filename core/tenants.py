"""Tenants: create (schema + migrations), list, delete (after confirmation)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, InvalidInput, NotFound
from core.text import check_text
from db.database import Database
from db.errors import InvalidTenantSlug
from db.migrate import provision_tenant
from db.models import Tenant
from db.slugs import validate_slug


@dataclass(frozen=True, slots=True)
class TenantInfo:
    id: uuid.UUID
    slug: str
    name: str
    status: str


#: Writes that complete a new tenant (its owner), in the transaction that activates it.
Finish = Callable[[AsyncSession, "TenantInfo"], Awaitable[None]]


def _info(tenant: Tenant) -> TenantInfo:
    return TenantInfo(id=tenant.id, slug=tenant.slug, name=tenant.name, status=tenant.status)


def checked_slug(slug: str) -> str:
    """`slug` if it may name a tenant, else `InvalidInput` with the reason."""
    try:
        return validate_slug(slug)
    except InvalidTenantSlug as exc:
        raise InvalidInput(str(exc), field="tenant_slug") from exc


class TenantService:
    """Creates and deletes tenants together with their storage."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, slug: str, name: str = "", *, finish: Finish | None = None) -> TenantInfo:
        """Register the tenant, create its schema (or file), migrate it to head, then activate it.

        The activation is one transaction together with whatever `finish` writes in it (the
        owner's account and membership), so a tenant is created whole or not at all: if any
        step fails, or the caller is cancelled, its row and storage are removed again and the
        slug is free.
        """
        checked_slug(slug)
        label = check_text(name.strip(), "tenant name") or slug
        async with self._db.control_session() as session:
            tenant = Tenant(slug=slug, name=label, status="provisioning")
            session.add(tenant)
            try:
                await session.commit()
            except IntegrityError as exc:
                raise Conflict(f"a workspace named {slug!r} exists already; choose another name") from exc
        info = TenantInfo(id=tenant.id, slug=slug, name=tenant.name, status="active")
        try:
            await provision_tenant(self._db, slug)
            async with self._db.control_session() as session:
                await session.execute(update(Tenant).where(Tenant.id == tenant.id).values(status="active"))
                if finish is not None:
                    await finish(session, info)
                await session.commit()
        except BaseException:
            # Shielded: a cancelled request must not leave a half-made tenant behind.
            await asyncio.shield(self._discard(tenant.id, slug))
            raise
        return info

    async def _discard(self, tenant_id: uuid.UUID, slug: str) -> None:
        """Remove a tenant that could not be created: its storage, then its row."""
        try:
            await self._db.drop_tenant_storage(slug)
        finally:
            async with self._db.control_session() as session:
                await session.execute(delete(Tenant).where(Tenant.id == tenant_id))
                await session.commit()

    async def get(self, slug: str) -> TenantInfo:
        checked_slug(slug)
        async with self._db.control_session() as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None or tenant.status == "deleting":
            raise NotFound(f"no workspace named {slug!r}")
        return _info(tenant)

    async def list(self) -> list[TenantInfo]:
        async with self._db.control_session() as session:
            tenants = await session.scalars(select(Tenant).order_by(Tenant.slug))
            return [_info(t) for t in tenants]

    async def delete(self, slug: str, *, confirm: str) -> None:
        """Drop the tenant's storage and record. `confirm` must repeat the slug."""
        if confirm != slug:
            raise InvalidInput(f"to delete tenant {slug!r} and all its data, confirm by repeating its slug")
        info = await self.get(slug)
        await self._set_status(info.id, "deleting")
        await self._db.drop_tenant_storage(slug)
        async with self._db.control_session() as session:
            tenant = await session.get(Tenant, info.id)
            if tenant is not None:
                await session.delete(tenant)
                await session.commit()

    async def _set_status(self, tenant_id: uuid.UUID, status: str) -> None:
        async with self._db.control_session() as session:
            tenant = await session.get(Tenant, tenant_id)
            if tenant is not None:
                tenant.status = status
                await session.commit()
