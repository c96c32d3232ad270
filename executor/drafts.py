"""Drafts: the visual editor's state of a flow, kept on the server and changed only by operations.

A flow has at most one draft. Without one, the draft *is* the latest version (revision 0).
Every batch of operations (`executor.draft_ops`) is applied to the draft and stored at once
(`core.flow_drafts.DraftStore`), so a closed tab or a reload loses nothing; each batch names
the revision it was made on, and a stale one is a `Conflict` (reload, apply again). The
answer carries the inverse operations, for undo and redo.

*Save* makes the draft the flow's next immutable version, refused when someone saved a
version since the draft started (the draft is kept); *discard* drops it; *restore* puts an
earlier version's document into the draft, to be looked at and saved.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput
from core.flow_drafts import DraftRecord, DraftStore, stale_draft
from executor.document import dump_document, parse_document
from executor.draft_ops import (
    OPERATION_TYPES,
    MoveOp,
    Operation,
    ViewportOp,
    apply_operations,
    dump_operation,
    parse_operation,
)
from executor.errors import FlowInvalid, FlowProblem
from executor.flows import FlowService, SavedVersion

MAX_OPERATIONS = 1000
BASE_CACHE_SIZE = 256  # versions' documents kept per process (each a few KiB)


@dataclass(frozen=True, slots=True)
class Draft:
    """A flow as the editor shows it: the stored draft, or the latest version when none is stored."""

    flow_id: uuid.UUID
    document: dict[str, Any]
    base_version: int  # the version the draft started from
    revision: int  # 0: no draft stored (the document is the base version's)
    changed: bool  # whether the document differs from the base version's
    problems: list[FlowProblem] | None  # None: not worked out again (the last batch only moved things)
    updated_at: datetime
    updated_by: uuid.UUID | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "flow_id": str(self.flow_id),
            "document": self.document,
            "base_version": self.base_version,
            "revision": self.revision,
            "changed": self.changed,
            "problems": None if self.problems is None else [problem.as_dict() for problem in self.problems],
            "updated_at": self.updated_at.isoformat(),
            "updated_by": None if self.updated_by is None else str(self.updated_by),
        }


@dataclass(frozen=True, slots=True)
class Applied:
    """The draft after a batch of operations, and the operations that undo the batch (in the order to apply)."""

    draft: Draft
    inverse: list[Operation]

    def as_dict(self) -> dict[str, Any]:
        return {"draft": self.draft.as_dict(), "inverse": [dump_operation(op) for op in self.inverse]}


class StaleDraft(Conflict):
    """Saving refused: a version was saved after the one the draft started from (`save(overwrite=True)` saves)."""


class DraftService:
    """Open, change, save, discard and restore the drafts of a tenant's flows."""

    def __init__(self, flows: FlowService, store: DraftStore) -> None:
        self.flows = flows
        self.store = store
        # A saved version never changes, so its dumped document is read once per process, not on every
        # batch (each drag's end asks whether the draft still differs from it). Keyed by tenant too.
        self._bases: OrderedDict[tuple[str, uuid.UUID, int], dict[str, Any]] = OrderedDict()

    async def open(self, ctx: TenantContext, flow_id: uuid.UUID) -> Draft:
        """The flow's draft with its problems: the stored one, or the latest version (revision 0)."""
        ctx.require(Role.VIEWER, "see flows")
        stored = await self.store.get(ctx, flow_id)
        if stored is None:
            return await self._latest(ctx, flow_id)
        document = parse_document(stored.document)
        base = await self._base(ctx, flow_id, stored.base_version)
        problems = await self.flows.validate(ctx, document, flow_id=flow_id)
        return _draft(stored, base, problems)

    async def apply(
        self,
        ctx: TenantContext,
        flow_id: uuid.UUID,
        operations: Sequence[Operation | Mapping[str, Any]],
        *,
        revision: int,
    ) -> Applied:
        """Apply a batch of operations to the draft made on `revision`, all or nothing, and store the result.

        `InvalidInput` for a malformed operation or one that makes no sense (nothing is stored);
        `Conflict` when the draft is at another revision than `revision`. The problems are
        worked out again unless the batch only moved nodes or the viewport.
        """
        ctx.require(Role.EDITOR, "edit flows")
        ops = _operations(operations)
        stored = await self.store.get(ctx, flow_id)
        current = stored.revision if stored is not None else 0
        if current != revision:
            raise stale_draft(revision, current)
        if stored is None:
            latest = await self.flows.version(ctx, flow_id)
            raw, base_version = latest.document, latest.version
            base_document = self._remember(ctx, flow_id, base_version, latest.document)
        else:
            raw, base_version = stored.document, stored.base_version
            base_document = await self._base(ctx, flow_id, base_version)
        before = parse_document(raw)
        after, inverse = apply_operations(before, ops, self.flows.registry)
        dumped = dump_document(after)
        if dumped == dump_document(before):  # nothing changed: nothing to store
            if stored is None:
                unchanged = await self._latest(ctx, flow_id, validate=False)
                return Applied(unchanged, inverse)
            return Applied(_draft(stored, base_document, None), inverse)
        record = await self.store.put(ctx, flow_id, dumped, base_version=base_version, expected_revision=revision)
        layout_only = all(isinstance(op, MoveOp | ViewportOp) for op in ops)
        problems = None if layout_only else await self.flows.validate(ctx, after, flow_id=flow_id)
        return Applied(_draft(record, base_document, problems), inverse)

    async def save(
        self, ctx: TenantContext, flow_id: uuid.UUID, *, message: str = "", overwrite: bool = False
    ) -> SavedVersion:
        """Make the draft the flow's next version and drop it (the latest version is the state now).

        `Conflict` when the draft has no changes, and when someone saved a version after the
        one the draft started from: the draft is then kept, and `overwrite=True` saves it
        anyway (their version stays in the history).
        """
        ctx.require(Role.EDITOR, "save flows")
        stored = await self.store.get(ctx, flow_id)
        if stored is None:
            latest = await self.flows.version(ctx, flow_id)
            raise Conflict(f"no changes since version {latest.version}; there is nothing to save")
        if _same_as_dumped(await self._base(ctx, flow_id, stored.base_version), stored.document):
            raise Conflict(f"no changes since version {stored.base_version}; there is nothing to save")
        expected = None if overwrite else stored.base_version
        try:
            saved = await self.flows.save(ctx, flow_id, stored.document, expected_version=expected, message=message)
        except Conflict as exc:
            latest_version = (await self.flows.get(ctx, flow_id)).latest_version
            raise StaleDraft(
                f"someone saved version {latest_version} of this flow after version {stored.base_version}, "
                "which your draft started from; your draft is kept: discard it to see their version, "
                "or save it with overwrite to make it the next version anyway"
            ) from exc
        # Only the revision that was saved: a change made meanwhile stays a draft (on the old base).
        await self.store.delete(ctx, flow_id, revision=stored.revision)
        return saved

    async def discard(self, ctx: TenantContext, flow_id: uuid.UUID) -> Draft:
        """Drop the stored draft; the latest version's state."""
        ctx.require(Role.EDITOR, "edit flows")
        await self.store.delete(ctx, flow_id)
        return await self._latest(ctx, flow_id)

    async def restore(self, ctx: TenantContext, flow_id: uuid.UUID, version: int) -> Draft:
        """Put version `version`'s document into the draft (not saved yet), to be looked at and saved."""
        ctx.require(Role.EDITOR, "edit flows")
        earlier = await self.flows.version(ctx, flow_id, version)
        document = parse_document(earlier.document)
        stored = await self.store.get(ctx, flow_id)
        if stored is None:
            latest = await self.flows.version(ctx, flow_id)
            if latest.version == earlier.version:  # the draft is that version already
                return await self._latest(ctx, flow_id)
            base_version, revision = latest.version, 0
            base_document = self._remember(ctx, flow_id, base_version, latest.document)
        else:
            base_version, revision = stored.base_version, stored.revision
            base_document = await self._base(ctx, flow_id, base_version)
        record = await self.store.put(
            ctx, flow_id, dump_document(document), base_version=base_version, expected_revision=revision
        )
        problems = await self.flows.validate(ctx, document, flow_id=flow_id)
        return _draft(record, base_document, problems)

    async def _base(self, ctx: TenantContext, flow_id: uuid.UUID, version: int) -> dict[str, Any]:
        """Version `version`'s document, dumped (read from the store once, then kept)."""
        cached = self._bases.get((ctx.tenant_slug, flow_id, version))
        if cached is not None:
            self._bases.move_to_end((ctx.tenant_slug, flow_id, version))
            return cached
        saved = await self.flows.version(ctx, flow_id, version)
        return self._remember(ctx, flow_id, version, saved.document)

    def _remember(self, ctx: TenantContext, flow_id: uuid.UUID, version: int, raw: Mapping[str, Any]) -> dict[str, Any]:
        try:
            document = dump_document(parse_document(raw))
        except FlowInvalid:  # stored before a rule it breaks: compared as it is
            document = dict(raw)
        self._bases[(ctx.tenant_slug, flow_id, version)] = document
        while len(self._bases) > BASE_CACHE_SIZE:
            self._bases.popitem(last=False)
        return document

    async def _latest(self, ctx: TenantContext, flow_id: uuid.UUID, *, validate: bool = True) -> Draft:
        latest = await self.flows.version(ctx, flow_id)
        document = parse_document(latest.document)
        problems = await self.flows.validate(ctx, document, flow_id=flow_id) if validate else None
        return Draft(
            flow_id=flow_id,
            document=dump_document(document),
            base_version=latest.version,
            revision=0,
            changed=False,
            problems=problems,
            updated_at=latest.created_at,
            updated_by=latest.created_by,
        )


