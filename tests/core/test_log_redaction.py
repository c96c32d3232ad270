"""One-time credentials in URLs never reach the access log."""

from __future__ import annotations

import logging

import pytest

from core.log_redaction import RedactQuerySecrets, redact_url


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/auth/session?ticket=abc123", "/auth/session?ticket=[redacted]"),
        ("/auth/oidc/callback?code=c0de&state=s7ate", "/auth/oidc/callback?code=[redacted]&state=[redacted]"),
        ("/x?page=2&token=t0k#frag", "/x?page=2&token=[redacted]#frag"),
        ("/tools?kind=command", "/tools?kind=command"),
        ("/api/health", "/api/health"),
    ],
)
def test_sensitive_query_values_are_redacted(path: str, expected: str) -> None:
    assert redact_url(path) == expected


def test_the_filter_rewrites_uvicorn_style_access_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.access")
    logger.addFilter(RedactQuerySecrets())
    with caplog.at_level(logging.INFO, logger="test.access"):
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/auth/session?ticket=SECRET1", "1.1", 303)
    assert "SECRET1" not in caplog.text
    assert "ticket=[redacted]" in caplog.text
