"""What the flow engine costs per node, against a bare asyncio floor, LangGraph and CrewAI `Flow`.

Three graph shapes of trivial nodes (`bench/_engine_graphs.py`; each returns the sum of its inputs + 1): a chain of
100, a fan-out of 100 (1 source -> 100 parallel nodes -> 1 join: 102 nodes) and a chain
of 1000. Runners, measured in the same run, round by round so they share the machine's load:

- `floor`: a bare asyncio topological runner (in-degree counting, one task per ready node);
- `ours, in-memory`: `executor.engine.Engine` on a `Plan`, its events numbered by the real
  `JournalRecorder` and published on `MemoryEventBus` (no storage; see `BusJournal`);
- `ours, durable`: the same over `core.journal.Journal` on a migrated tenant, SQLite and
  PostgreSQL; the clock stops after `journal.flush()`, so every event and node run is
  committed (and published);
- `langgraph` and `crewai`: in `.bench-venv/` (see `bench/_engine_peers.py`), a subprocess
  that runs one round of theirs between two rounds of ours.

Printed: median microseconds per node, the ratio to the floor, how many times faster per
node than LangGraph, and chain-1000 / chain-100 per node (1.0: linear). Targets are shown,
not asserted. A runner too slow to repeat within `--cell-budget` seconds is measured fewer times.

Then a 3-task crew run directly with CrewAI and as a `crew` node of ours, per-task overhead as a
ratio (`bench/_engine_crew.py`; `--crew-rounds 0` skips it).

Run: make bench, or .venv/bin/python bench/engine.py [--rounds 7] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))

import asyncpg
from _engine_crew import crew_bench
from _engine_graphs import WORKLOADS, BenchAdd, Workload, floor_run

from core.context import Role, TenantContext
from core.events import MemoryEventBus
from core.executions import EventRecord, ExecutionStore, NodeRunRecord
from core.flow_store import FlowStore
from core.journal import Journal
from core.tenants import TenantService
from db.database import Database
from db.migrate import upgrade_control
from executor.document import parse_document
from executor.engine import Engine, RunRequest
from executor.plan import Plan
from executor.ports import NodeServices
from executor.recorder import JournalPort, JournalRecorder
from executor.registry import load_registry
from executor.watching import channel

ROOT = Path(__file__).parents[1]
PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PEER_ENV = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_TESTING": "true",
}
FLOOR, MEMORY, SQLITE, POSTGRES = "floor", "ours-memory", "ours-sqlite", "ours-postgres"
LANGGRAPH, CREWAI = "langgraph", "crewai"
LABELS = {
    FLOOR: "floor: bare asyncio",
    MEMORY: "ours, in-memory events",
    SQLITE: "ours, durable SQLite",
    POSTGRES: "ours, durable PostgreSQL",
    LANGGRAPH: "LangGraph (astream)",
    CREWAI: "CrewAI Flow",
}


# -- ours ---------------------------------------------------------------------------------------


class BusJournal:
    """A `JournalPort` without storage: events published on the bus by one task, node runs kept in a dict.

    What the in-memory runner's time includes: the engine, `JournalRecorder` numbering each
    event and building its `EventRecord` and `NodeRunRecord`s (exactly as in the service),
    then per event `as_dict()`, JSON encoding and one subscriber's decoded copy
    (`MemoryEventBus.publish`), from a task started when events wait and drained by `flush`.
    """

    def __init__(self, bus: MemoryEventBus) -> None:
        self.bus = bus
        self.pending: deque[EventRecord] = deque()
        self.node_runs: dict[tuple[uuid.UUID, str], NodeRunRecord] = {}
        self.task: asyncio.Task[None] | None = None

    def append(self, tenant_slug: str, event: EventRecord) -> None:
        self.pending.append(event)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._publish())

    def put_node_run(self, tenant_slug: str, run: NodeRunRecord) -> None:
        self.node_runs[(run.execution_id, run.node_id)] = run

    async def flush(self) -> None:
        while self.task is not None:
            await self.task

    async def _publish(self) -> None:
        names: dict[uuid.UUID, str] = {}  # the channel's name made once per execution, as `Journal` does per batch
        try:
            while self.pending:
                event = self.pending.popleft()
                name = names.get(event.execution_id) or names.setdefault(
                    event.execution_id, channel(event.execution_id)
                )
                await self.bus.publish(name, event.as_dict())
        finally:
            self.task = None


@dataclass
class Tenant:
    """Where durable runs are stored: a migrated tenant with one flow per workload."""

    db: Database
    ctx: TenantContext
    flows: dict[str, tuple[uuid.UUID, uuid.UUID]]  # workload -> (flow id, version id)


class Ours:
    """Runs a workload on our engine with one journal (in-memory or durable)."""

    def __init__(self, engine: Engine, plans: dict[str, Plan], bus: MemoryEventBus, journal: JournalPort) -> None:
        self.engine = engine
        self.plans = plans
        self.bus = bus
        self.journal = journal
        self.tenant: Tenant | None = None
        self.ctx = TenantContext(uuid.uuid4(), "bench", uuid.uuid4(), Role.EDITOR)
        self.profiler: cProfile.Profile | None = None  # enabled while the clock runs

    async def run(self, workload: Workload) -> float:
        """Seconds for one run: the engine, then every event published (and stored, when durable)."""
        execution_id = uuid.uuid4()
        ctx = self.ctx
        if self.tenant is not None:  # a real `executions` row, made before the clock starts
            ctx = self.tenant.ctx
            flow_id, version_id = self.tenant.flows[workload.name]
            execution = await ExecutionStore(self.tenant.db).create(
                ctx, flow_id=flow_id, flow_version_id=version_id, version=1, inputs={}, options={}
            )
            execution_id = execution.id
        recorder = JournalRecorder(self.journal, ctx.tenant_slug, execution_id)
        request = RunRequest(ctx, execution_id, {})
        async with self.bus.subscribe(channel(execution_id)) as inbox:
            gc.collect()
            profiler = self.profiler or contextlib.nullcontext()
            with profiler:
                started = time.perf_counter()
                result = await self.engine.run(self.plans[workload.name], request, recorder)
                await self.journal.flush()
                elapsed = time.perf_counter() - started
            if result.status != "completed" or result.states[workload.last].output != workload.expected:
                raise RuntimeError(f"{workload.name}: the run ended {result.status} ({result.error})")
            for _ in range(recorder.seq):  # every event reached the subscriber
                message = await anext(aiter(inbox))
                assert message.get("type") != "overflow", message
        return elapsed


async def open_tenant(url: str, data_dir: Path) -> Tenant:
    """A migrated control plane with a tenant `bench` and one saved flow per workload."""
    db = Database(url, data_dir=data_dir)
    await upgrade_control(db)
    info = await TenantService(db).create("bench")
    ctx = TenantContext(info.id, "bench", uuid.uuid4(), Role.EDITOR)
    store = FlowStore(db)
    flows: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
    for workload in WORKLOADS:
        flow = await store.create(ctx, f"bench {workload.name}", "", workload.document())
        flows[workload.name] = (flow.id, (await store.version(ctx, flow.id)).id)
    return Tenant(db, ctx, flows)


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A scratch database `bench_<random>` on the local server, dropped afterwards; yields its URL."""
    name = f"bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# -- the peers ----------------------------------------------------------------------------------


