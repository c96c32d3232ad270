"""The syscall filter for sandboxed tools, as data, rendered for each backend.

One rule list, two renderings: classic BPF compiled by libseccomp (through
pyseccomp) for bubblewrap's ``--seccomp FD``, and the OCI ``linux.seccomp``
document that gVisor enforces inside its own kernel with ``--oci-seccomp``.

It is a deny list on top of what namespaces, dropped capabilities and
no_new_privs already forbid: it closes kernel surfaces that are reachable
without privileges (io_uring, bpf, user namespaces, keyrings, AF_VSOCK which is
not network-namespaced in Firecracker VMs). Denials return an errno rather than
killing, so tools see a readable ``PermissionError``. Foreign architectures
(i386 ``int 0x80``, x32) are killed by libseccomp's bad-arch action, so a deny
list cannot be bypassed through another syscall table.
"""

from __future__ import annotations

import errno
import functools
import os
import platform
from dataclasses import dataclass
from typing import Any, Literal

from sandbox.base import SandboxUnavailable

# Namespace flags for clone(2); CLONE_NEWTIME shares its bit with CSIGNAL's range
# on clone (only usable via clone3/unshare), which clone3 -> ENOSYS covers.
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET)

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
TIOCSTI, TIOCLINUX = 0x5412, 0x541C

#: Syscalls refused outright with EPERM.
DENIED_SYSCALLS = (
    # mounts and namespaces: escaping or reshaping the sandbox's view
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    # debugging other processes, reading their memory
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # large kernel attack surfaces reachable without privileges
    "bpf", "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd", "perf_event_open",
    "keyctl", "add_key", "request_key",
    # host administration; capabilities already block these, the filter says it twice
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "reboot", "acct",
    "quotactl", "syslog", "vhangup", "iopl", "ioperm", "uselib", "lookup_dcookie",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
)  # fmt: skip


@dataclass(frozen=True)
class ArgMatch:
    """One comparison on a syscall argument (all comparisons of a rule must hold)."""

    index: int
    op: Literal["eq", "gt", "masked_eq"]
    value: int
    mask: int = 0


@dataclass(frozen=True)
class Rule:
    """Return ``errno`` from ``syscall`` when every ``args`` comparison holds."""

    syscall: str
    errno: int
    args: tuple[ArgMatch, ...] = ()


def default_rules() -> tuple[Rule, ...]:
    """The sandbox filter as plain data."""
    rules = [Rule(name, errno.EPERM) for name in DENIED_SYSCALLS]
    # glibc falls back to clone(2) on ENOSYS, whose flags a filter can inspect;
    # clone3 passes its flags in memory, out of a filter's reach.
    rules.append(Rule("clone3", errno.ENOSYS))
    rules += [Rule("clone", errno.EPERM, (ArgMatch(0, "masked_eq", flag, flag),)) for flag in NAMESPACE_FLAGS]
    # Only local and IP sockets; everything else (AF_VSOCK, AF_NETLINK, AF_PACKET,
    # AF_ALG, ...) looks like an unsupported family to the tool.
    allowed = {AF_UNIX, AF_INET, AF_INET6}
    for call in ("socket", "socketpair"):
        rules.append(Rule(call, errno.EAFNOSUPPORT, (ArgMatch(0, "gt", AF_INET6),)))
        rules += [
            Rule(call, errno.EAFNOSUPPORT, (ArgMatch(0, "eq", family),))
            for family in range(AF_INET6)
            if family not in allowed
        ]
    # Faking keyboard input into a terminal; --new-session already detaches one.
    rules += [
        Rule("ioctl", errno.EPERM, (ArgMatch(1, "masked_eq", request, 0xFFFFFFFF),)) for request in (TIOCSTI, TIOCLINUX)
    ]
    return tuple(rules)


def _pyseccomp() -> Any:
    try:
        import pyseccomp
    except (ImportError, RuntimeError, OSError) as exc:
        # pyseccomp raises RuntimeError at import when libseccomp.so is missing.
        raise SandboxUnavailable(
            f"cannot build the seccomp filter ({exc}); install the apt package libseccomp2"
        ) from exc
    return pyseccomp


@functools.cache
def compile_bpf(rules: tuple[Rule, ...] | None = None) -> bytes:
    """Classic BPF for the native architecture, as bubblewrap's ``--seccomp`` expects."""
    scmp = _pyseccomp()
    flt = scmp.SyscallFilter(scmp.ALLOW)
    ops = {"eq": scmp.EQ, "gt": scmp.GT, "masked_eq": scmp.MASKED_EQ}
    for rule in rules if rules is not None else default_rules():
        try:
            number = scmp.resolve_syscall(scmp.Arch.NATIVE, rule.syscall)
        except (OSError, ValueError):
            number = -1
        if number < 0:
            continue  # not on this architecture (iopl on arm64, ...): nothing to deny
        args = []
        for match in rule.args:
            # libseccomp's masked_eq takes (mask, value); eq/gt take the value only.
            if match.op == "masked_eq":
                args.append(scmp.Arg(match.index, ops[match.op], match.mask, match.value))
            else:
                args.append(scmp.Arg(match.index, ops[match.op], match.value))
        flt.add_rule(scmp.ERRNO(rule.errno), rule.syscall, *args)
    # A memfd rather than a pipe: the program could outgrow a pipe buffer.
    with open(os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC), "w+b") as sink:
        flt.export_bpf(sink)
        sink.seek(0)
        return sink.read()


_OCI_ARCHES = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
_OCI_OPS = {"eq": "SCMP_CMP_EQ", "gt": "SCMP_CMP_GT", "masked_eq": "SCMP_CMP_MASKED_EQ"}


def to_oci(rules: tuple[Rule, ...] | None = None) -> dict[str, Any]:
    """The same filter as an OCI runtime-spec ``linux.seccomp`` object.

    ENOSYS rules are left out: gVisor (runsc 2022) answers every OCI seccomp
    denial with EPERM whatever ``errnoRet`` says, and EPERM from clone3 would
    stop glibc's fallback to clone, so threads could not start. The Sentry
    does not implement clone3 and returns ENOSYS itself.
    """
    entries: list[dict[str, Any]] = []
    for rule in rules if rules is not None else default_rules():
        if rule.errno == errno.ENOSYS:
            continue
        entry: dict[str, Any] = {"names": [rule.syscall], "action": "SCMP_ACT_ERRNO", "errnoRet": rule.errno}
        if rule.args:
            entry["args"] = [
                # OCI writes masked_eq as value=mask, valueTwo=expected, like libseccomp.
                {"index": m.index, "value": m.mask, "valueTwo": m.value, "op": _OCI_OPS[m.op]}
                if m.op == "masked_eq"
                else {"index": m.index, "value": m.value, "op": _OCI_OPS[m.op]}
                for m in rule.args
            ]
        entries.append(entry)
    architecture = _OCI_ARCHES.get(platform.machine(), "SCMP_ARCH_X86_64")
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [architecture], "syscalls": entries}
