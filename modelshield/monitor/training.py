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
  audit hook; one outside ``allowed_roots`` raises an alarm. Files opened in DataLoader worker processes are not
  seen (the hook records in the process where the open happens).

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

import math
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from modelshield.core.errors import InputError


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
        dataset_size: int,
        batch_size: int,
        *,
        labels: Sequence[int] | np.ndarray | None = None,
        drop_last: bool = False,
        z_limit: float = 5.0,
        allowed_roots: Sequence[str | Path] = (),
    ) -> None:
        if dataset_size < 2 or batch_size < 1:
            raise InputError(f"need a dataset of ≥ 2 samples and batches of ≥ 1 (got {dataset_size}, {batch_size})")
        self.n, self.batch_size, self.drop_last, self.z_limit = dataset_size, batch_size, drop_last, z_limit
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if self.labels is not None and len(self.labels) != dataset_size:
            raise InputError(f"{len(self.labels)} labels for a dataset of {dataset_size}")
        self.allowed_roots = [Path(r).resolve() for r in allowed_roots]
        self.epochs: list[EpochRecord] = []
        self.alarms: list[TrainingAlarm] = []
        self.files: dict[str, int] = {}
        self._current = EpochRecord(0)
        self._previous_order: np.ndarray | None = None
        self._file_epoch = 0

    def sampler(self, inner: Iterable[int]) -> _RecordingSampler:
        """Wrap the sampler a DataLoader will use, so the monitor sees every index it hands out."""
        return _RecordingSampler(inner, self)

    def batches(self, loader: Iterable[Any]) -> Iterator[Any]:
        """Iterate one epoch of ``loader``, recording batch sizes; the epoch is checked when it ends."""
        for batch in loader:
            self._current.batch_sizes.append(_batch_len(batch))
            yield batch
        self.end_epoch()

    def end_epoch(self) -> list[TrainingAlarm]:
        """Check the epoch just read and start the next; returns its alarms (also kept in ``alarms``)."""
        record = self._current
        found = [*self._check_sizes(record), *self._check_indices(record), *self._check_batch_mix(record)]
        self.alarms.extend(found)
        self.epochs.append(record)
        self._current = EpochRecord(record.epoch + 1)
        return found

    def alarms_of(self, epoch: int) -> list[TrainingAlarm]:
        return [a for a in self.alarms if a.epoch == epoch]

    @contextmanager
    def audit_files(self) -> Iterator[None]:
        """Record every file this process opens meanwhile; alarm on one outside ``allowed_roots`` (if any)."""
        _install_hook()
        with _ACTIVE_LOCK:
            _ACTIVE.append(self)
        try:
            yield
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE.remove(self)

    def _opened(self, path: str) -> None:
        self.files[path] = self.files.get(path, 0) + 1
        if self.files[path] > 1 or not self.allowed_roots:
            return
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


_ACTIVE: list[DataAccessMonitor] = []
_ACTIVE_LOCK = threading.Lock()
_HOOKED = False


def _install_hook() -> None:
    """One audit hook per process (they cannot be removed), forwarding file opens to the active monitors."""
    global _HOOKED
    if _HOOKED:
        return

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or not _ACTIVE or not isinstance(args[0], str | bytes | Path):
            return
        path = args[0].decode(errors="replace") if isinstance(args[0], bytes) else str(args[0])
        for monitor in list(_ACTIVE):
            monitor._opened(path)

    sys.addaudithook(hook)
    _HOOKED = True


__all__ = ["DataAccessMonitor", "EpochRecord", "TrainingAlarm"]