class Peers:
    """`bench/_engine_peers.py` in `.bench-venv/`, one round per `round` call."""

    def __init__(self, process: asyncio.subprocess.Process, versions: dict[str, str]) -> None:
        self.process = process
        self.versions = versions

    @classmethod
    async def start(cls, python: Path) -> Peers:
        script = Path(__file__).with_name("_engine_peers.py")
        process = await asyncio.create_subprocess_exec(
            str(python),
            str(script),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **PEER_ENV},
            limit=2**20,
        )
        peers = cls(process, {})
        peers.versions = (await peers._reply())["versions"]
        return peers

    async def round(self, workloads: list[Workload], skip: set[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        command = {
            "workloads": [{"name": w.name, "shape": w.shape, "size": w.size} for w in workloads],
            "skip": sorted(skip),
        }
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()
        results: dict[str, dict[str, Any]] = (await self._reply())["results"]
        return results

    async def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            if line.startswith(b"{"):
                reply: dict[str, Any] = json.loads(line)
                return reply
            sys.stderr.write(f"peers: {line.decode(errors='replace')}")
        raise RuntimeError(f"the peer process ended (exit code {await self.process.wait()}); see its stderr above")

    async def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        await self.process.wait()


# -- measuring and printing ---------------------------------------------------------------------

Cell = tuple[str, str]  # (runner, workload)


@dataclass
class Samples:
    """Seconds per (runner, workload), and why a cell has none."""

    seconds: dict[Cell, list[float]] = field(default_factory=dict)
    notes: dict[Cell, str] = field(default_factory=dict)

    def add(self, cell: Cell, value: float | dict[str, Any], measured: bool) -> None:
        if isinstance(value, dict):
            self.notes[cell] = value.get("error", "failed")
        elif measured:
            self.seconds.setdefault(cell, []).append(value)

    def per_node_us(self, runner: str, workload: Workload) -> float | None:
        values = self.seconds.get((runner, workload.name))
        return statistics.median(values) * 1e6 / workload.nodes if values else None

    def spent(self, cell: Cell) -> float:
        return sum(self.seconds.get(cell, []))


async def measure(
    ours: dict[str, Callable[[Workload], Awaitable[float]]],
    peers: Peers | None,
    rounds: int,
    warmup: int,
    cell_budget: float,
) -> Samples:
    """Warm-up rounds (the 100-node workloads only), then `rounds` rounds of every runner on every workload."""
    samples = Samples()
    for index in range(warmup + rounds):
        measured = index >= warmup
        workloads = list(WORKLOADS) if measured else [w for w in WORKLOADS if w.nodes <= 200]
        # A cell that has had its budget is not run again (CrewAI's chain-1000 takes seconds a run).
        skip = {
            (r, w.name)
            for r in (*ours, LANGGRAPH, CREWAI)
            for w in workloads
            if samples.spent((r, w.name)) > cell_budget
        }
        for workload in workloads:
            for runner, run in ours.items():
                if (runner, workload.name) not in skip:
                    samples.add((runner, workload.name), await run(workload), measured)
        if peers is not None:
            for runner, by_workload in (await peers.round(workloads, skip)).items():
                for name, value in by_workload.items():
                    samples.add((runner, name), value, measured)
    return samples


def _cell(samples: Samples, runner: str, workload: Workload) -> str:
    us = samples.per_node_us(runner, workload)
    if us is None:
        return f"{'-':>8} {'':>7} {'':>7}"
    floor = samples.per_node_us(FLOOR, workload)
    graph = samples.per_node_us(LANGGRAPH, workload)
    ratio = f"{us / floor:6.1f}x" if floor else ""
    faster = f"{graph / us:6.1f}x" if graph and runner.startswith("ours") else ""
    return f"{us:8.1f} {ratio:>7} {faster:>7}"


def report(samples: Samples, runners: list[str], rounds: int, peers: Peers | None) -> None:
    print(f"per-node cost of trivial nodes: median of {rounds} runs (fewer where marked *), microseconds per node")
    print("x floor: per-node cost / the floor's; vs LG: LangGraph's per-node cost / ours (x faster per node)")
    print(f"{'':26}" + "".join(f" | {f'{w.name} ({w.nodes} nodes)':^24}" for w in WORKLOADS) + " | 1000/100")
    print(f"{'runner':26}" + f" | {'us/node':>8} {'x floor':>7} {'vs LG':>7}" * len(WORKLOADS) + " | per node")
    short: list[str] = []
    for runner in runners:
        cells = []
        for workload in WORKLOADS:
            cells.append(_cell(samples, runner, workload))
            count = len(samples.seconds.get((runner, workload.name), []))
            if 0 < count < rounds:
                short.append(f"{LABELS[runner]} on {workload.name}: {count} run(s), too slow to repeat")
        small, large = (samples.per_node_us(runner, w) for w in (WORKLOADS[0], WORKLOADS[2]))
        growth = f"{large / small:8.2f}" if small and large else f"{'-':>8}"
        print(f"{LABELS[runner]:26} | " + " | ".join(cells) + f" | {growth}")
    for note in short:
        print(f"  * {note}")
    for (runner, name), why in sorted(samples.notes.items()):
        print(f"  ! {LABELS.get(runner, runner)} on {name} failed: {why}")
    if peers is not None:
        print("peers: " + ", ".join(f"{name} {version}" for name, version in peers.versions.items()))
    targets(samples)


def targets(samples: Samples) -> None:
    """The goals, each per workload: shown, not asserted."""

    def verdict(name: str, runner: str, other: str, bound: float, faster: bool) -> None:
        parts = []
        for workload in WORKLOADS:
            ours, theirs = samples.per_node_us(runner, workload), samples.per_node_us(other, workload)
            if ours is None or theirs is None:
                parts.append(f"{workload.name} n/a")
                continue
            ratio = theirs / ours if faster else ours / theirs
            met = ratio >= bound if faster else ratio <= bound
            parts.append(f"{workload.name} {ratio:.2f}x {'met' if met else 'MISSED'}")
        print(f"  {name:52} " + ", ".join(parts))

    print("targets:")
    verdict("in-memory within 3x of the floor (ours / floor)", MEMORY, FLOOR, 3.0, faster=False)
    verdict("in-memory >= 5x faster per node than LangGraph", MEMORY, LANGGRAPH, 5.0, faster=True)
    verdict("durable SQLite <= LangGraph per node (ours / LG)", SQLITE, LANGGRAPH, 1.0, faster=False)
    verdict("durable PostgreSQL <= LangGraph per node (ours / LG)", POSTGRES, LANGGRAPH, 1.0, faster=False)


async def profile(ours: Ours, runs: int = 5) -> None:
    """Where ours, in-memory, spends its time on chain-1000: shares of the whole, then the top 15 by own time."""
    workload = WORKLOADS[2]
    plain = statistics.median([await ours.run(workload) for _ in range(runs)])
    profiler = ours.profiler = cProfile.Profile()
    for _ in range(runs):
        await ours.run(workload)
    ours.profiler = None
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    rows: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]  # not in typeshed
    total = sum(row[2] for row in rows.values())  # own times add up to the whole

    def share(*functions: Callable[..., Any]) -> str:
        """Cumulative time of the functions (each a coroutine step or a call), as a share of the whole."""
        keys = [(f.__code__.co_filename, f.__code__.co_firstlineno, f.__code__.co_name) for f in functions]
        return f"{sum(rows[key][3] for key in keys if key in rows) / total:.0%}"

    asyncio_own = sum(row[2] for (file, _, _), row in rows.items() if f"{os.sep}asyncio{os.sep}" in file)
    print(f"profile of ours, in-memory, {workload.name}, {runs} runs: {plain * 1e6 / workload.nodes:.0f} us/node")
    print(f"unprofiled, {total * 1e6 / (runs * workload.nodes):.0f} us/node under cProfile, of which (cumulative):")
    print(f"  JournalRecorder.event + .node_run {share(JournalRecorder.event, JournalRecorder.node_run)};")
    print(f"  publishing on MemoryEventBus {share(BusJournal._publish)}; the nodes' own run {share(BenchAdd.run)};")
    print(f"  asyncio's own code (event loop, tasks, futures) {asyncio_own / total:.0%}")
    stats.sort_stats("tottime").print_stats(15)
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip() and "Ordered by" not in line))


