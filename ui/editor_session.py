"""One open flow editor: its draft as last stored, undo and redo, the clipboard.

Every change goes to the server as operations (`executor.draft_ops`) through the draft
service, which stores the draft at once (a closed tab or a reload loses nothing) and answers
with the operations that undo it. Undo applies those, and keeps what undoes *them* for redo.
A change made elsewhere meanwhile (another tab) makes the service refuse the stale revision:
the editor then reloads the draft and says so, and the undo history starts again.

    session = await EditorSession.open(services, ctx, flow_id)
    await session.apply(ctx, [{"op": "move", "positions": {"ask": {"x": 10, "y": 20}}}])
    await session.undo(ctx)
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from core.context import TenantContext
from core.errors import Conflict
from executor.draft_ops import Operation, new_edge_id, new_node_id
from executor.drafts import Draft
from executor.errors import FlowProblem
from executor.flows import SavedVersion
from wiring.services import Services

#: How many changes undo remembers.
UNDO_DEPTH = 200
#: How far a pasted copy sits from what was copied when pasted at the same place.
PASTE_OFFSET = 40.0

Ops = Sequence[Operation | Mapping[str, Any]]


class EditorSession:
    """The editor's view of one flow's draft, kept in step with the server's."""

    def __init__(self, services: Services, flow_id: uuid.UUID, draft: Draft) -> None:
        self.services = services
        self.flow_id = flow_id
        self.undo_stack: list[list[Operation]] = []
        self.redo_stack: list[list[Operation]] = []
        self.clipboard: dict[str, Any] | None = None
        self._listeners: list[Callable[[bool], Awaitable[None] | None]] = []
        # One change at a time: events arrive faster than the server answers (a drag's end, then a key).
        self._lock = asyncio.Lock()
        self._take(draft)
        self.problems: list[FlowProblem] = list(draft.problems or [])

    @classmethod
    async def open(cls, services: Services, ctx: TenantContext, flow_id: uuid.UUID) -> EditorSession:
        return cls(services, flow_id, await services.drafts.open(ctx, flow_id))

    # -- what the page reads ---------------------------------------------------------------------

    def node(self, node_id: str) -> dict[str, Any] | None:
        return next((n for n in self.document.get("nodes", []) if n.get("id") == node_id), None)

    def node_problems(self, node_id: str) -> list[FlowProblem]:
        return [p for p in self.problems if p.node_id == node_id]

    def upstream(self, node_id: str) -> list[str]:
        """Ids of the nodes whose results `node_id` can use: every node with a path into it."""
        into: dict[str, set[str]] = {}
        for edge in self.document.get("edges", []):
            into.setdefault(str(edge["target"]), set()).add(str(edge["source"]))
        seen: set[str] = set()
        todo = list(into.get(node_id, ()))
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(into.get(current, ()))
        order = [str(n["id"]) for n in self.document.get("nodes", [])]
        return [n for n in order if n in seen]

    def on_change(self, listener: Callable[[bool], Awaitable[None] | None]) -> None:
        """Call `listener(structural)` after every change; `structural` is False for moves and the viewport."""
        self._listeners.append(listener)

    # -- changing --------------------------------------------------------------------------------

    async def apply(self, ctx: TenantContext, operations: Ops, *, remember: bool = True) -> None:
        """Apply `operations` as one undoable step; a refusal (`InvalidInput`) changes nothing."""
        async with self._lock:
            await self._send(ctx, operations, self.undo_stack if remember else None)
            if remember:
                self.redo_stack.clear()

    async def undo(self, ctx: TenantContext) -> bool:
        async with self._lock:
            if not self.undo_stack:
                return False
            await self._send(ctx, self.undo_stack.pop(), self.redo_stack)
            return True

    async def redo(self, ctx: TenantContext) -> bool:
        async with self._lock:
            if not self.redo_stack:
                return False
            await self._send(ctx, self.redo_stack.pop(), self.undo_stack)
            return True

    async def save(self, ctx: TenantContext, message: str = "", *, overwrite: bool = False) -> SavedVersion:
        """The draft as the next version (`StaleDraft` if someone saved one meanwhile, unless `overwrite`)."""
        async with self._lock:
            saved = await self.services.drafts.save(ctx, self.flow_id, message=message, overwrite=overwrite)
            await self._reload(ctx, keep_history=True)
            return saved

    async def discard(self, ctx: TenantContext) -> None:
        async with self._lock:
            self._take(await self.services.drafts.discard(ctx, self.flow_id))
            await self._after_replace(ctx)

    async def restore(self, ctx: TenantContext, version: int) -> None:
        async with self._lock:
            self._take(await self.services.drafts.restore(ctx, self.flow_id, version))
            await self._after_replace(ctx)

    async def reload(self, ctx: TenantContext) -> None:
        """Show the draft as stored now (after a change elsewhere); the undo history starts again."""
        async with self._lock:
            await self._reload(ctx, keep_history=False)

    # -- clipboard -------------------------------------------------------------------------------

    def copy(self, node_ids: Iterable[str]) -> int:
        """Remember the nodes (and the edges among them) for `paste`; returns how many nodes."""
        wanted = set(node_ids)
        nodes = [copy.deepcopy(n) for n in self.document.get("nodes", []) if n.get("id") in wanted]
        edges = [
            copy.deepcopy(e)
            for e in self.document.get("edges", [])
            if e.get("source") in wanted and e.get("target") in wanted
        ]
        self.clipboard = {"nodes": nodes, "edges": edges} if nodes else None
        return len(nodes)

    def paste_operation(self, at: Mapping[str, float] | None = None) -> dict[str, Any] | None:
        """An `add` of the clipboard's nodes under fresh ids, placed at `at` (else next to the originals)."""
        if self.clipboard is None:
            return None
        nodes: list[dict[str, Any]] = self.clipboard["nodes"]
        left = min(float(n["position"]["x"]) for n in nodes)
        top = min(float(n["position"]["y"]) for n in nodes)
        dx, dy = (at["x"] - left, at["y"] - top) if at is not None else (PASTE_OFFSET, PASTE_OFFSET)
        document = copy.deepcopy(self.document)
        ids: dict[str, str] = {}
        added: list[dict[str, Any]] = []
        for node in nodes:
            fresh = new_node_id(document, str(node["type"]))
            ids[str(node["id"])] = fresh
            position = {"x": float(node["position"]["x"]) + dx, "y": float(node["position"]["y"]) + dy}
            added.append({**copy.deepcopy(node), "id": fresh, "position": position})
            document["nodes"].append(added[-1])  # so the next fresh id differs
        edges: list[dict[str, Any]] = []
        for edge in self.clipboard["edges"]:
            fresh_edge = {**edge, "id": new_edge_id(document), "source": ids[edge["source"]]}
            fresh_edge["target"] = ids[edge["target"]]
            edges.append(fresh_edge)
            document["edges"].append(fresh_edge)
        return {"op": "add", "nodes": added, "edges": edges}

    # -- inside ------------------------------------------------------------------------------------

    async def _send(self, ctx: TenantContext, operations: Ops, inverse_to: list[list[Operation]] | None) -> None:
        try:
            applied = await self.services.drafts.apply(ctx, self.flow_id, operations, revision=self.revision)
        except Conflict:
            await self._reload(ctx, keep_history=False)
            raise Conflict(
                "this flow's draft was changed in another tab or by someone else; the editor now shows that "
                "draft (your last change was not applied)"
            ) from None
        self._take(applied.draft)
        structural = applied.draft.problems is not None
        if structural:
            self.problems = list(applied.draft.problems or [])
        if inverse_to is not None:
            inverse_to.append(list(applied.inverse))
            del inverse_to[:-UNDO_DEPTH]
        await self._notify(structural)

    async def _reload(self, ctx: TenantContext, *, keep_history: bool) -> None:
        self._take(await self.services.drafts.open(ctx, self.flow_id))
        await self._refresh_problems(ctx)
        if not keep_history:
            self._forget()
        await self._notify(True)

    async def _after_replace(self, ctx: TenantContext) -> None:
        await self._refresh_problems(ctx)
        self._forget()
        await self._notify(True)

    def _take(self, draft: Draft) -> None:
        self.document: dict[str, Any] = draft.document
        self.revision = draft.revision
        self.base_version = draft.base_version
        self.changed = draft.changed
        self.draft = draft

    async def _refresh_problems(self, ctx: TenantContext) -> None:
        if self.draft.problems is not None:
            self.problems = list(self.draft.problems)
        else:
            self.problems = await self.services.flows.validate(ctx, self.document, flow_id=self.flow_id)

    def _forget(self) -> None:
        self.undo_stack.clear()
        self.redo_stack.clear()

    async def _notify(self, structural: bool) -> None:
        for listener in self._listeners:
            result = listener(structural)
            if result is not None:
                await result
