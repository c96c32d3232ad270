"""`/api/openapi.json` and `/api/docs`: the API described, served from this process.

FastAPI's own Swagger UI loads its scripts from a CDN; nothing here may fetch at run time,
so `/api/docs` is a plain HTML reference rendered on the server from the same OpenAPI
document: every operation with its summary, parameters and request body.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

router = APIRouter(tags=["docs"])

_METHODS = ("get", "post", "put", "patch", "delete")
_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1e293b}
h2{margin-top:2rem;border-bottom:1px solid #cbd5e1}
.op{margin:.75rem 0;padding:.5rem .75rem;border-left:4px solid #64748b;background:#f8fafc}
.m{font-weight:700;text-transform:uppercase;display:inline-block;width:4.5rem}
code{font-size:.95em}.d{color:#475569;margin:.25rem 0 0 4.5rem}
"""


def _document(request: Request) -> dict[str, Any]:
    app = request.app
    spec = getattr(app.state, "api_openapi", None)
    if spec is None:
        from fastapi.openapi.utils import get_openapi

        spec = get_openapi(
            title="CrewCanvas API",
            version="1",
            description="Every UI action has an API twin. Authenticate with `Authorization: Bearer <token>` "
            "(an access token from /api/auth/login or a personal API key).",
            routes=app.routes,
        )
        # The UI's pages and NiceGUI's internals are not part of the API.
        spec["paths"] = {path: item for path, item in spec.get("paths", {}).items() if path.startswith("/api/")}
        spec = _one_error_body(spec)
        app.state.api_openapi = spec
    return spec


_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def _one_error_body(spec: dict[str, Any]) -> dict[str, Any]:
    """Every error answer described by `ErrorBody`: FastAPI's own 422 schema is not what the API sends."""
    for item in spec["paths"].values():
        for method in _METHODS:
            for answer in item.get(method, {}).get("responses", {}).values():
                content = answer.get("content", {}).get("application/json", {})
                if content.get("schema", {}).get("$ref") == _FASTAPI_422:
                    content["schema"] = {"$ref": "#/components/schemas/ErrorBody"}
    schemas = spec.get("components", {}).get("schemas", {})
    if _FASTAPI_422 not in json.dumps(spec["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return spec


def _schema_name(body: dict[str, Any]) -> str:
    schema = body.get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else str(schema.get("type", "JSON"))


@router.get("/api/openapi.json", summary="The OpenAPI document of this API")
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(_document(request))


@router.get("/api/docs", summary="A readable reference of this API", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    spec = _document(request)
    groups: dict[str, list[str]] = {}
    for path, item in sorted(spec.get("paths", {}).items()):
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = ", ".join(
                f"{escape(p['name'])} ({escape(p.get('in', ''))})" for p in op.get("parameters", []) if "name" in p
            )
            body = op.get("requestBody")
            details = []
            if params:
                details.append(f"parameters: {params}")
            if body:
                details.append(f"body: {escape(_schema_name(body))}")
            html = (
                f'<div class="op"><span class="m">{method}</span><code>{escape(path)}</code>'
                f" — {escape(op.get('summary', ''))}" + "".join(f'<div class="d">{d}</div>' for d in details) + "</div>"
            )
            groups.setdefault((op.get("tags") or ["other"])[0], []).append(html)
    sections = "".join(f"<h2>{escape(tag)}</h2>{''.join(ops)}" for tag, ops in sorted(groups.items()))
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>CrewCanvas API</title><style>{_STYLE}</style>"
        f"</head><body><h1>CrewCanvas API</h1><p>{escape(spec.get('info', {}).get('description', ''))}</p>"
        f"<p>Machine-readable: <a href='/api/openapi.json'>/api/openapi.json</a></p>{sections}</body></html>"
    )
    return HTMLResponse(page)