async def main(args: argparse.Namespace) -> None:
    registry = load_registry()
    plans = {w.name: Plan.build(parse_document(w.document()), registry) for w in WORKLOADS}
    unused: Any = None  # trivial nodes call no service
    engine = Engine(NodeServices(llm=unused, tools=unused, subflows=unused))
    bus = MemoryEventBus()
    memory = Ours(engine, plans, bus, BusJournal(bus))

    async def floor(workload: Workload) -> float:
        gc.collect()
        started = time.perf_counter()
        result = await floor_run(workload)
        elapsed = time.perf_counter() - started
        assert result == workload.expected, result
        return elapsed

    if args.profile:
        await profile(memory)
        return

    runners: dict[str, Callable[[Workload], Awaitable[float]]] = {FLOOR: floor, MEMORY: memory.run}
    async with contextlib.AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-engine-")))
        urls = {SQLITE: f"sqlite+aiosqlite:///{workdir / 'control.db'}"}
        try:
            urls[POSTGRES] = await stack.enter_async_context(postgres_database())
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"PostgreSQL skipped: cannot reach {PG_ADMIN_DSN} ({exc}); `make services` starts it")
        for runner, url in urls.items():
            tenant = await open_tenant(url, workdir)
            stack.push_async_callback(tenant.db.dispose)
            journal = Journal(tenant.db, bus.publish)
            await journal.start()
            stack.push_async_callback(journal.aclose)
            durable = Ours(engine, plans, bus, journal)
            durable.tenant = tenant
            runners[runner] = durable.run
        peers: Peers | None = None
        if args.peers_python.exists():
            peers = await Peers.start(args.peers_python)
            stack.push_async_callback(peers.close)
        else:
            print(f"LangGraph and CrewAI skipped: {args.peers_python} is missing; `make bench` creates it")
        print(
            f"engine bench: {args.rounds} rounds after {args.warmup} warm-up, runners interleaved;",
            f"{os.cpu_count()} CPUs",
        )
        started = time.perf_counter()
        samples = await measure(runners, peers, args.rounds, args.warmup, args.cell_budget)
        shown = [*runners, *((LANGGRAPH, CREWAI) if peers is not None else ())]
        report(samples, shown, args.rounds, peers)
        print(f"measured in {time.perf_counter() - started:.0f} s")
    if args.crew_rounds:
        await crew_bench(args.crew_rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--cell-budget", type=float, default=8.0, help="seconds after which a cell is not rerun")
    parser.add_argument("--peers-python", type=Path, default=ROOT / ".bench-venv" / "bin" / "python")
    parser.add_argument("--profile", action="store_true", help="only profile ours, in-memory, on chain-1000")
    parser.add_argument("--crew-rounds", type=int, default=5, help="rounds of the crew bench (0: skip it)")
    asyncio.run(main(parser.parse_args()))
