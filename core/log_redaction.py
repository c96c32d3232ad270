"""Keep one-time credentials in URLs out of the access log.

Some browser redirects carry short-lived secrets in the query string: the sign-in
hand-over `ticket`, OpenID Connect's `code` and `state`, an API `token`. uvicorn's
access log writes the full path of every request; this filter rewrites those parameter
values to `[redacted]` before any handler sees the record.
"""

from __future__ import annotations

import logging
import re

SENSITIVE_PARAMETERS = ("ticket", "code", "state", "token", "access_token", "refresh_token", "api_key", "key")
_PATTERN = re.compile(r"([?&](?:" + "|".join(SENSITIVE_PARAMETERS) + r")=)[^&#\s]*", re.IGNORECASE)


def redact_url(text: str) -> str:
    """`text` with the values of sensitive query parameters replaced."""
    return _PATTERN.sub(r"\1[redacted]", text)


class RedactQuerySecrets(logging.Filter):
    """A logging filter for access logs (uvicorn passes the path among the record's args)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_url(record.msg)
        return True


def install(logger_names: tuple[str, ...] = ("uvicorn.access",)) -> None:
    """Attach the filter to the access loggers (idempotent)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQuerySecrets) for f in logger.filters):
            logger.addFilter(RedactQuerySecrets())
