"""Cgroup discovery for v1 (hybrid), v2 and neither, and a real per-run group on this host.

Discovery reads /proc/self/mountinfo and /proc/self/cgroup; the tests hand it
those texts with mount points in a temporary directory, so the v2 path is
checked on this hybrid v1 machine too. Control files are plain files there.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest

from sandbox.cgroups import PARENT_NAME, CgroupError, CgroupLimits, Cgroups, join_argv

LIMITS = CgroupLimits(memory_bytes=300 * 1024 * 1024, pids=40, cpu_cores=0.5)


def mountinfo_line(mount_id: int, mount_point: Path, fstype: str, options: str, root: str = "/") -> str:
    return f"{mount_id} 1 0:{mount_id} {root} {mount_point} rw,relatime - {fstype} {fstype} {options}"


def hybrid_host(tmp_path: Path) -> tuple[str, str]:
    lines = []
    for index, controller in enumerate(("cpu", "memory", "pids", "devices")):
        (tmp_path / controller).mkdir()
        lines.append(mountinfo_line(30 + index, tmp_path / controller, "cgroup", f"rw,{controller}"))
    (tmp_path / "unified").mkdir()
    lines.append(mountinfo_line(40, tmp_path / "unified", "cgroup2", "rw"))
    self_cgroup = "4:pids:/\n3:memory:/app/worker\n2:cpu:/\n1:devices:/\n0::/\n"
    return "\n".join(lines), self_cgroup


def v2_host(tmp_path: Path, parent_controllers: str) -> tuple[str, str]:
    own = tmp_path / "app.slice"
    own.mkdir()
    (own / "cgroup.controllers").write_text("cpu io memory pids\n")
    # A group created below the app gets what the app's subtree_control hands down;
    # here the fake group's controllers file is written up front instead.
    (own / PARENT_NAME).mkdir()
    (own / PARENT_NAME / "cgroup.controllers").write_text(parent_controllers)
    return mountinfo_line(30, tmp_path, "cgroup2", "rw,nsdelegate"), "0::/app.slice\n"


def test_hybrid_host_uses_v1_below_our_own_groups(tmp_path: Path) -> None:
    mountinfo, self_cgroup = hybrid_host(tmp_path)
    cgroups = Cgroups.discover(mountinfo=mountinfo, self_cgroup=self_cgroup)
    assert cgroups.version == "v1", cgroups.unavailable
    assert cgroups.parents == {
        "cpu": tmp_path / "cpu" / PARENT_NAME,
        "memory": tmp_path / "memory" / "app" / "worker" / PARENT_NAME,
        "pids": tmp_path / "pids" / PARENT_NAME,
    }
    group = cgroups.create("run-1", LIMITS)
    memory = group.dirs["memory"]
    assert (memory / "memory.limit_in_bytes").read_text() == str(LIMITS.memory_bytes)
    assert (group.dirs["pids"] / "pids.max").read_text() == "40"
    assert (group.dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "50000"
    assert (group.dirs["cpu"] / "cpu.cfs_period_us").read_text() == "100000"
    assert sorted(group.procs_files) == sorted(str(path / "cgroup.procs") for path in group.dirs.values())
    assert cgroups.run_groups() != []


def test_v2_host_enables_controllers_for_run_groups(tmp_path: Path) -> None:
    mountinfo, self_cgroup = v2_host(tmp_path, "cpu memory pids\n")
    cgroups = Cgroups.discover(mountinfo=mountinfo, self_cgroup=self_cgroup)
    assert cgroups.version == "v2", cgroups.unavailable
    parent = tmp_path / "app.slice" / PARENT_NAME
    assert cgroups.parents == {"unified": parent}
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    group_dir = parent / "run-3"
    group = cgroups.create("run-3", LIMITS)
    assert group.dirs == {"unified": group_dir}
    assert (group_dir / "memory.max").read_text() == str(LIMITS.memory_bytes)
    assert (group_dir / "pids.max").read_text() == "40"
    assert group.procs_files == [str(group_dir / "cgroup.procs")]


def test_v2_without_delegated_controllers_is_reported(tmp_path: Path) -> None:
    mountinfo, self_cgroup = v2_host(tmp_path, "cpu\n")
    cgroups = Cgroups.discover(mountinfo=mountinfo, self_cgroup=self_cgroup)
    assert cgroups.version is None
    assert "memory and pids" in (cgroups.unavailable or "")
    assert "Delegate=yes" in (cgroups.unavailable or "")
    with pytest.raises(CgroupError, match="memory and pids"):
        cgroups.create("run-4", LIMITS)


def test_no_cgroup_hierarchy_is_reported(tmp_path: Path) -> None:
    mountinfo = mountinfo_line(20, tmp_path, "ext4", "rw")
    cgroups = Cgroups.discover(mountinfo=mountinfo, self_cgroup="0::/\n")
    assert cgroups.version is None
    assert "no cgroup hierarchy" in (cgroups.unavailable or "")


def test_explicit_parent_is_used_in_every_hierarchy(tmp_path: Path) -> None:
    mountinfo, self_cgroup = hybrid_host(tmp_path)
    cgroups = Cgroups.discover(parent="/delegated/tools", mountinfo=mountinfo, self_cgroup=self_cgroup)
    assert cgroups.parents["memory"] == tmp_path / "memory" / "delegated" / "tools"
    assert cgroups.parents["pids"] == tmp_path / "pids" / "delegated" / "tools"


def test_real_group_limits_tasks_and_is_removed() -> None:
    cgroups = Cgroups.discover()
    if cgroups.version is None:
        pytest.skip(f"cgroups unavailable here: {cgroups.unavailable}")
    group = cgroups.create("cgroup-selftest", CgroupLimits(memory_bytes=64 * 1024 * 1024, pids=6, cpu_cores=1))
    try:
        script = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 >/dev/null 2>&1 & done; wait"
        process = subprocess.Popen(join_argv(group.procs_files, ["/bin/sh", "-c", script]), stderr=subprocess.PIPE)
        stderr = b""
        with contextlib.suppress(subprocess.TimeoutExpired):
            _, stderr = process.communicate(timeout=1)
        # Ten background sleeps asked for, at most six tasks allowed: fork fails.
        assert 1 <= len(group.pids()) <= 6
        assert b"fork" in stderr.lower(), stderr
        group.kill_all()
        assert group.pids() == []
        process.wait(timeout=5)
    finally:
        group.remove()
    assert all(not path.exists() for path in group.dirs.values())
