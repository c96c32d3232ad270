"""ExecutionStore.usage: tokens and cost of many runs in one query, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid

from core.context import Role
from core.executions import ExecutionStore, ExecutionUsage, NodeRunRecord
from core.flow_store import FlowStore
from core.journal import Journal
from db.database import Database
from tests.fixtures.llm_stack import make_tenant

DOCUMENT = {"schema": "crewcanvas.flow/v1", "nodes": [], "edges": []}


async def _noop(channel: str, message: dict[str, object]) -> None:
    return None


async def test_usage_sums_each_runs_own_node_runs_and_leaves_out_reused_ones(db: Database) -> None:
    admin, viewer = await make_tenant(db, "acme")
    other, _ = await make_tenant(db, "globex")
    editor = dataclasses.replace(admin, role=Role.EDITOR)
    flows = FlowStore(db)
    flow = await flows.create(editor, "flow", "", DOCUMENT)
    version = await flows.version(editor, flow.id)
    store = ExecutionStore(db)
    journal = Journal(db, _noop)
    await journal.start()

    async def run() -> uuid.UUID:
        made = await store.create(editor, flow_id=flow.id, flow_version_id=version.id, version=1, inputs={}, options={})
        return made.id

    priced, unpriced, empty = await run(), await run(), await run()
    for node_id, tokens, cost, flags in (
        ("a", (10, 5), 0.25, {}),
        ("b", (1, 2), 0.5, {"pinned": True}),
        ("c", (100, 100), 9.0, {"reused_from": str(uuid.uuid4())}),  # spent by the earlier run
    ):
        journal.put_node_run(
            "acme",
            NodeRunRecord(
                priced,
                node_id,
                "llm",
                "completed",
                prompt_tokens=tokens[0],
                completion_tokens=tokens[1],
                cost_usd=cost,
                flags=flags,
            ),
        )
    journal.put_node_run("acme", NodeRunRecord(unpriced, "a", "llm", "completed", prompt_tokens=4, completion_tokens=3))
    await journal.flush()
    await journal.aclose()

    found = await store.usage(viewer, [priced, unpriced, empty, uuid.uuid4()])
    assert found == {
        priced: ExecutionUsage(11, 7, 0.75),
        unpriced: ExecutionUsage(4, 3, None),  # no node run knew its cost
    }
    assert found[priced].tokens == 18
    assert await store.usage(viewer, []) == {}
    assert await store.usage(other, [priced]) == {}  # another workspace's runs are not there
