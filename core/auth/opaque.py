"""Random secrets (session ids, refresh tokens, invite tokens, API keys) and their digests.

They carry 256 bits of randomness, so a plain SHA-256 digest is enough to store them:
nobody can guess one from its digest, and lookups stay a single indexed query.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret(prefix: str = "") -> str:
    """A fresh URL-safe secret with 256 bits of randomness, optionally prefixed."""
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """The SHA-256 hex digest under which a secret is stored."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same_digest(secret: str, stored: str) -> bool:
    """Compare a presented secret with a stored digest in constant time."""
    return hmac.compare_digest(digest(secret), stored)
