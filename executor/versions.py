"""Flow versions made ready to run: parsed, planned and validated once, reused while fresh.

A version never changes, so its document and plan are built once; its validation (which
reads the tenant's providers, tools and flows) is reused for `REVALIDATE_AFTER_S`, so a
subflow run once per item of a long list does not read the whole catalog per item.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.context import TenantContext
from core.flow_store import FlowStore, VersionRecord
from executor.catalog import CatalogSource
from executor.document import FlowDocument, check_inputs, parse_document
from executor.errors import FlowInvalid
from executor.plan import Plan
from executor.registry import Registry
from executor.validation import validate_document

#: How long a version's validation against the tenant's catalog is trusted before it is done again.
REVALIDATE_AFTER_S = 5.0
_CACHED_VERSIONS = 256


@dataclass(frozen=True, slots=True)
class Prepared:
    """A flow version ready to run: its document, plan and checked inputs."""

    version: VersionRecord | None  # None: an unsaved document (see `VersionPlans.prepare_document`)
    document: FlowDocument
    plan: Plan
    inputs: dict[str, Any]

    @property
    def flow_id(self) -> uuid.UUID | None:
        return self.version.flow_id if self.version is not None else None

    @property
    def version_id(self) -> uuid.UUID | None:
        return self.version.id if self.version is not None else None

    @property
    def number(self) -> int | None:
        """The version's number; None for an unsaved document."""
        return self.version.version if self.version is not None else None

    def pins(self) -> dict[str, Any]:
        """The pinned outputs of the version's nodes."""
        return {node.id: node.pinned_output for node in self.document.nodes if node.pinned_output is not None}


class VersionPlans:
    """Loads, validates and plans flow versions, keeping the last few hundred ready."""

    def __init__(self, flows: FlowStore, registry: Registry, catalog: CatalogSource) -> None:
        self._flows = flows
        self._registry = registry
        self._catalog = catalog
        # Version id -> (document, plan, when it was last validated).
        self._cache: OrderedDict[uuid.UUID, tuple[FlowDocument, Plan, float]] = OrderedDict()

    async def prepare(
        self, ctx: TenantContext, flow_id: uuid.UUID, inputs: Mapping[str, Any], version: int | None = None
    ) -> Prepared:
        """Load and validate a version and check `inputs` against it; `FlowInvalid` or `InvalidInput` if wrong."""
        record = await self._flows.version(ctx, flow_id, version)
        document, plan = await self.plan(ctx, record)
        return Prepared(record, document, plan, check_inputs(document, inputs))

    async def prepare_document(self, ctx: TenantContext, raw: Mapping[str, Any], inputs: Mapping[str, Any]) -> Prepared:
        """An unsaved document (what a chat with a crew runs) validated, planned and its inputs checked.

        Nothing is cached: such documents are built per call."""
        document = parse_document(raw)
        catalog, subflows = await self._catalog.load(ctx)
        problems = validate_document(document, self._registry, catalog, flow_id=None, subflow_graph=subflows)
        if problems:
            raise FlowInvalid(problems)
        return Prepared(None, document, Plan.build(document, self._registry), check_inputs(document, inputs))

    async def plan(self, ctx: TenantContext, record: VersionRecord) -> tuple[FlowDocument, Plan]:
        """The version's document and plan, validated against what the tenant has now.

        A version is parsed and planned once; its validation (which reads the tenant's providers,
        tools and flows) is reused for `REVALIDATE_AFTER_S`, so a subflow run once per item of a
        long list does not read the whole catalog per item.
        """
        cached = self._cache.get(record.id)
        now = time.monotonic()
        if cached is not None:
            self._cache.move_to_end(record.id)
            document, plan, validated_at = cached
            if now - validated_at < REVALIDATE_AFTER_S:
                return document, plan
        else:
            document = parse_document(record.document)
            plan = None  # built once the document is known to be valid
        catalog, subflows = await self._catalog.load(ctx)
        problems = validate_document(
            document, self._registry, catalog, flow_id=str(record.flow_id), subflow_graph=subflows
        )
        if problems:
            raise FlowInvalid(problems)
        if plan is None:
            plan = Plan.build(document, self._registry)
        self._cache[record.id] = (document, plan, now)
        if len(self._cache) > _CACHED_VERSIONS:
            self._cache.popitem(last=False)
        return document, plan
