"""The tool sandbox protocol: what a run is, what comes back, and what can go wrong.

A backend takes a :class:`ToolRun` (untrusted tool code plus its JSON input and
limits) and returns a :class:`ToolResult`. Backends sit beside this module
(``bwrap.py``, ``gvisor.py``, ``kubernetes.py``, ``unsafe.py``) and are chosen by
name in ``factory.py``. Nothing here imports a backend.

Two kinds of failure are kept apart on purpose:

* The *tool* misbehaving (raising, looping, allocating, printing too much) is a
  normal outcome: it comes back as a ``ToolResult`` whose ``reason`` says why.
* The *sandbox* being unable to do its job safely raises a ``SandboxError``.
  Nothing is ever run unsandboxed as a fallback.

Exception hierarchy::

    SandboxError                  root of every error raised by this package
    ├── SandboxUnavailable        the backend cannot isolate here (binary, kernel
    │                             feature or cluster missing); nothing was run
    ├── InvalidToolRun            the request itself is malformed (input is not a
    │                             JSON object, bad env name, ...); also a ValueError
    ├── ToolRefused               a well-formed run that policy forbids
    │   └── PodPolicyViolation    the generated Pod would break the pod policy
    └── SandboxFailure            the backend broke while running (launcher
        │                         failed, temp files, container runtime error)
        └── ClusterError          the Kubernetes API failed or misbehaved
"""

from __future__ import annotations

import abc
import enum
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator, model_validator

__all__ = [
    "Availability",
    "ClusterError",
    "ExitReason",
    "InvalidToolRun",
    "Limits",
    "PodPolicyViolation",
    "Sandbox",
    "SandboxBackend",
    "SandboxError",
    "SandboxFailure",
    "SandboxUnavailable",
    "ToolKind",
    "ToolRefused",
    "ToolResult",
    "ToolRun",
]

MiB = 1024 * 1024
GiB = 1024 * MiB


class SandboxError(Exception):
    """Root of every error raised by the sandbox package."""


class SandboxUnavailable(SandboxError):
    """The backend cannot isolate tool code on this host; the run was refused."""


class InvalidToolRun(SandboxError, ValueError):
    """The run request is malformed; fix the request, not the host."""


class ToolRefused(SandboxError):
    """The run is well formed but the backend's policy forbids running it."""


class PodPolicyViolation(ToolRefused):
    """The Pod built for a run breaks the pod security policy."""

    def __init__(self, violations: list[str]) -> None:
        self.violations = list(violations)
        super().__init__("pod policy violated: " + "; ".join(self.violations))


class SandboxFailure(SandboxError):
    """The backend itself failed while running a tool."""


class ClusterError(SandboxFailure):
    """A Kubernetes API call failed."""


class ExitReason(enum.StrEnum):
    """Why a run ended. Tool errors are ``crashed`` with the traceback in ``error``."""

    OK = "ok"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    OUTPUT_LIMIT = "output_limit"
    CRASHED = "crashed"
    REFUSED = "refused"


ToolKind = Literal["python", "command"]

_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$|^[a-z0-9]$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Names the sandbox sets itself, or that would change how the harness starts.
_RESERVED_ENV = re.compile(r"^(PATH|HOME|TMPDIR|LANG|MALLOC_ARENA_MAX|TOOL_INPUT|PYTHON.*|LD_.*)$")
# Env is visible to tool code and to anyone who can read the run record: refuse
# names that say they carry a secret so nobody passes one by habit.
_SECRET_ENV = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.IGNORECASE)


