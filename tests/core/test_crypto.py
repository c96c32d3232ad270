"""Credentials at rest: AES-256-GCM under per-tenant data keys wrapped by master keys; rotation."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from core.crypto import CredentialUnreadable, CredentialVault, KeyRing, Sealed, mask_secret, rotate_keys
from core.errors import ConfigurationError
from db.database import Database
from db.models import DataKey
from tests.fixtures.llm_stack import make_tenant, master_keys

SECRET = "sk-live-0123456789abcdef9f2c"


async def test_a_credential_round_trips_and_is_not_stored_in_clear(db: Database) -> None:
    admin, _ = await make_tenant(db)
    spec = master_keys("k1")
    vault = CredentialVault(db, KeyRing(spec))
    record = uuid.uuid4()
    sealed = await vault.encrypt(admin.tenant_slug, admin.tenant_id, record, SECRET)
    assert SECRET.encode() not in sealed.ciphertext
    assert await vault.decrypt(admin.tenant_slug, admin.tenant_id, record, sealed) == SECRET
    async with db.tenant_session(admin.tenant_slug) as session:
        key = await session.scalar(select(DataKey))
    assert key is not None
    assert key.master_key_id == "k1"
    # A fresh vault (another process) reads it with the master key alone.
    again = CredentialVault(db, KeyRing(spec))
    assert await again.decrypt(admin.tenant_slug, admin.tenant_id, record, sealed) == SECRET


async def test_a_ciphertext_copied_to_another_record_or_tenant_does_not_decrypt(db: Database) -> None:
    alpha, _ = await make_tenant(db, "alpha")
    beta, _ = await make_tenant(db, "beta")
    spec = master_keys("k1")
    vault = CredentialVault(db, KeyRing(spec))
    record = uuid.uuid4()
    sealed = await vault.encrypt(alpha.tenant_slug, alpha.tenant_id, record, SECRET)
    with pytest.raises(CredentialUnreadable, match="enter the credential again"):
        await vault.decrypt(alpha.tenant_slug, alpha.tenant_id, uuid.uuid4(), sealed)
    # Same bytes in the other tenant: its data key has another id and other material.
    await vault.encrypt(beta.tenant_slug, beta.tenant_id, record, "other")
    with pytest.raises(CredentialUnreadable):
        await vault.decrypt(beta.tenant_slug, beta.tenant_id, record, sealed)
    # Even with the data key row copied over, the tenant binding refuses it.
    async with db.tenant_session("alpha") as session:
        row = await session.get(DataKey, sealed.key_id)
        assert row is not None
        copy = DataKey(id=row.id, master_key_id=row.master_key_id, wrapped_key=row.wrapped_key, active=False)
    async with db.tenant_session("beta") as session:
        session.add(copy)
        await session.commit()
    with pytest.raises(CredentialUnreadable):
        await CredentialVault(db, KeyRing(spec)).decrypt(beta.tenant_slug, beta.tenant_id, record, sealed)


async def test_tampered_ciphertext_or_wrong_master_key_is_refused(db: Database) -> None:
    admin, _ = await make_tenant(db)
    vault = CredentialVault(db, KeyRing(master_keys("k1")))
    record = uuid.uuid4()
    sealed = await vault.encrypt(admin.tenant_slug, admin.tenant_id, record, SECRET)
    flipped = bytearray(sealed.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(CredentialUnreadable):
        await vault.decrypt(admin.tenant_slug, admin.tenant_id, record, Sealed(sealed.key_id, bytes(flipped)))
    with pytest.raises(CredentialUnreadable, match="does not decrypt with master key 'k1'"):
        await CredentialVault(db, KeyRing(master_keys("k1"))).decrypt(
            admin.tenant_slug, admin.tenant_id, record, sealed
        )
    with pytest.raises(CredentialUnreadable, match="MASTER_KEYS no longer holds"):
        await CredentialVault(db, KeyRing(master_keys("k9"))).decrypt(
            admin.tenant_slug, admin.tenant_id, record, sealed
        )


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("nokey", "must look like"),
        ("k1:not base64!!", "base64"),
        ("k1:" + "QUFB", "32 bytes"),
    ],
)
def test_malformed_master_keys_are_refused_with_the_reason(spec: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        KeyRing(spec)


def test_an_empty_key_ring_refuses_to_wrap_with_the_reason() -> None:
    ring = KeyRing("")
    with pytest.raises(ConfigurationError, match="MASTER_KEYS is empty"):
        ring.wrap(b"k" * 32, b"aad")


def test_the_last_master_key_is_the_newest() -> None:
    assert KeyRing(master_keys("old", "new")).newest_id == "new"


@pytest.mark.parametrize(
    ("secret", "hint"),
    [("sk-proj-abcdefghijkl9f2c", "sk-...9f2c"), ("short", "****"), ("  sk-0123456789ab  ", "sk-...89ab")],
)
def test_mask_shows_a_hint_never_the_secret(secret: str, hint: str) -> None:
    assert mask_secret(secret) == hint


async def test_rotation_rewraps_every_data_key_and_survives_an_interruption(db: Database) -> None:
    old = master_keys("k1")
    tenants = [await make_tenant(db, slug) for slug in ("alpha", "beta", "gamma")]
    vault = CredentialVault(db, KeyRing(old))
    sealed = {}
    for admin, _ in tenants:
        record = uuid.uuid4()
        sealed[admin.tenant_slug] = (
            admin,
            record,
            await vault.encrypt(admin.tenant_slug, admin.tenant_id, record, SECRET),
        )

    newest = master_keys("k2")
    ring = KeyRing(old + "," + newest)

    class Interrupted(Exception):
        pass

    def crash_after_first(slug: str, _key: uuid.UUID) -> None:
        raise Interrupted(slug)

    with pytest.raises(Interrupted):
        await rotate_keys(db, ring, on_rewrapped=crash_after_first)

    async def kids() -> dict[str, str]:
        found = {}
        for admin, _ in tenants:
            async with db.tenant_session(admin.tenant_slug) as session:
                found[admin.tenant_slug] = (await session.scalar(select(DataKey.master_key_id))) or ""
        return found

    assert sorted((await kids()).values()) == ["k1", "k1", "k2"]  # half-way: one tenant done
    for admin, record, box in sealed.values():  # and everything still decrypts mid-rotation
        assert await CredentialVault(db, ring).decrypt(admin.tenant_slug, admin.tenant_id, record, box) == SECRET

    report = await rotate_keys(db, ring)
    assert (report.rewrapped, report.already_current) == (2, 1)
    assert set((await kids()).values()) == {"k2"}
    new_only = KeyRing(newest)
    for admin, record, box in sealed.values():  # the old master key can now be retired
        assert await CredentialVault(db, new_only).decrypt(admin.tenant_slug, admin.tenant_id, record, box) == SECRET
    assert (await rotate_keys(db, ring)).rewrapped == 0  # idempotent
