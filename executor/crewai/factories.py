"""CrewAI `Agent`, `Task` and `Crew` objects built for one run from stored records.

Nothing is cached: every run builds its own objects from the records as they are now, for
its own tenant, with LLMs on our LLM path (limits, failover, usage records carrying the
execution and node ids) and tools that run in the sandbox. `CrewKit` holds what one node
run shares between them: the tenant, the services, the guard that stops the crew, and the
map from CrewAI's agent ids back to our names for events.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.context import TenantContext
from core.errors import CoreError
from core.llm.types import CallMeta, ChatRequest, LLMResult, StreamChunk
from executor.crewai.events import Names, translate
from executor.crewai.llm import crewai_llm
from executor.crewai.runtime import CrewCancelled, CrewGuard, EventRelay, run_in_crew_thread
from executor.crewai.tools import args_model, sandbox_tool
from executor.errors import NodeFailed
from executor.nodes.base import NodeContext, NodeUsage
from executor.ports import LLMPort, ToolPort


class CountingLLM:
    """An `LLMPort` that adds every call's tokens and cost to a node's usage (calls run on the loop)."""

    def __init__(self, inner: LLMPort, usage: NodeUsage) -> None:
        self._inner = inner
        self._usage = usage

    async def complete(
        self,
        ctx: TenantContext,
        request: ChatRequest,
        *,
        provider_id: uuid.UUID | None = None,
        meta: CallMeta | None = None,
    ) -> LLMResult:
        result = await self._inner.complete(ctx, request, provider_id=provider_id, meta=meta)
        self._usage.add(result.prompt_tokens, result.completion_tokens, result.cost_usd)
        return result

    async def stream(
        self,
        ctx: TenantContext,
        request: ChatRequest,
        *,
        provider_id: uuid.UUID | None = None,
        meta: CallMeta | None = None,
    ) -> AsyncIterator[StreamChunk]:
        async for chunk in self._inner.stream(ctx, request, provider_id=provider_id, meta=meta):
            if chunk.result is not None:
                result = chunk.result
                self._usage.add(result.prompt_tokens, result.completion_tokens, result.cost_usd)
            yield chunk


@dataclass
class CrewKit:
    """Builds one run's CrewAI objects; everything it builds shares its guard."""

    ctx: TenantContext
    llm: LLMPort
    tools: ToolPort
    guard: CrewGuard
    meta: CallMeta
    stream: bool = True
    names: Names = field(default_factory=Names)

    def llm_for(self, provider_id: uuid.UUID | None, model: str | None) -> Any:
        """A CrewAI LLM on the tenant's provider (its default when `provider_id` is None)."""
        return crewai_llm(
            self.llm,
            self.ctx,
            provider_id=provider_id,
            model=model,
            meta=self.meta,
            loop=self.guard.loop,
            guard=self.guard,
            stream=self.stream,
        )

    def agent(self, record: Any, tools: Mapping[uuid.UUID, Any]) -> Any:
        """A CrewAI `Agent` from an agent record (`core.crews.AgentView` or the same fields)."""
        from crewai import Agent

        built = Agent(
            role=record.role,
            goal=record.goal,
            backstory=record.backstory or record.role,
            llm=self.llm_for(record.provider_id, record.model),
            tools=[sandbox_tool(tools[t], tools=self.tools, ctx=self.ctx, guard=self.guard) for t in record.tool_ids],
            allow_delegation=record.allow_delegation,
            max_iter=record.max_iter,
            max_execution_time=record.max_execution_time,
            verbose=record.verbose,
            # Our LLM path retries and fails over already; CrewAI's retry would run the task again.
            max_retry_limit=0,
        )
        self.names.agents[str(built.id)] = record.name
        return built

    def task(self, record: Any, agent: Any, context: Sequence[Any] = ()) -> Any:
        """A CrewAI `Task` from a task record; `output_file` stays a name and is never written."""
        from crewai import Task

        options: dict[str, Any] = {}
        if record.output_schema:
            options["output_json"] = args_model(f"{record.name}_output", record.output_schema)
        if context:
            options["context"] = list(context)
        return Task(
            name=record.name,
            description=record.description,
            expected_output=record.expected_output,
            agent=agent,
            **options,
        )

    def crew(self, bundle: Any) -> Any:
        """A CrewAI `Crew` from a `core.crews.CrewBundle`: agents, tasks in order, process and manager."""
        from crewai import Crew, Process

        spec = bundle.crew
        agents = {agent_id: self.agent(bundle.agents[agent_id], bundle.tools) for agent_id in spec.agent_ids}
        tasks: dict[uuid.UUID, Any] = {}
        for record in bundle.tasks:
            context = [tasks[task_id] for task_id in record.context_ids if task_id in tasks]
            agent = agents.get(record.agent_id) if record.agent_id is not None else None
            tasks[record.id] = self.task(record, agent, context)
        options: dict[str, Any] = {}
        if spec.process == "hierarchical":
            options["process"] = Process.hierarchical
            if spec.manager_agent_id is not None:
                options["manager_agent"] = self.agent(bundle.agents[spec.manager_agent_id], bundle.tools)
            else:
                options["manager_llm"] = self.llm_for(spec.manager_provider_id, spec.manager_model)
        else:
            options["process"] = Process.sequential
        if spec.planning:
            options["planning"] = True
            options["planning_llm"] = self.llm_for(spec.manager_provider_id, spec.manager_model)
        return Crew(
            name=spec.name,
            agents=list(agents.values()),
            tasks=list(tasks.values()),
            memory=False,
            verbose=False,
            **options,
        )


def crew_result(output: Any) -> dict[str, Any]:
    """A CrewAI `CrewOutput` as a node's output: the final result and every task's."""
    return {
        "raw": output.raw,
        "json": output.json_dict,
        "tasks": [
            {"name": task.name, "agent": task.agent, "raw": task.raw, "json": task.json_dict}
            for task in output.tasks_output
        ],
    }


async def run_crew(
    ctx: NodeContext,
    build: Callable[[CrewKit], Any],
    inputs: Mapping[str, Any] | None,
    *,
    stream: bool = True,
) -> Any:
    """Build a crew with `build` and kick it off in its own thread; CrewAI's `CrewOutput`.

    Its events reach the node's event stream as they happen; tokens and cost are added to
    the node's usage; cancelling the node stops the crew at its next LLM or tool call.
    Failures become `NodeFailed` with CrewAI's or our service's message."""
    loop = asyncio.get_running_loop()
    guard = CrewGuard(loop)
    kit = CrewKit(
        ctx=ctx.tenant,
        llm=CountingLLM(ctx.services.llm, ctx.usage),
        tools=ctx.services.tools,
        guard=guard,
        meta=CallMeta(execution_id=ctx.execution_id, node_id=ctx.node_id),
        stream=stream,
    )
    relay = EventRelay(loop, ctx.emit, lambda event: translate(event, kit.names))

    def work() -> Any:
        crew = build(kit)
        return crew.kickoff(inputs=dict(inputs) if inputs is not None else None)

    try:
        return await run_in_crew_thread(work, guard, relay)
    except (CrewCancelled, asyncio.CancelledError):
        raise asyncio.CancelledError() from None
    except CoreError as exc:
        raise NodeFailed(str(exc)) from exc
    except NodeFailed:
        raise
    except Exception as exc:  # CrewAI's own errors (validation, parsing) end the node with their message
        raise NodeFailed(f"the crew failed: {type(exc).__name__}: {exc}") from exc
