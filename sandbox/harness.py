"""In-sandbox harness: runs one tool and reports one JSON line. Pure stdlib.

This file is copied into the sandbox and run as
``python3 -I -B harness.py JOB_DIR`` by /usr/bin/python3 (3.11); it must not
import anything outside the standard library. Everything it needs comes from
files in JOB_DIR, never from argv, so tool code and input never pass through a
command line:

* ``config.json``: ``{"kind", "entrypoint", "workdir", "limits": {...}}``
* ``input.json``: the tool's keyword arguments, a JSON object
* ``tool.py`` (kind ``python``) or ``tool.sh`` (kind ``command``)

The report goes to the *original* stdout as ``MARKER + JSON + "\\n"``; before the
tool runs, fd 1 is pointed at stderr so whatever the tool prints ends up in the
stderr tail and cannot corrupt the report. The report holds::

    {"reason": "ok" | "crashed" | "memory" | "timeout" | "refused" | "output_limit",
     "output": <JSON>, "error": str | null, "error_type": str | null,
     "tool_seconds": float | null, "cpu_seconds": float}

Tool errors never crash the harness: an exception in the tool gives ``crashed``
with the traceback (tool frames only) in ``error`` and the class in
``error_type``. ``refused`` means the tool was not called because the request
did not fit it (input not an object, no such function, wrong arguments). A
result too large to report is not sent: the report says ``output_limit`` (its
JSON is larger than the output limit) or ``memory`` (encoding it ran out of
memory) instead.

Started as pid 1 of a pid namespace (``bwrap --as-pid-1``, gVisor,
Kubernetes), the harness forks and the parent stays behind as that
namespace's init: it reaps every orphan of the tool and exits with the
harness's status, so each process of a run is waited for by its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import linecache
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
import types
from typing import Any

MARKER = "\x1ecrewcanvas-result:"
TOOL_FILENAME = "tool.py"
MAX_ERROR_CHARS = 32 * 1024
#: Characters encoded per write when sending the report, so a large one is never copied whole.
_WRITE_CHARS = 1024 * 1024
_END = object()


class CpuLimitExceeded(BaseException):
    """Raised from the SIGXCPU handler; a BaseException so ``except Exception`` in tools misses it."""


class Refused(Exception):
    """The tool cannot be called with this request."""


def _set_limit(which: int, soft: int, hard: int | None = None) -> None:
    # Never try to raise a hard limit the sandbox already lowered: that fails.
    _, current_hard = resource.getrlimit(which)
    cap = current_hard if current_hard != resource.RLIM_INFINITY else None
    hard = soft if hard is None else hard
    if cap is not None:
        soft, hard = min(soft, cap), min(hard, cap)
    resource.setrlimit(which, (soft, hard))


def apply_limits(limits: dict[str, Any]) -> None:
    """Lower rlimits before any tool code runs; the tool cannot raise them again."""
    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    cpu = int(limits["cpu_seconds"])
    # Soft limit sends SIGXCPU (reported as timeout); the hard limit one second
    # later is the kernel's SIGKILL for tools that ignore the signal.
    _set_limit(resource.RLIMIT_CPU, cpu, cpu + 1)
    _set_limit(resource.RLIMIT_FSIZE, int(limits["disk_bytes"]))
    _set_limit(resource.RLIMIT_NOFILE, int(limits["open_files"]))
    # Inside a fresh user namespace RLIMIT_NPROC counts this run's tasks only.
    _set_limit(resource.RLIMIT_NPROC, int(limits["processes"]))


def _on_sigxcpu(signum: int, frame: types.FrameType | None) -> None:
    raise CpuLimitExceeded


def _tool_traceback(exc: BaseException) -> str:
    """Format the exception from the first tool frame on, hiding the harness."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != TOOL_FILENAME:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return text[-MAX_ERROR_CHARS:]


def _load_tool(source: str) -> types.ModuleType:
    module = types.ModuleType("tool")
    module.__file__ = TOOL_FILENAME
    sys.modules["tool"] = module
    # Register the source so tracebacks show the offending lines.
    linecache.cache[TOOL_FILENAME] = (len(source), None, source.splitlines(True), TOOL_FILENAME)
    code = compile(source, TOOL_FILENAME, "exec")
    exec(code, module.__dict__)  # noqa: S102 - running the tool is the point; the sandbox contains it
    return module


