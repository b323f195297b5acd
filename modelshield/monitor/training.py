"""What a training loop reads, recorded and checked each epoch: batch sizes, sample coverage, shuffling, batch
class mix, and files opened.

Training-time attacks need no access to the weights, only to what data is read and in what order: skipping or
repeating samples, a sampler that stops shuffling or replays one order every epoch, and batches composed by class
or loss (Shumailov et al., "Manipulating SGD with Data Ordering Attacks", NeurIPS 2021,
https://arxiv.org/abs/2104.09667, change a model's behaviour with clean data in a chosen order). Each epoch's
record is tested against what a correct sampler produces:

* **batch size** — every batch has the configured size, the last one excepted;
* **coverage** — every index of the dataset read exactly once (a full pass without replacement);
* **shuffling** — Spearman's ρ between position in the epoch and sample index, and between this epoch's order and
  the last one's; for a uniform random permutation ρ·√(n − 1) is close to standard normal, so |z| > ``z_limit``
  (default 5) means the order is not random;
* **batch class mix** (given the labels) — Pearson's χ² of each batch's label counts against the dataset's label
  shares, summed over the epoch and compared with its mean and variance under random batching (z > ``z_limit``):
  batches composed by class or by loss have skewed label mixes;
* **files** — inside ``with monitor.audit_files():`` every file the process opens is recorded through a PEP 578
  audit hook; one outside ``allowed_roots`` raises an alarm. Worker processes forked meanwhile (a DataLoader's
  ``num_workers``, with the default ``fork`` start on Linux) inherit the hook and send what they open back over a
  pipe; workers started by ``spawn`` or ``forkserver`` begin a fresh interpreter and are not seen.

With ``sampling="poisson"`` (DP-SGD: every sample joins each step's batch independently with probability
``q = batch_size / N``, so batch sizes vary and an epoch is ``N / batch_size`` steps) the checks are the ones such a
sampler passes instead, each a z-score against ``z_limit``:

* **batch-size** — each batch is Binomial(N, q): its exact two-sided tail, as a z-score, for the most extreme
  batch (Bonferroni over the epoch's batches), and the epoch's sum of squared standardised sizes against χ²;
* **coverage** — the samples read at least once over ``s`` steps: Binomial(N, 1 − (1 − q)^s);
* **frequency** — each sample's count is Binomial(s, q): the most-read sample's tail (Bonferroni over N) and the
  dispersion of the counts (Σ of squared standardised counts against its mean N and variance N·(2 + excess
  kurtosis));
* **replay** — consecutive batches share Binomial(N, q²) samples: the epoch's summed overlap against that;
* **batch-mix** — as above (a Poisson batch, given its size, is a uniform random subset). Positions within a
  batch are sorted, so the shuffle checks do not apply.

A training loop that is not a DataLoader reports each batch itself: ``monitor.record_batch(indices)`` then
``monitor.end_epoch()`` (``modelshield harden`` and ``modelshield train --dp`` do, through their loops'
``data_observer`` hook).

Use it by giving the loader the monitor's sampler and iterating through the monitor::

    monitor = DataAccessMonitor(len(train_set), batch_size=128, labels=train_labels)
    loader = DataLoader(train_set, batch_size=128, sampler=monitor.sampler(RandomSampler(train_set)))
    for epoch in range(epochs):
        for xb, yb in monitor.batches(loader):
            ...
        for alarm in monitor.alarms_of(epoch):
            log(alarm)
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import stats

from modelshield.core.errors import InputError

Sampling = Literal["shuffle", "poisson"]


@dataclass
class TrainingAlarm:
    """One check an epoch failed: which, by how much, and when."""

    check: str
    epoch: int
    message: str
    statistic: float
    threshold: float
    at: float = field(default_factory=time.time)


@dataclass
class EpochRecord:
    """What one epoch read."""

    epoch: int
    batch_sizes: list[int] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)


class _RecordingSampler:
    """Passes a sampler's indices through, recording them into the monitor's current epoch."""

    def __init__(self, inner: Iterable[int], monitor: DataAccessMonitor) -> None:
        self.inner, self.monitor = inner, monitor

    def __iter__(self) -> Iterator[int]:
        for i in self.inner:
            self.monitor._current.indices.append(int(i))
            yield i

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]


class DataAccessMonitor:
    """Record a training loop's data access and check every epoch against a correct sampler's behaviour."""

    def __init__(
        self,
        dataset_size: int | None,
        batch_size: int,
        *,
        labels: Sequence[int] | np.ndarray | None = None,
        drop_last: bool = False,
        z_limit: float = 5.0,
        allowed_roots: Sequence[str | Path] = (),
        sampling: Sampling = "shuffle",
        on_epoch: Callable[[DataAccessMonitor], object] | None = None,
    ) -> None:
        if sampling not in ("shuffle", "poisson"):
            raise InputError(f"sampling must be shuffle or poisson, not {sampling!r}")
        if not z_limit > 0:
            raise InputError(f"the alarm threshold z must be positive, got {z_limit}")
        self.batch_size, self.drop_last, self.z_limit = batch_size, drop_last, z_limit
        self.sampling: Sampling = sampling
        self.n, self.sample_rate = 0, 0.0
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if dataset_size is not None:
            self._size(dataset_size)
        self.allowed_roots = [Path(r).resolve() for r in allowed_roots]
        self.epochs: list[EpochRecord] = []
        self.alarms: list[TrainingAlarm] = []
        self.files: dict[str, int] = {}
        self._current = EpochRecord(0)
        self._previous_order: np.ndarray | None = None
        self._files_lock = threading.RLock()
        self.on_epoch = on_epoch  # called after each epoch's checks (the CLI saves the summary, for a crash)
        self._callback = threading.local()

    def _size(self, n: int) -> None:
        if n < 2 or self.batch_size < 1:
            raise InputError(f"need a dataset of ≥ 2 samples and batches of ≥ 1 (got {n}, {self.batch_size})")
        if self.sampling == "poisson" and self.batch_size >= n:
            raise InputError(f"Poisson batches of expected size {self.batch_size} need more than {n} samples")
        if self.labels is not None and len(self.labels) != n:
            raise InputError(f"{len(self.labels)} labels for a dataset of {n}")
        self.n, self.sample_rate = n, self.batch_size / n  # q of Poisson sampling

    def start(self, labels: Any, epoch: int = 0) -> None:
        """Called by a training loop before its first epoch with the labels it trains on; a monitor made with
        ``dataset_size=None`` takes its size from them. A loop resumed from a checkpoint gives the ``epoch`` it
        starts at, so the records carry the run's epoch numbers."""
        if not self.epochs:
            self._current = EpochRecord(epoch)
        values = np.asarray(labels.tolist() if hasattr(labels, "tolist") else labels, dtype=np.int64)
        if self.n and len(values) != self.n:
            raise InputError(f"the loop trains on {len(values)} samples, the monitor was made for {self.n}")
        self.labels = values
        self._size(len(values))

    def sampler(self, inner: Iterable[int]) -> _RecordingSampler:
        """Wrap the sampler a DataLoader will use, so the monitor sees every index it hands out."""
        return _RecordingSampler(inner, self)

    def batches(self, loader: Iterable[Any]) -> Iterator[Any]:
        """Iterate one epoch of ``loader``, recording batch sizes; the epoch is checked when it ends."""
        for batch in loader:
            self._current.batch_sizes.append(_batch_len(batch))
            yield batch
        self.end_epoch()

    def record_batch(self, indices: Any) -> None:
        """Record one batch a training loop read, as the sample indices it gathered (a tensor, array or list)."""
        values = indices.tolist() if hasattr(indices, "tolist") else [int(i) for i in indices]
        self._current.indices.extend(values)
        self._current.batch_sizes.append(len(values))

    def end_epoch(self) -> list[TrainingAlarm]:
        """Check the epoch just read and start the next; returns its alarms (also kept in ``alarms``)."""
        record = self._current
        if self.sampling == "poisson":
            found = [*self._check_poisson(record), *self._check_batch_mix(record)]
        else:
            found = [*self._check_sizes(record), *self._check_indices(record), *self._check_batch_mix(record)]
        self.alarms.extend(found)
        self.epochs.append(record)
        self._current = EpochRecord(record.epoch + 1)
        if self.on_epoch is not None:
            self._callback.active = True  # what the callback opens (the summary it saves) is not the loop's reading
            try:
                self.on_epoch(self)
            finally:
                self._callback.active = False
        return found

    def alarms_of(self, epoch: int) -> list[TrainingAlarm]:
        return [a for a in self.alarms if a.epoch == epoch]

    def expected_coverage(self, steps: int) -> float:
        """Share of the dataset a correct sampler reads in an epoch of ``steps`` batches."""
        if self.sampling == "poisson":
            return 1.0 - (1.0 - self.sample_rate) ** steps
        return 1.0 - (self.n % self.batch_size if self.drop_last else 0) / self.n

    def summary(self) -> dict[str, Any]:
        """What the run read, JSON-ready: per epoch the batches, their sizes, coverage against what a correct
        sampler gives and the most-read sample's count; the files opened; every alarm."""
        epochs = []
        for r in self.epochs:
            idx = np.asarray(r.indices, dtype=np.int64)
            counts = np.bincount(idx[(idx >= 0) & (idx < self.n)], minlength=self.n)
            sizes = r.batch_sizes or [0]
            epochs.append(
                {
                    "epoch": r.epoch,
                    "batches": len(r.batch_sizes),
                    "samples_read": len(idx),
                    "batch_size": {"min": min(sizes), "mean": round(float(np.mean(sizes)), 3), "max": max(sizes)},
                    "coverage": round(float(np.count_nonzero(counts)) / self.n, 4),
                    "expected_coverage": round(self.expected_coverage(len(r.batch_sizes)), 4),
                    "max_reads": int(counts.max()),
                }
            )
        return {
            "sampling": self.sampling,
            "dataset_size": self.n,
            "batch_size": self.batch_size,
            "z_limit": self.z_limit,
            "epochs_covered": [r.epoch for r in self.epochs],
            "epochs": epochs,
            "files_opened": len(self.files),
            "files_outside_python": self.data_files(),
            "alarms": [
                {"check": a.check, "epoch": a.epoch, "message": a.message, "statistic": a.statistic,
                 "threshold": a.threshold}
                for a in self.alarms
            ],
        }  # fmt: skip

    def data_files(self) -> list[str]:
        """The files opened that are not Python's own (the interpreter, site-packages, modules, devices): the data."""
        return sorted(f for f in self.files if not python_own(f))

    @contextmanager
    def audit_files(self) -> Iterator[None]:
        """Record every file this process, and the workers it forks meanwhile, open; alarm on one outside
        ``allowed_roots`` (if any)."""
        _install_hook()
        with _ACTIVE_LOCK:
            if not _ACTIVE:
                _FORKED.open()
            _ACTIVE.append(self)
        try:
            yield
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE.remove(self)
                if not _ACTIVE:
                    _FORKED.close()

    def _opened(self, path: str) -> None:
        if getattr(self._callback, "active", False):
            return
        with self._files_lock:  # the pipe's reader thread records worker opens beside the training thread
            self._record_open(path)

    def _record_open(self, path: str) -> None:
        self.files[path] = self.files.get(path, 0) + 1
        if self.files[path] > 1 or not self.allowed_roots or python_own(path):
            return  # a lazy import or a DataLoader worker's set-up is not reading data
        resolved = Path(path).resolve()
        if not any(resolved.is_relative_to(root) for root in self.allowed_roots):
            self.alarms.append(
                TrainingAlarm("file", self._current.epoch, f"opened {path}, outside the allowed roots", 1.0, 0.0)
            )

    def _check_sizes(self, record: EpochRecord) -> list[TrainingAlarm]:
        sizes = record.batch_sizes
        body = sizes if self.drop_last else sizes[:-1]
        odd = [s for s in body if s != self.batch_size] + [s for s in sizes[-1:] if s > self.batch_size]
        if not odd:
            return []
        worst = max(odd, key=lambda s: abs(s - self.batch_size))
        return [
            TrainingAlarm(
                "batch-size", record.epoch,
                f"{len(odd)} of {len(sizes)} batches are not of size {self.batch_size} (one of {worst})",
                float(worst), float(self.batch_size),
            )
        ]  # fmt: skip

    def _check_indices(self, record: EpochRecord) -> list[TrainingAlarm]:
        if not record.indices:
            return []
        idx = np.asarray(record.indices)
        alarms = []
        distinct = len(np.unique(idx))
        expected = self.n - (self.n % self.batch_size if self.drop_last else 0)
        if distinct < expected or len(idx) != distinct:
            alarms.append(
                TrainingAlarm(
                    "coverage", record.epoch,
                    f"{distinct} distinct of {self.n} samples read, {len(idx) - distinct} repeats (expected {expected}, 0)",
                    distinct / self.n, expected / self.n,
                )
            )  # fmt: skip
        if len(idx) > 2:
            z = _spearman_z(np.arange(len(idx)), idx)
            if abs(z) > self.z_limit:
                alarms.append(
                    TrainingAlarm(
                        "shuffle", record.epoch,
                        f"the order follows the sample index (Spearman z = {z:.1f}): the data is not shuffled",
                        abs(z), self.z_limit,
                    )
                )  # fmt: skip
        order = np.full(self.n, -1)
        order[idx[idx < self.n]] = np.arange(np.count_nonzero(idx < self.n))
        previous, self._previous_order = self._previous_order, order
        if previous is not None:
            both = (order >= 0) & (previous >= 0)
            if both.sum() > 2:
                z = _spearman_z(order[both], previous[both])
                if abs(z) > self.z_limit:
                    alarms.append(
                        TrainingAlarm(
                            "reshuffle", record.epoch,
                            f"this epoch's order repeats the last one's (Spearman z = {z:.1f})", abs(z), self.z_limit,
                        )
                    )  # fmt: skip
        return alarms

    def _check_batch_mix(self, record: EpochRecord) -> list[TrainingAlarm]:
        """Σ over batches of Pearson's χ² (batch label counts vs dataset shares) against its mean and variance
        under random batching; the multinomial variance has Haldane's small-count term, so batches with fewer than
        five expected samples per class are fine."""
        if self.labels is None or len(record.batch_sizes) < 10:
            return []
        classes = int(self.labels.max()) + 1
        share = np.bincount(self.labels, minlength=classes) / len(self.labels)
        share = share[share > 0]
        k = len(share)
        idx = np.asarray(record.indices)
        if k < 2 or len(idx) != sum(record.batch_sizes):  # indices from the sampler must line up with batches
            return []
        total = mean = var = 0.0
        for b in np.split(idx, np.cumsum(record.batch_sizes)[:-1]):
            m = len(b)
            if m == 0:  # an empty Poisson batch
                continue
            counts = np.bincount(self.labels[b[b < self.n]], minlength=classes)
            counts = counts[np.bincount(self.labels, minlength=classes) > 0]
            expected = share * m
            total += float(np.sum((counts - expected) ** 2 / expected))
            finite = (self.n - m) / (self.n - 1)  # drawn without replacement
            mean += (k - 1) * finite
            var += (2 * (k - 1) + (np.sum(1 / share) - k * k - 2 * k + 2) / m) * finite * finite
        z = (total - mean) / math.sqrt(var)
        if z <= self.z_limit:
            return []
        return [
            TrainingAlarm(
                "batch-mix", record.epoch,
                f"batches are composed by class: their label mixes differ from random batches' (z = {z:.1f})",
                z, self.z_limit,
            )
        ]  # fmt: skip

    def _check_poisson(self, record: EpochRecord) -> list[TrainingAlarm]:
        """Batch sizes, coverage, per-sample read counts and batch-to-batch overlap against Poisson sampling."""
        sizes = np.asarray(record.batch_sizes, dtype=np.int64)
        steps, n, q = len(sizes), self.n, self.sample_rate
        if steps == 0:
            return []
        found: list[tuple[str, str, float]] = []
        lo, hi = int(sizes.min()), int(sizes.max())
        z = _tail_z(2 * steps * min(stats.binom.cdf(lo, n, q), stats.binom.sf(hi - 1, n, q)))
        standard = (sizes - n * q) / math.sqrt(n * q * (1 - q))
        z_spread = _dispersion_z(float(np.sum(standard**2)), steps, n, q)
        if max(z, z_spread) > self.z_limit:
            found.append((
                "batch-size",
                f"batch sizes {lo}..{hi} are not Binomial({n}, {q:.4g}) around {n * q:.1f} "
                f"(extreme z = {z:.1f}, spread z = {z_spread:.1f})",
                max(z, z_spread),
            ))  # fmt: skip
        idx = np.asarray(record.indices, dtype=np.int64)
        counts = np.bincount(idx[(idx >= 0) & (idx < n)], minlength=n)
        distinct, covered = int(np.count_nonzero(counts)), self.expected_coverage(steps)
        z = _tail_z(2 * min(stats.binom.cdf(distinct, n, covered), stats.binom.sf(distinct - 1, n, covered)))
        stray = len(idx) - int(counts.sum())
        if z > self.z_limit or stray:
            found.append((
                "coverage",
                f"{distinct} distinct of {n} samples read in {steps} steps, expected {n * covered:.0f} "
                f"(1 − (1 − q)^steps), z = {z:.1f}" + (f"; {stray} indices out of range" if stray else ""),
                z,
            ))  # fmt: skip
        top = int(counts.max())
        z = _tail_z(n * stats.binom.sf(top - 1, steps, q))
        mu, var = steps * q, steps * q * (1 - q)
        z_spread = _dispersion_z(float(np.sum((counts - mu) ** 2) / var), n, steps, q)
        if max(z, z_spread) > self.z_limit:
            found.append((
                "frequency",
                f"a sample was read {top} times in {steps} steps (expected {mu:.1f} ± {math.sqrt(var):.1f}); "
                f"most-read z = {z:.1f}, spread of the counts z = {z_spread:.1f}",
                max(z, z_spread),
            ))  # fmt: skip
        if steps > 1:
            batches = np.split(idx, np.cumsum(sizes)[:-1])
            overlap = sum(len(np.intersect1d(a, b)) for a, b in zip(batches, batches[1:], strict=False))
            q2 = q * q
            expected = (steps - 1) * n * q2
            spread = n * ((steps - 1) * q2 * (1 - q2) + 2 * (steps - 2) * (q2 * q - q2 * q2))
            z = (overlap - expected) / math.sqrt(spread)
            if z > self.z_limit:
                found.append((
                    "replay",
                    f"consecutive batches share {overlap} samples, expected {expected:.1f} (z = {z:.1f}): "
                    "batches are replayed",
                    z,
                ))  # fmt: skip
        return [TrainingAlarm(check, record.epoch, message, stat, self.z_limit) for check, message, stat in found]


