"""`ui.session.safe_next`: where the login page may send a browser afterwards (this site only)."""

from __future__ import annotations

import pytest

from ui.session import DEFAULT_LANDING, safe_next


@pytest.mark.parametrize("target", ["/members", "/tools/new?kind=command", "/api-keys#top", "/"])
def test_paths_on_this_site_are_kept(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "https://evil.example/",
        "//evil.example/members",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "members",
        "/members\r\nSet-Cookie: x=1",
        "/\tevil",
        "/" + "a" * 2001,
    ],
)
def test_anything_else_falls_back_to_the_landing_page(target: str | None) -> None:
    assert safe_next(target) == DEFAULT_LANDING
