"""Loaded model versions: pinned by digest, verified at load, re-hashed while they serve.

A version comes from the registry (its manifest digest and signature checked by
``Registry.verify``) or from a file or folder whose SHA-256 the config pins. It is hashed again
after loading (a swap during the load is caught) and every ``rehash_seconds`` in the background;
a mismatch marks that version unhealthy: it answers 503 from then on, and the gateway writes a
security event to the audit log. Forward passes run on one dedicated thread per version and are
batched opportunistically: requests that arrive while a forward runs share the next one, so an
idle server adds no wait and a busy one does fewer, larger forwards (``Batcher``; the gateway's guard
batches the same way). A lone request to a fast model (its forwards have taken under
``INLINE_FORWARD_SECONDS``) runs on the event loop itself: two thread hand-offs would cost more than the forward.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelshield.core.errors import InputError, IntegrityError, ModelShieldError
from modelshield.serve.config import ModelSource
from modelshield.serve.validation import InputSignature

log = logging.getLogger("modelshield.serve")

_MODEL_SUFFIXES = (".safetensors", ".onnx", ".pt", ".pth", ".ts", ".torchscript", ".skops")
INLINE_FORWARD_SECONDS = 0.0005
_LOAD_KEYS = ("arch", "arch_kwargs", "input_shape", "num_classes", "bounds", "mean", "std")


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def file_digest(path: Path) -> str:
    """SHA-256 hex of a file, or the folder digest of ``modelshield.integrity.provenance`` for a folder."""
    from modelshield.integrity.provenance import hash_tree

    return _hex(hash_tree(path).digest)


def _inside(folder: Path, name: str, what: str) -> Path:
    """``folder / name``, refused when it resolves outside the (hashed and signed) registered folder."""
    candidate = (folder / name).resolve()
    if not candidate.is_relative_to(folder.resolve()):
        raise IntegrityError(f"{what} {name!r} points outside {folder}")
    return candidate


def _model_file(path: Path, metadata: Mapping[str, Any]) -> Path:
    """The file to load inside a registered folder: ``metadata["file"]``, else its only model file."""
    if path.is_file():
        return path
    if "file" in metadata:
        return _inside(path, str(metadata["file"]), "registered file")
    found = [p for p in sorted(path.iterdir()) if p.suffix in _MODEL_SUFFIXES and p.is_file()]
    if len(found) != 1:
        raise InputError(f"{path} holds {len(found)} model files; register it with metadata file='<name>'")
    return found[0]


class Batcher:
    """Runs ``fn`` (a batch in, one result per sample out) on one thread, batching concurrent submissions.

    Submissions that arrive while ``fn`` runs share the next call; each caller gets the slice of the
    results for its own samples (or the exception, if ``fn`` failed). A lone submission runs on the event
    loop itself when recent lone calls took under ``INLINE_FORWARD_SECONDS``.
    """

    def __init__(
        self, executor: ThreadPoolExecutor, fn: Callable[[np.ndarray], Sequence[Any] | np.ndarray], max_batch: int
    ) -> None:
        self.executor = executor
        self.fn = fn
        self.max_batch = max_batch
        self._pending: list[tuple[np.ndarray, asyncio.Future[Any]]] = []
        self._draining = False
        self._lone_seconds = float("inf")  # the slowest recent call for one submission (decays slowly)

    async def submit(self, x: np.ndarray) -> Any:
        """``fn``'s results for the samples of ``x``, computed in a batch with concurrent submissions."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((x, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _timed(self, x: np.ndarray) -> Sequence[Any] | np.ndarray:
        """``fn``, remembering how long a lone submission takes (it decides what runs inline)."""
        started = time.perf_counter()
        out = self.fn(x)
        took = time.perf_counter() - started
        # a slow call counts at once, fast ones pull the estimate down gradually
        slower = took > self._lone_seconds or self._lone_seconds == float("inf")
        self._lone_seconds = took if slower else 0.9 * self._lone_seconds + 0.1 * took
        return out

    async def _call(self, loop: asyncio.AbstractEventLoop, lone: bool, x: np.ndarray) -> Sequence[Any] | np.ndarray:
        if lone and self._lone_seconds < INLINE_FORWARD_SECONDS:
            return self._timed(x)
        return await loop.run_in_executor(self.executor, self._timed if lone else self.fn, x)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                take, size = 0, 0
                while take < len(self._pending) and (take == 0 or size + len(self._pending[take][0]) <= self.max_batch):
                    size += len(self._pending[take][0])
                    take += 1
                batch, self._pending = self._pending[:take], self._pending[take:]
                xs = [x for x, _ in batch]
                try:
                    out = await self._call(loop, len(batch) == 1, xs[0] if len(xs) == 1 else np.concatenate(xs))
                except Exception as exc:  # fn failed: every waiter gets the error, the loop goes on
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                start = 0
                for x, fut in batch:
                    if not fut.done():
                        fut.set_result(out[start : start + len(x)])
                    start += len(x)
        finally:
            self._draining = False


