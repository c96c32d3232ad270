"""Watch one sandbox launcher process: deadline, output cap, reaping.

Built on ``subprocess.Popen`` plus ``pidfd`` and non-blocking pipe readers on
the running loop rather than ``asyncio.create_subprocess_exec``: asyncio's
``Process.wait()`` only returns once the pipes reach EOF, and a reader that
stops reading at the output cap would then never see EOF. Here the reader can
stop at any byte and the exit is observed through the pidfd.

A launcher (bwrap, or unshare around runsc) waits for the one child it starts,
the pid 1 of the run's pid namespace. Killed before that child, it would leave
it to be reaped by the host's init: where the app is PID 1 of a container,
nobody. :func:`kill_launcher` therefore kills the child first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sandbox.base import SandboxFailure

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
#: After a kill, how long to wait for the kernel to reap the launcher.
_REAP_SECONDS = 10.0
#: After exit, how long remaining buffered output may take to drain.
_DRAIN_SECONDS = 2.0
#: The whole environment of a sandbox launcher: nothing of the app's (HOME, PWD, secrets) is passed on,
#: since a launcher's environment can show inside the sandbox (``/proc/<pid>/environ``).
LAUNCHER_ENV: Mapping[str, str] = {"PATH": "/usr/bin:/bin"}
#: After its child is killed, how long a launcher gets to reap it and exit before it is killed too.
#: Killed early, it leaves the child a zombie for PID 1; a busy host (two test processes on two
#: cores) took over a second. A healthy launcher exits within milliseconds, so only a hung one waits.
_LAUNCHER_EXIT_SECONDS = 5.0


@dataclass(frozen=True)
class Captured:
    """What the launcher left behind."""

    pid: int
    stdout: bytes
    stderr_tail: bytes
    returncode: int | None
    timed_out: bool
    output_exceeded: bool
    wall_seconds: float


class _Pipes:
    """Reads stdout whole and stderr as a tail, counting both against one budget."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, stdout: IO[bytes], stderr: IO[bytes], budget: int, tail: int
    ) -> None:
        self._loop = loop
        self._budget = budget
        self._tail = tail
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.total = 0
        self.exceeded = asyncio.Event()
        self.closed = asyncio.Event()
        self._open: dict[int, bytearray] = {stdout.fileno(): self.stdout, stderr.fileno(): self.stderr}
        # The file objects own the fds; keep them so they close exactly once.
        self._files = {stdout.fileno(): stdout, stderr.fileno(): stderr}
        self._stderr_fd = stderr.fileno()
        for fd in self._open:
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._readable, fd)

    def _readable(self, fd: int) -> None:
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(fd)
            return
        self.total += len(chunk)
        if self.total > self._budget:
            # Keep what fits so the caller can show the start of the flood.
            keep = len(chunk) - (self.total - self._budget)
            self._open[fd].extend(chunk[: max(keep, 0)])
            self.exceeded.set()
            self.stop()
            return
        buffer = self._open[fd]
        buffer.extend(chunk)
        if fd == self._stderr_fd and len(buffer) > 2 * self._tail:
            del buffer[: len(buffer) - self._tail]

    def _close(self, fd: int) -> None:
        if fd in self._open:
            self._loop.remove_reader(fd)
            del self._open[fd]
            self._files.pop(fd).close()
        if not self._open:
            self.closed.set()

    def stop(self) -> None:
        """Stop reading and close both pipes (the writers get EPIPE)."""
        for fd in list(self._open):
            self._close(fd)

    def stderr_tail(self) -> bytes:
        return bytes(self.stderr[-self._tail :])


async def _wait_event(event: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


async def supervise(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    deadline_seconds: float,
    output_bytes: int,
    kill: Callable[[int], Awaitable[None]],
    pass_fds: Sequence[int] = (),
    cwd: str = "/",
    tail_bytes: int = 8192,
) -> Captured:
    """Run ``argv`` until it exits, the deadline passes, or it prints more than ``output_bytes``.

    ``kill(pid)`` must end the launcher *and everything it started*; it is
    called on the deadline, on the output cap and when the caller is cancelled.
    ``env`` is the launcher's whole environment. It starts in ``cwd``, by default
    ``/`` rather than the app's working directory: that path would show in the
    ``PWD`` a shell exports, and the directory would stay busy while the run lasts.
    """
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    try:
        # Popen rather than asyncio's subprocess API (see the module docstring);
        # fork+exec returns in about a millisecond.
        process = subprocess.Popen(  # noqa: ASYNC220
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            pass_fds=tuple(pass_fds),
            cwd=cwd,
            close_fds=True,
            # A session of its own: terminal signals aimed at the app never reach it.
            start_new_session=True,
        )
    except OSError as exc:
        raise SandboxFailure(f"could not start {argv[0]}: {exc}") from exc
    assert process.stdout is not None
    assert process.stderr is not None
    pipes = _Pipes(loop, process.stdout, process.stderr, output_bytes, tail_bytes)
    pidfd = os.pidfd_open(process.pid)
    exited = asyncio.Event()
    loop.add_reader(pidfd, exited.set)
    timed_out = False
    try:
        done = asyncio.Event()
        watchers = [asyncio.create_task(_relay(event, done)) for event in (exited, pipes.exceeded)]
        try:
            timed_out = not await _wait_event(done, deadline_seconds)
        finally:
            for watcher in watchers:
                watcher.cancel()
        if timed_out or pipes.exceeded.is_set():
            await kill(process.pid)
        if not await _wait_event(exited, _REAP_SECONDS):
            raise SandboxFailure(f"sandbox launcher {process.pid} did not exit {_REAP_SECONDS} s after SIGKILL")
        # Output written just before exit may still sit in the pipes.
        if not await _wait_event(pipes.closed, _DRAIN_SECONDS):
            log.warning("sandbox output pipes still open %.1f s after exit; closing them", _DRAIN_SECONDS)
    finally:
        if not exited.is_set():
            # Cancelled or failed mid-run: never leave the tool running.
            await kill(process.pid)
            await _wait_event(exited, _REAP_SECONDS)
        loop.remove_reader(pidfd)
        os.close(pidfd)
        pipes.stop()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)
    return Captured(
        pid=process.pid,
        stdout=bytes(pipes.stdout),
        stderr_tail=pipes.stderr_tail(),
        returncode=process.returncode,
        timed_out=timed_out,
        output_exceeded=pipes.exceeded.is_set(),
        wall_seconds=time.monotonic() - started,
    )


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``, read from /proc/*/stat (/proc/PID/task/TID/children may be absent)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name in parentheses may hold spaces and parentheses: split after the last one.
            parent = int((entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(entry.name))
    return found


async def _exits_within(pid: int, seconds: float) -> bool:
    """Whether the child ``pid`` exits within ``seconds`` (it is left unreaped)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            # WNOHANG: never blocks. WNOWAIT: leaves the exit status to the Popen that owns the child.
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:  # noqa: ASYNC222
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.005)


async def kill_launcher(launcher: int) -> None:
    """SIGKILL the launcher's children (the run's pid 1), let the launcher reap them and exit, else kill it too.

    A launcher still busy before its exec (the cgroup join shell, setpriv) has
    no children yet and is killed at once.
    """
    children = _children(launcher)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if not children or not await _exits_within(launcher, _LAUNCHER_EXIT_SECONDS):
        with contextlib.suppress(ProcessLookupError):
            os.kill(launcher, signal.SIGKILL)