def _call_python(job_dir: str, entrypoint: str, arguments: dict[str, Any]) -> Any:
    with open(os.path.join(job_dir, TOOL_FILENAME), encoding="utf-8") as handle:
        source = handle.read()
    module = _load_tool(source)
    function = getattr(module, entrypoint, None)
    if function is None:
        raise Refused(f"tool.py defines no function {entrypoint!r}")
    if not callable(function):
        raise Refused(f"{entrypoint!r} in tool.py is a {type(function).__name__}, not a function")
    try:
        inspect.signature(function).bind(**arguments)
    except TypeError as exc:
        raise Refused(f"input does not match {entrypoint}{inspect.signature(function)}: {exc}") from exc
    except ValueError:
        pass  # builtins without a signature: let the call decide
    result = function(**arguments)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _call_command(job_dir: str, workdir: str, output_bytes: int) -> tuple[str, Any]:
    """Run tool.sh with the input on stdin; return (reason, output or error text)."""
    input_path = os.path.join(job_dir, "input.json")
    env = dict(os.environ, TOOL_INPUT=input_path)
    with open(input_path, "rb") as stdin:
        child = subprocess.Popen(  # fixed interpreter, script from the job dir
            ["/bin/sh", os.path.join(job_dir, "tool.sh")],
            stdin=stdin,
            stdout=subprocess.PIPE,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
    assert child.stdout is not None
    data = child.stdout.read(output_bytes + 1)
    if len(data) > output_bytes:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return "output_limit", (
            f"the command printed more than the output limit of {describe_size(output_bytes)} on stdout; "
            "print less or raise the limit"
        )
    status = child.wait()
    if status != 0:
        return "crashed", f"command exited with status {status}"
    try:
        return "ok", json.loads(data)
    except ValueError as exc:
        return "crashed", f"command did not print a JSON document on stdout: {exc}"


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 4)