def merge_summaries(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """One run's record from two of its summaries: ``later`` (a resumed run, from its checkpoint's epoch on)
    replaces what ``earlier`` recorded of the same epochs and keeps the rest, so ``epochs_covered`` lists every
    epoch some part of the run watched (the epochs an interrupted part read but never summarised are missing)."""
    if {k: earlier.get(k) for k in ("sampling", "dataset_size", "batch_size")} != {
        k: later.get(k) for k in ("sampling", "dataset_size", "batch_size")
    }:
        return later  # another run's record: nothing to keep
    start = min(later.get("epochs_covered") or [math.inf])
    kept = [e for e in earlier.get("epochs", []) if e["epoch"] < start]
    alarms = [a for a in earlier.get("alarms", []) if a["epoch"] < start]
    files = sorted({*earlier.get("files_outside_python", []), *later.get("files_outside_python", [])})
    epochs = kept + later["epochs"]
    return {
        **later,
        "epochs_covered": [e["epoch"] for e in epochs],
        "epochs": epochs,
        "files_opened": int(earlier.get("files_opened", 0)) + int(later["files_opened"]),
        "files_outside_python": files,
        "alarms": alarms + later["alarms"],
        "parts": int(earlier.get("parts", 1)) + 1,
    }


_CODE_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".pth")
_PSEUDO = ("/dev/", "/proc/", "/sys/")


