"""A provider's error answer reaches the workspace admin as a short, redacted summary, never raw.

The scripted server answers with error bodies that carry a canary (an internal trace, the
kind of thing error bodies leak) beside the usual error fields, plus junk. The provider
Test button, chat (plain and streaming) and the usage records show the status and the
error's type/message/code; the canary, the junk and key-shaped strings never come back.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import sign_up
from tests.api.test_providers import Seen, client, scripted
from tests.fixtures import llm_server as _scripted
from tests.fixtures.llm_server import Reply, ScriptedLLMServer

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server
__all__ = ["client"]  # a fixture, used by name

TRACE = "canary-trace-internal-10-3-7-42"  # not key-shaped: only dropping the body keeps it out
LEAKED_KEY = "sk-live-0a1b2c3d4e5f6a7b8c9d"
JUNK = "<pre>" + "Traceback (most recent call last): ... " * 200 + "</pre>"


def body(**fields: Any) -> str:
    """An error body: the canary first (so a cut-off raw body would still show it), then `fields`, then junk."""
    return json.dumps({"trace_id": TRACE} | fields | {"debug": {"upstream": TRACE, "dump": JUNK}})


SHAPES = [
    pytest.param(
        400,
        body(
            error={
                "type": "invalid_request_error",
                "message": f"model m1 is overloaded; key {LEAKED_KEY} was rejected",
                "code": "model_overloaded",
                "param": TRACE,
            }
        ),
        ["invalid_request_error: model m1 is overloaded", "(code model_overloaded)", "bad_request (HTTP 400)"],
        id="openai",
    ),
    pytest.param(
        404,
        body(error="model 'm1' not found, try pulling it first"),
        ["model 'm1' not found, try pulling it first", "bad_request (HTTP 404)"],
        id="ollama",
    ),
    pytest.param(
        500,
        body(object="error", message="the engine is restarting", type="InternalServerError", code=500),
        ["InternalServerError: the engine is restarting (code 500)", "server_error (HTTP 500)"],
        id="vllm",
    ),
    pytest.param(
        502,
        f"<html><body><h1>502 Bad Gateway</h1><p>{TRACE}</p>{JUNK}</body></html>",
        ["server_error (HTTP 502)", "without a readable error message"],
        id="not-json",
    ),
]


@pytest.mark.parametrize(("status", "answer", "shown"), SHAPES)
async def test_the_admin_sees_a_short_redacted_summary_of_the_providers_error(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer, status: int, answer: str, shown: list[str]
) -> None:
    call = Seen(client)
    owner = await sign_up(client, "owner@example.com", "acme")
    provider = (await call("POST", "/api/providers", owner, json=scripted(llm_server))).json()
    llm_server.default = Reply(status=status, body=answer)
    message = {"provider_id": provider["id"], "messages": [{"role": "user", "content": "hi"}]}

    tested = await call("POST", f"/api/providers/{provider['id']}/test", owner)
    chat = await call("POST", "/api/llm/chat", owner, json=message)
    streamed = await call("POST", "/api/llm/chat", owner, json=message | {"stream": True})
    usage = await call("GET", "/api/usage", owner)

    assert tested.json()["ok"] is False
    assert (chat.status_code, streamed.status_code) == (503, 503)
    details = [tested.json()["message"], chat.json()["detail"], streamed.json()["detail"]]
    details += [record["error"] for record in usage.json()]
    assert len(details) == 6
    for detail in details:
        for part in shown:
            assert part in detail
        assert "'scripted' failed" in detail
    for text in call.texts:
        assert TRACE not in text
        assert "Traceback" not in text
        assert LEAKED_KEY not in text
    assert len(tested.json()["message"]) < 400
    call.assert_no_canary()


async def test_a_long_error_message_is_cut_short(client: httpx.AsyncClient, llm_server: ScriptedLLMServer) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    provider = (await client.post("/api/providers", headers=owner.headers, json=scripted(llm_server))).json()
    llm_server.default = Reply(status=400, body=body(error={"message": "too long " * 500, "type": "x" * 500}))
    tested = await client.post(f"/api/providers/{provider['id']}/test", headers=owner.headers)
    message = tested.json()["message"]
    assert "too long too long" in message
    assert len(message) < 400
    assert TRACE not in message
