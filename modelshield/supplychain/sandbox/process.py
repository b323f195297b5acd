"""One worker process seen from the parent: spawn it locked in, exchange frames with deadlines, kill and reap it.

Any failure of the worker (timeout, death, malformed frame) kills it and becomes a one-line
``SandboxError`` that says why; the pipes are non-blocking on this side, so no call waits past
its deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelshield.core.errors import InputError
from modelshield.supplychain.sandbox import protocol
from modelshield.supplychain.sandbox.errors import (
    SandboxCrashError,
    SandboxError,
    SandboxLimitError,
    SandboxTimeoutError,
    SandboxUnavailableError,
)
from modelshield.supplychain.sandbox.isolation import NOBODY, Layer, Limits, Policy

LAYER_SWITCHES = frozenset({"namespaces", "landlock", "seccomp"})
FRAME_OVERHEAD = 1 << 16


def exit_reason(code: int, limits: Limits) -> tuple[type[SandboxError], str]:
    """Why the worker ended, from its exit code (its supervisor reports a signal as 128 + number)."""
    sig = code - 128 if code > 128 else -code if code < 0 else 0
    if sig == signal.SIGXCPU:
        return SandboxLimitError, f"used up its CPU limit of {limits.cpu_seconds} s and was stopped"
    if sig == signal.SIGXFSZ:
        return SandboxLimitError, f"wrote past its file-size limit of {limits.file_size >> 20} MiB and was stopped"
    if sig == signal.SIGSYS:
        return SandboxCrashError, "made a forbidden system call and was killed by seccomp"
    if sig == signal.SIGKILL:
        return SandboxCrashError, "was killed (SIGKILL: its hard CPU limit, or the kernel's out-of-memory killer)"
    if code == 4:
        return SandboxLimitError, f"ran out of its memory limit of {limits.memory >> 20} MiB and was stopped"
    return SandboxCrashError, f"exited unexpectedly ({f'signal {sig}' if sig else f'code {code}'})"


def untrusted_text(value: object, limit: int = 300) -> str:
    """Text from the sandbox made safe to print: one line, printable characters only (no terminal escapes), capped."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return " ".join(text.split())[:limit]


def _readable_by_others(path: str) -> bool:
    """Whether every file (and folder) at or under ``path`` is readable by any user."""
    if not os.path.isdir(path):
        return bool(os.stat(path).st_mode & 0o004)
    for folder, _, files in os.walk(path):
        if os.stat(folder).st_mode & 0o005 != 0o005:
            return False
        if any(not os.lstat(os.path.join(folder, f)).st_mode & 0o004 for f in files):
            return False
    return True


