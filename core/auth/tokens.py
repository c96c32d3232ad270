"""Short-lived JWT access tokens: one fixed algorithm, every claim checked explicitly.

Signed with HS256 under a key derived (HKDF) from SECRET_KEY, so the token key is never
the session-cookie key. The key id (`kid`) is a fingerprint of that key: after SECRET_KEY
changes, old tokens fail with "unknown key id" instead of a bare signature error.

Claims: `iss`, `aud`, `sub` (user id), `iat`, `exp`, `jti`, `ver` (the user's token
version), `sid` (the sign-in's refresh family) and optionally `tid` (the tenant the
token was issued for). The role is *not* in the token: it is read on every request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jwt import JWTClaimsRegistry

from core.errors import AuthenticationFailed, ConfigurationError

ALGORITHM = "HS256"
_HINT = "sign in again or refresh the token"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: uuid.UUID
    token_version: int
    family_id: uuid.UUID
    tenant_id: uuid.UUID | None
    expires_at: int


def _refuse(reason: str) -> AuthenticationFailed:
    return AuthenticationFailed(f"access token refused: {reason}; {_HINT}")


def _b64json(segment: str) -> dict[str, Any]:
    padded = segment + "=" * (-len(segment) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


class AccessTokens:
    """Issues and verifies access tokens."""

    def __init__(
        self,
        secret_key: str,
        *,
        issuer: str,
        audience: str,
        ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # A missing key fails when a token is issued or checked, not at start-up, so a
        # process that never signs anyone in (a migration, a health check) can run without it.
        self._key: OctKey | None = None
        self.key_id = ""
        if len(secret_key) >= 16:
            raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"crewcanvas", info=b"access-token-hs256-v1").derive(
                secret_key.encode()
            )
            self.key_id = hashlib.sha256(raw).hexdigest()[:16]
            self._key = OctKey.import_key(raw, {"kid": self.key_id})
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s
        self._clock = clock

    def _signing_key(self) -> OctKey:
        if self._key is None:
            raise ConfigurationError("SECRET_KEY is missing or too short to sign tokens; set at least 32 characters")
        return self._key

    def issue(
        self, user_id: uuid.UUID, *, token_version: int, family_id: uuid.UUID, tenant_id: uuid.UUID | None
    ) -> str:
        """A signed token for the user, valid for `ttl_s` seconds."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "ver": token_version,
            "sid": str(family_id),
        }
        if tenant_id is not None:
            claims["tid"] = str(tenant_id)
        return jwt.encode({"alg": ALGORITHM, "kid": self.key_id}, claims, self._signing_key(), algorithms=[ALGORITHM])

    def verify(self, token: str) -> AccessClaims:
        """The token's claims, or `AuthenticationFailed` saying what is wrong with it."""
        key = self._signing_key()
        parts = token.split(".")
        if len(parts) != 3 or not all(parts[:2]):
            raise _refuse("it is not a signed JWT")
        try:
            header = _b64json(parts[0])
        except (ValueError, UnicodeError, binascii.Error, RecursionError) as exc:  # deep nesting exhausts json
            raise _refuse("its header is not valid JSON") from exc
        if header.get("alg") != ALGORITHM:
            raise _refuse(f"algorithm {str(header.get('alg'))[:20]!r} is not accepted")
        if header.get("kid") != self.key_id:
            raise _refuse("unknown key id")
        if "crit" in header:
            raise _refuse("critical header parameters are not supported")
        try:
            decoded = jwt.decode(token, key, algorithms=[ALGORITHM])
        except (JoseError, ValueError) as exc:
            raise _refuse("bad signature") from exc
        registry = JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=5,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise _refuse(_claim_problem(exc)) from exc
        claims = decoded.claims
        if not isinstance(claims.get("iat"), int) or claims["iat"] > self._clock() + 5:
            raise _refuse("it was issued in the future")
        try:
            version = claims["ver"]
            if not isinstance(version, int) or isinstance(version, bool):
                raise TypeError("ver")
            tenant = claims.get("tid")
            return AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                token_version=version,
                family_id=uuid.UUID(str(claims["sid"])),
                tenant_id=uuid.UUID(str(tenant)) if tenant is not None else None,
                expires_at=int(claims["exp"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _refuse("its claims are malformed") from exc


def _claim_problem(exc: JoseError) -> str:
    """Name the failing claim in words (joserfc's messages are terse)."""
    text = f"{exc.error}: {exc.description}" if getattr(exc, "description", None) else str(exc.error)
    if "exp" in text and "expired" in text:
        return "it has expired"
    if "missing" in text.lower():
        return f"a required claim is missing ({exc.description})"
    if "aud" in text:
        return "it was issued for another audience"
    if "iss" in text:
        return "it was issued by someone else"
    return f"a claim is invalid ({text})"
