"""Errors raised by core services: the whole tree, wherever each class is defined.

CoreError
├── ConfigurationError          settings are missing or unsafe
├── InvalidInput                the caller sent something malformed (bad slug, bad field); `problems`
│   └── UnsafeEndpoint          (core.llm.types) a provider endpoint the SSRF guard refuses
├── NotFound                    the thing does not exist *for this tenant*
├── Conflict                    it exists already / state does not allow it
├── PermissionDenied            the caller's role does not allow the action
├── AuthenticationFailed        credentials or tokens are wrong, expired or revoked
├── RateLimited                 too many requests; `retry_after` seconds
├── BackendUnavailable          a configured backend cannot be reached
│   ├── MailNotSent             (core.mail) the SMTP server refused or could not be reached
│   ├── SandboxUnavailableError (core.tools) the sandbox cannot isolate here; nothing ran
│   ├── SandboxFailedError      (core.tools) the sandbox broke while running a tool
│   └── AllProvidersFailed      (core.llm.types; also an LLMError) every provider of the chain failed
├── ToolFailed                  (core.tools) a tool ran in the sandbox and did not end ok
├── CryptoError                 (core.crypto) keys or ciphertexts are unusable
│   └── CredentialUnreadable    a stored credential cannot be decrypted (wrong or missing master key)
└── LLMError                    (core.llm.types) an LLM call went wrong
    ├── ProviderCallFailed      one provider failed (status, retryable); never carries a secret
    ├── RedirectRefused         (core.llm.http) a provider answered with a redirect, which is never followed
    └── AllProvidersFailed      see above

`db.errors.DatabaseError` (storage missing, a migration failed) is the storage layer's own
root, outside this tree. The engine's errors hang under `executor.errors.ExecutorError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the input: where (`field`, dotted: `models.3`) and why."""

    field: str
    message: str


class CoreError(Exception):
    """Root of every error core raises."""


class ConfigurationError(CoreError):
    """Settings are missing or unsafe for this environment."""


class InvalidInput(CoreError):
    """The caller sent something malformed; `problems` names each field that is wrong."""

    def __init__(self, message: str, *, field: str | None = None, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else ([Problem(field, message)] if field else [])

    @classmethod
    def from_validation(cls, exc: ValidationError, what: str = "input") -> InvalidInput:
        """One `InvalidInput` for every problem pydantic found, never echoing the submitted values."""
        found = problems_of(exc)
        summary = "; ".join(f"{p.field}: {p.message}" for p in found[:5])
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        return cls(f"invalid {what}: {summary}{more}", problems=found)


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


def problems_of(exc: ValidationError) -> list[Problem]:
    """pydantic's errors as `{field, message}` problems (the values themselves are left out: they may be secrets)."""
    return problems_from(exc.errors(include_input=False, include_url=False))


def problems_from(errors: Iterable[Mapping[str, Any]], *, root: str | None = None) -> list[Problem]:
    """Validation error dicts (pydantic's, FastAPI's) as `{field, message}` problems: the one helper for all.

    Union members and validators pydantic names in a location (`function-after[...]`,
    `list[...]`) are not fields, and are left out of the field's name; so is `root`
    (FastAPI's `body`) when more follows it. Submitted values are never repeated.
    """
    problems: list[Problem] = []
    for error in errors:
        parts = [str(part) for part in error.get("loc", ()) if not (isinstance(part, str) and "[" in part)]
        if root is not None and parts[:1] == [root] and len(parts) > 1:
            parts = parts[1:]
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            reason = str((error.get("ctx") or {}).get("error", "")).strip()
            message = f"is not valid JSON ({reason})" if reason else "is not valid JSON"
            parts = [root] if root else []
        problem = Problem(".".join(parts) or root or "input", message)
        if problem not in problems:
            problems.append(problem)
    return problems
