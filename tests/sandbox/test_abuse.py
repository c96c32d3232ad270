"""Abuse suite: hostile tools against every local isolating backend (bwrap, gVisor).

Each test runs a real tool in a real sandbox and checks the host afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import platform
import secrets
import textwrap
from pathlib import Path

import pytest

from sandbox import job
from sandbox.base import ExitReason, Limits, SandboxBackend, ToolRun
from sandbox.bwrap import BwrapBackend
from sandbox.gvisor import GVisorBackend
from sandbox.supervise import LAUNCHER_ENV
from tests.sandbox.helpers import host_processes_matching, mount_count, run_tool, sandbox_processes, wait_until_gone


async def test_tool_returns_json(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        def run(name, count=2):
            return {"greeting": "héllo " + name, "items": list(range(count)), "nested": {"ok": True, "none": None}}
        """,
        {"name": "ada", "count": 3},
    )
    assert result.reason is ExitReason.OK, result
    assert result.output == {"greeting": "héllo ada", "items": [0, 1, 2], "nested": {"ok": True, "none": None}}
    assert result.backend == backend.name
    assert result.tool_seconds is not None
    assert result.wall_seconds > 0


async def test_tool_runs_unprivileged(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        import os
        def run():
            status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
            return {
                "uid": os.getuid(),
                "euid": os.geteuid(),
                "gid": os.getgid(),
                "groups": os.getgroups(),
                "status": {key: value.strip() for key, value in status.items()},
            }
        """,
    )
    assert result.reason is ExitReason.OK, result
    seen = result.output
    assert isinstance(seen, dict)
    assert 0 not in (seen["uid"], seen["euid"], seen["gid"]), seen
    assert 0 not in seen["groups"], seen  # type: ignore[operator]  # a list here
    status = seen["status"]
    assert isinstance(status, dict)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd"):
        assert status[key] == "0000000000000000", f"{key}: {status[key]}"
    assert status["Seccomp"] == "2", "no seccomp filter is loaded"
    # gVisor's /proc has no NoNewPrivs line; the OCI spec sets noNewPrivileges.
    assert status.get("NoNewPrivs", "1") == "1"


async def test_bwrap_tool_is_an_unprivileged_uid_on_the_host(bwrap_backend: BwrapBackend) -> None:
    marker = f"uid-probe-{secrets.token_hex(6)}"
    task = asyncio.create_task(
        run_tool(
            bwrap_backend,
            """
            import subprocess
            def run(marker):
                subprocess.run(["/bin/sh", "-c", "sleep 1.5", marker])
                return "done"
            """,
            {"marker": marker},
        )
    )
    host_uids: set[int] = set()
    for _ in range(100):
        await asyncio.sleep(0.02)
        for pid in host_processes_matching(marker):
            with contextlib.suppress(OSError):
                uid_line = next(
                    line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:")
                )
                host_uids.update(int(field) for field in uid_line.split()[1:])
        if host_uids:
            break
    result = await task
    assert result.reason is ExitReason.OK, result
    assert host_uids, "the tool's child never showed up in the host's /proc"
    assert 0 not in host_uids, f"the tool ran as host uid {sorted(host_uids)}"


async def test_network_connections_fail_fast(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        import socket, time
        def run():
            out = {}
            for host, port in [("127.0.0.1", 5432), ("1.1.1.1", 443), ("10.0.0.1", 80)]:
                started = time.monotonic()
                try:
                    socket.create_connection((host, port), timeout=10).close()
                    out[f"{host}:{port}"] = {"connected": True}
                except OSError as exc:
                    out[f"{host}:{port}"] = {"connected": False, "errno": exc.errno, "s": time.monotonic() - started}
            return out
        """,
    )
    assert result.reason is ExitReason.OK, result
    for target, outcome in result.output.items():  # type: ignore[union-attr]  # output is a dict here
        assert outcome["connected"] is False, target
        assert outcome["s"] < 1.0, f"{target} took {outcome['s']} s to fail"