@dataclass
class LoadedModel:
    """One servable version: its identity, the adapter, and whether its bytes still match the pin."""

    route: str
    name: str
    version: str
    digest: str
    model: Any
    signature: InputSignature
    verify: Callable[[], None]
    healthy: bool = True
    failure: str = ""
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="predict"))
    max_batch: int = 1024
    #: a reference sketch registered with this version (metadata ``sketch``: a file in its folder), for monitoring
    sketch: Path | None = None
    #: why an administrator quarantined this version (``serve.controls``): it is unhealthy until released
    quarantined: str | None = None
    batcher: Batcher = field(init=False)

    def __post_init__(self) -> None:
        self.batcher = Batcher(self.executor, self._forward, self.max_batch)

    def describe(self) -> dict[str, Any]:
        """What GET /v1/models shows about this version."""
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "healthy": self.healthy,
            "input_shape": list(self.signature.input_shape),
            "bounds": list(self.signature.bounds),
            "num_classes": self.signature.num_classes,
        }

    def _forward(self, x: np.ndarray) -> np.ndarray:
        import torch

        return self.model.predict_proba(torch.from_numpy(x)).numpy()

    async def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (N, num_classes) for a validated batch, sharing forwards with concurrent requests."""
        return await self.batcher.submit(x)

    def quarantine(self, reason: str) -> None:
        """Stop answering with this version (503; a canary's share goes to the primary) until ``release``."""
        self.quarantined = reason
        self.healthy = False
        self.failure = f"quarantined by an administrator: {reason}"

    def release(self) -> None:
        """Serve again after a quarantine, once the bytes are verified again (a mismatch keeps it stopped)."""
        if self.quarantined is None:
            return
        self.quarantined, self.healthy, self.failure = None, True, ""
        self.check()

    def check(self) -> bool:
        """Re-verify the bytes against the pin; on a mismatch mark the version unhealthy. True when it newly failed."""
        if not self.healthy:
            return False
        try:
            self.verify()
        except (IntegrityError, OSError, ModelShieldError) as exc:
            self.healthy = False
            self.failure = " ".join(str(exc).split())
            log.error("model %s version %s stopped: %s", self.name, self.version, self.failure)
            return True
        return False


def _load_file(path: Path, options: Mapping[str, Any]) -> Any:
    from modelshield.integrity.safe_load import load_model

    kwargs = {k: options[k] for k in _LOAD_KEYS if options.get(k) is not None}
    for key in ("input_shape", "bounds"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return load_model(path, **kwargs)


def load_source(route: str, source: ModelSource, registry: Any | None) -> LoadedModel:
    """Load one version from the registry or a pinned file, verifying before and after loading."""
    overrides = source.model_dump(include=set(_LOAD_KEYS), exclude_none=True)
    if source.path is not None:
        path = source.path
        pinned = source.digest or ""

        def verify() -> None:
            actual = file_digest(path)
            if actual != pinned:
                raise IntegrityError(f"{path} hashes to {actual}, not the pinned {pinned}")

        name, version, metadata = route, "file", {}
    else:
        if registry is None:
            raise InputError(f"model {route!r} names a registry version but no registry is open")
        mv = registry.get(source.registry_name or route, source.version)
        if mv.status in ("retired", "quarantined"):
            raise IntegrityError(f"model {mv.name} version {mv.version} is {mv.status} and is never served")
        if source.digest is not None and _hex(mv.digest) != source.digest:
            raise IntegrityError(
                f"model {mv.name} version {mv.version} has digest {_hex(mv.digest)}, the config pins {source.digest}"
            )
        path, pinned = Path(mv.path), _hex(mv.digest)
        name, version, metadata = mv.name, str(mv.version), dict(mv.metadata or {})

        def verify() -> None:
            registry.verify(mv)

    verify()
    model = _load_file(_model_file(path, metadata), {**metadata, **overrides})
    verify()  # the bytes that were loaded are still the pinned ones
    loaded = LoadedModel(route, name, version, pinned, model, InputSignature.of(model), verify)
    if "sketch" in metadata and path.is_dir():
        loaded.sketch = _inside(path, str(metadata["sketch"]), "registered sketch")
    log.info("loaded model %s version %s digest %s", name, version, pinned)
    return loaded


async def rehash_forever(
    versions: list[LoadedModel], every: float, on_failure: Callable[[LoadedModel], Awaitable[None]]
) -> None:
    """Re-verify every version every ``every`` seconds (in a thread); report each new failure once."""
    while True:
        await asyncio.sleep(every)
        for loaded in versions:
            started = time.perf_counter()
            failed = await asyncio.to_thread(loaded.check)
            log.debug("re-hashed %s v%s in %.3fs", loaded.name, loaded.version, time.perf_counter() - started)
            if failed:
                try:
                    await on_failure(loaded)
                except Exception as exc:  # e.g. the audit log down: the version stays unserved, re-hashing goes on
                    log.error("reporting the integrity failure of %s v%s failed: %s", loaded.name, loaded.version, exc)
