"""Turn what a sandbox left behind into a ``ToolResult``.

The order of evidence matters: what the host observed itself (deadline passed,
output cap hit, cgroup OOM kill) wins over what the harness reported, because
the harness runs next to untrusted code and may not have finished.
"""

from __future__ import annotations

import signal
from typing import Literal

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from sandbox.base import ExitReason, ToolResult, ToolRun
from sandbox.harness import MARKER, describe_size
from sandbox.supervise import Captured

_MARKER = MARKER.encode()


class HarnessReport(BaseModel):
    """The JSON line the harness writes (see ``harness.py``)."""

    model_config = ConfigDict(extra="ignore")

    reason: Literal["ok", "crashed", "memory", "timeout", "refused", "output_limit"]
    output: JsonValue = None
    error: str | None = None
    error_type: str | None = None
    tool_seconds: float | None = None
    cpu_seconds: float | None = None


def parse_report(stdout: bytes) -> HarnessReport | None:
    """The last harness report in ``stdout`` (Kubernetes logs mix both streams), or None."""
    index = stdout.rfind(_MARKER)
    if index < 0:
        return None
    line = stdout[index + len(_MARKER) :].split(b"\n", 1)[0]
    try:
        return HarnessReport.model_validate_json(line)
    except ValidationError:
        return None


def exit_signal(returncode: int | None) -> int | None:
    """The signal that ended the tool: negative for direct children, 128+N through bwrap/runsc."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if 128 < returncode < 128 + signal.NSIG:
        return returncode - 128
    return None


def _describe_exit(returncode: int | None) -> str:
    number = exit_signal(returncode)
    if number is not None:
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exit code {returncode}"


def _classify(
    run: ToolRun, captured: Captured, report: HarnessReport | None, memory_exhausted: bool
) -> tuple[ExitReason, str | None]:
    """The exit reason and, when the harness could not say, the host's explanation."""
    limits = run.limits
    if captured.timed_out:
        return ExitReason.TIMEOUT, f"wall-clock limit of {limits.wall_seconds:g} s exceeded; the run was killed"
    if captured.output_exceeded:
        limit = describe_size(limits.output_bytes)
        if _MARKER in captured.stdout:
            # The harness had begun its report: the result was what crossed the limit.
            return ExitReason.OUTPUT_LIMIT, (
                f"the tool's result and what it printed were together larger than the output limit of {limit}; "
                "return or print less, or raise the limit"
            )
        return ExitReason.OUTPUT_LIMIT, (
            f"the tool wrote more than {limits.output_bytes} bytes of output (its output limit of {limit}, stdout "
            "and stderr together) and was killed; print less or raise the limit"
        )
    if memory_exhausted and (report is None or report.reason != "memory"):
        return ExitReason.MEMORY, (
            f"the tool exceeded its memory limit of {describe_size(limits.memory_bytes)} and the kernel killed it; "
            "use less memory or raise the limit"
        )
    if report is not None:
        return ExitReason(report.reason), report.error
    if exit_signal(captured.returncode) == signal.SIGXCPU:
        return ExitReason.TIMEOUT, f"CPU time limit of {limits.cpu_seconds} s exceeded"
    return ExitReason.CRASHED, f"the tool ended without a result ({_describe_exit(captured.returncode)})"


def build_result(
    run: ToolRun,
    backend: str,
    captured: Captured,
    *,
    memory_exhausted: bool = False,
    notes: tuple[str, ...] = (),
) -> ToolResult:
    """Decide the exit reason and assemble the result."""
    report = parse_report(captured.stdout)
    reason, error = _classify(run, captured, report, memory_exhausted)
    from_report = report is not None and reason.value == report.reason
    return ToolResult(
        run_id=run.run_id,
        backend=backend,
        reason=reason,
        output=report.output if report is not None and reason is ExitReason.OK else None,
        error=error,
        error_type=report.error_type if report is not None and from_report else None,
        stderr_tail=captured.stderr_tail.decode("utf-8", "replace"),
        exit_code=captured.returncode,
        wall_seconds=round(captured.wall_seconds, 6),
        tool_seconds=report.tool_seconds if report is not None else None,
        cpu_seconds=report.cpu_seconds if report is not None else None,
        notes=notes,
    )
