"""CrewAI on our LLM path: a `crewai.BaseLLM` whose calls go through `LLMService`.

So crews get the same limits, failover, usage records and secret handling as every
other call. Native tool calls: the tools CrewAI passes are sent as OpenAI function
tools and tool calls come back to CrewAI's executor (or run through
`available_functions`). With streaming on, every text delta is emitted as a CrewAI
`LLMStreamChunkEvent`. CrewAI is imported only when `crewai_llm(...)` is called.

CrewAI calls `call` from a worker thread (`kickoff_async` is `to_thread(kickoff)`):
the coroutine is handed to the event loop that owns our database connections. A
`CrewGuard` (see `executor.crewai.runtime`) stops a cancelled crew at its next call and
cancels the call in flight.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from core.context import TenantContext
from core.llm.types import CallMeta, ChatRequest, LLMResult
from executor.crewai.runtime import CrewGuard
from executor.ports import LLMPort

CONTEXT_WINDOW = 8192
_T = TypeVar("_T")


def _run(
    coroutine: Coroutine[Any, Any, _T], loop: asyncio.AbstractEventLoop | None, guard: CrewGuard | None = None
) -> _T:
    """Run `coroutine` on `loop` from a worker thread, or in a fresh loop when there is none."""
    if guard is not None:
        return guard.run(coroutine)
    if loop is not None and loop.is_running():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coroutine.close()
            raise RuntimeError("a CrewAI crew must run in a worker thread (use kickoff_async), not on the event loop")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()
    return asyncio.run(coroutine)


def _messages(messages: Any) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [dict(m) for m in messages]


def _tool_call_dicts(result: LLMResult) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}, "index": i}
        for i, c in enumerate(result.tool_calls)
    ]


@functools.cache
def _llm_class() -> type[Any]:
    """Define the BaseLLM subclass on first use (importing CrewAI takes seconds)."""
    from crewai.events.types.llm_events import LLMCallType
    from crewai.llms.base_llm import BaseLLM
    from crewai.llms.providers.utils.common import safe_tool_conversion
    from pydantic import PrivateAttr

    class CanvasLLM(BaseLLM):
        """A CrewAI LLM that calls CrewCanvas's `LLMService`."""

        llm_type: str = "crewcanvas"
        provider: str = "crewcanvas"
        _service: Any = PrivateAttr()
        _ctx: Any = PrivateAttr()
        _provider_id: Any = PrivateAttr(default=None)
        _meta: Any = PrivateAttr(default=None)
        _loop: Any = PrivateAttr(default=None)
        _guard: Any = PrivateAttr(default=None)
        _tools_supported: bool = PrivateAttr(default=True)

        def supports_function_calling(self) -> bool:
            return self._tools_supported

        def supports_stop_words(self) -> bool:
            return True

        def get_context_window_size(self) -> int:
            return CONTEXT_WINDOW

        def _request(self, messages: list[dict[str, Any]], tools: list[Any] | None) -> ChatRequest:
            converted = None
            if tools:
                converted = []
                for tool in tools:
                    name, description, parameters = safe_tool_conversion(tool, "CrewCanvas")
                    function: dict[str, Any] = {"name": name, "description": description}
                    if parameters:
                        function["parameters"] = dict(parameters)
                    converted.append({"type": "function", "function": function})
            max_tokens = int(self.max_tokens) if self.max_tokens else None
            return ChatRequest(
                messages=messages,
                model=None if self.model == "default" else self.model,
                tools=converted,
                tool_choice="auto" if converted else None,
                max_tokens=max_tokens,
                temperature=self.temperature,
                stop=list(self.stop) or None,
            )

        async def _complete(self, request: ChatRequest, from_task: Any, from_agent: Any) -> LLMResult:
            kwargs = {"provider_id": self._provider_id, "meta": self._meta}
            if not self._effective_stream():
                result: LLMResult = await self._service.complete(self._ctx, request, **kwargs)
                return result
            final = None
            async for chunk in self._service.stream(self._ctx, request, **kwargs):
                if chunk.delta:
                    self._emit_stream_chunk_event(
                        chunk=chunk.delta, from_task=from_task, from_agent=from_agent, call_type=LLMCallType.LLM_CALL
                    )
                final = chunk.result or final
            if final is None:
                raise RuntimeError("the stream ended without a result")
            return final

        def _finish(
            self,
            result: LLMResult,
            messages: Any,
            available_functions: dict[str, Any] | None,
            from_task: Any,
            from_agent: Any,
        ) -> Any:
            usage = {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            }
            self._track_token_usage_internal(usage)
            if result.tool_calls and not available_functions:
                calls = _tool_call_dicts(result)
                self._emit_call_completed_event(
                    response=calls,
                    call_type=LLMCallType.TOOL_CALL,
                    from_task=from_task,
                    from_agent=from_agent,
                    messages=messages,
                    usage=usage,
                    finish_reason=result.finish_reason,
                )
                return calls
            if result.tool_calls and available_functions:
                call = result.tool_calls[0]
                try:
                    arguments = json.loads(call.arguments or "{}")
                except json.JSONDecodeError:
                    arguments = {}
                outcome = self._handle_tool_execution(
                    function_name=call.name,
                    function_args=arguments,
                    available_functions=available_functions,
                    from_task=from_task,
                    from_agent=from_agent,
                )
                if outcome is not None:
                    return outcome
            text = self._apply_stop_words(result.content)
            self._emit_call_completed_event(
                response=text,
                call_type=LLMCallType.LLM_CALL,
                from_task=from_task,
                from_agent=from_agent,
                messages=messages,
                usage=usage,
                finish_reason=result.finish_reason,
            )
            return text

        def _start(
            self, messages: Any, tools: Any, callbacks: Any, available_functions: Any, task: Any, agent: Any
        ) -> Any:
            formatted: Any = _messages(messages)
            self._emit_call_started_event(
                messages=formatted,
                tools=tools,
                callbacks=callbacks,
                available_functions=available_functions,
                from_task=task,
                from_agent=agent,
            )
            return formatted

        def call(
            self,
            messages: Any,
            tools: list[Any] | None = None,
            callbacks: list[Any] | None = None,
            available_functions: dict[str, Any] | None = None,
            from_task: Any = None,
            from_agent: Any = None,
            response_model: Any = None,
        ) -> Any:
            formatted = self._start(messages, tools, callbacks, available_functions, from_task, from_agent)
            try:
                request = self._request(formatted, tools)
                result = _run(self._complete(request, from_task, from_agent), self._loop, self._guard)
            except Exception as exc:
                self._emit_call_failed_event(error=str(exc), from_task=from_task, from_agent=from_agent)
                raise
            return self._finish(result, formatted, available_functions, from_task, from_agent)

        async def acall(
            self,
            messages: Any,
            tools: list[Any] | None = None,
            callbacks: list[Any] | None = None,
            available_functions: dict[str, Any] | None = None,
            from_task: Any = None,
            from_agent: Any = None,
            response_model: Any = None,
        ) -> Any:
            if self._guard is not None:
                self._guard.check()
            formatted = self._start(messages, tools, callbacks, available_functions, from_task, from_agent)
            try:
                result = await self._complete(self._request(formatted, tools), from_task, from_agent)
            except Exception as exc:
                self._emit_call_failed_event(error=str(exc), from_task=from_task, from_agent=from_agent)
                raise
            return self._finish(result, formatted, available_functions, from_task, from_agent)

    return CanvasLLM


def crewai_llm(
    service: LLMPort,
    ctx: TenantContext,
    *,
    provider_id: uuid.UUID | None = None,
    model: str | None = None,
    meta: CallMeta | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    guard: CrewGuard | None = None,
    stream: bool = False,
    supports_tools: bool = True,
    **settings: Any,
) -> Any:
    """A CrewAI `BaseLLM` for one tenant and provider; `loop` is the loop that owns the service.

    With a `guard`, calls run on the guard's loop and stop once the guard is cancelled."""
    llm = _llm_class()(model=model or "default", stream=stream, **settings)
    llm._service = service
    llm._ctx = ctx
    llm._provider_id = provider_id
    llm._meta = meta or CallMeta()
    llm._loop = loop
    llm._guard = guard
    llm._tools_supported = supports_tools
    return llm
