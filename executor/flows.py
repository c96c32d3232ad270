"""Flows as documents: create, save (each save a new immutable version), validate, diff, restore, export, import.

Saving takes any well-formed document, valid or not (a half-drawn flow is worth keeping);
the answer lists its problems, and running refuses it until they are fixed. Storage is
`core.flow_store.FlowStore`; this layer knows what a document means.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.context import Role, TenantContext
from core.errors import InvalidInput
from core.flow_store import FlowRecord, FlowStore, VersionRecord, VersionSummary
from executor.catalog import CatalogSource
from executor.document import FlowDocument, diff_documents, dump_document, parse_document
from executor.errors import FlowProblem
from executor.registry import Registry
from executor.validation import validate_document

EXPORT_FORMAT = "crewcanvas.flow-export/v1"
_REFERENCE_FIELDS = {
    "provider_id": "providers",
    "tool_id": "tools",
    "flow_id": "flows",
    "crew_id": "crews",
    "agent_id": "agents",
}


def empty_document() -> dict[str, Any]:
    """The document of a new flow: one input node and one output node, unconnected."""
    return dump_document(
        parse_document(
            {
                "schema": "crewcanvas.flow/v1",
                "nodes": [
                    {"id": "input", "type": "input", "position": {"x": 0, "y": 0}, "data": {}},
                    {"id": "output", "type": "output", "position": {"x": 400, "y": 0}, "data": {}},
                ],
                "edges": [],
                "inputs": [],
            }
        )
    )


@dataclass(frozen=True, slots=True)
class SavedVersion:
    """A stored version and the problems that would stop it from running."""

    version: VersionRecord
    problems: list[FlowProblem]


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The flow an import created and the references this workspace could not match by name."""

    flow: FlowRecord
    version: VersionRecord
    missing: list[dict[str, str]]
    problems: list[FlowProblem]


