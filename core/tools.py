"""Tools: records a tenant writes (name, input schema, code, limits) and "Try it" runs in the sandbox.

Nothing here executes tool code. Every run goes to the sandbox backend built once in
`wiring/backends.py`; when that backend cannot isolate, the run is refused with
`SandboxUnavailableError` and nothing runs, never in-process as a fallback. A tool
misbehaving (raising, looping, allocating, printing too much) is not an error: it comes
back as a `ToolRunReport` whose `reason` says why.

Errors (besides the usual `InvalidInput`, `NotFound`, `Conflict`, `PermissionDenied`)::

    BackendUnavailable
    ├── SandboxUnavailableError   the sandbox cannot isolate here; the run was refused
    └── SandboxFailedError        the sandbox broke while running; try again
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import SettingsConfigDict
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Role, TenantContext
from core.errors import BackendUnavailable, ConfigurationError, Conflict, CoreError, InvalidInput, NotFound, problems_of
from core.settings import EnvSettings
from core.text import Code, JsonObject, Name, Text
from core.tool_schemas import check_input_schema, example_input, parse_input, validate_input
from db.database import Database
from db.models import Tool
from sandbox.base import (
    Availability,
    GiB,
    InvalidToolRun,
    Limits,
    MiB,
    SandboxError,
    SandboxFailure,
    SandboxUnavailable,
    ToolRefused,
    ToolResult,
    ToolRun,
)

log = logging.getLogger(__name__)

ToolKind = Literal["python", "command"]
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_CODE_BYTES = 256 * 1024
MAX_DESCRIPTION_CHARS = 2000
LIMIT_FIELDS: tuple[str, ...] = tuple(Limits.model_fields)

#: What a tenant may ask for unless the operator sets `TOOLS_MAX_LIMITS`.
DEFAULT_MAXIMA = Limits(
    wall_seconds=60,
    cpu_seconds=60,
    memory_bytes=1 * GiB,
    processes=128,
    output_bytes=8 * MiB,
    disk_bytes=256 * MiB,
    open_files=1024,
    cpu_cores=2,
)


class SandboxUnavailableError(BackendUnavailable):
    """The sandbox backend cannot isolate tool code here; the run was refused and nothing ran."""


class SandboxFailedError(BackendUnavailable):
    """The sandbox backend broke while running a tool."""


class ToolFailed(CoreError):
    """A tool ran in the sandbox and did not end `ok` (it raised, timed out, ran out of memory...)."""

    def __init__(self, message: str, report: ToolRunReport) -> None:
        super().__init__(message)
        self.report = report


class ToolSettings(EnvSettings):
    """Operator limits for tools: `TOOLS_MAX_LIMITS` (JSON, `Limits` field names) and concurrency."""

    model_config = SettingsConfigDict(env_prefix="TOOLS_")

    max_limits: dict[str, float] = Field(default_factory=dict)
    max_concurrent_runs: int = Field(default=4, ge=1, le=256)

    def policy(self) -> LimitPolicy:
        """The limit policy these settings describe; `ConfigurationError` if they are wrong."""
        unknown = sorted(set(self.max_limits) - set(LIMIT_FIELDS))
        if unknown:
            raise ConfigurationError(
                f"TOOLS_MAX_LIMITS names unknown limits {unknown}; use some of {list(LIMIT_FIELDS)}"
            )
        try:
            maxima = Limits.model_validate(DEFAULT_MAXIMA.model_dump() | self.max_limits)
        except ValidationError as exc:
            raise ConfigurationError(f"TOOLS_MAX_LIMITS is out of range: {_first_problem(exc)}") from exc
        return LimitPolicy(maxima=maxima)


def _first_problem(exc: ValidationError) -> str:
    problem = problems_of(exc)[0]
    return f"'{problem.field}': {problem.message}"


@dataclass(frozen=True)
class LimitPolicy:
    """The operator's maxima; a tool may ask for less, never for more."""

    maxima: Limits = DEFAULT_MAXIMA

    def defaults(self) -> Limits:
        """The limits of a tool that asks for nothing: the sandbox defaults, capped by the maxima."""
        base = Limits().model_dump()
        return Limits.model_validate({name: min(value, getattr(self.maxima, name)) for name, value in base.items()})

    def clamp(self, requested: Mapping[str, Any]) -> dict[str, int | float]:
        """`requested` with unknown names refused and every value capped at the operator's maximum."""
        clamped: dict[str, int | float] = {}
        for name, value in requested.items():
            if name not in LIMIT_FIELDS:
                raise InvalidInput(f"unknown limit {name!r}; limits are {', '.join(LIMIT_FIELDS)}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"limit {name!r} must be a number, got {value!r}")
            ceiling = getattr(self.maxima, name)
            clamped[name] = min(value, ceiling)
        self.effective(clamped)  # refuse values below the sandbox's minimum now, not at run time
        return clamped

    def effective(self, overrides: Mapping[str, Any]) -> Limits:
        """The limits a run gets: defaults, then the tool's own values, capped by today's maxima."""
        merged = self.defaults().model_dump()
        for name, value in overrides.items():
            if name in merged:
                merged[name] = min(value, getattr(self.maxima, name))
        try:
            return Limits.model_validate(merged)
        except ValidationError as exc:
            raise InvalidInput(f"limit {_first_problem(exc)}") from exc


class ToolSpec(BaseModel):
    """What a user writes: the fields of a tool record (the API's request body too)."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="snake_case, unique in the tenant (checked when saved).")
    description: Text = ""
    kind: ToolKind = "python"
    input_schema: JsonObject = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="A JSON Schema for the tool's keyword arguments.",
    )
    code: Code = ""
    # Checked by `LimitPolicy.clamp`, which names the limit that is wrong.
    limits: JsonObject = Field(default_factory=dict, description="Resource limits by name; capped by the operator.")


class ToolView(BaseModel):
    """A stored tool as callers see it; `limits` holds its own values, `effective_limits` what runs get."""

    id: uuid.UUID
    name: str
    description: str
    kind: ToolKind
    input_schema: dict[str, Any]
    code: str
    limits: dict[str, int | float]
    effective_limits: dict[str, int | float]
    created_at: datetime
    updated_at: datetime


class ToolRunReport(BaseModel):
    """How a "Try it" run ended: exit reason, output (when ok), stderr tail and timings."""

    run_id: str
    backend: str
    reason: str
    ok: bool
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    stderr_tail: str = ""
    exit_code: int | None = None
    wall_seconds: float
    tool_seconds: float | None = None
    cpu_seconds: float | None = None
    notes: list[str] = Field(default_factory=list)
    limits: dict[str, int | float]


class SandboxStatus(BaseModel):
    """Which sandbox backend runs tools, whether it can isolate here, and whether it isolates at all."""

    backend: str
    available: bool
    unsafe: bool
    reason: str = ""


class ToolRunner(Protocol):
    """What the service needs from a sandbox backend (`sandbox.base.SandboxBackend` fits)."""

    @property
    def name(self) -> str: ...

    async def run(self, run: ToolRun) -> ToolResult: ...

    async def available(self) -> Availability: ...

    async def sweep(self) -> int:
        """Remove what runs of dead app processes left behind; how many things were removed."""
        ...

    async def aclose(self) -> None:
        """Release what the backend holds (work directories, clients)."""
        ...


class UnavailableSandbox:
    """Stands in for a backend that could not even be built: refuses every run with the reason."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    async def run(self, run: ToolRun) -> ToolResult:
        raise SandboxUnavailable(f"{self.name} sandbox unavailable, tool run refused: {self.reason}")

    async def available(self) -> Availability:
        return Availability(False, self.reason)

    async def sweep(self) -> int:
        return 0

    async def aclose(self) -> None:
        return None


_PYTHON_STARTER = '''\
def run(text: str, times: int = 1) -> dict:
    """Repeat `text`. Arguments come from the input; return any JSON value."""
    return {"result": " ".join([text] * times), "length": len(text)}
'''

_COMMAND_STARTER = """\
# The input arrives as one JSON object on stdin (and in the file named by $TOOL_INPUT).
# Print exactly one JSON document on stdout; stderr shows up in the stderr tail.
input=$(cat)
printf '{"received": %s}\\n' "$input"
"""

_STARTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "what to work on", "examples": ["hello"]},
        "times": {"type": "integer", "minimum": 1, "maximum": 10, "default": 2},
    },
    "required": ["text", "times"],
    "additionalProperties": False,
}


