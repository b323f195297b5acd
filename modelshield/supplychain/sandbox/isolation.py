"""Lock a worker process in before it runs untrusted code; report every layer, applied or not.

Layers, in the order they are applied (each later one also holds if an earlier one fell through):

1. namespaces: network (only a down loopback), mount, PID, IPC, UTS; as root directly, otherwise
   inside a new user namespace;
2. a file-system view: a fresh read-only root holding only the system (not /etc: a handful of its
   files), Python and model paths the worker needs (bound read-only at their own paths), a private /proc, four /dev nodes, and the
   scratch folder as a size-capped tmpfs, the only writable place;
3. resource limits (address space, CPU seconds, open files, file size, processes);
4. privilege drop: uid/gid 65534 (as root), every capability and the bounding set gone,
   ``no_new_privs``;
5. Landlock: writes only beneath scratch, reads only beneath the view's paths, no TCP (ABI 4+),
   no abstract Unix sockets or signals leaving the sandbox (ABI 6+);
6. seccomp: no socket creation, namespaces, mounts, ptrace, bpf, io_uring, kernel modules.

Network isolation holds when the network namespace or the seccomp socket ban is active; file-system
isolation when the read-only view or Landlock is. ``isolate`` raises ``IsolationUnavailable``
otherwise, unless the policy allows the network explicitly.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from modelshield.supplychain.sandbox import kernel, landlock, seccomp

NOBODY = 65534
# Of /etc only what the dynamic linker, libc and Python read: /etc as a whole may hold keys and configs.
SYSTEM_PATHS = (
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/sys/devices/system/cpu",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
)
DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
_NS_FLAGS = kernel.CLONE_NEWNS | kernel.CLONE_NEWPID | kernel.CLONE_NEWIPC | kernel.CLONE_NEWUTS


class IsolationUnavailable(Exception):
    """A layer the policy requires could not be applied on this machine."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for the worker: bytes, seconds, counts. ``timeout`` is wall-clock per call."""

    memory: int = 4 << 30
    cpu_seconds: int = 600
    open_files: int = 256
    file_size: int = 256 << 20
    processes: int = 64
    timeout: float = 30.0
    startup_timeout: float = 120.0


@dataclass(frozen=True)
class Policy:
    """Where the worker may read and write, and which layers to use (all by default)."""

    scratch: str
    new_root: str
    readable: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    allow_network: bool = False
    namespaces: bool = True
    landlock: bool = True
    seccomp: bool = True

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Policy:
        values = dict(data)
        values["limits"] = Limits(**values["limits"])  # type: ignore[arg-type]
        values["readable"] = tuple(values["readable"])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


@dataclass
class Layer:
    """One isolation layer: whether it is in force and how (or why not)."""

    name: str
    active: bool
    detail: str


class Report:
    """The layers applied to one worker, in order."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []

    def add(self, name: str, active: bool, detail: str) -> bool:
        self.layers.append(Layer(name, active, detail))
        return active

    def active(self, name: str) -> bool:
        return any(layer.active for layer in self.layers if layer.name == name)


def python_paths() -> list[str]:
    """What this interpreter reads: its prefixes, every sys.path folder, the modelshield package."""
    import modelshield

    paths = [sys.base_prefix, sys.prefix, *modelshield.__path__]
    paths += [p for p in sys.path if p and os.path.isdir(p)]
    return paths


def view_paths(extra: tuple[str, ...]) -> list[str]:
    """Existing paths to show read-only in the view: real paths too, nested ones folded into their parents."""
    wanted: set[str] = set()
    for p in (*SYSTEM_PATHS, *python_paths(), *extra):
        if os.path.lexists(p):
            wanted.add(os.path.abspath(p))
            wanted.add(os.path.realpath(p))
    kept: list[str] = []
    for p in sorted(wanted):
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return kept


def _enter_namespaces(policy: Policy, report: Report) -> tuple[bool, bool]:
    """Unshare namespaces; returns (namespaces entered, inside a new user namespace)."""
    net = 0 if policy.allow_network else kernel.CLONE_NEWNET
    if not policy.namespaces:
        report.add("namespaces", False, "disabled by the policy")
        return False, False
    uid, gid = os.getuid(), os.getgid()
    try:
        kernel.unshare(_NS_FLAGS | net)
        detail = "as root"
        userns = False
    except OSError as first:
        try:
            kernel.unshare(kernel.CLONE_NEWUSER | _NS_FLAGS | net)
        except OSError as second:
            report.add("namespaces", False, f"refused ({first.strerror}; in a user namespace: {second.strerror})")
            return False, False
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
        detail = f"inside a user namespace (uid {uid} is root there, with no power outside)"
        userns = True
    report.add("namespaces", True, f"mount, PID, IPC, UTS {detail}")
    if net:
        report.add("network namespace", True, "own network namespace: only a loopback interface, left down")
    else:
        report.add("network namespace", False, "NETWORK ALLOWED by explicit opt-out (--allow-network)")
    return True, userns


def _supervise(child: int, keep_fds: tuple[int, ...]) -> None:
    """In the namespace's parent: hold no pipe ends, wait for the child (PID 1 inside), exit as it did."""
    for fd in keep_fds:
        os.close(fd)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGKILL))
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


