"""Landlock: an unprivileged, kernel-enforced allow-list of where this process may read, write and connect.

Works without root (needs ``no_new_privs``), so it is the file-system layer that remains inside
containers where mount namespaces are refused. Writes are refused everywhere except beneath the
scratch folder and on /dev/null; reads (and exec) only beneath the paths the worker needs: the
system, Python and the model. From ABI 4 on, TCP bind and connect are refused
too; from ABI 6 on, abstract Unix sockets and signals outside the sandbox are scoped away.
See https://docs.kernel.org/userspace-api/landlock.html.
"""

from __future__ import annotations

import ctypes
import errno
import os

from modelshield.supplychain.sandbox.kernel import syscall

_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

WRITE_FILE = 1 << 1
_WRITE_ACCESS_BY_ABI = {
    1: WRITE_FILE | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12),
    2: 1 << 13,  # REFER: linking/renaming across folders
    3: 1 << 14,  # TRUNCATE
}
_TRUNCATE = 1 << 14
_EXECUTE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 2, 1 << 3
_FILE_ONLY = _EXECUTE | WRITE_FILE | _READ_FILE | _TRUNCATE | (1 << 15)  # rights a rule on a non-folder may hold
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is absent or disabled."""
    try:
        return syscall("landlock_create_ruleset", None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except OSError:
        return 0


def _write_access(abi: int) -> int:
    return sum(bits for version, bits in _WRITE_ACCESS_BY_ABI.items() if version <= abi)


def restrict(writable: list[str], readable: list[str], *, deny_tcp: bool) -> int:
    """Allow writes only beneath ``writable``, reads only beneath ``readable`` (+ writable), no TCP when ``deny_tcp``.

    Returns the ABI version used. Paths that do not exist are skipped.
    """
    abi = abi_version()
    if abi < 1:
        raise OSError(errno.EOPNOTSUPP, "Landlock is not available on this kernel")
    read = _EXECUTE | _READ_FILE | _READ_DIR
    access = _write_access(abi) | read
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # the struct grew with the ABI
    attr = _RulesetAttr(
        access,
        (_NET_BIND_TCP | _NET_CONNECT_TCP) if deny_tcp and abi >= 4 else 0,
        (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0,
    )
    ruleset = syscall("landlock_create_ruleset", ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        rules = [(folder, access) for folder in writable] + [(path, read) for path in readable]
        rules.append(("/dev/null", read | WRITE_FILE | (_TRUNCATE if abi >= 3 else 0)))
        for path, allowed in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except (FileNotFoundError, PermissionError):  # absent, or unreachable for this uid anyway
                continue
            try:
                if not os.path.isdir(f"/proc/self/fd/{fd}"):
                    allowed &= _FILE_ONLY
                rule = _PathBeneathAttr(allowed, fd)
                syscall(
                    "landlock_add_rule",
                    ctypes.c_int(ruleset),
                    ctypes.c_int(_RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                )
            finally:
                os.close(fd)
        syscall("landlock_restrict_self", ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    return abi
