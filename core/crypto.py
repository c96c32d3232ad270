"""Credentials at rest: AES-256-GCM under a per-tenant data key, wrapped by a master key.

Envelope encryption in three layers:

    master key ring (settings: "<kid>:<b64>,...", last is newest)
      └── wraps each tenant's data key (table `data_keys`, `master_key_id` names the kid)
            └── encrypts each credential (associated data = tenant id + record id)

The associated data binds a ciphertext to its tenant and record: copied to another
record or tenant it no longer decrypts. `rotate_keys` re-wraps every data key under
the newest master key, one row per transaction, so an interrupted run leaves every
row readable (each names the master key it is wrapped with) and a second run finishes.

CryptoError (CoreError)
└── CredentialUnreadable     a stored secret cannot be decrypted with the keys we have
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from core.errors import ConfigurationError, CoreError
from db.database import Database
from db.models import DataKey, Tenant

log = logging.getLogger(__name__)

_FORMAT = b"\x01"  # version byte of our ciphertexts: 1 = AES-256-GCM, 12-byte nonce
_NONCE = 12


class CryptoError(CoreError):
    """Root of the crypto errors."""


class CredentialUnreadable(CryptoError):
    """A stored secret cannot be decrypted: wrong record, wrong tenant, or a missing master key."""


def mask_secret(secret: str) -> str:
    """A hint that identifies a secret without revealing it: `sk-...9f2c`."""
    secret = secret.strip()
    if len(secret) < 12:
        return "****"
    return f"{secret[:3]}...{secret[-4:]}"


def _aad(*parts: object) -> bytes:
    return "|".join(str(p) for p in parts).encode()


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return _FORMAT + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < 1 + _NONCE + 16 or blob[:1] != _FORMAT:
        raise InvalidTag
    return AESGCM(key).decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], aad)


class KeyRing:
    """Master keys by key id; the last one configured wraps new data keys."""

    def __init__(self, spec: str) -> None:
        self._keys: dict[str, bytes] = {}
        newest = ""
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            kid, sep, encoded = item.partition(":")
            kid = kid.strip()
            if not sep or not kid:
                raise ConfigurationError("MASTER_KEYS entries must look like '<key id>:<urlsafe base64 of 32 bytes>'")
            try:
                key = base64.urlsafe_b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4))
            except (binascii.Error, ValueError) as exc:
                raise ConfigurationError(f"MASTER_KEYS key {kid!r} is not valid urlsafe base64") from exc
            if len(key) != 32:
                raise ConfigurationError(f"MASTER_KEYS key {kid!r} must decode to 32 bytes, not {len(key)}")
            self._keys[kid] = key
            newest = kid
        self._newest = newest

    @property
    def newest_id(self) -> str:
        """The key id new data keys are wrapped with; `ConfigurationError` if the ring is empty."""
        if not self._newest:
            raise ConfigurationError("MASTER_KEYS is empty: set at least one '<key id>:<urlsafe base64 of 32 bytes>'")
        return self._newest

    @staticmethod
    def generate_entry(kid: str) -> str:
        """A new `<kid>:<key>` entry to append to MASTER_KEYS."""
        return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[str, bytes]:
        """Encrypt a data key under the newest master key; returns (key id, blob)."""
        return self.newest_id, _seal(self._keys[self.newest_id], data_key, aad)

    def unwrap(self, kid: str, blob: bytes, aad: bytes) -> bytes:
        key = self._keys.get(kid)
        if key is None:
            raise CredentialUnreadable(
                f"a data key is wrapped with master key {kid!r}, which MASTER_KEYS no longer holds; "
                "add it back, run `main.py rotate-keys`, then remove it"
            )
        try:
            return _open(key, blob, aad)
        except InvalidTag as exc:
            raise CredentialUnreadable(
                f"a data key does not decrypt with master key {kid!r}; is the key right?"
            ) from exc


def _data_key_aad(tenant_id: uuid.UUID, data_key_id: uuid.UUID) -> bytes:
    return _aad("crewcanvas/data-key/v1", tenant_id, data_key_id)


def _credential_aad(tenant_id: uuid.UUID, record_id: uuid.UUID) -> bytes:
    return _aad("crewcanvas/credential/v1", tenant_id, record_id)


@dataclass(frozen=True, slots=True)
class Sealed:
    """A credential as stored: which data key, and the ciphertext."""

    key_id: uuid.UUID
    ciphertext: bytes


class CredentialVault:
    """Encrypts and decrypts a tenant's credentials with its data key."""

    def __init__(self, db: Database, keyring: KeyRing) -> None:
        self._db = db
        self._keyring = keyring
        self._keys: dict[tuple[str, uuid.UUID], bytes] = {}
        self._active: dict[str, uuid.UUID] = {}

    async def _active_key(self, slug: str, tenant_id: uuid.UUID) -> tuple[uuid.UUID, bytes]:
        key_id = self._active.get(slug)
        if key_id is not None and (slug, key_id) in self._keys:
            return key_id, self._keys[(slug, key_id)]
        async with self._db.tenant_session(slug) as session:
            row = await session.scalar(select(DataKey).where(DataKey.active.is_(True)).order_by(DataKey.created_at))
            if row is None:
                row = DataKey(id=uuid.uuid4(), active=True)
                material = AESGCM.generate_key(bit_length=256)
                row.master_key_id, row.wrapped_key = self._keyring.wrap(material, _data_key_aad(tenant_id, row.id))
                session.add(row)
                await session.commit()
            else:
                material = self._keyring.unwrap(row.master_key_id, row.wrapped_key, _data_key_aad(tenant_id, row.id))
        self._keys[(slug, row.id)] = material
        self._active[slug] = row.id
        return row.id, material

    async def _key(self, slug: str, tenant_id: uuid.UUID, key_id: uuid.UUID) -> bytes:
        cached = self._keys.get((slug, key_id))
        if cached is not None:
            return cached
        async with self._db.tenant_session(slug) as session:
            row = await session.get(DataKey, key_id)
        if row is None:
            raise CredentialUnreadable("the data key of a stored credential is gone; enter the credential again")
        material = self._keyring.unwrap(row.master_key_id, row.wrapped_key, _data_key_aad(tenant_id, row.id))
        self._keys[(slug, key_id)] = material
        return material

    async def encrypt(self, slug: str, tenant_id: uuid.UUID, record_id: uuid.UUID, secret: str) -> Sealed:
        """Seal `secret` for one record of one tenant."""
        key_id, key = await self._active_key(slug, tenant_id)
        return Sealed(key_id, _seal(key, secret.encode(), _credential_aad(tenant_id, record_id)))

    async def decrypt(self, slug: str, tenant_id: uuid.UUID, record_id: uuid.UUID, sealed: Sealed) -> str:
        """Open a credential; `CredentialUnreadable` if it belongs elsewhere or the key is wrong."""
        key = await self._key(slug, tenant_id, sealed.key_id)
        try:
            return _open(key, sealed.ciphertext, _credential_aad(tenant_id, record_id)).decode()
        except InvalidTag as exc:
            raise CredentialUnreadable(
                "a stored credential does not decrypt for this record; enter the credential again"
            ) from exc