def _bind(source: str, root: str) -> None:
    """Bind ``source`` read-only at the same path under ``root`` (a symlink is recreated, not followed)."""
    target = root + source
    if os.path.islink(source):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(os.readlink(source), target)
        return
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Path(target).touch()
    kernel.mount(source, target, None, kernel.MS_BIND | kernel.MS_REC)


def _build_view(policy: Policy, report: Report, sandbox_uid: int) -> None:
    """Pivot into a tmpfs root holding only the readable paths, make it read-only, mount the scratch tmpfs."""
    root = policy.new_root
    kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE)
    kernel.mount("tmpfs", root, "tmpfs", kernel.MS_NOSUID | kernel.MS_NODEV, "size=1m,mode=0755")
    for path in view_paths(policy.readable):
        _bind(path, root)
    for dev in DEVICES:
        if os.path.exists(dev):
            _bind(dev, root)
    os.makedirs(root + "/proc")
    kernel.mount("proc", root + "/proc", "proc", kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOEXEC)
    os.makedirs(root + policy.scratch, exist_ok=True)
    os.chdir(root)
    kernel.pivot_root(".", ".")
    kernel.umount_detached(".")
    os.chdir("/")
    # nodev stays off: the four /dev binds must open; the tmpfs root itself is nodev, so no other node can appear.
    kernel.mount_setattr_recursive("/", kernel.MOUNT_ATTR_RDONLY | kernel.MOUNT_ATTR_NOSUID)
    size = policy.limits.file_size
    kernel.mount(
        "tmpfs",
        policy.scratch,
        "tmpfs",
        kernel.MS_NOSUID | kernel.MS_NODEV,
        f"size={size},mode=0700,uid={sandbox_uid},gid={sandbox_uid}",
    )
    readonly = os.statvfs("/").f_flag & os.ST_RDONLY
    report.add(
        "read-only view",
        bool(readonly),
        "private root holding only system, Python and model paths, all read-only; private /proc",
    )
    report.add("scratch", True, f"{policy.scratch}: tmpfs of {size >> 20} MiB, the only writable place")


def _set_limits(limits: Limits, report: Report) -> None:
    pairs = {
        resource.RLIMIT_AS: (limits.memory, limits.memory),
        resource.RLIMIT_CPU: (limits.cpu_seconds, limits.cpu_seconds + 1),
        resource.RLIMIT_NOFILE: (limits.open_files, limits.open_files),
        resource.RLIMIT_FSIZE: (limits.file_size, limits.file_size),
        resource.RLIMIT_NPROC: (limits.processes, limits.processes),
        resource.RLIMIT_CORE: (0, 0),
    }
    for which, value in pairs.items():
        resource.setrlimit(which, value)
    # As PID 1 of its namespace the worker would ignore SIGXCPU's default action; exit with the signal's code instead.
    signal.signal(signal.SIGXCPU, lambda *_: os._exit(128 + signal.SIGXCPU))
    report.add(
        "resource limits",
        True,
        f"memory {limits.memory >> 20} MiB, CPU {limits.cpu_seconds} s, {limits.open_files} files, "
        f"file size {limits.file_size >> 20} MiB, {limits.processes} processes, "
        f"wall clock {limits.timeout:g} s per call",
    )


