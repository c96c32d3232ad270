"""`/api/flows/*` and `/api/node-types`: flows, versions, diff, restore, validation, export/import, who may do what.

Real app, real tokens, on SQLite and PostgreSQL (`tests/api/conftest.py`). Running flows is
in `test_executions.py`, which borrows the helpers below.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.api.conftest import Account, sign_up
from tests.api.test_members import invite, join
from tests.executor.conftest import SHOUT, document, edge, node

TOPIC = [{"name": "topic", "type": "string"}]


def echo_flow(value: str = "{{ inputs.topic }}") -> dict[str, Any]:
    """input -> output: the smallest flow that runs, returning `value` as `result`."""
    return document([node("in", "input"), node("out", "output", value=value)], [edge("in", "out")], TOPIC)


def tool_flow(tool_id: str) -> dict[str, Any]:
    """input -> tool -> output."""
    return document(
        [
            node("in", "input"),
            node("shout", "tool", tool_id=tool_id, arguments={"text": "{{ inputs.topic }}"}),
            node("out", "output", value="{{ nodes.shout.output.loud }}"),
        ],
        [edge("in", "shout"), edge("shout", "out")],
        TOPIC,
    )


def broken_flow() -> dict[str, Any]:
    """A well-formed document with a problem: its condition names a node that does not exist."""
    return document(
        [node("in", "input"), node("check", "condition", expression="nodes.nowhere.x")], [edge("in", "check")]
    )


async def create_flow(
    client: httpx.AsyncClient, who: Account, flow: dict[str, Any] | None = None, name: str | None = None
) -> dict[str, Any]:
    """Create a flow through the API; the answer (`version`, `valid`, `problems`)."""
    body: dict[str, Any] = {"name": name or f"flow {uuid.uuid4().hex[:8]}"}
    if flow is not None:
        body["document"] = flow
    response = await client.post("/api/flows", headers=who.headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_tool(client: httpx.AsyncClient, who: Account, name: str = "shout") -> str:
    """A python tool `name` that upper-cases `text` into `loud`; its id."""
    spec = {
        "name": name,
        "code": SHOUT,
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    }
    response = await client.post("/api/tools", headers=who.headers, json=spec)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_new_flow_starts_from_a_starter_and_is_listed_read_renamed_and_deleted(
    client: httpx.AsyncClient,
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    created = await create_flow(client, owner, name="greeter")
    version = created["version"]
    assert (version["version"], created["valid"], created["problems"]) == (1, True, [])
    assert version["document"]["schema"] == "crewcanvas.flow/v1"
    assert [(n["id"], n["type"]) for n in version["document"]["nodes"]] == [("input", "input"), ("output", "output")]
    flow_id = version["flow_id"]

    listed = (await client.get("/api/flows", headers=owner.headers)).json()
    assert [(f["id"], f["name"], f["latest_version"]) for f in listed] == [(flow_id, "greeter", 1)]
    read = (await client.get(f"/api/flows/{flow_id}", headers=owner.headers)).json()
    assert (read["name"], read["version"]["version"]) == ("greeter", 1)
    assert read["version"]["document"] == version["document"]

    renamed = await client.patch(
        f"/api/flows/{flow_id}", headers=owner.headers, json={"name": "welcomer", "description": "says hello"}
    )
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["description"]) == ("welcomer", "says hello")
    assert (await client.get(f"/api/flows/{flow_id}", headers=owner.headers)).json()["name"] == "welcomer"
    taken = await create_flow(client, owner, name="taken")
    clash = await client.patch(
        f"/api/flows/{taken['version']['flow_id']}", headers=owner.headers, json={"name": "welcomer"}
    )
    assert clash.status_code == 409

    assert (await client.delete(f"/api/flows/{flow_id}", headers=owner.headers)).status_code == 204
    assert (await client.get(f"/api/flows/{flow_id}", headers=owner.headers)).status_code == 404
    assert (await client.delete(f"/api/flows/{flow_id}", headers=owner.headers)).status_code == 404
    assert [f["name"] for f in (await client.get("/api/flows", headers=owner.headers)).json()] == ["taken"]


async def test_an_unsaved_document_is_validated_with_problems_naming_node_and_field(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    valid = await client.post("/api/flows/validate", headers=owner.headers, json={"document": echo_flow()})
    assert valid.status_code == 200, valid.text
    assert valid.json() == {"valid": True, "problems": []}

    invalid = await client.post("/api/flows/validate", headers=owner.headers, json={"document": broken_flow()})
    assert invalid.status_code == 200, invalid.text
    assert invalid.json()["valid"] is False
    [problem] = invalid.json()["problems"]
    assert (problem["node_id"], problem["field"]) == ("check", "expression")
    assert "nowhere" in problem["message"]

    unknown_tool = tool_flow(str(uuid.uuid4()))
    problems = (await client.post("/api/flows/validate", headers=owner.headers, json={"document": unknown_tool})).json()
    assert problems["valid"] is False
    assert {p["node_id"] for p in problems["problems"]} == {"shout"}
    assert all(p["field"] and p["message"] for p in problems["problems"])
    assert (await client.get("/api/flows", headers=owner.headers)).json() == []  # nothing was saved


async def test_versions_are_saved_listed_read_diffed_and_restored(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    first = echo_flow()
    flow_id = (await create_flow(client, owner, first))["version"]["flow_id"]
    second = document(
        [
            node("in", "input"),
            node("out", "output", value="hello {{ inputs.topic }}"),
            node("extra", "output", name="x"),
        ],
        [edge("in", "out"), edge("in", "extra")],
        TOPIC,
    )
    saved = await client.post(
        f"/api/flows/{flow_id}/versions",
        headers=owner.headers,
        json={"document": second, "expected_version": 1, "message": "say hello"},
    )
    assert saved.status_code == 201, saved.text
    assert (saved.json()["version"]["version"], saved.json()["valid"]) == (2, True)

    stale = await client.post(
        f"/api/flows/{flow_id}/versions", headers=owner.headers, json={"document": first, "expected_version": 1}
    )
    assert stale.status_code == 409
    assert stale.json()["error"] == "Conflict"
    assert "reload" in stale.json()["detail"]

    versions = (await client.get(f"/api/flows/{flow_id}/versions", headers=owner.headers)).json()
    assert [(v["version"], v["message"]) for v in versions] == [(2, "say hello"), (1, "")]
    assert all(v["document"] is None for v in versions)
    one = (await client.get(f"/api/flows/{flow_id}/versions/1", headers=owner.headers)).json()
    assert one["version"] == 1
    assert one["document"]["nodes"][1]["data"]["value"] == "{{ inputs.topic }}"
    assert (await client.get(f"/api/flows/{flow_id}/versions/9", headers=owner.headers)).status_code == 404

    diff = await client.get(f"/api/flows/{flow_id}/diff", headers=owner.headers, params={"from": 1, "to": 2})
    assert diff.status_code == 200, diff.text
    changes = diff.json()
    assert (changes["from"], changes["to"]) == (1, 2)
    assert (changes["nodes"]["added"], changes["nodes"]["removed"], changes["nodes"]["changed"]) == (
        ["extra"],
        [],
        ["out"],
    )
    assert changes["edges"]["added"] == ["in.out-extra"]
    backwards = (await client.get(f"/api/flows/{flow_id}/diff?from=2&to=1", headers=owner.headers)).json()
    assert backwards["nodes"]["removed"] == ["extra"]

    restored = await client.post(f"/api/flows/{flow_id}/versions/1/restore", headers=owner.headers)
    assert restored.status_code == 201, restored.text
    assert restored.json()["version"]["version"] == 3
    assert restored.json()["version"]["message"] == "restored from version 1"
    latest = (await client.get(f"/api/flows/{flow_id}", headers=owner.headers)).json()
    assert (latest["latest_version"], latest["version"]["version"]) == (3, 3)
    assert latest["version"]["document"] == one["document"]
    assert (await client.get(f"/api/flows/{flow_id}/diff?from=1&to=3", headers=owner.headers)).json()["nodes"] == {
        "added": [],
        "removed": [],
        "changed": [],
        "moved": [],
    }


async def test_an_export_imports_into_another_tenant_matching_tools_by_name(client: httpx.AsyncClient) -> None:
    acme = await sign_up(client, "owner@acme.example", "acme")
    globex = await sign_up(client, "owner@globex.example", "globex")
    acme_tool = await create_tool(client, acme)
    flow_id = (await create_flow(client, acme, tool_flow(acme_tool), name="shouter"))["version"]["flow_id"]
    exported = await client.get(f"/api/flows/{flow_id}/export", headers=acme.headers)
    assert exported.status_code == 200, exported.text
    payload = exported.json()
    assert (payload["name"], payload["version"]) == ("shouter", 1)
    assert payload["references"]["tools"] == {acme_tool: "shout"}

    # Globex has no tool named "shout": the flow comes in, with the reference listed as missing.
    imported = await client.post("/api/flows/import", headers=globex.headers, json=payload)
    assert imported.status_code == 201, imported.text
    body = imported.json()
    assert body["missing"] == [{"kind": "tool", "id": acme_tool, "name": "shout"}]
    assert body["flow"]["name"] == "shouter"
    assert {p["node_id"] for p in body["problems"]} == {"shout"}
    assert body["version"]["document"]["nodes"][1]["data"]["tool_id"] == acme_tool

    # Once globex has its own "shout", a second import points at it and can run.
    globex_tool = await create_tool(client, globex)
    again = await client.post("/api/flows/import", headers=globex.headers, json=payload | {"name": "shouter 2"})
    assert again.status_code == 201, again.text
    assert (again.json()["missing"], again.json()["problems"]) == ([], [])
    assert again.json()["version"]["document"]["nodes"][1]["data"]["tool_id"] == globex_tool
    names = sorted(f["name"] for f in (await client.get("/api/flows", headers=globex.headers)).json())
    assert names == ["shouter", "shouter 2"]
    # Acme's flow is untouched, and an export of the other tenant's flow id is not found.
    assert (await client.get(f"/api/flows/{flow_id}/export", headers=globex.headers)).status_code == 404

    not_an_export = await client.post("/api/flows/import", headers=globex.headers, json={"document": {}})
    assert not_an_export.status_code == 422
    assert "format" in not_an_export.json()["detail"]


async def test_malformed_documents_names_and_ids_are_refused(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = (await create_flow(client, owner, echo_flow(), name="fine"))["version"]["flow_id"]
    not_a_flow = [
        await client.post("/api/flows", headers=owner.headers, json={"name": "bad", "document": {"nodes": "many"}}),
        await client.post(
            f"/api/flows/{flow_id}/versions", headers=owner.headers, json={"document": {"schema": "other/v9"}}
        ),
        await client.post(
            "/api/flows/validate", headers=owner.headers, json={"document": {"nodes": [{"id": "a b", "type": "x"}]}}
        ),
        await client.post(
            "/api/flows", headers=owner.headers, json={"name": "bad", "document": echo_flow() | {"colour": "red"}}
        ),
    ]
    assert [r.status_code for r in not_a_flow] == [422] * 4
    assert {r.json()["error"] for r in not_a_flow} == {"FlowInvalid"}
    assert not_a_flow[0].json()["problems"][0]["field"] == "nodes"
    assert not_a_flow[2].json()["problems"][0]["field"] == "nodes.0.id"

    nul = [
        await client.post("/api/flows", headers=owner.headers, json={"name": "a\x00b"}),
        await client.patch(f"/api/flows/{flow_id}", headers=owner.headers, json={"name": "a\x00b"}),
        await client.post(
            f"/api/flows/{flow_id}/versions", headers=owner.headers, json={"document": echo_flow("a\x00b")}
        ),
    ]
    assert [r.status_code for r in nul] == [422] * 3
    assert "NUL" in nul[0].json()["detail"]
    assert nul[0].json()["problems"][0]["field"] == "name"
    assert [f["name"] for f in (await client.get("/api/flows", headers=owner.headers)).json()] == ["fine"]
    assert len((await client.get(f"/api/flows/{flow_id}/versions", headers=owner.headers)).json()) == 1

    unknown = f"/api/flows/{uuid.uuid4()}"
    missing = [
        await client.get(unknown, headers=owner.headers),
        await client.patch(unknown, headers=owner.headers, json={"name": "x"}),
        await client.get(f"{unknown}/versions", headers=owner.headers),
        await client.post(f"{unknown}/versions", headers=owner.headers, json={"document": echo_flow()}),
        await client.get(f"{unknown}/diff?from=1", headers=owner.headers),
        await client.get(f"{unknown}/export", headers=owner.headers),
        await client.post(f"{unknown}/versions/1/restore", headers=owner.headers),
    ]
    assert [r.status_code for r in missing] == [404] * len(missing)
    assert (await client.get("/api/flows/not-an-id", headers=owner.headers)).status_code == 422
    # Version numbers past the database's INTEGER are refused, not sent to it.
    huge = 99_999_999_999
    too_far = [
        await client.get(f"/api/flows/{flow_id}/versions/{huge}", headers=owner.headers),
        await client.post(f"/api/flows/{flow_id}/versions/{huge}/restore", headers=owner.headers),
        await client.get(f"/api/flows/{flow_id}/diff?from={huge}", headers=owner.headers),
        await client.get(f"/api/flows/{flow_id}/diff?from=1&to={huge}", headers=owner.headers),
        await client.get(f"/api/flows/{flow_id}/export?version={huge}", headers=owner.headers),
    ]
    assert [r.status_code for r in too_far] == [422] * len(too_far)


async def test_a_viewer_reads_flows_but_cannot_change_them(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = (await create_flow(client, owner, echo_flow(), name="shared"))["version"]["flow_id"]
    viewer = await join(client, await invite(client, owner, "viewer"), "viewer@example.com")
    url = f"/api/flows/{flow_id}"
    readable = [
        await client.get("/api/flows", headers=viewer.headers),
        await client.get(url, headers=viewer.headers),
        await client.get(f"{url}/versions", headers=viewer.headers),
        await client.get(f"{url}/versions/1", headers=viewer.headers),
        await client.get(f"{url}/diff?from=1&to=1", headers=viewer.headers),
        await client.get(f"{url}/export", headers=viewer.headers),
        await client.post("/api/flows/validate", headers=viewer.headers, json={"document": echo_flow()}),
        await client.get("/api/node-types", headers=viewer.headers),
    ]
    assert [r.status_code for r in readable] == [200] * len(readable)
    node_types = {t["type"] for t in readable[-1].json()}
    assert {"input", "output", "llm", "tool", "condition", "router", "subflow"} <= node_types
    export = readable[5].json()
    refused = [
        await client.post("/api/flows", headers=viewer.headers, json={"name": "mine"}),
        await client.post(f"{url}/versions", headers=viewer.headers, json={"document": echo_flow()}),
        await client.patch(url, headers=viewer.headers, json={"name": "renamed"}),
        await client.post(f"{url}/versions/1/restore", headers=viewer.headers),
        await client.post("/api/flows/import", headers=viewer.headers, json=export | {"name": "copy"}),
        await client.delete(url, headers=viewer.headers),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert "needs 'editor'" in refused[0].json()["detail"]
    after = (await client.get(url, headers=owner.headers)).json()
    assert (after["name"], after["latest_version"]) == ("shared", 1)


async def test_another_tenants_flow_is_not_found(client: httpx.AsyncClient) -> None:
    acme = await sign_up(client, "owner@acme.example", "acme")
    globex = await sign_up(client, "owner@globex.example", "globex")
    flow_id = (await create_flow(client, acme, echo_flow(), name="secret plan"))["version"]["flow_id"]
    url = f"/api/flows/{flow_id}"
    answers = [
        await client.get(url, headers=globex.headers),
        await client.patch(url, headers=globex.headers, json={"name": "stolen"}),
        await client.get(f"{url}/versions", headers=globex.headers),
        await client.get(f"{url}/versions/1", headers=globex.headers),
        await client.post(f"{url}/versions", headers=globex.headers, json={"document": echo_flow()}),
        await client.post(f"{url}/versions/1/restore", headers=globex.headers),
        await client.get(f"{url}/diff?from=1", headers=globex.headers),
        await client.get(f"{url}/export", headers=globex.headers),
        await client.post(f"{url}/executions", headers=globex.headers, json={"inputs": {"topic": "x"}}),
        await client.post(f"{url}/run", headers=globex.headers, json={"inputs": {"topic": "x"}}),
        await client.delete(url, headers=globex.headers),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers)
    assert all("secret plan" not in a.text for a in answers)
    assert (await client.get("/api/flows", headers=globex.headers)).json() == []
    assert (await client.get("/api/flows")).status_code == 401
    assert (await client.get(url, headers=acme.headers)).json()["latest_version"] == 1


async def test_an_import_whose_document_is_not_a_flow_is_refused(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    export = {"format": "crewcanvas.flow-export/v1", "name": "odd", "document": {"nodes": 1}}
    refused = await client.post("/api/flows/import", headers=owner.headers, json=export)
    assert refused.status_code == 422
    assert refused.json()["error"] == "FlowInvalid"