class Limits(BaseModel):
    """Resource limits for one run; every backend enforces all of them it can."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_seconds: float = Field(default=30.0, gt=0, le=3600, description="elapsed time before the run is killed")
    cpu_seconds: int = Field(default=30, ge=1, le=3600, description="CPU time (RLIMIT_CPU)")
    memory_bytes: int = Field(
        default=512 * MiB, ge=32 * MiB, le=64 * GiB, description="address space and cgroup memory"
    )
    processes: int = Field(default=64, ge=4, le=4096, description="tasks (processes and threads)")
    output_bytes: int = Field(default=1 * MiB, ge=4096, le=256 * MiB, description="stdout plus stderr")
    disk_bytes: int = Field(default=64 * MiB, ge=1 * MiB, le=16 * GiB, description="size of the writable work dir")
    open_files: int = Field(default=256, ge=16, le=65536, description="RLIMIT_NOFILE")
    cpu_cores: float = Field(default=1.0, gt=0, le=64, description="CPU bandwidth, where cgroups allow")


class ToolRun(BaseModel):
    """One invocation of a tool.

    ``kind="python"``: ``source`` defines a function named ``entrypoint``; it is
    called with ``input`` as keyword arguments and must return a JSON value.
    ``kind="command"``: ``source`` is a POSIX shell script; it gets ``input`` as
    JSON on stdin (and in the file named by ``$TOOL_INPUT``) and must print one
    JSON document on stdout.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ToolKind = "python"
    source: str = Field(max_length=1 * MiB)
    entrypoint: str = Field(default="run", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    input: dict[str, JsonValue] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    env: dict[str, str] = Field(default_factory=dict, description="non-secret variables visible to the tool")
    run_id: str = Field(default_factory=lambda: uuid.uuid4().hex)

    @field_validator("run_id")
    @classmethod
    def _run_id_is_a_label(cls, value: str) -> str:
        # Run ids become cgroup directory names, container ids and Kubernetes
        # object names, so they must be DNS-label safe.
        if not _RUN_ID.match(value):
            raise ValueError("run_id must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'")
        return value

    @field_validator("env")
    @classmethod
    def _env_is_plain(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"env name {name!r} is not a valid variable name")
            if _RESERVED_ENV.match(name):
                raise ValueError(f"env name {name!r} is set by the sandbox and cannot be overridden")
            if _SECRET_ENV.search(name):
                raise ValueError(f"env name {name!r} looks like a secret; tool env is not a place for secrets")
            if "\x00" in text or len(text) > 32 * 1024:
                raise ValueError(f"env value of {name!r} must be under 32 KiB without NUL bytes")
        return value

    @model_validator(mode="after")
    def _input_is_strict_json(self) -> ToolRun:
        try:
            json.dumps(self.input, allow_nan=False)
        except ValueError as exc:
            raise ValueError(f"input is not strict JSON: {exc}") from exc
        return self

    def input_json(self) -> bytes:
        """The input as the UTF-8 JSON document the harness reads."""
        return json.dumps(self.input, allow_nan=False, ensure_ascii=False).encode()

    @classmethod
    def with_json_input(cls, input_json: str | bytes, **fields: Any) -> ToolRun:
        """Build a run from raw JSON input text, raising ``InvalidToolRun`` with a readable message."""
        try:
            parsed = json.loads(input_json)
        except (ValueError, RecursionError) as exc:
            raise InvalidToolRun(f"tool input is not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise InvalidToolRun(f"tool input must be a JSON object of arguments, got {type(parsed).__name__}")
        try:
            return cls(input=parsed, **fields)
        except ValidationError as exc:
            raise InvalidToolRun(f"invalid tool run: {exc}") from exc


class ToolResult(BaseModel):
    """What a run produced. ``output`` is set only when ``reason`` is ``ok``."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    backend: str
    reason: ExitReason
    output: JsonValue = None
    error: str | None = Field(default=None, description="readable explanation; a traceback for tool exceptions")
    error_type: str | None = Field(default=None, description="exception class name when the tool raised")
    stderr_tail: str = ""
    exit_code: int | None = None
    wall_seconds: float = Field(description="host-measured time from launch to cleanup")
    tool_seconds: float | None = Field(default=None, description="time spent inside the tool, measured in the sandbox")
    cpu_seconds: float | None = None
    notes: tuple[str, ...] = Field(default=(), description="how limits were enforced, e.g. cgroup fallbacks")

    @property
    def ok(self) -> bool:
        return self.reason is ExitReason.OK


@dataclass(frozen=True)
class Availability:
    """Whether a backend can isolate here, and if not what is missing and how to fix it."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


@runtime_checkable
class Sandbox(Protocol):
    """What callers depend on: core declares the same shape for its tool runner."""

    name: str

    async def run(self, run: ToolRun) -> ToolResult: ...

    async def available(self) -> Availability: ...


class SandboxBackend(abc.ABC):
    """Base for backends: refuses runs while unavailable, then delegates to ``_execute``."""

    name: ClassVar[str]
    #: True only for backends that do not isolate; the UI shows a banner.
    UNSAFE: ClassVar[bool] = False

    def __init__(self) -> None:
        self._known_good = False

    def check_prerequisites(self) -> None:  # noqa: B027 - optional hook, most backends override it
        """Cheap synchronous checks (binaries present); raise ``SandboxUnavailable``."""

    async def _probe(self) -> Availability:
        """Try the backend for real; the default trusts the static checks."""
        return Availability(True)

    async def available(self) -> Availability:
        """Whether runs can be isolated now; a positive answer is remembered."""
        if self._known_good:
            return Availability(True)
        try:
            self.check_prerequisites()
        except SandboxUnavailable as exc:
            return Availability(False, str(exc))
        result = await self._probe()
        self._known_good = result.ok
        return result

    async def sweep(self) -> int:
        """Remove what runs of dead app processes left behind (see ``leftovers.py``); return how many.

        Never touches a run that is still alive, in this process or another one.
        The app calls it once at start.
        """
        return 0

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend keeps between runs (temp dirs, clients)."""

    async def run(self, run: ToolRun) -> ToolResult:
        """Run one tool; raise ``SandboxUnavailable`` rather than run it unsandboxed."""
        availability = await self.available()
        if not availability:
            raise SandboxUnavailable(f"{self.name} sandbox unavailable, tool run refused: {availability.reason}")
        return await self._execute(run)

    @abc.abstractmethod
    async def _execute(self, run: ToolRun) -> ToolResult:
        """Run the tool in the backend; only called once the backend is known to work."""
