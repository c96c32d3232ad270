"""OIDCAccounts: which user verified id_token claims belong to (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from core.auth.oidc import OIDCAccounts
from core.errors import AuthenticationFailed
from db.database import Database
from db.models.control import OIDCLink, User

ISSUER = "https://idp.example"


async def add_user(db: Database, email: str, *, active: bool = True) -> uuid.UUID:
    async with db.control_session() as session:
        user = User(email=email, password_hash="argon2-hash", is_active=active)
        session.add(user)
        await session.commit()
        return user.id


async def links(db: Database) -> list[tuple[str, str, uuid.UUID]]:
    async with db.control_session() as session:
        rows = await session.execute(select(OIDCLink.issuer, OIDCLink.subject, OIDCLink.user_id))
        return sorted((row[0], row[1], row[2]) for row in rows)


async def user_count(db: Database) -> int:
    async with db.control_session() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


def claims(sub: str, email: str, verified: bool = True) -> dict[str, object]:
    return {"iss": ISSUER, "sub": sub, "email": email, "email_verified": verified, "name": "Ada"}


async def test_new_verified_identity_creates_a_user_without_password(db: Database) -> None:
    user = await OIDCAccounts(db).sign_in(ISSUER, claims("s1", "Ada@Example.com"))
    assert user.email == "ada@example.com"
    assert not user.has_password
    assert user.email_verified
    assert user.display_name == "Ada"
    assert await links(db) == [(ISSUER, "s1", user.id)]


async def test_known_subject_wins_over_a_changed_email(db: Database) -> None:
    oidc = OIDCAccounts(db)
    first = await oidc.sign_in(ISSUER, claims("s1", "ada@example.com"))
    again = await oidc.sign_in(ISSUER, claims("s1", "someone-else@example.com", verified=False))
    assert again.id == first.id
    assert again.email == "ada@example.com"
    assert await user_count(db) == 1


async def test_verified_email_links_an_existing_password_account(db: Database) -> None:
    existing = await add_user(db, "ada@example.com")
    user = await OIDCAccounts(db).sign_in(ISSUER, claims("s1", "ADA@example.com"))
    assert user.id == existing
    assert not user.has_password  # its address was never verified: whoever chose the password is out
    assert await links(db) == [(ISSUER, "s1", existing)]


async def test_an_account_with_a_verified_address_keeps_its_password_when_linked(db: Database) -> None:
    existing = await add_user(db, "ada@example.com")
    async with db.control_session() as session:
        row = await session.get(User, existing)
        assert row is not None
        row.email_verified = True
        await session.commit()
    user = await OIDCAccounts(db).sign_in(ISSUER, claims("s1", "ada@example.com"))
    assert user.id == existing
    assert user.has_password


async def test_unverified_email_neither_links_nor_creates(db: Database) -> None:
    await add_user(db, "ada@example.com")
    oidc = OIDCAccounts(db)
    for address in ("ada@example.com", "new@example.com"):
        with pytest.raises(AuthenticationFailed, match="not verified"):
            await oidc.sign_in(ISSUER, claims("s1", address, verified=False))
    with pytest.raises(AuthenticationFailed, match="not verified"):
        await oidc.sign_in(ISSUER, {"sub": "s2", "email": "new@example.com", "email_verified": "true"})
    assert await links(db) == []
    assert await user_count(db) == 1


async def test_second_identity_at_the_same_provider_cannot_claim_a_linked_account(db: Database) -> None:
    oidc = OIDCAccounts(db)
    owner = await oidc.sign_in(ISSUER, claims("s1", "ada@example.com"))
    with pytest.raises(AuthenticationFailed, match="linked to another identity"):
        await oidc.sign_in(ISSUER, claims("s2", "ada@example.com"))
    # Another provider vouching for the same verified address may link.
    other = await oidc.sign_in("https://other-idp.example", claims("x9", "ada@example.com"))
    assert other.id == owner.id
    assert await links(db) == sorted([(ISSUER, "s1", owner.id), ("https://other-idp.example", "x9", owner.id)])


@pytest.mark.parametrize("subject", [None, "", 42, "x" * 256])
async def test_unusable_subject_is_refused(db: Database, subject: object) -> None:
    with pytest.raises(AuthenticationFailed, match="subject"):
        await OIDCAccounts(db).sign_in(ISSUER, {"sub": subject, "email": "a@example.com", "email_verified": True})
    assert await user_count(db) == 0


async def test_disabled_account_cannot_sign_in(db: Database) -> None:
    await add_user(db, "ada@example.com", active=False)
    oidc = OIDCAccounts(db)
    with pytest.raises(AuthenticationFailed, match="disabled"):
        await oidc.sign_in(ISSUER, claims("s1", "ada@example.com"))
    assert await links(db) == []


async def test_missing_email_is_refused(db: Database) -> None:
    with pytest.raises(AuthenticationFailed, match="email address"):
        await OIDCAccounts(db).sign_in(ISSUER, {"sub": "s1", "email_verified": True})
    assert await user_count(db) == 0
