"""`/api/crews/{id}/export`, `/api/crews/import` and `/api/flows/{id}/export/crewai` over HTTP."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import Account, api_client, identity_settings, sign_up

MiB = 1024 * 1024
AGENTS_YAML = "researcher:\n  role: '{topic} researcher'\n  goal: Find out about {topic}\n"
TASKS_YAML = "research_task:\n  description: Research {topic}\n  expected_output: Notes\n  agent: researcher\n"


@pytest.fixture
async def client(db_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The whole API; providers may point at loopback (nothing is called on them here)."""
    settings = identity_settings(tmp_path, db_url)
    settings.llm.allow_private_endpoints = True
    async with api_client(settings) as (http, _services):
        yield http


async def create_crew(client: httpx.AsyncClient, owner: Account) -> str:
    """An agent on the tenant's default model, two tasks (the second reads the first), a crew."""
    agent = await client.post(
        "/api/agents",
        headers=owner.headers,
        json={"name": "researcher", "role": "Senior {topic} researcher", "goal": "Find facts", "max_iter": 5},
    )
    assert agent.status_code == 201, agent.text
    agent_id = agent.json()["id"]
    first = await client.post(
        "/api/tasks",
        headers=owner.headers,
        json={
            "name": "research_task",
            "description": "Research {topic}",
            "expected_output": "Notes",
            "agent_id": agent_id,
        },
    )
    assert first.status_code == 201, first.text
    second = await client.post(
        "/api/tasks",
        headers=owner.headers,
        json={
            "name": "summary_task",
            "description": "Sum up",
            "expected_output": "One line",
            "agent_id": agent_id,
            "context_ids": [first.json()["id"]],
        },
    )
    assert second.status_code == 201, second.text
    crew = await client.post(
        "/api/crews",
        headers=owner.headers,
        json={
            "name": "research_crew",
            "agent_ids": [agent_id],
            "task_ids": [first.json()["id"], second.json()["id"]],
            "inputs": {"topic": "owls"},
        },
    )
    assert crew.status_code == 201, crew.text
    return str(crew.json()["id"])


async def record_counts(client: httpx.AsyncClient, account: Account) -> list[int]:
    return [
        len((await client.get(path, headers=account.headers)).json())
        for path in ("/api/agents", "/api/tasks", "/api/crews")
    ]


