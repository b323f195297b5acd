"""A seccomp-BPF filter: the syscalls a model never needs fail with EPERM.

Denied: creating sockets (every family: a Unix socket reaches host services such as PostgreSQL or
Docker through the file system, which a network namespace does not cover), new namespaces
(``unshare``, ``setns``, ``clone`` with namespace flags), mounts, ``chroot``, ``ptrace``, ``bpf``,
``perf_event_open``, keyrings, ``userfaultfd``, io_uring (its own socket/open operations bypass the
syscall filter) and kernel modules. ``clone3`` answers ENOSYS, because its flags sit in memory the
filter cannot read; libc then falls back to ``clone``, whose flags it can. Other ABIs (i386, x32)
are killed outright. Needs ``no_new_privs`` or CAP_SYS_ADMIN, and is inherited by every child.
"""

from __future__ import annotations

import ctypes
import errno
import struct

from modelshield.supplychain.sandbox.kernel import (
    ARCH,
    NAMESPACE_FLAGS,
    PR_SET_SECCOMP,
    SECCOMP_MODE_FILTER,
    prctl_pointer,
    syscall_number,
)

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_BIT = 0x40000000

_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JSET_K = 0x45
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000

_NR_OFFSET, _ARCH_OFFSET, _ARG0_OFFSET = 0, 4, 16

DENIED = (
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "ptrace",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsmount",
)


def available() -> bool:
    """Whether a filter can be built for this architecture."""
    return ARCH in _AUDIT_ARCH


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(*, deny_sockets: bool) -> bytes:
    """The BPF program (struct sock_filter array) for this architecture."""
    if not available():
        raise OSError(errno.ENOSYS, f"no seccomp filter for {ARCH}")
    eperm, enosys = _RET_ERRNO | errno.EPERM, _RET_ERRNO | errno.ENOSYS
    prog = [
        _insn(_LD_W_ABS, _ARCH_OFFSET),
        _insn(_JEQ_K, _AUDIT_ARCH[ARCH], jt=1),
        _insn(_RET_K, _RET_KILL_PROCESS),
        _insn(_LD_W_ABS, _NR_OFFSET),
    ]
    if ARCH == "x86_64":
        prog += [_insn(_JSET_K, _X32_BIT, jf=1), _insn(_RET_K, _RET_KILL_PROCESS)]
    denied = [*DENIED, "socket"] if deny_sockets else list(DENIED)
    for name in denied:
        prog += [_insn(_JEQ_K, syscall_number(name) or 0, jf=1), _insn(_RET_K, eperm)]
    prog += [_insn(_JEQ_K, syscall_number("clone3") or 0, jf=1), _insn(_RET_K, enosys)]
    # clone: refuse namespace flags in its first argument (the low 32 bits hold every CLONE_NEW*; the low
    # byte is the exit signal, and CLONE_NEWTIME there only works through clone3 or unshare).
    prog += [
        _insn(_JEQ_K, syscall_number("clone") or 0, jf=3),
        _insn(_LD_W_ABS, _ARG0_OFFSET),
        _insn(_JSET_K, NAMESPACE_FLAGS & ~0xFF, jf=1),
        _insn(_RET_K, eperm),
        _insn(_RET_K, _RET_ALLOW),
    ]
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(*, deny_sockets: bool) -> None:
    """Load the filter into this process (irrevocable; inherited across fork and exec)."""
    program = build_filter(deny_sockets=deny_sockets)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    prctl_pointer(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog))