def starter_spec(kind: ToolKind = "python") -> ToolSpec:
    """A new tool that runs successfully as it is, to edit from there."""
    return ToolSpec(
        name="new_tool",
        description="Repeats a text." if kind == "python" else "Echoes its input.",
        kind=kind,
        input_schema=dict(_STARTER_SCHEMA),
        code=_PYTHON_STARTER if kind == "python" else _COMMAND_STARTER,
    )


class ToolService:
    """Create, read, change and delete a tenant's tools; try them in the sandbox."""

    def __init__(
        self,
        db: Database,
        sandbox: ToolRunner,
        *,
        policy: LimitPolicy | None = None,
        unsafe: bool = False,
        max_concurrent_runs: int = 4,
    ) -> None:
        self._db = db
        self._sandbox = sandbox
        self.policy = policy or LimitPolicy()
        self._unsafe = unsafe
        # Bounds how many sandboxes run at once across all tenants; more wait their turn.
        self._slots = asyncio.Semaphore(max_concurrent_runs)

    # -- records ---------------------------------------------------------------------------

    async def list(self, ctx: TenantContext) -> list[ToolView]:
        """Every tool of the tenant, by name."""
        ctx.require(Role.VIEWER, "see tools")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            tools = await session.scalars(select(Tool).order_by(Tool.name))
            return [self._view(tool) for tool in tools]

    async def get(self, ctx: TenantContext, tool_id: uuid.UUID) -> ToolView:
        ctx.require(Role.VIEWER, "see tools")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            return self._view(await self._load(session, tool_id))

    async def create(self, ctx: TenantContext, spec: ToolSpec) -> ToolView:
        """Store a new tool after checking its name, schema, code and limits."""
        ctx.require(Role.EDITOR, "create tools")
        checked = self._checked(spec, for_saving=True)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            tool = Tool(**checked.model_dump())
            session.add(tool)
            await self._commit(session, checked.name)
            return self._view(tool)

    async def update(self, ctx: TenantContext, tool_id: uuid.UUID, spec: ToolSpec) -> ToolView:
        """Replace every field of a tool."""
        ctx.require(Role.EDITOR, "change tools")
        checked = self._checked(spec, for_saving=True)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            tool = await self._load(session, tool_id)
            for name, value in checked.model_dump().items():
                setattr(tool, name, value)
            await self._commit(session, checked.name)
            await session.refresh(tool)
            return self._view(tool)

    async def delete(self, ctx: TenantContext, tool_id: uuid.UUID) -> None:
        ctx.require(Role.EDITOR, "delete tools")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            await session.delete(await self._load(session, tool_id))
            await session.commit()

    # -- runs ------------------------------------------------------------------------------

    async def try_tool(self, ctx: TenantContext, tool_id: uuid.UUID, tool_input: Any) -> ToolRunReport:
        """Run a stored tool once in the sandbox with `tool_input` (a dict, or JSON text)."""
        ctx.require(Role.EDITOR, "try tools")
        # The session is closed before the run: no connection is held while the tool runs up to its wall time.
        return await self._run(ctx, await self._stored_spec(ctx, tool_id), tool_input)

    async def run_saved(self, ctx: TenantContext, tool_id: uuid.UUID, arguments: Mapping[str, Any]) -> Any:
        """Run a stored tool for a flow; its output, or `ToolFailed` saying how the run ended."""
        ctx.require(Role.EDITOR, "run tools")
        spec = await self._stored_spec(ctx, tool_id)
        report = await self._run(ctx, spec, dict(arguments))
        if not report.ok:
            detail = report.error or "no detail"
            tail = report.stderr_tail.strip()[-500:]
            message = f"tool '{spec.name}' ended {report.reason}: {detail}" + (f" (stderr: {tail})" if tail else "")
            raise ToolFailed(message, report)
        return report.output

    async def try_draft(self, ctx: TenantContext, spec: ToolSpec, tool_input: Any) -> ToolRunReport:
        """Run unsaved code (what the editor holds now) once in the sandbox."""
        ctx.require(Role.EDITOR, "try tools")
        return await self._run(ctx, self._checked(spec, for_saving=False), tool_input)

    async def sweep_sandbox(self, timeout_seconds: float = 60.0) -> int:
        """Start-up hook: remove what sandbox runs of dead app processes left on the host or cluster.

        Never raises: a failed sweep is logged and retried at the next start; live
        runs of other app processes are never touched (see `sandbox.leftovers`).
        """
        try:
            async with asyncio.timeout(timeout_seconds):
                removed = await self._sandbox.sweep()
        except (SandboxError, OSError, TimeoutError) as exc:
            log.warning("could not sweep leftovers of the %s sandbox: %s", self._sandbox.name, exc)
            return 0
        if removed:
            log.warning("swept %d leftover(s) of sandbox runs from a previous crash", removed)
        return removed

    async def sandbox_status(self) -> SandboxStatus:
        """What runs tools here; the UI shows a banner when it is unsafe or unavailable."""
        availability = await self._sandbox.available()
        return SandboxStatus(
            backend=self._sandbox.name,
            available=bool(availability),
            unsafe=self._unsafe,
            reason=getattr(availability, "reason", ""),
        )

    async def _run(self, ctx: TenantContext, spec: ToolSpec, tool_input: Any) -> ToolRunReport:
        arguments = parse_input(tool_input) if isinstance(tool_input, str) else tool_input
        validate_input(spec.input_schema, arguments)
        limits = self.policy.effective(spec.limits)
        try:
            run = ToolRun(kind=spec.kind, source=spec.code, input=arguments, limits=limits)
        except ValidationError as exc:
            raise InvalidInput(f"cannot run this tool: {_first_problem(exc)}") from exc
        started = time.monotonic()
        try:
            async with self._slots:
                result = await self._sandbox.run(run)
        except SandboxUnavailable as exc:
            log.warning("tool run refused for tenant %s: %s", ctx.tenant_slug, exc)
            raise SandboxUnavailableError(
                f"{exc}. Nothing was run; an operator must make the {self._sandbox.name} sandbox work "
                "(or choose another with SANDBOX_BACKEND) before tools can run"
            ) from exc
        except InvalidToolRun as exc:
            raise InvalidInput(f"cannot run this tool: {exc}") from exc
        except ToolRefused as exc:
            raise InvalidInput(f"the sandbox refused this run: {exc}") from exc
        except SandboxFailure as exc:
            log.error("sandbox failure for tenant %s: %s", ctx.tenant_slug, exc)
            raise SandboxFailedError(
                f"the sandbox failed while running the tool ({exc}); try again, and tell the operator if it persists"
            ) from exc
        log.info(
            "tool %r for tenant %s ended %s in %.3f s",
            spec.name,
            ctx.tenant_slug,
            result.reason,
            time.monotonic() - started,
        )
        return ToolRunReport(
            run_id=result.run_id,
            backend=result.backend,
            reason=str(result.reason),
            ok=result.ok,
            output=result.output,
            error=result.error,
            error_type=result.error_type,
            stderr_tail=result.stderr_tail,
            exit_code=result.exit_code,
            wall_seconds=result.wall_seconds,
            tool_seconds=result.tool_seconds,
            cpu_seconds=result.cpu_seconds,
            notes=list(result.notes),
            limits=limits.model_dump(),
        )

    # -- helpers ---------------------------------------------------------------------------

    def example_input(self, spec: ToolSpec) -> dict[str, Any]:
        """A first input for the Try-it box, built from the tool's schema."""
        return example_input(spec.input_schema)

    def _checked(self, spec: ToolSpec, *, for_saving: bool) -> ToolSpec:
        if for_saving and not NAME_PATTERN.match(spec.name):
            raise InvalidInput(
                f"tool name {spec.name!r} must be snake_case: a lowercase letter, then up to 63 "
                "lowercase letters, digits or underscores (e.g. 'fetch_weather')"
            )
        description = spec.description.strip()
        if len(description) > MAX_DESCRIPTION_CHARS:
            raise InvalidInput(f"description is {len(description)} characters; keep it under {MAX_DESCRIPTION_CHARS}")
        if not spec.code.strip():
            raise InvalidInput("the tool has no code; write a 'run' function (python) or a script (command)")
        size = len(spec.code.encode())
        if size > MAX_CODE_BYTES:
            raise InvalidInput(f"the code is {size} bytes; keep it under {MAX_CODE_BYTES} bytes")
        return ToolSpec(
            name=spec.name,
            description=description,
            kind=spec.kind,
            input_schema=check_input_schema(spec.input_schema),
            code=spec.code,
            limits=self.policy.clamp(spec.limits),
        )

    def _view(self, tool: Tool) -> ToolView:
        return ToolView(
            id=tool.id,
            name=tool.name,
            description=tool.description,
            kind=tool.kind,  # type: ignore[arg-type]  # the column only ever holds a ToolKind
            input_schema=tool.input_schema,
            code=tool.code,
            limits=tool.limits,
            effective_limits=self.policy.effective(tool.limits).model_dump(),
            created_at=tool.created_at,
            updated_at=tool.updated_at,
        )

    async def _stored_spec(self, ctx: TenantContext, tool_id: uuid.UUID) -> ToolSpec:
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            tool = await self._load(session, tool_id)
            spec = ToolSpec(
                name=tool.name,
                kind=tool.kind,  # type: ignore[arg-type]  # the column only ever holds a ToolKind
                input_schema=tool.input_schema,
                code=tool.code,
                limits=tool.limits,
            )
        return spec

    @staticmethod
    async def _load(session: AsyncSession, tool_id: uuid.UUID) -> Tool:
        tool = await session.get(Tool, tool_id)
        if tool is None:
            raise NotFound(f"no tool with id {tool_id} in this workspace; it may have been deleted")
        return tool

    @staticmethod
    async def _commit(session: AsyncSession, name: str) -> None:
        try:
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            raise Conflict(f"a tool named {name!r} exists already in this workspace; choose another name") from exc