def _draft(record: DraftRecord, base_document: Mapping[str, Any], problems: list[FlowProblem] | None) -> Draft:
    """`base_document`: the base version's document, dumped (`DraftService._base`)."""
    return Draft(
        flow_id=record.flow_id,
        document=record.document,
        base_version=record.base_version,
        revision=record.revision,
        changed=not _same_as_dumped(base_document, record.document),
        problems=problems,
        updated_at=record.updated_at,
        updated_by=record.updated_by,
    )


def _same_as_dumped(dumped: Mapping[str, Any], document: Mapping[str, Any]) -> bool:
    """Whether `document` is the flow `dumped` (a dumped document) is; parses `document` only when they differ."""
    if dumped == document:
        return True
    try:
        return dumped == dump_document(parse_document(document))
    except FlowInvalid:
        return False


def _operations(raw: Sequence[Operation | Mapping[str, Any]]) -> list[Operation]:
    if isinstance(raw, str | bytes | Mapping) or not isinstance(raw, Sequence):
        raise InvalidInput("operations must be a list of operations", field="operations")
    if len(raw) > MAX_OPERATIONS:
        message = f"at most {MAX_OPERATIONS} operations can be applied at once, not {len(raw)}; send them in parts"
        raise InvalidInput(message, field="operations")
    ops: list[Operation] = []
    for index, item in enumerate(raw):
        if isinstance(item, OPERATION_TYPES):
            ops.append(item)
        elif isinstance(item, Mapping):
            ops.append(parse_operation(item, index=index))
        else:
            raise InvalidInput(f"operation {index + 1} must be an object with an 'op'", field=f"operations.{index}")
    return ops