def _execute(job_dir: str, config: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = {"reason": "ok", "output": None, "error": None, "error_type": None, "tool_seconds": None}
    limits = config["limits"]
    try:
        with open(os.path.join(job_dir, "input.json"), "rb") as handle:
            raw_input = handle.read()
        try:
            arguments = json.loads(raw_input)
        except (ValueError, RecursionError) as exc:
            raise Refused(f"input.json is not valid JSON: {exc}") from exc
        if not isinstance(arguments, dict):
            raise Refused(f"input must be a JSON object of arguments, got {type(arguments).__name__}")
        started = time.perf_counter()
        try:
            if config["kind"] == "command":
                reason, value = _call_command(job_dir, config["workdir"], int(limits["output_bytes"]))
                report["reason"] = reason
                report["output" if reason == "ok" else "error"] = value
            else:
                report["output"] = _call_python(job_dir, config["entrypoint"], arguments)
        finally:
            report["tool_seconds"] = round(time.perf_counter() - started, 6)
    except Refused as exc:
        report.update(reason="refused", error=str(exc), output=None)
    except MemoryError:
        report.update(
            reason="memory",
            error_type="MemoryError",
            output=None,
            error=f"the tool exceeded its memory limit of {int(limits['memory_bytes']) // (1024 * 1024)} MiB",
        )
    except CpuLimitExceeded:
        report.update(reason="timeout", output=None, error=f"CPU time limit of {limits['cpu_seconds']} s exceeded")
    except BaseException as exc:  # any tool failure, SystemExit included, becomes a readable report
        report.update(reason="crashed", output=None, error=_tool_traceback(exc), error_type=type(exc).__name__)
    return report


def describe_size(size: int) -> str:
    """``size`` in the unit people set limits in: ``8 MiB``, ``1.5 MiB``, ``512 KiB``, ``1000 bytes``."""
    for unit, name in ((1024 * 1024, "MiB"), (1024, "KiB")):
        if size >= unit:
            return f"{size // unit} {name}" if size % unit == 0 else f"{size / unit:.1f} {name}"
    return f"{size} bytes"


def json_size_at_least(value: Any, limit: int) -> int:
    """A lower bound of the size of ``value`` as JSON, found without building the text.

    Counting stops once the bound passes ``limit``, so this ends quickly even for
    a huge (or self-referencing) value. Used when encoding ran out of memory.
    """
    total = 0
    pending = [iter((value,))]
    while pending and total <= limit:
        item = next(pending[-1], _END)
        if item is _END:
            pending.pop()
        elif isinstance(item, str):
            total += len(item) + 2  # UTF-8 has at least one byte per character, escapes only add
        elif isinstance(item, dict):
            total += 2 * len(item) + 1  # braces, colons and commas
            pending.append(itertools.chain.from_iterable(item.items()))
        elif isinstance(item, (list, tuple)):
            total += len(item) + 1  # brackets and commas
            pending.append(iter(item))
        else:
            total += 1  # a number, true, false or null
    return total


def _utf8_size(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(
        len(text[start : start + _WRITE_CHARS].encode("utf-8", "backslashreplace"))
        for start in range(0, len(text), _WRITE_CHARS)
    )


def _replace_result(report: dict[str, Any], reason: str, error: str, error_type: str | None = None) -> str:
    """Drop the result from ``report``, explain why in it, and encode what is left."""
    report.update(reason=reason, output=None, error=error, error_type=error_type)
    return json.dumps(report, allow_nan=False, ensure_ascii=False, default=repr)


def _encode(report: dict[str, Any], limits: dict[str, Any]) -> str:
    """The report as one JSON text that fits the output limit; a result that cannot be sent is replaced."""
    output_bytes = int(limits["output_bytes"])
    try:
        text = json.dumps(report, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return _replace_result(
            report, "crashed", f"the tool returned a value that cannot be encoded as JSON: {exc}", type(exc).__name__
        )
    except MemoryError:
        # Tell "too big to send anyway" apart from "too big for this memory limit".
        size = json_size_at_least(report["output"], output_bytes)
        if size > output_bytes:
            return _replace_result(report, "output_limit", _too_large(limits))
        memory = describe_size(int(limits["memory_bytes"]))
        return _replace_result(
            report,
            "memory",
            f"the tool's result could not be encoded as JSON within the memory limit of {memory}; "
            "return less or raise the memory limit",
            "MemoryError",
        )
    size = len(MARKER) + _utf8_size(text) + 1
    if size > output_bytes:
        del text  # may be most of the memory limit: free it before encoding the replacement
        return _replace_result(report, "output_limit", _too_large(limits, size))
    return text


def _too_large(limits: dict[str, Any], size: int | None = None) -> str:
    limit = describe_size(int(limits["output_bytes"]))
    measured = f" ({describe_size(size)} as JSON)" if size is not None else ""
    return f"the tool's result{measured} was larger than the output limit of {limit}; return less or raise the limit"


def _send(result_fd: int, text: str) -> None:
    """Write the report line in slices: encoding a large report whole would copy it once more."""
    with open(result_fd, "wb", closefd=True) as result:
        result.write(MARKER.encode())
        for start in range(0, len(text), _WRITE_CHARS):
            result.write(text[start : start + _WRITE_CHARS].encode("utf-8", "backslashreplace"))
        result.write(b"\n")


def _exit_status(status: int) -> int:
    """A wait status as a shell would report it: the exit code, or 128 + the signal number."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _serve_as_init() -> None:
    """Fork; the child returns to run the harness, the parent reaps until it exits, then exits the same way.

    Only pid 1 of a pid namespace is handed the orphans of the tool, and when it
    exits the kernel kills every process left in the namespace.
    """
    harness = os.fork()
    if harness == 0:
        return
    # Pid 1 receives only the signals it handles: handling none, no tool process can stop it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == harness:
            os._exit(_exit_status(status))


def main(argv: list[str]) -> None:
    """Entry point: ``harness.py JOB_DIR``."""
    job_dir = argv[1]
    if os.getpid() == 1:
        _serve_as_init()
    with open(os.path.join(job_dir, "config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    os.makedirs(os.path.join(config["workdir"], ".tmp"), exist_ok=True)
    os.chdir(config["workdir"])
    # Keep the real stdout for the report; everything the tool writes to fd 1
    # (print, C extensions, child processes) goes to stderr instead.
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)
    signal.signal(signal.SIGXCPU, _on_sigxcpu)
    # Writes past RLIMIT_FSIZE should fail with EFBIG, not kill the tool silently.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    apply_limits(config["limits"])
    harness_pid = os.getpid()
    report = _execute(job_dir, config)
    if os.getpid() != harness_pid:
        # A process the tool forked returned through the harness: only the
        # harness itself reports, or the run would have two results.
        os._exit(0 if report["reason"] == "ok" else 1)
    report["cpu_seconds"] = _cpu_seconds()
    text = _encode(report, config["limits"])
    for stream in (sys.stdout, sys.stderr):
        # The tool may have closed or replaced the stream: its text is lost, the report is not.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    _send(result_fd, text)
    # os._exit: do not wait for threads the tool left running or run its atexit hooks.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
