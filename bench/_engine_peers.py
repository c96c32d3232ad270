"""The peers of `bench/engine.py`: LangGraph and CrewAI `Flow` on the same graph shapes, timed here.

Runs in its own venv (`.bench-venv/`, see `bench/requirements-peers.txt`), never in the
app's: `bench/engine.py` starts it as a subprocess and talks JSON lines over stdin/stdout,
so each round of the peers runs between two rounds of our runners and they share the
machine's load. The leading underscore keeps `make bench` from running it on its own.

Protocol: one line `{"ready": true, "versions": {...}}` once imported; then for each
command line `{"workloads": [{"name", "shape", "size"}], "skip": [[runner, workload]]}`
one line `{"results": {runner: {workload: seconds}}}` (a workload that failed gives
`{"error": "..."}` instead of seconds). End of input ends the process.

Every node is an `async def` (no thread hop; sync nodes go through a thread pool in both
frameworks) that adds 1 to what it gets. Graphs and Flow classes are built once per
workload, outside the clock; a timed run is LangGraph's `astream` to the end (no
checkpointer: nothing is persisted), or constructing the Flow and `kickoff_async` (its
console events suppressed: with them on, rich console output dominates the cost).
"""

from __future__ import annotations

import asyncio
import gc
import json
import operator
import os
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Annotated, Any, TypedDict

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("CREWAI_TESTING", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

from crewai.flow.flow import Flow, and_, listen, start
from langgraph.graph import END, START, StateGraph

Timed = Callable[[], Awaitable[Any]]


class ChainState(TypedDict):
    x: int


class FanState(TypedDict):
    src: int
    parts: Annotated[list[int], operator.add]
    join: int


def _expected(shape: str, size: int) -> int:
    """What the last node returns: a chain counts up to `size`; a fan-out sums 1 + `size` * 2."""
    return size if shape == "chain" else size * 2 + 1


def _names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


# -- LangGraph ------------------------------------------------------------------------------------


async def _lg_step(state: ChainState) -> dict[str, int]:
    return {"x": state["x"] + 1}


async def _lg_source(state: FanState) -> dict[str, int]:
    return {"src": 1}


async def _lg_part(state: FanState) -> dict[str, list[int]]:
    return {"parts": [state["src"] + 1]}


async def _lg_join(state: FanState) -> dict[str, int]:
    return {"join": sum(state["parts"]) + 1}


def langgraph_runner(shape: str, size: int) -> Timed:
    """A compiled graph of the shape; the callable streams one run and checks its result."""
    start_state: dict[str, Any]
    if shape == "chain":
        chain = StateGraph(ChainState)
        names = _names("n", size)
        for previous, name in zip([START, *names], names, strict=False):
            chain.add_node(name, _lg_step)
            chain.add_edge(previous, name)
        chain.add_edge(names[-1], END)
        graph, start_state, key, field = chain.compile(), {"x": 0}, names[-1], "x"
    else:
        fan = StateGraph(FanState)
        parts = _names("p", size)
        fan.add_node("src", _lg_source)
        fan.add_edge(START, "src")
        for name in parts:
            fan.add_node(name, _lg_part)
            fan.add_edge("src", name)
        fan.add_node("join", _lg_join)
        fan.add_edge(parts, "join")  # a list of sources: join waits for all of them
        fan.add_edge("join", END)
        graph, start_state, key, field = fan.compile(), {"src": 0, "parts": [], "join": 0}, "join", "join"
    config: Any = {"recursion_limit": size + 10}  # one superstep per chain node; the default limit is 25

    async def run() -> Any:
        last: dict[str, Any] = {}
        async for update in graph.astream(start_state, config):
            last = update
        return last[key][field]

    return run


# -- CrewAI ------------------------------------------------------------------------------------


def _crewai_chain(size: int) -> type[Flow[Any]]:
    async def first(self: Flow[Any]) -> int:
        return 1

    namespace: dict[str, Any] = {"n0": start()(first)}
    for i in range(1, size):

        async def step(self: Flow[Any], value: int) -> int:
            return value + 1

        step.__name__ = step.__qualname__ = f"n{i}"
        namespace[f"n{i}"] = listen(f"n{i - 1}")(step)
    return type(f"BenchChain{size}", (Flow,), namespace)


def _crewai_fanout(size: int) -> type[Flow[Any]]:
    async def source(self: Flow[Any]) -> int:
        return 1

    async def join(self: Flow[Any]) -> int:
        # A listener gets one trigger's result, not all of them: the parts left theirs in the state.
        return sum(value for name, value in self.state.items() if name.startswith("p")) + 1

    namespace: dict[str, Any] = {"src": start()(source)}
    parts = _names("p", size)
    for name in parts:

        async def part(self: Flow[Any], value: int, name: str = name) -> int:
            self.state[name] = value + 1
            return value + 1

        part.__name__ = part.__qualname__ = name
        namespace[name] = listen("src")(part)
    join.__name__ = join.__qualname__ = "join"
    namespace["join"] = listen(and_(*parts))(join)
    return type(f"BenchFanout{size}", (Flow,), namespace)


def crewai_runner(shape: str, size: int) -> Timed:
    """A Flow class of the shape; the callable makes one instance and kicks it off."""
    flow_class = _crewai_chain(size) if shape == "chain" else _crewai_fanout(size)

    async def run() -> Any:
        return await flow_class(suppress_flow_events=True).kickoff_async()

    return run


RUNNERS: dict[str, Callable[[str, int], Timed]] = {"langgraph": langgraph_runner, "crewai": crewai_runner}


async def timed(run: Timed, expected: int) -> float:
    gc.collect()
    started = time.perf_counter()
    result = await run()
    elapsed = time.perf_counter() - started
    if result != expected:
        raise RuntimeError(f"the run returned {result!r}, not {expected}")
    return elapsed


async def serve() -> None:
    # The protocol owns stdout; whatever the frameworks print while running goes to stderr.
    protocol, sys.stdout = sys.stdout, sys.stderr
    built: dict[tuple[str, str], Timed] = {}
    versions = {name: version(name) for name in RUNNERS}
    print(json.dumps({"ready": True, "versions": versions}), file=protocol, flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command = json.loads(line)
        skip = {tuple(pair) for pair in command.get("skip", [])}
        results: dict[str, dict[str, Any]] = {name: {} for name in RUNNERS}
        for workload in command["workloads"]:
            shape, size, label = workload["shape"], workload["size"], workload["name"]
            for name, make in RUNNERS.items():
                if (name, label) in skip:
                    continue
                try:
                    run = built.get((name, label))
                    if run is None:
                        run = built[(name, label)] = make(shape, size)
                    results[name][label] = await timed(run, _expected(shape, size))
                except Exception as exc:  # a peer that cannot run a shape is reported, not fatal
                    results[name][label] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        print(json.dumps({"results": results}), file=protocol, flush=True)


if __name__ == "__main__":
    asyncio.run(serve())