async def test_no_dns_resolution(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        import socket
        def run():
            answers = {}
            for name in ("example.com", "pypi.org", "kubernetes.default.svc"):
                try:
                    answers[name] = socket.getaddrinfo(name, 443)[0][4][0]
                except OSError as exc:
                    answers[name] = "failed: " + type(exc).__name__
            return answers
        """,
    )
    assert result.reason is ExitReason.OK, result
    assert all(str(answer).startswith("failed") for answer in result.output.values()), result.output  # type: ignore[union-attr]


@pytest.fixture
def tenant_dir(tmp_path: Path) -> Path:
    """Stands for another tenant's files on the host: a marker file the tool must not see."""
    directory = tmp_path / "data" / "tenant_other"
    directory.mkdir(parents=True)
    (directory / "secrets.txt").write_text("TENANT-MARKER-" + secrets.token_hex(8))
    # Readable by every uid, the sandbox's included: only isolation can hide it.
    for path in (tmp_path, directory.parent, directory):
        os.chmod(path, 0o755)  # noqa: S103 - deliberately open, see above
    os.chmod(directory / "secrets.txt", 0o644)
    return directory


async def test_host_files_are_absent_or_unreadable(backend: SandboxBackend, tenant_dir: Path) -> None:
    marker = (tenant_dir / "secrets.txt").read_text()
    paths = [
        "/etc/shadow",
        "/etc/passwd",
        "/root",
        "/root/.bashrc",
        "/work/main/data",
        "/work/main/pyproject.toml",
        str(tenant_dir),
        str(tenant_dir / "secrets.txt"),
        "/proc/1/root/etc/shadow",
        "/home",
    ]
    result = await run_tool(
        backend,
        """
        import os
        def run(paths):
            seen = {}
            for path in paths:
                try:
                    if os.path.isdir(path):
                        seen[path] = "listed: " + ",".join(os.listdir(path))
                    else:
                        with open(path) as handle:
                            seen[path] = "read: " + handle.read(200)
                except OSError as exc:
                    seen[path] = "denied: " + type(exc).__name__
            return seen
        """,
        {"paths": paths},
    )
    assert result.reason is ExitReason.OK, result
    assert marker not in json.dumps(result.output)
    for path, outcome in result.output.items():  # type: ignore[union-attr]
        assert outcome.startswith("denied"), f"{path}: {outcome}"


async def test_writes_outside_the_work_dir_fail(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        import os
        def run():
            outcomes = {}
            for path in ("/x", "/usr/x", "/etc/x", "/sandbox/x", "/sandbox/job/input.json", "/sandbox/harness.py",
                         "/proc/sys/kernel/hostname", "/dev/x", "/usr/bin/python3"):
                try:
                    with open(path, "w") as handle:
                        handle.write("pwned")
                    outcomes[path] = "written"
                except OSError as exc:
                    outcomes[path] = "refused: " + type(exc).__name__
            with open("/work/ok.txt", "w") as handle:
                handle.write("fine")
            with open("/tmp/ok.txt", "w") as handle:
                handle.write("fine")
            outcomes["work"] = sorted(os.listdir("/work"))
            return outcomes
        """,
    )
    assert result.reason is ExitReason.OK, result
    output = dict(result.output)  # type: ignore[arg-type]
    assert output.pop("work") == [".tmp", "ok.txt"]
    for path, outcome in output.items():
        assert str(outcome).startswith("refused"), f"{path}: {outcome}"


async def test_work_dir_is_size_limited(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        def run():
            written = 0
            try:
                with open("/work/big", "wb") as handle:
                    for _ in range(64):
                        handle.write(b"x" * 1024 * 1024)
                        handle.flush()
                        written += 1
            except OSError as exc:
                return {"written_mib": written, "errno": exc.errno}
            return {"written_mib": written, "errno": None}
        """,
        disk_bytes=8 * 1024 * 1024,
    )
    assert result.reason is ExitReason.OK, result
    assert result.output["errno"] in (errno.ENOSPC, errno.EFBIG)  # type: ignore[index,call-overload]
    assert result.output["written_mib"] <= 8  # type: ignore[index,call-overload]


_FORK_BOMB = """
import os, time
def run():
    children = 0
    try:
        while children < 10000:
            if os.fork() == 0:
                while True:  # every child keeps forking as well
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.01)
            children += 1
    except OSError as exc:
        return {"children": children, "errno": exc.errno}
    return {"children": children, "errno": None}
"""


async def test_fork_bomb_is_contained(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        _FORK_BOMB,
        processes=32,
        wall_seconds=20,
    )
    assert result.reason is ExitReason.OK, result
    assert result.output["errno"] == errno.EAGAIN  # type: ignore[index,call-overload]
    assert result.output["children"] < 32  # type: ignore[index,call-overload]
    assert await wait_until_gone(sandbox_processes) == []


async def test_gvisor_says_when_runsc_itself_ran_out_of_host_tasks(gvisor_backend: GVisorBackend) -> None:
    # A host task budget far below what runsc needs for a fork bomb: the sentry cannot make a thread and dies.
    starved = GVisorBackend(tasks_overhead=64, tasks_per_process=0, cgroup_parent=gvisor_backend.cgroup_parent)
    try:
        result = await run_tool(starved, _FORK_BOMB, processes=32, wall_seconds=20)
    finally:
        await starved.aclose()
    assert result.reason is ExitReason.CRASHED, result
    assert any("host task limit" in note for note in result.notes), result.notes
    assert await wait_until_gone(sandbox_processes) == []


async def test_huge_allocation_ends_with_memory(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        def run():
            block = bytearray(4 * 1024 ** 3)
            return len(block)
        """,
        memory_bytes=256 * 1024 * 1024,
    )
    assert result.reason is ExitReason.MEMORY, result
    assert "memory limit" in (result.error or "")


async def test_gradual_allocation_ends_with_memory(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        def run():
            hoard = []
            while True:
                hoard.append(b"x" * (8 * 1024 * 1024))
        """,
        memory_bytes=128 * 1024 * 1024,
    )
    assert result.reason is ExitReason.MEMORY, result


async def test_memory_spread_over_processes_is_killed_by_the_cgroup(bwrap_backend: BwrapBackend) -> None:
    if bwrap_backend.cgroups.version is None:
        pytest.skip(f"cgroups unavailable here: {bwrap_backend.cgroups.unavailable}")
    # Each child stays under RLIMIT_AS; only the cgroup sees the total.
    result = await run_tool(
        bwrap_backend,
        """
        import os, time
        def run():
            pids = []
            for _ in range(8):
                pid = os.fork()
                if pid == 0:
                    block = bytearray(40 * 1024 * 1024)
                    time.sleep(3)
                    os._exit(0)
                pids.append(pid)
            return [os.waitpid(pid, 0)[1] for pid in pids]
        """,
        memory_bytes=96 * 1024 * 1024,
        disk_bytes=1024 * 1024,
    )
    assert result.reason is ExitReason.MEMORY, result


async def test_infinite_loop_is_killed_at_the_deadline(backend: SandboxBackend) -> None:
    result = await run_tool(backend, "def run():\n    while True:\n        pass\n", wall_seconds=1.0)
    assert result.reason is ExitReason.TIMEOUT, result
    assert "wall-clock" in (result.error or "")
    assert result.wall_seconds < 10
    assert await wait_until_gone(sandbox_processes) == []


async def test_cpu_time_limit_ends_with_timeout(backend: SandboxBackend) -> None:
    result = await run_tool(backend, "def run():\n    while True:\n        pass\n", cpu_seconds=1, wall_seconds=20)
    assert result.reason is ExitReason.TIMEOUT, result
    assert "CPU" in (result.error or "")


async def test_output_flood_is_capped(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        import sys
        def run():
            chunk = "x" * (1024 * 1024)
            for _ in range(100):
                sys.stdout.write(chunk)
                sys.stdout.flush()
            return "done"
        """,
        output_bytes=1024 * 1024,
    )
    assert result.reason is ExitReason.OUTPUT_LIMIT, result
    assert len(result.stderr_tail) <= 1024 * 1024
    assert result.wall_seconds < 10


async def test_double_forked_orphan_dies_with_the_run(backend: SandboxBackend) -> None:
    marker = f"{secrets.randbelow(10**6) + 5000}.{secrets.randbelow(10**6)}"
    result = await run_tool(
        backend,
        """
        import os, time
        def run(marker):
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execv("/usr/bin/sleep", ["sleep", marker])
                os._exit(0)
            os.wait()
            for _ in range(100):
                for pid in os.listdir("/proc"):
                    if pid.isdigit():
                        try:
                            if marker.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                                return "orphan running"
                        except OSError:
                            pass
                time.sleep(0.02)
            return "orphan never started"
        """,
        {"marker": marker},
    )
    assert result.reason is ExitReason.OK, result
    assert result.output == "orphan running"
    assert await wait_until_gone(lambda: host_processes_matching(marker)) == []


async def test_parent_environment_is_not_visible(backend: SandboxBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "canary-" + secrets.token_hex(12)
    monkeypatch.setenv("CREWCANVAS_TEST_SECRET", canary)
    result = await run_tool(
        backend,
        """
        import os
        def run():
            seen = {"environ": dict(os.environ)}
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        seen[pid] = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
                    except OSError as exc:
                        seen[pid] = type(exc).__name__
            return seen
        """,
    )
    assert result.reason is ExitReason.OK, result
    assert canary not in json.dumps(result.output)
    assert "CREWCANVAS_TEST_SECRET" not in result.output["environ"]  # type: ignore[index,operator]


async def test_host_working_directory_and_home_are_not_visible(
    backend: SandboxBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_dir = tmp_path / f"host-cwd-{secrets.token_hex(6)}"
    host_dir.mkdir()
    monkeypatch.chdir(host_dir)
    monkeypatch.setenv("HOME", str(host_dir))
    monkeypatch.setenv("OLDPWD", str(host_dir))
    result = await run_tool(
        backend,
        """
        import os
        def run():
            seen = {"self": dict(os.environ)}
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        raw = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
                    except OSError as exc:
                        seen[pid] = type(exc).__name__
                        continue
                    seen[pid] = dict(item.split("=", 1) for item in raw.split("\\0") if "=" in item)
            return seen
        """,
    )
    assert result.reason is ExitReason.OK, result
    seen = result.output
    assert isinstance(seen, dict)
    assert host_dir.name not in json.dumps(seen)
    assert isinstance(seen["1"], dict), f"the sandbox's pid 1 environment was unreadable: {seen['1']}"
    # Only what the sandbox or its launcher set; PWD is the sandbox's own work dir, where the tool starts.
    allowed = {*job.run_env(ToolRun(source="")).items(), ("PWD", job.WORK_DIR), *LAUNCHER_ENV.items()}
    for pid, environment in seen.items():
        if isinstance(environment, dict):
            unexpected = {key: value for key, value in environment.items() if (key, value) not in allowed}
            assert unexpected == {}, f"pid {pid} sees variables the sandbox did not set"


async def test_dangerous_syscalls_are_refused(backend: SandboxBackend) -> None:
    if platform.machine() != "x86_64":
        pytest.skip(f"syscall numbers in this test are for x86_64, not {platform.machine()}")
    result = await run_tool(
        backend,
        """
        import ctypes, socket
        def run():
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            def call(number, *args):
                ctypes.set_errno(0)
                return 0 if libc.syscall(number, *args) >= 0 else ctypes.get_errno()
            params = ctypes.create_string_buffer(256)
            outcome = {
                "mount": call(165, b"none", b"/work", b"tmpfs", 0, None),
                "unshare_user": call(272, 0x10000000),
                "unshare_net": call(272, 0x40000000),
                "setns": call(308, 0, 0),
                "ptrace_traceme": call(101, 0, 0, 0, 0),
                "io_uring_setup": call(425, 8, params),
                "bpf": call(321, 0, params, 64),
                "keyctl": call(250, 0, 0, 0, 0),
                "clone3": call(435, params, 88),
            }
            for name, family in (("socket_vsock", 40), ("socket_netlink", 16), ("socket_packet", 17)):
                try:
                    socket.socket(family, socket.SOCK_STREAM if family == 40 else socket.SOCK_RAW).close()
                    outcome[name] = 0
                except OSError as exc:
                    outcome[name] = exc.errno
            return outcome
        """,
    )
    assert result.reason is ExitReason.OK, result
    outcome = result.output
    assert isinstance(outcome, dict)
    for name in ("mount", "unshare_user", "unshare_net", "setns", "ptrace_traceme", "io_uring_setup", "bpf", "keyctl"):
        assert outcome[name] == errno.EPERM, f"{name}: errno {outcome[name]}"
    assert outcome["clone3"] == errno.ENOSYS
    # bwrap's filter says "unsupported family"; runsc's OCI seccomp answers EPERM for every rule.
    families_errno = errno.EPERM if backend.name == "gvisor" else errno.EAFNOSUPPORT
    for name in ("socket_vsock", "socket_netlink", "socket_packet"):
        assert outcome[name] == families_errno, f"{name}: errno {outcome[name]}"


async def test_threads_and_subprocesses_still_work(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        import subprocess, threading
        def run():
            seen = []
            threads = [threading.Thread(target=seen.append, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            echoed = subprocess.run(["/bin/echo", "child"], capture_output=True, text=True, check=True).stdout
            return {"threads": sorted(seen), "child": echoed.strip()}
        """,
    )
    assert result.reason is ExitReason.OK, result
    assert result.output == {"threads": list(range(8)), "child": "child"}


async def test_planted_symlinks_cannot_reach_the_host(backend: SandboxBackend, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    # World-writable on the host: only isolation keeps the tool from changing it.
    os.chmod(tmp_path, 0o755)  # noqa: S103 - deliberately open, see above
    os.chmod(victim, 0o666)  # noqa: S103 - deliberately open, see above
    result = await run_tool(
        backend,
        """
        import os
        def run(victim):
            out = {}
            links = {"victim": victim, "shadow": "/etc/shadow", "input": "/sandbox/job/input.json",
                     "harness": "/sandbox/harness.py", "hostproc": "/proc/1/root/etc/shadow"}
            for name, target in links.items():
                link = f"/work/{name}-link"
                os.symlink(target, link)
                try:
                    with open(link, "a") as handle:
                        handle.write("pwned")
                    out[name + "_write"] = "written"
                except OSError as exc:
                    out[name + "_write"] = "refused"
            for name in ("input.json", "config.json", "tool.py"):
                try:
                    os.remove(f"/sandbox/job/{name}")
                    os.symlink(victim, f"/sandbox/job/{name}")
                    out["replace_" + name] = "replaced"
                except OSError:
                    out["replace_" + name] = "refused"
            # Point the sandbox's /tmp at the victim's host directory: it only
            # ever resolves inside the sandbox's own mount namespace.
            os.rmdir("/work/.tmp")
            os.symlink(os.path.dirname(victim), "/work/.tmp")
            try:
                with open("/tmp/victim.txt") as handle:
                    out["tmp_redirect_read"] = handle.read()
            except OSError:
                out["tmp_redirect_read"] = "refused"
            return out
        """,
        {"victim": str(victim)},
    )
    assert result.reason is ExitReason.OK, result
    assert victim.read_text() == "original"
    outcome = result.output
    assert isinstance(outcome, dict)
    assert outcome.pop("tmp_redirect_read") != "original"
    assert all(value == "refused" for value in outcome.values()), outcome


async def test_twenty_concurrent_runs_leave_nothing_behind(backend: SandboxBackend) -> None:
    mounts_before = mount_count()
    groups = getattr(backend, "cgroups", None)
    source = """
        import os, subprocess, time
        def run(index):
            subprocess.Popen(["/usr/bin/sleep", "60"], start_new_session=True)
            time.sleep(0.2)
            return index * 2
    """
    runs = [
        ToolRun(source=textwrap.dedent(source), input={"index": i}, limits=Limits(wall_seconds=60)) for i in range(20)
    ]
    results = await asyncio.gather(*(backend.run(run) for run in runs))
    assert [r.reason for r in results] == [ExitReason.OK] * 20, [r for r in results if not r.ok]
    assert [r.output for r in results] == [i * 2 for i in range(20)]
    assert await wait_until_gone(sandbox_processes) == []
    assert mount_count() == mounts_before
    if groups is not None and groups.version is not None:
        assert groups.run_groups() == []
    if isinstance(backend, GVisorBackend):
        # Bundles and runsc container state are per run; only the shared rootfs skeleton
        # and the lock that marks the work root as alive stay.
        assert sorted(path.name for path in backend.work_root.iterdir()) == [".owner.lock", "rootfs", "state"]
        assert list((backend.work_root / "state").iterdir()) == []