def _drop_privileges(real_root: bool, report: Report) -> None:
    """Become nobody (when really root), shed every capability, and forbid gaining any through exec."""
    if os.getuid() == 0:
        kernel.drop_bounding_set()
    if real_root:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
    kernel.clear_capabilities()
    kernel.prctl(kernel.PR_SET_NO_NEW_PRIVS, 1)
    caps = kernel.capability_sets()
    no_caps = caps["CapEff"] == 0 and caps["CapPrm"] == 0 and caps["CapBnd"] == 0
    who = f"uid/gid {os.getuid()}/{os.getgid()}" + (
        " (root of its own user namespace only)" if os.getuid() == 0 else ""
    )
    report.add("privileges", no_caps, f"{who}, no capabilities, no_new_privs")


def _apply_landlock(policy: Policy, report: Report, readable: list[str]) -> None:
    if not policy.landlock:
        report.add("landlock", False, "disabled by the policy")
        return
    try:
        abi = landlock.restrict([policy.scratch], readable, deny_tcp=not policy.allow_network)
    except OSError as e:
        report.add("landlock", False, f"unavailable ({e.strerror})")
        return
    extra = ", no TCP bind/connect" if abi >= 4 and not policy.allow_network else ""
    scoped = ", abstract Unix sockets and signals scoped to the sandbox" if abi >= 6 else ""
    report.add("landlock", True, f"ABI {abi}: writes only in scratch, reads only in the view{extra}{scoped}")


def _apply_seccomp(policy: Policy, report: Report) -> None:
    if not policy.seccomp:
        report.add("seccomp", False, "disabled by the policy")
        return
    try:
        seccomp.install(deny_sockets=not policy.allow_network)
    except OSError as e:
        report.add("seccomp", False, f"unavailable ({e.strerror})")
        return
    sockets = "" if policy.allow_network else "socket creation, "
    report.add("seccomp", True, f"{sockets}namespaces, mounts, ptrace, bpf, io_uring, keyrings, modules refused")


def isolate(policy: Policy, keep_fds: tuple[int, ...]) -> Report:
    """Apply every layer to this process (forking once for the PID namespace); returns in the sandboxed process."""
    report = Report()
    real_root = os.getuid() == 0
    in_namespaces, userns = _enter_namespaces(policy, report)
    real_root = real_root and not userns
    if in_namespaces:
        child = os.fork()
        if child:
            _supervise(child, keep_fds)
        kernel.prctl(kernel.PR_SET_PDEATHSIG, signal.SIGKILL)
        try:
            _build_view(policy, report, NOBODY if real_root else 0)
        except OSError as e:
            report.add("read-only view", False, f"could not be built ({e})")
    else:
        report.add("read-only view", False, "no mount namespace")
    readable = [*view_paths(policy.readable), *DEVICES, "/proc", policy.scratch]
    _set_limits(policy.limits, report)
    _drop_privileges(real_root, report)
    _apply_landlock(policy, report, readable)
    _apply_seccomp(policy, report)
    os.chdir(policy.scratch)
    _require(policy, report)
    return report


def _require(policy: Policy, report: Report) -> None:
    """Refuse to go on without network and file-system isolation (the network unless explicitly allowed)."""

    def why(*names: str) -> str:
        return "; ".join(f"{layer.name}: {layer.detail}" for layer in report.layers if layer.name in names)

    if not policy.allow_network and not (report.active("network namespace") or report.active("seccomp")):
        raise IsolationUnavailable(f"no network isolation here ({why('namespaces', 'seccomp')})")
    if not (report.active("read-only view") or report.active("landlock")):
        raise IsolationUnavailable(f"no file-system isolation here ({why('read-only view', 'landlock')})")