@dataclass
class RotationReport:
    """What `rotate_keys` did."""

    rewrapped: int = 0
    already_current: int = 0
    tenants: list[str] = field(default_factory=list)


async def rotate_keys(
    db: Database,
    keyring: KeyRing,
    *,
    on_rewrapped: Callable[[str, uuid.UUID], None] | None = None,
) -> RotationReport:
    """Re-wrap every tenant's data keys under the newest master key; safe to interrupt and re-run.

    Each data key is re-wrapped in its own transaction: at any moment every row names
    the master key that wraps it, so a half-done rotation decrypts as well as a done one.
    """
    report = RotationReport()
    async with db.control_session() as session:
        tenants = list(
            (await session.execute(select(Tenant.id, Tenant.slug).where(Tenant.status != "deleting"))).tuples()
        )
    for tenant_id, slug in sorted(tenants, key=lambda t: t[1]):
        report.tenants.append(slug)
        async with db.tenant_session(slug) as session:
            ids = list(await session.scalars(select(DataKey.id).order_by(DataKey.created_at)))
        for key_id in ids:
            async with db.tenant_session(slug) as session:
                row = await session.get(DataKey, key_id)
                if row is None:
                    continue
                if row.master_key_id == keyring.newest_id:
                    report.already_current += 1
                    continue
                aad = _data_key_aad(tenant_id, row.id)
                material = keyring.unwrap(row.master_key_id, row.wrapped_key, aad)
                row.master_key_id, row.wrapped_key = keyring.wrap(material, aad)
                await session.commit()
            report.rewrapped += 1
            log.info("re-wrapped a data key of tenant %s under master key %s", slug, keyring.newest_id)
            if on_rewrapped is not None:
                on_rewrapped(slug, key_id)
    return report
