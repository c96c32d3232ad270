"""Errors raised by core services.

CoreError
├── ConfigurationError      settings are missing or unsafe
├── InvalidInput            the caller sent something malformed (bad slug, bad field)
├── NotFound                the thing does not exist *for this tenant*
├── Conflict                it exists already / state does not allow it
├── PermissionDenied        the caller's role does not allow the action
├── AuthenticationFailed    credentials or tokens are wrong, expired or revoked
├── RateLimited             too many requests; `retry_after` seconds
└── BackendUnavailable      a configured backend cannot be reached
"""

from __future__ import annotations


class CoreError(Exception):
    """Root of every error core raises."""


class ConfigurationError(CoreError):
    """Settings are missing or unsafe for this environment."""


class InvalidInput(CoreError):
    """The caller sent something malformed."""


class NotFound(CoreError):
    """The object does not exist, or is not visible to this tenant."""


class Conflict(CoreError):
    """The object exists already, or its state does not allow the action."""


class PermissionDenied(CoreError):
    """The caller's role does not allow the action."""


class AuthenticationFailed(CoreError):
    """Credentials or tokens are wrong, expired or revoked."""


class RateLimited(CoreError):
    """Too many requests; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendUnavailable(CoreError):
    """A configured backend cannot be reached."""