class WorkerProcess:
    """A started worker: its isolation report, and frames to and from it under deadlines."""

    def __init__(
        self,
        source: dict[str, Any],
        readable: tuple[str, ...],
        *,
        limits: Limits,
        allow_network: bool,
        disable: Collection[str] = (),
        threads: int = 1,
        model_options: dict[str, Any] | None = None,
    ) -> None:
        unknown = set(disable) - LAYER_SWITCHES
        if unknown:
            raise InputError(f"unknown layers to disable: {sorted(unknown)}; known: {sorted(LAYER_SWITCHES)}")
        self.limits = limits
        self.layers: list[Layer] = []
        self._dir = Path(tempfile.mkdtemp(prefix="modelshield-sandbox-"))
        self.scratch = self._dir / "scratch"
        try:
            source, readable = self._share(source, readable)
            self._proc, self._request_fd, self._reply_fd = self._spawn(
                source, readable, allow_network, frozenset(disable), threads, model_options or {}
            )
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def _share(self, source: dict[str, Any], readable: tuple[str, ...]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Make the model readable by the sandbox user: as root, a model others may not read is copied read-only."""
        key = {"vendor": "folder", "file": "path"}.get(source["kind"])
        if key is None or os.getuid() != 0 or _readable_by_others(source[key]):
            return source, readable
        original = source[key]
        copy = self._dir / "shared" / os.path.basename(original)
        copy.parent.mkdir(mode=0o711)
        if os.path.isdir(original):
            shutil.copytree(original, copy, symlinks=True)
        else:
            shutil.copyfile(original, copy)
        for folder, _, files in os.walk(copy):
            os.chmod(folder, 0o555)
            for name in files:
                if not os.path.islink(os.path.join(folder, name)):
                    os.chmod(os.path.join(folder, name), 0o444)
        if copy.is_file():
            os.chmod(copy, 0o444)
        return {**source, key: str(copy)}, tuple(str(copy) if p == original else p for p in readable)

    def _spawn(
        self,
        source: dict[str, Any],
        readable: tuple[str, ...],
        allow_network: bool,
        disable: frozenset[str],
        threads: int,
        model_options: dict[str, Any],
    ) -> tuple[subprocess.Popen[bytes], int, int]:
        os.chmod(self._dir, 0o711)  # the worker, as nobody, must traverse it to reach scratch
        new_root = self._dir / "root"
        self.scratch.mkdir(mode=0o700)
        new_root.mkdir(mode=0o700)
        if os.getuid() == 0:
            os.chown(self.scratch, NOBODY, NOBODY)
        policy = Policy(
            scratch=str(self.scratch),
            new_root=str(new_root),
            readable=readable,
            limits=self.limits,
            allow_network=allow_network,
            namespaces="namespaces" not in disable,
            landlock="landlock" not in disable,
            seccomp="seccomp" not in disable,
        )
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        config = {
            "request_fd": request_r,
            "reply_fd": reply_w,
            "policy": policy.to_json(),
            "source": source,
            **model_options,
        }
        n = str(threads)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.scratch),
            "TMPDIR": str(self.scratch),
            "MODELSHIELD_SCRATCH": str(self.scratch),
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": n,
            "OPENBLAS_NUM_THREADS": n,
            "MKL_NUM_THREADS": n,
        }
        try:
            with open(self._dir / "worker.log", "wb") as log_file:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-B", "-m", "modelshield.supplychain.sandbox.worker", json.dumps(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log_file,
                    pass_fds=(request_r, reply_w),
                    env=env,
                    cwd="/",
                    start_new_session=True,
                )
        except BaseException:
            for fd in (request_w, reply_r):
                os.close(fd)
            raise
        finally:
            os.close(request_r)
            os.close(reply_w)
        os.set_blocking(request_w, False)
        os.set_blocking(reply_r, False)
        return proc, request_w, reply_r

    @property
    def alive(self) -> bool:
        return self._request_fd >= 0 and self._proc.poll() is None

    @property
    def marker(self) -> str:
        """A string found in the command line of every process of this sandbox (its folder)."""
        return str(self._dir)

    def read_isolation(self) -> list[Layer]:
        """The worker's first frame: its layers, sent before untrusted code ran; refuses a worker that could not isolate."""
        header, _ = self.receive(time.monotonic() + self.limits.startup_timeout, FRAME_OVERHEAD, "start")
        if header.get("op") != "isolated":
            self.kill()
            raise SandboxCrashError("the sandbox worker did not report its isolation first")
        if not header.get("ok"):
            self.kill()
            raise SandboxUnavailableError(
                f"the sandbox cannot isolate the model here: {untrusted_text(header.get('error'))}"
            )
        try:
            self.layers = [Layer(str(d["name"]), bool(d["active"]), str(d["detail"])) for d in header["layers"]]
        except (KeyError, TypeError):
            self.kill()
            raise SandboxCrashError("the sandbox worker sent a malformed isolation report") from None
        return self.layers

    def send(self, header: dict[str, Any], arrays: Sequence[np.ndarray], deadline: float, what: str) -> None:
        """Write one frame, or kill the worker when it does not read it in time."""
        if self._request_fd < 0:
            raise SandboxCrashError("the sandbox is closed (it was stopped after an earlier failure)")
        try:
            protocol.send(self._request_fd, header, arrays, deadline=deadline)
        except protocol.PeerTimeout:
            self.kill()
            raise SandboxTimeoutError(
                f"the sandboxed model did not read {what} within {self.limits.timeout:g} s; its process was killed"
            ) from None
        except protocol.PeerClosed:
            raise self._died(what) from None

    def receive(self, deadline: float, max_bytes: int, what: str) -> tuple[dict[str, Any], list[np.ndarray]]:
        """One frame from the worker; any failure kills it and becomes a one-line SandboxError."""
        if self._reply_fd < 0:
            raise SandboxCrashError("the sandbox is closed (it was stopped after an earlier failure)")
        try:
            return protocol.receive(self._reply_fd, max_bytes=max_bytes, deadline=deadline)
        except protocol.PeerTimeout:
            self.kill()
            timeout = self.limits.startup_timeout if what == "start" else self.limits.timeout
            raise SandboxTimeoutError(
                f"the sandboxed model did not {what} within {timeout:g} s; its process was killed"
            ) from None
        except protocol.PeerClosed:
            raise self._died(what) from None
        except protocol.ProtocolError as e:
            self.kill()
            raise SandboxCrashError(
                f"the sandboxed model sent a malformed reply ({e}); its process was killed"
            ) from None

    def _died(self, what: str) -> SandboxError:
        """The error for a worker that closed its pipe: reap it and say why it ended."""
        kind, reason = exit_reason(self._reap(), self.limits)
        last = self.last_log_line()
        return kind(f"the sandboxed model {reason} during {what}" + (f"; its last words: {last}" if last else ""))

    def last_log_line(self) -> str:
        """The worker's last line on stderr (its own text: shown, never trusted), at most 200 characters."""
        try:
            with open(self._dir / "worker.log", "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return untrusted_text(lines[-1], 200) if lines else ""

    def kill(self) -> None:
        """SIGKILL the worker's process group (its PID namespace dies with it) and reap it."""
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap()

    def _reap(self) -> int:
        """Wait for the worker (killing it if it lingers), close the pipes; returns its exit code."""
        try:
            code = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            code = self._proc.wait()
        for fd in (self._request_fd, self._reply_fd):
            if fd >= 0:
                os.close(fd)
        self._request_fd = self._reply_fd = -1
        return code

    def close(self) -> None:
        """Ask the worker to stop, kill it if it does not, and delete its folder."""
        if self._request_fd >= 0 and self._proc.poll() is None:
            try:
                protocol.send(self._request_fd, {"op": "close"}, deadline=time.monotonic() + 1)
                self._proc.wait(timeout=2)
            except (protocol.PeerTimeout, protocol.PeerClosed, subprocess.TimeoutExpired):
                pass
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)
