"""The parent side: a sandboxed model to predict with, and a self-check of the isolation.

``Sandbox`` starts a locked-in worker and loads the model there; ``SandboxedModel`` is the
``Model`` that attacks and ``assess`` use. Every call has a wall-clock deadline: past it the worker
is killed and the caller gets a ``SandboxTimeoutError``, never a hang. Every reply is checked
(frame, size, shape, dtype, finiteness) before it becomes a tensor.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from modelshield.core.adapters.base import ServedModel
from modelshield.core.errors import InputError, MissingFileError
from modelshield.supplychain.sandbox.errors import (
    SandboxCrashError,
    SandboxLimitError,
    SandboxReplyError,
    VendorCodeError,
)
from modelshield.supplychain.sandbox.isolation import Layer, Limits
from modelshield.supplychain.sandbox.process import FRAME_OVERHEAD, WorkerProcess, untrusted_text
from modelshield.supplychain.sandbox.worker import OUTPUTS, PROBE_FILE

log = logging.getLogger("modelshield.sandbox")

_ENTRY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
NETWORK_WARNING = "the sandboxed model HAS NETWORK ACCESS: network isolation was switched off (--allow-network)"


@dataclass(frozen=True)
class ModelInfo:
    """What the worker said about the model once it loaded (checked by the parent)."""

    input_shape: tuple[int, ...]
    num_classes: int
    bounds: tuple[float, float]
    output: str


def _vendor_source(folder: Path, entry: str | None, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    if not folder.is_dir():
        raise MissingFileError(f"vendor folder {folder} does not exist or is not a folder")
    if not entry or not _ENTRY.match(entry):
        raise InputError(f"entry must look like 'package.module:factory', not {entry!r}")
    try:
        json.dumps(dict(kwargs or {}))
    except (TypeError, ValueError):
        raise InputError("factory_kwargs must be JSON values (numbers, strings, lists, dicts)") from None
    return {"kind": "vendor", "folder": os.path.realpath(folder), "entry": entry, "kwargs": dict(kwargs or {})}


def _file_source(path: Path, options: Mapping[str, Any] | None) -> dict[str, Any]:
    if not path.is_file():
        raise MissingFileError(f"model file {path} does not exist")
    try:
        json.dumps(dict(options or {}))
    except (TypeError, ValueError):
        raise InputError("load_options must be JSON values (numbers, strings, lists, dicts)") from None
    return {"kind": "file", "path": os.path.realpath(path), "options": dict(options or {})}


class Sandbox:
    """An untrusted model running in a separate, isolated process (see docs/sandbox.md).

    Give either ``vendor`` (a folder) and ``entry`` ('pkg.module:factory', called with
    ``factory_kwargs``), or ``model`` (a file read by ``load_model`` with ``load_options``).
    ``input_shape``, ``num_classes`` and ``bounds`` fill in what the model does not say itself.
    ``allow_network=True`` switches network isolation off, loudly. ``disable`` turns single
    layers off (``namespaces``, ``landlock``, ``seccomp``), for testing each layer alone.
    Use as a context manager; ``model`` is the ``Model`` to hand to attacks or ``assess``.
    """

    def __init__(
        self,
        *,
        vendor: str | os.PathLike[str] | None = None,
        entry: str | None = None,
        factory_kwargs: Mapping[str, Any] | None = None,
        model: str | os.PathLike[str] | None = None,
        load_options: Mapping[str, Any] | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        bounds: tuple[float, float] = (0.0, 1.0),
        limits: Limits | None = None,
        allow_network: bool = False,
        disable: Collection[str] = (),
        threads: int = 1,
    ) -> None:
        if (vendor is None) == (model is None):
            raise InputError("give either a vendor folder with an entry point, or a model file")
        if vendor is not None:
            self._source = _vendor_source(Path(vendor), entry, factory_kwargs)
            self._readable: tuple[str, ...] = (self._source["folder"],)
        else:
            self._source = _file_source(Path(model), load_options)  # type: ignore[arg-type]
            self._readable = (self._source["path"],)
        if bounds[0] >= bounds[1]:
            raise InputError(f"bounds {bounds} are empty: the lower bound must be below the upper")
        self._model_options = {
            "input_shape": [int(s) for s in input_shape] if input_shape is not None else None,
            "num_classes": num_classes,
            "bounds": [float(bounds[0]), float(bounds[1])],
        }
        self.limits = limits or Limits()
        self.allow_network = allow_network
        self._disable = tuple(disable)
        self._threads = int(threads)
        self._worker: WorkerProcess | None = None
        self.layers: list[Layer] = []
        self.info: ModelInfo | None = None
        self._model: SandboxedModel | None = None

    def start(self) -> Sandbox:
        """Start the worker, check its isolation, load the model; raises a SandboxError if any step fails."""
        if self._worker is not None:
            return self
        self._worker = WorkerProcess(
            self._source,
            self._readable,
            limits=self.limits,
            allow_network=self.allow_network,
            disable=self._disable,
            threads=self._threads,
            model_options=self._model_options,
        )
        try:
            self.layers = self._worker.read_isolation()
            if self.allow_network:
                log.warning(NETWORK_WARNING)
            header, _ = self._worker.receive(time.monotonic() + self.limits.startup_timeout, FRAME_OVERHEAD, "start")
            self.info = self._model_info(header)
        except BaseException:
            self.close()
            raise
        return self

    def _failed(self, header: dict[str, Any], during: str) -> Exception:
        """The error for an ``ok: false`` frame; the worker is stopped when it ran out of memory."""
        assert self._worker is not None
        if header.get("kind") == "memory":
            self._worker.kill()
            return SandboxLimitError(
                f"the sandboxed model ran out of its memory limit of {self.limits.memory >> 20} MiB {during} "
                "and was stopped"
            )
        return VendorCodeError(f"the sandboxed model raised {untrusted_text(header.get('error'))} {during}")

    def _model_info(self, header: dict[str, Any]) -> ModelInfo:
        assert self._worker is not None
        if header.get("op") != "ready":
            self._worker.kill()
            raise SandboxCrashError("the sandbox worker sent an unexpected frame instead of 'ready'")
        if not header.get("ok"):
            raise self._failed(header, "while loading")
        try:
            shape = tuple(int(s) for s in header["input_shape"])
            num_classes = int(header["num_classes"])
            lo, hi = (float(b) for b in header["bounds"])
            output = str(header["output"])
        except (KeyError, TypeError, ValueError):
            self._worker.kill()
            raise SandboxCrashError("the sandboxed model described itself with malformed fields") from None
        if not shape or min(shape) < 1 or num_classes < 2 or output not in OUTPUTS or not lo < hi:
            self._worker.kill()
            raise SandboxCrashError(
                f"the sandboxed model described itself implausibly: input {shape}, {num_classes} classes, {output}"
            )
        return ModelInfo(shape, num_classes, (lo, hi), output)

    def close(self) -> None:
        """Stop the worker (killing it if needed) and delete its scratch folder."""
        if self._worker is not None:
            self._worker.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    @property
    def model(self) -> SandboxedModel:
        """The sandboxed model as a black-box ``Model``."""
        if self.info is None:
            raise SandboxCrashError("the sandbox is not started; use it as a context manager or call start()")
        if self._model is None:
            self._model = SandboxedModel(self)
        return self._model

    @property
    def worker(self) -> WorkerProcess | None:
        """The worker process, once started."""
        return self._worker

    def predict_raw(self, x: np.ndarray) -> tuple[str, np.ndarray]:
        """Send one batch; returns the output kind and the array, checked for kind and dtype (shape: the caller)."""
        if self.info is None or self._worker is None:
            raise SandboxCrashError("the sandbox is not started; use it as a context manager or call start()")
        deadline = time.monotonic() + self.limits.timeout
        self._worker.send({"op": "predict"}, [np.ascontiguousarray(x, dtype=np.float32)], deadline, "its input")
        max_bytes = FRAME_OVERHEAD + 16 * int(x.shape[0]) * self.info.num_classes
        header, arrays = self._worker.receive(deadline, max_bytes, "answer")
        if not header.get("ok"):
            raise self._failed(header, "while predicting")
        output = header.get("output")
        if output != self.info.output or len(arrays) != 1:
            raise SandboxReplyError(
                f"the sandboxed model answered with {untrusted_text(output, 40)!r}, expected {self.info.output!r}"
            )
        out = arrays[0]
        expected = "iuf" if output == "labels" else "f"
        if out.dtype.kind not in expected:
            raise SandboxReplyError(f"the sandboxed model returned {output} of dtype {out.dtype}, expected numbers")
        return output, out


class SandboxedModel(ServedModel):
    """A model running in a ``Sandbox``: black-box, every sample counted, every answer checked."""

    def __init__(self, sandbox: Sandbox, batch_size: int = 256) -> None:
        info = sandbox.info
        if info is None:
            raise SandboxCrashError("the sandbox is not started")
        super().__init__(input_shape=info.input_shape, bounds=info.bounds)
        self.reply_error = SandboxReplyError
        self.sandbox = sandbox
        self.num_classes = info.num_classes
        self.has_scores = info.output != "labels"
        self.batch_size = int(batch_size)

    def _ask(self, batch: np.ndarray) -> tuple[str, np.ndarray]:
        return self.sandbox.predict_raw(batch)


@dataclass(frozen=True)
class Probe:
    """One escape attempt made from inside the sandbox, and whether the parent saw it succeed."""

    attempt: str
    succeeded: bool
    expected: bool
    detail: str

    @property
    def ok(self) -> bool:
        return self.succeeded == self.expected


def _received(sock: socket.socket) -> bool:
    """Whether anything reached a non-blocking listening (TCP, Unix) or datagram (UDP) socket."""
    try:
        if sock.type == socket.SOCK_DGRAM:
            sock.recv(64)
        else:
            sock.accept()[0].close()
    except BlockingIOError:
        return False
    return True


def check_isolation(
    *, limits: Limits | None = None, allow_network: bool = False, disable: Collection[str] = ()
) -> tuple[list[Layer], list[Probe]]:
    """Start an empty sandbox that tries to escape; returns its layers and each attempt's outcome.

    The attempts: reach this process over TCP, UDP and a Unix socket (placed in a folder the
    sandbox can see), write in the temporary folder, the home folder and the current folder, and
    write in scratch (which must work). What the parent sees arrive counts as an escape even if
    the worker claims otherwise. With ``allow_network`` the network attempts are expected to work.
    """
    limits = limits or Limits()
    outside = sorted({tempfile.gettempdir(), os.path.expanduser("~"), os.getcwd()})
    with (
        tempfile.TemporaryDirectory(prefix="modelshield-check-") as visible,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix,
    ):
        os.chmod(visible, 0o755)
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", port))
        unix_path = os.path.join(visible, "parent.sock")
        unix.bind(unix_path)
        os.chmod(unix_path, 0o777)
        for sock in (tcp, unix):
            sock.listen(1)
        for sock in (tcp, udp, unix):
            sock.setblocking(False)
        source = {"kind": "probe", "port": port, "unix": unix_path, "outside": outside}
        worker = WorkerProcess(source, (visible,), limits=limits, allow_network=allow_network, disable=disable)
        try:
            layers = worker.read_isolation()
            header, _ = worker.receive(time.monotonic() + limits.startup_timeout, FRAME_OVERHEAD, "start")
        finally:
            worker.close()
        if header.get("op") != "probed":
            raise SandboxCrashError("the sandbox worker did not report its escape attempts")
        arrived = {"tcp": _received(tcp), "udp": _received(udp), "unix": _received(unix)}
    probes = []
    for raw in header.get("probes", []):
        attempt = str(raw.get("attempt"))
        channel = attempt.split(":")[0]
        succeeded = bool(raw.get("succeeded")) or arrived.get(channel, False)
        expected = bool(raw.get("expected")) or (allow_network and channel in arrived)
        for folder in outside:
            if attempt == f"write in {folder}":
                leaked = Path(folder, PROBE_FILE)
                succeeded = succeeded or leaked.exists()
                leaked.unlink(missing_ok=True)
        probes.append(Probe(attempt, succeeded, expected, str(raw.get("detail"))))
    return layers, probes