def python_own(path: str) -> bool:
    """Whether a file the process opened is Python's own rather than data: under the installation (interpreter,
    virtual environment, site-packages), a module or extension on ``sys.path`` (a project's own code, where data
    may sit beside it), or a device or process pseudo-file (a worker's ``/dev/null``, ``/proc`` reads)."""
    resolved = str(Path(path).resolve())
    if resolved.startswith(_PSEUDO):
        return True
    installed, paths = _roots(sys.prefix, sys.base_prefix, tuple(sys.path[1:]))
    inside = resolved.startswith(installed)
    return inside or (resolved.endswith(_CODE_SUFFIXES) and resolved.startswith(paths))


@functools.lru_cache(maxsize=8)
def _roots(prefix: str, base_prefix: str, paths: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the installation's folders, every folder on sys.path and modelshield's), resolved, with a trailing /."""

    def folders(items: Iterable[str]) -> tuple[str, ...]:
        return tuple(str(Path(p).resolve()).rstrip(os.sep) + os.sep for p in items if p)

    return folders((prefix, base_prefix)), folders((*paths, str(Path(__file__).parents[1])))


def _tail_z(p: float) -> float:
    """The one-sided standard-normal z of a (Bonferroni-corrected) tail probability ``p``; 0 when p ≥ ½."""
    return max(0.0, float(stats.norm.isf(min(max(p, 1e-300), 0.5))))


def _dispersion_z(total: float, terms: int, trials: int, p: float) -> float:
    """z of Σ of ``terms`` squared standardised Binomial(``trials``, ``p``) values: mean ``terms``, variance
    ``terms`` · (2 + the binomial's excess kurtosis)."""
    excess = (1 - 6 * p * (1 - p)) / (trials * p * (1 - p))
    return (total - terms) / math.sqrt(terms * (2 + excess))


def _spearman_z(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's ρ·√(n − 1): about standard normal when one sequence is a random permutation of the other."""
    if np.all(b == b[0]) or np.all(a == a[0]):
        return 0.0
    rho = stats.spearmanr(a, b).statistic
    return float(rho * math.sqrt(len(a) - 1))


def _batch_len(batch: Any) -> int:
    """Samples in a batch: the length of its first tensor (batches are tensors, tuples/lists or dicts of them)."""
    while isinstance(batch, list | tuple) and batch:
        batch = batch[0]
    if isinstance(batch, dict) and batch:
        return _batch_len(next(iter(batch.values())))
    shape = getattr(batch, "shape", None)
    if shape is not None and len(shape):
        return int(shape[0])
    return len(batch)


class _ForkedOpens:
    """Files opened in processes forked while monitors are active (DataLoader workers): the audit hook a child
    inherits writes each path to a pipe instead of its own copy of the monitors, and a thread here reads them in.
    A write of at most ``PIPE_BUF`` bytes is atomic, so paths from several workers never interleave."""

    LIMIT = 4000  # bytes of one path sent, under Linux's PIPE_BUF of 4096

    def __init__(self) -> None:
        self.owner = 0  # the process the monitors live in; 0 while none is active
        self.write_fd = -1
        self.reader: threading.Thread | None = None

    def open(self) -> None:
        read_fd, self.write_fd = os.pipe()
        self.owner = os.getpid()
        self.reader = threading.Thread(target=self._read, args=(read_fd,), name="modelshield-forked-opens", daemon=True)
        self.reader.start()

    def close(self) -> None:
        """Stop reading once what the workers wrote so far is in (the empty record ends the reader)."""
        os.write(self.write_fd, b"\0")
        os.close(self.write_fd)
        if self.reader is not None:
            self.reader.join(timeout=5)
        self.owner, self.write_fd, self.reader = 0, -1, None

    def send(self, path: str) -> None:
        """In a forked child: hand the path to the parent. A failed write must not fail the child's own open."""
        data = path.encode(errors="replace")[: self.LIMIT] + b"\0"
        try:
            os.write(self.write_fd, data)
        except OSError:
            pass  # the parent stopped listening (the monitor's block ended while a persistent worker still runs)

    def _read(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *paths, pending = pending.split(b"\0")
                for raw in paths:
                    if not raw:
                        return
                    for monitor in list(_ACTIVE):
                        monitor._opened(raw.decode(errors="replace"))


_ACTIVE: list[DataAccessMonitor] = []
_ACTIVE_LOCK = threading.Lock()
_FORKED = _ForkedOpens()
_HOOKED = False


def _install_hook() -> None:
    """One audit hook per process (they cannot be removed), forwarding file opens to the active monitors, or
    from a forked child to the parent's."""
    global _HOOKED
    if _HOOKED:
        return

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or not _ACTIVE or not isinstance(args[0], str | bytes | Path):
            return
        path = args[0].decode(errors="replace") if isinstance(args[0], bytes) else str(args[0])
        if not path or os.path.isdir(path):
            return  # a directory opened to list or remove it (a worker's rmtree of its temporary folder) is no read
        if _FORKED.owner and os.getpid() != _FORKED.owner:
            _FORKED.send(path)
            return
        for monitor in list(_ACTIVE):
            monitor._opened(path)

    sys.addaudithook(hook)
    _HOOKED = True


__all__ = ["DataAccessMonitor", "EpochRecord", "Sampling", "TrainingAlarm", "merge_summaries"]
