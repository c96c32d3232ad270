"""Running one crew inside one node: its own thread, its own event sink, and a guard that stops it.

CrewAI is synchronous and its event bus is process-global. Each crew runs in a worker
thread of its own; inside that thread an execution-scoped stream sink
(`crewai.events.stream_context.add_stream_sink`, a context variable) sees only the events
this crew emits, never another run's, and no global handler is touched. The sink runs on
the crew's thread: it hands translated events to the event loop, which emits them under
the node in CrewAI's `emission_sequence` order.

A `CrewGuard` is shared by the crew's LLM and tools: every call they make runs on the
loop through it, and once the node is cancelled the call in flight is cancelled and the
next one raises `CrewCancelled`, so a cancelled crew stops at its next LLM or tool call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
_T = TypeVar("_T")

Emit = Callable[[str, dict[str, Any]], None]
Translate = Callable[[Any], tuple[str, dict[str, Any]] | None]


class CrewCancelled(Exception):
    """The execution was cancelled: the crew stops at this call."""


@functools.cache
def _crew_threads() -> concurrent.futures.ThreadPoolExecutor:
    # A crew holds its thread for its whole run (its LLM calls run on the loop meanwhile), so crews
    # get threads of their own instead of the loop's small default pool.
    return concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="crew")


class CrewGuard:
    """Runs a crew's calls on the event loop and stops them all once cancelled."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._inflight: set[concurrent.futures.Future[Any]] = set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        """Raise `CrewCancelled` once the crew has been cancelled."""
        if self._cancelled.is_set():
            raise CrewCancelled("the execution was cancelled; the crew stopped")

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run `coroutine` on the loop from the crew's thread and wait for it."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coroutine.close()
            raise RuntimeError("a crew's calls must come from its worker thread, not from the event loop")
        # The call runs in a copy of this thread's context: what it emits (stream chunks) reaches
        # this crew's sink and CrewAI's call context, as if it ran here.
        context = contextvars.copy_context()

        async def in_context() -> _T:
            return await asyncio.create_task(coroutine, context=context)

        with self._lock:
            if self._cancelled.is_set():
                coroutine.close()
                raise CrewCancelled("the execution was cancelled; the crew stopped")
            future = asyncio.run_coroutine_threadsafe(in_context(), self.loop)
            self._inflight.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise CrewCancelled("the execution was cancelled; the crew stopped") from None
        finally:
            with self._lock:
                self._inflight.discard(future)

    def cancel(self) -> None:
        """Stop the crew: the call in flight is cancelled and every later one raises `CrewCancelled`."""
        with self._lock:
            self._cancelled.set()
            for future in self._inflight:
                future.cancel()


class EventRelay:
    """A stream sink for one crew: translates CrewAI events on the crew's thread, emits them on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, emit: Emit, translate: Translate) -> None:
        self._loop = loop
        self._emit = emit
        self._translate = translate
        self._lock = threading.Lock()
        self._pending: list[tuple[int, int, str, dict[str, Any]]] = []
        self._arrived = 0

    def __call__(self, source: Any, event: Any) -> None:
        try:
            translated = self._translate(event)
        except Exception:  # a bad translation must never break the crew
            log.warning("could not translate the CrewAI event %s", type(event).__name__, exc_info=True)
            return
        if translated is None:
            return
        kind, data = translated
        sequence = getattr(event, "emission_sequence", None) or 0
        with self._lock:
            self._arrived += 1
            self._pending.append((sequence, self._arrived, kind, data))
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            self._loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        """Emit what has arrived, in CrewAI's emission order (called on the loop)."""
        from executor.crewai.events import coalesce

        with self._lock:
            pending, self._pending = sorted(self._pending, key=lambda item: item[:2]), []
        for kind, data in coalesce([(kind, data) for _, _, kind, data in pending]):
            self._emit(kind, data)


async def run_in_crew_thread(work: Callable[[], _T], guard: CrewGuard, relay: EventRelay) -> _T:
    """Run `work` (a crew's kickoff) in a thread of its own with `relay` as its only event sink.

    Cancelling the caller cancels the guard: the crew stops at its next call, and the caller
    does not wait for that. CrewAI is first imported in that thread, so the loop stays responsive."""

    def in_thread() -> _T:
        from crewai.events.stream_context import add_stream_sink, reset_stream_sinks

        token = add_stream_sink(relay)
        try:
            return work()
        finally:
            reset_stream_sinks(token)

    future = guard.loop.run_in_executor(_crew_threads(), in_thread)
    try:
        return await future
    except asyncio.CancelledError:
        guard.cancel()
        raise
    finally:
        relay.drain()
