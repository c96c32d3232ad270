"""The API documents itself without fetching anything."""

from __future__ import annotations

import re

import httpx


async def test_the_openapi_document_lists_every_router(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for expected in ("/api/auth/login", "/api/auth/refresh", "/api/tenants", "/api/providers", "/api/tools"):
        assert expected in paths, expected
    assert any(p.startswith("/api/members") for p in paths)
    assert any(p.startswith("/api/api-keys") for p in paths)
    assert all(p.startswith("/api/") for p in paths)


async def test_the_docs_page_describes_operations_and_loads_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/docs")
    assert response.status_code == 200
    page = response.text
    assert "/api/auth/login" in page
    assert "/api/providers/{provider_id}" in page
    assert not re.search(r"<script|src=|https?://", page), "the docs page must not load anything from elsewhere"