class FlowService:
    """The flow operations of the API and the editor."""

    def __init__(self, store: FlowStore, registry: Registry, catalog: CatalogSource) -> None:
        self.store = store
        self.registry = registry
        self.catalog = catalog

    async def list(self, ctx: TenantContext) -> builtins.list[FlowRecord]:
        return await self.store.list(ctx)

    async def get(self, ctx: TenantContext, flow_id: uuid.UUID) -> FlowRecord:
        return await self.store.get(ctx, flow_id)

    async def create(
        self, ctx: TenantContext, name: str, description: str = "", document: Mapping[str, Any] | None = None
    ) -> SavedVersion:
        """A new flow with `document` (a starter document when None) as version 1."""
        ctx.require(Role.EDITOR, "create flows")
        parsed = parse_document(document) if document is not None else parse_document(empty_document())
        flow = await self.store.create(ctx, name, description, dump_document(parsed))
        version = await self.store.version(ctx, flow.id, 1)
        return SavedVersion(version, await self.validate(ctx, parsed, flow_id=flow.id))

    async def rename(
        self, ctx: TenantContext, flow_id: uuid.UUID, *, name: str | None = None, description: str | None = None
    ) -> FlowRecord:
        return await self.store.rename(ctx, flow_id, name=name, description=description)

    async def delete(self, ctx: TenantContext, flow_id: uuid.UUID) -> None:
        await self.store.delete(ctx, flow_id)

    async def save(
        self,
        ctx: TenantContext,
        flow_id: uuid.UUID,
        document: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        message: str = "",
    ) -> SavedVersion:
        """Store `document` as the flow's next version; `FlowInvalid` only if it is not a flow document at all."""
        ctx.require(Role.EDITOR, "save flows")
        parsed = parse_document(document)
        version = await self.store.save_version(
            ctx, flow_id, dump_document(parsed), expected_version=expected_version, message=message
        )
        return SavedVersion(version, await self.validate(ctx, parsed, flow_id=flow_id))

    async def versions(self, ctx: TenantContext, flow_id: uuid.UUID) -> builtins.list[VersionSummary]:
        return await self.store.versions(ctx, flow_id)

    async def version(self, ctx: TenantContext, flow_id: uuid.UUID, version: int | None = None) -> VersionRecord:
        return await self.store.version(ctx, flow_id, version)

    async def validate(
        self, ctx: TenantContext, document: FlowDocument | Mapping[str, Any], *, flow_id: uuid.UUID | None = None
    ) -> builtins.list[FlowProblem]:
        """Every problem that would stop the document from running, each naming its node and field."""
        ctx.require(Role.VIEWER, "validate flows")
        parsed = document if isinstance(document, FlowDocument) else parse_document(document)
        catalog, subflows = await self.catalog.load(ctx)
        return validate_document(
            parsed,
            self.registry,
            catalog,
            flow_id=str(flow_id) if flow_id is not None else None,
            subflow_graph=subflows,
        )

    async def diff(self, ctx: TenantContext, flow_id: uuid.UUID, old: int, new: int | None = None) -> dict[str, Any]:
        """What changed from version `old` to `new` (the latest when None): nodes, edges and inputs."""
        before = await self.store.version(ctx, flow_id, old)
        after = await self.store.version(ctx, flow_id, new)
        changes = diff_documents(parse_document(before.document), parse_document(after.document))
        return {"from": before.version, "to": after.version, **changes}

    async def restore(self, ctx: TenantContext, flow_id: uuid.UUID, version: int) -> SavedVersion:
        """Make an earlier version the latest again, as a new version (history is never rewritten)."""
        ctx.require(Role.EDITOR, "restore flows")
        earlier = await self.store.version(ctx, flow_id, version)
        return await self.save(ctx, flow_id, earlier.document, message=f"restored from version {version}")

    async def export(self, ctx: TenantContext, flow_id: uuid.UUID, version: int | None = None) -> dict[str, Any]:
        """The flow as a file: its document plus the names of the providers, tools and flows it refers to."""
        flow = await self.store.get(ctx, flow_id)
        record = await self.store.version(ctx, flow_id, version)
        names = await self._names(ctx)
        references: dict[str, dict[str, str]] = {kind: {} for kind in _REFERENCE_FIELDS.values()}
        for kind, ref in _references(record.document):
            if ref in names[kind]:
                references[kind][ref] = names[kind][ref]
        return {
            "format": EXPORT_FORMAT,
            "name": flow.name,
            "description": flow.description,
            "version": record.version,
            "document": record.document,
            "references": references,
        }

    async def import_(self, ctx: TenantContext, payload: Mapping[str, Any], *, name: str | None = None) -> ImportResult:
        """A new flow from an export; references are matched by name, and what has no match is listed."""
        ctx.require(Role.EDITOR, "import flows")
        if payload.get("format") != EXPORT_FORMAT:
            raise InvalidInput(f"not a flow export: 'format' must be {EXPORT_FORMAT!r}", field="format")
        document = payload.get("document")
        if not isinstance(document, Mapping):
            raise InvalidInput("a flow export needs a 'document' object", field="document")
        document = dump_document(parse_document(document))  # a malformed document is a 422, before anything else
        exported = payload.get("references") if isinstance(payload.get("references"), Mapping) else {}
        names = await self._names(ctx)
        by_name = {kind: {n: i for i, n in ids.items()} for kind, ids in names.items()}
        mapping: dict[str, str] = {}
        missing: list[dict[str, str]] = []
        for kind, ref in sorted(set(_references(document))):
            exported_names = exported.get(kind) if isinstance(exported, Mapping) else None
            wanted = exported_names.get(ref) if isinstance(exported_names, Mapping) else None
            match = by_name[kind].get(str(wanted)) if wanted is not None else None
            if match is not None:
                mapping[ref] = match
            elif ref not in names[kind]:
                missing.append({"kind": kind[:-1], "id": ref, "name": str(wanted or "")})
        remapped = _remap(dict(document), mapping)
        title = name or str(payload.get("name") or "imported flow")
        saved = await self.create(ctx, title, str(payload.get("description") or ""), remapped)
        flow = await self.store.get(ctx, saved.version.flow_id)
        return ImportResult(flow, saved.version, missing, saved.problems)

    async def _names(self, ctx: TenantContext) -> dict[str, dict[str, str]]:
        return await self.catalog.names(ctx)


def _references(document: Mapping[str, Any]) -> builtins.list[tuple[str, str]]:
    """(kind, id) of every provider, tool and flow the document's nodes name."""
    found: list[tuple[str, str]] = []
    nodes = document.get("nodes")
    for node in nodes if isinstance(nodes, list) else []:
        data = node.get("data") if isinstance(node, Mapping) else None
        if not isinstance(data, Mapping):
            continue
        for key, kind in _REFERENCE_FIELDS.items():
            value = data.get(key)
            if isinstance(value, str) and value:
                found.append((kind, value))
    return found


def _remap(document: dict[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """The document with referenced ids replaced by this workspace's ids of the same names."""
    nodes = []
    for node in document.get("nodes") or []:
        if isinstance(node, Mapping) and isinstance(node.get("data"), Mapping):
            data = dict(node["data"])
            for key in _REFERENCE_FIELDS:
                if isinstance(data.get(key), str) and data[key] in mapping:
                    data[key] = mapping[data[key]]
            node = {**node, "data": data}
        nodes.append(node)
    return {**document, "nodes": nodes}
