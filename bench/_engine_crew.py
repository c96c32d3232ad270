"""The crew part of `bench/engine.py`: what a crew node adds per task over CrewAI run directly.

One crew of 3 agents and 3 sequential tasks (each reading the one before), against the
scripted OpenAI-compatible server (`tests/fixtures/llm_server.py`) answering at once:

- `direct`: CrewAI on its own, `crewai.LLM` pointed at the server, `crew.kickoff()` in a thread;
- `ours`: the same crew saved as records and run as a `crew` node of a saved flow
  (`input -> crew -> output`) through the whole service container on SQLite: our LLM
  path (limits, usage records), per-run event capture, durable events and node runs.
  The clock stops when the execution is stored as completed.

Rounds alternate the two so they share the machine's load. Printed: median ms per task
and ours / direct as a ratio.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from core.context import Role, TenantContext
from core.crew_specs import AgentSpec, CrewSpec, TaskSpec
from core.providers import ProviderInput
from tests.api.conftest import identity_settings
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from wiring.services import Services, build_services

# CrewAI is imported in this process: nothing may phone home (as main.py and the tests set it).
for _name, _value in {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_TESTING": "true",
    "OTEL_SDK_DISABLED": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}.items():
    os.environ.setdefault(_name, _value)

TASKS = 3
ROLES = ("Researcher", "Writer", "Editor")


def direct_crew(base_url: str) -> Any:
    from crewai import LLM, Agent, Crew, Task

    llm = LLM(model="openai/m1", base_url=base_url, api_key="bench")
    agents: list[Any] = [Agent(role=r, goal=f"Do the {r} part", backstory="Brief.", llm=llm, max_iter=3) for r in ROLES]
    tasks: list[Any] = []
    for index, agent in enumerate(agents):
        task = Task(description=f"Step {index}.", expected_output="A line.", agent=agent)
        if tasks:
            task.context = [tasks[-1]]
        tasks.append(task)
    return Crew(agents=agents, tasks=tasks, memory=False, verbose=False)


async def save_ours(services: Services, server: ScriptedLLMServer) -> tuple[TenantContext, uuid.UUID]:
    info = await services.tenants.create("bench")
    admin = TenantContext(info.id, "bench", uuid.uuid4(), Role.ADMIN)
    provider = await services.llm_stack.providers.create(
        admin,
        ProviderInput.model_validate(
            {"name": "scripted", "kind": "openai_compatible", "base_url": server.base_url, "models": ["m1"]}
        ),
    )
    agents = [
        await services.crews.create_agent(
            admin,
            AgentSpec(
                name=r.lower(),
                role=r,
                goal=f"Do the {r} part",
                backstory="Brief.",
                provider_id=provider.id,
                max_iter=3,
            ),
        )
        for r in ROLES
    ]
    tasks: list[Any] = []
    for index, agent in enumerate(agents):
        spec = TaskSpec(
            name=f"step_{index}",
            description=f"Step {index}.",
            expected_output="A line.",
            agent_id=agent.id,
            context_ids=[tasks[-1].id] if tasks else [],
        )
        tasks.append(await services.crews.create_task(admin, spec))
    crew = await services.crews.create_crew(
        admin, CrewSpec(name="bench_crew", agent_ids=[a.id for a in agents], task_ids=[t.id for t in tasks])
    )
    document = {
        "schema": "crewcanvas.flow/v1",
        "nodes": [
            {"id": "in", "type": "input", "position": {"x": 0, "y": 0}, "data": {}},
            {"id": "team", "type": "crew", "position": {"x": 0, "y": 0}, "data": {"crew_id": str(crew.id)}},
            {
                "id": "out",
                "type": "output",
                "position": {"x": 0, "y": 0},
                "data": {"value": "{{ nodes.team.output.raw }}"},
            },
        ],
        "edges": [
            {"id": "a", "source": "in", "source_handle": "out", "target": "team", "target_handle": "in"},
            {"id": "b", "source": "team", "source_handle": "out", "target": "out", "target_handle": "in"},
        ],
        "inputs": [],
    }
    saved = await services.flows.create(admin, "bench_flow", "", document)
    assert not saved.problems, saved.problems
    return admin, saved.version.flow_id


async def crew_bench(rounds: int) -> None:
    server = ScriptedLLMServer()
    server.start()
    server.default = Reply.say("done")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-crew-") as workdir:
            settings = identity_settings(Path(workdir), f"sqlite+aiosqlite:///{Path(workdir) / 'control.db'}")
            settings.llm.allow_private_endpoints = True
            services = build_services(settings)
            await services.start()
            try:
                ctx, flow_id = await save_ours(services, server)
                direct_s: list[float] = []
                ours_s: list[float] = []
                for round_ in range(rounds + 1):  # the first round warms both up (imports, caches)
                    crew = direct_crew(server.base_url)
                    started = time.perf_counter()
                    await asyncio.to_thread(crew.kickoff)
                    direct = time.perf_counter() - started
                    started = time.perf_counter()
                    run = await services.executions.start_run(ctx, flow_id, {})
                    ended = await services.executions.wait(ctx, run.id, 120)
                    ours = time.perf_counter() - started
                    assert ended.status == "completed", ended.error
                    if round_:
                        direct_s.append(direct)
                        ours_s.append(ours)
            finally:
                await services.aclose()
    finally:
        server.stop()
    direct_ms = statistics.median(direct_s) * 1000 / TASKS
    ours_ms = statistics.median(ours_s) * 1000 / TASKS
    print(f"\ncrew bench: {TASKS} sequential tasks, scripted LLM answering at once, {rounds} rounds (median)")
    print(f"  CrewAI directly:          {direct_ms:8.1f} ms per task")
    print(f"  ours, crew node (SQLite): {ours_ms:8.1f} ms per task")
    print(f"  ratio ours / direct:      {ours_ms / direct_ms:8.2f}x  (+{ours_ms - direct_ms:.1f} ms per task)")