def zipped(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, content in files.items():
            archive.writestr(path, content)
    return buffer.getvalue()


async def test_a_crew_exported_as_a_project_imports_into_another_tenant(client: httpx.AsyncClient) -> None:
    acme = await sign_up(client, "owner@acme.example", "acme")
    crew_id = await create_crew(client, acme)
    acme_before = await record_counts(client, acme)

    exported = await client.get(f"/api/crews/{crew_id}/export", headers=acme.headers)

    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"] == "application/zip"
    assert exported.headers["content-disposition"] == 'attachment; filename="research_crew.zip"'
    names = zipfile.ZipFile(io.BytesIO(exported.content)).namelist()
    assert {
        "research_crew/pyproject.toml",
        "research_crew/src/research_crew/crew.py",
        "research_crew/src/research_crew/main.py",
        "research_crew/src/research_crew/config/agents.yaml",
        "research_crew/src/research_crew/config/tasks.yaml",
    } <= set(names)

    globex = await sign_up(client, "owner@globex.example", "globex")
    imported = await client.post(
        "/api/crews/import",
        headers=globex.headers,
        files={"file": ("research_crew.zip", exported.content, "application/zip")},
    )

    assert imported.status_code == 201, imported.text
    report = imported.json()
    assert (report["crew_name"], report["process"]) == ("research_crew", "sequential")
    assert [agent["name"] for agent in report["agents"]] == ["researcher"]
    assert [task["name"] for task in report["tasks"]] == ["research_task", "summary_task"]
    crew = (await client.get(f"/api/crews/{report['crew_id']}", headers=globex.headers)).json()
    assert (crew["inputs"], crew["placeholders"], crew["problems"]) == ({"topic": "owls"}, ["topic"], [])
    summary = (await client.get(f"/api/tasks/{report['tasks'][1]['id']}", headers=globex.headers)).json()
    assert summary["context_ids"] == [report["tasks"][0]["id"]]
    agent = (await client.get(f"/api/agents/{report['agents'][0]['id']}", headers=globex.headers)).json()
    assert (agent["role"], agent["max_iter"]) == ("Senior {topic} researcher", 5)
    assert await record_counts(client, acme) == acme_before


async def test_the_two_yaml_files_import_as_multipart_fields(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@acme.example", "acme")
    response = await client.post(
        "/api/crews/import",
        headers=owner.headers,
        files={"agents": ("agents.yaml", AGENTS_YAML.encode()), "tasks": ("tasks.yaml", TASKS_YAML.encode())},
        data={"name": "duo"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["crew_name"] == "duo"


async def test_a_hierarchical_import_needs_a_manager_model(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@acme.example", "acme")
    files = {
        "agents": ("agents.yaml", AGENTS_YAML.encode()),
        "tasks": ("tasks.yaml", TASKS_YAML.replace("  agent: researcher\n", "").encode()),
    }
    before = await record_counts(client, owner)

    refused = await client.post("/api/crews/import", headers=owner.headers, files=files)

    assert refused.status_code == 422, refused.text
    assert [problem["field"] for problem in refused.json()["problems"]] == ["manager_model"]
    assert await record_counts(client, owner) == before
    provider = await client.post(
        "/api/providers",
        headers=owner.headers,
        json={"name": "vllm", "kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "models": ["m1"]},
    )
    assert provider.status_code == 201, provider.text
    chosen = {"manager_provider_id": provider.json()["id"], "manager_model": "m1", "name": "led"}
    accepted = await client.post("/api/crews/import", headers=owner.headers, files=files, data=chosen)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["process"] == "hierarchical"


async def test_an_upload_over_20_mib_is_refused_with_413_and_creates_nothing(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@acme.example", "acme")
    before = await record_counts(client, owner)
    response = await client.post(
        "/api/crews/import",
        headers=owner.headers,
        files={"file": ("big.zip", b"\0" * (21 * MiB), "application/zip")},
    )
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["error"] == "ContentTooLarge"
    assert "20 MiB" in body["detail"]
    assert await record_counts(client, owner) == before


async def test_a_bad_upload_is_a_422_that_creates_nothing(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@acme.example", "acme")
    before = await record_counts(client, owner)
    evil = zipped({"p/config/agents.yaml": AGENTS_YAML, "p/config/tasks.yaml": TASKS_YAML, "../../etc/x": "x"})
    for files in (
        {"file": ("evil.zip", evil, "application/zip")},
        {"file": ("notes.txt", b"not a zip", "text/plain")},
        {"agents": ("agents.yaml", b"researcher: [unclosed")},
        {"agents": ("agents.yaml", b"- a list\n"), "tasks": ("tasks.yaml", TASKS_YAML.encode())},
    ):
        response = await client.post("/api/crews/import", headers=owner.headers, files=files)
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "InvalidInput"
    nothing = await client.post("/api/crews/import", headers=owner.headers, data={"name": "empty"})
    assert nothing.status_code == 422
    assert "upload a zipped CrewAI project" in nothing.json()["detail"]
    assert await record_counts(client, owner) == before


async def test_the_import_is_documented_as_a_multipart_upload(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/openapi.json")).json()
    operation = spec["paths"]["/api/crews/import"]["post"]
    assert operation["requestBody"]["required"] is True
    assert "multipart/form-data" in operation["requestBody"]["content"]
    assert {"413", "422", "409"} <= set(operation["responses"])
    export = spec["paths"]["/api/crews/{crew_id}/export"]["get"]
    assert "application/zip" in export["responses"]["200"]["content"]


async def test_a_flow_exports_as_crewai_flow_v1(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@acme.example", "acme")
    document: dict[str, Any] = {
        "schema": "crewcanvas.flow/v1",
        "inputs": [{"name": "topic", "type": "string"}],
        "nodes": [
            {"id": "input", "type": "input", "data": {}},
            {"id": "ask", "type": "llm", "data": {"prompt": "Tell me about {{ inputs.topic }}"}},
            {
                "id": "nested",
                "type": "subflow",
                "data": {"flow_id": "00000000-0000-4000-8000-000000000000", "version": 1},
            },
            {"id": "out", "type": "output", "data": {"value": "{{ nodes.ask.output }}"}},
        ],
        "edges": [
            {"id": "a", "source": "input", "target": "ask"},
            {"id": "b", "source": "ask", "target": "out"},
            {"id": "c", "source": "ask", "target": "nested"},
        ],
    }
    created = await client.post("/api/flows", headers=owner.headers, json={"name": "Ask", "document": document})
    assert created.status_code == 201, created.text
    flow_id = created.json()["version"]["flow_id"]

    response = await client.get(f"/api/flows/{flow_id}/export/crewai", headers=owner.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    from crewai.flow.flow_definition import FlowDefinition

    definition = FlowDefinition.model_validate(body["document"])
    assert definition.name == "Ask"
    assert body["document"]["methods"]["out"]["do"] == {"call": "expression", "expr": "outputs.ask.raw"}
    assert [(item["node_id"], item["type"]) for item in body["unmapped"]] == [("nested", "subflow")]
    missing = await client.get(f"/api/flows/{flow_id}/export/crewai", headers=owner.headers, params={"version": 9})
    assert missing.status_code == 404
