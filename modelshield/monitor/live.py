"""Drift and output alarms on a live stream of model inputs and outputs, in bounded memory.

A service (the gateway) hands each batch to ``LiveMonitor.observe``, which only copies the flattened inputs into a
ring buffer of the last ``window`` rows, and each answer to ``observe_outputs``, which queues the probabilities: no
statistics on the request path. ``LiveMonitor.check`` — run from a timer, off the request path — tests the window against the
reference sketch with the same ``detect_drift`` a batch ``modelshield monitor drift`` runs (the window becomes one
in-memory chunk whose columns are named as the sketch's), and feeds the queued outputs to the ``OutputMonitor``
(CUSUM / Page–Hinkley on confidence, entropy and class mix).

Several processes (gateway workers, replicas) each hold a share of the traffic. ``LiveMonitor.drain`` turns what a
process saw since its last drain into an ``Interval`` — the inputs as a ``CurrentSummary`` on the sketch's bins, the
outputs as their count and the sums of their stream values — whose JSON another process reads; ``check_fleet`` folds
the merged intervals of every process into a fleet window and runs the same tests on it (``docs/dashboard.md``).

Inputs are matched to sketch columns by index: a sketch built from an ``.npz`` whose 2-D array ``x`` holds the
flattened inputs names its columns ``x[0]``, ``x[1]``, ...; a sketch with exactly as many numeric columns as the
flattened input has, under other names, is read in column order.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelshield.core.errors import InputError
from modelshield.monitor.drift import CurrentSummary, DriftConfig, DriftReport, detect_drift, drift_of, summarise
from modelshield.monitor.outputs import Alarm, OutputMonitor, OutputReference
from modelshield.monitor.profile import Moments
from modelshield.monitor.sketch import CategoricalFeature, NumericFeature, ReferenceSketch, build_sketch
from modelshield.monitor.tables import Chunk, chunk_source, finite

_INDEXED = re.compile(r".*\[(\d+)\]")
#: outputs queued for the output monitor between two checks, at most (older ones are dropped and counted)
MAX_PENDING_OUTPUTS = 100_000
#: the fleet window holds at most this many checks' intervals, however few inputs they hold
MAX_FLEET_CHECKS = 120


def sketch_columns(sketch: ReferenceSketch, width: int) -> list[tuple[str, int]]:
    """(sketch column, index into a flattened input of ``width`` values) for every feature of ``sketch``."""
    if any(isinstance(f, CategoricalFeature) for f in sketch.features):
        raise InputError("a live input sketch must be all numeric (the model's inputs are tensors)")
    names = [f.name for f in sketch.features]
    matches = [_INDEXED.fullmatch(n) for n in names]
    if all(matches):
        pairs = [(n, int(m.group(1))) for n, m in zip(names, matches, strict=True) if m]
        if max(i for _, i in pairs) >= width:
            raise InputError(f"the sketch names input value {max(i for _, i in pairs)}; inputs have {width} values")
        return pairs
    if len(names) != width:
        raise InputError(f"the sketch has {len(names)} columns; the model's inputs have {width} values")
    return [(n, i) for i, n in enumerate(names)]


def sketch_from_inputs(x: np.ndarray, *, bins: int = 100, seed: int = 0) -> ReferenceSketch:
    """A reference sketch of flattened inputs ``x`` (N, ...) with columns ``x[0]``, ``x[1]``, ...; the bin count
    shrinks to the data (a sketch needs as many sampled rows as bins)."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(flat) < 20:
        raise InputError(f"{len(flat)} reference inputs are too few for a sketch; give at least 20")
    columns = {f"x[{j}]": flat[:, j] for j in range(flat.shape[1])}
    n = len(flat)
    return build_sketch(
        chunk_source(columns), bins=min(bins, n), sample=n, reservoir=min(1000, n), seed=seed, source_info=None
    )


@dataclass
class LiveCheck:
    """One check: the drift report on the current window (None while it holds too few rows) and new alarms."""

    at: float
    rows: int
    seen: int
    drift: DriftReport | None
    alarms: list[Alarm] = field(default_factory=list)
    seconds: float = 0.0
    dropped_outputs: int = 0

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly gist: the verdict, the smallest p-value, the share and names of drifted features."""
        out: dict[str, Any] = {"at": self.at, "rows": self.rows, "seen": self.seen, "seconds": round(self.seconds, 4)}
        if self.drift is not None:
            d = self.drift
            ps = [f.p_value for f in d.features if f.p_value is not None]
            if d.multivariate is not None and d.multivariate.p_value is not None:
                ps.append(d.multivariate.p_value)
            drifted = d.drifted
            top = sorted(d.features, key=lambda f: f.p_value if f.p_value is not None else -f.statistic)[:5]
            out.update(
                drift=d.drift,
                drifted=len(drifted),
                features=len(d.features),
                share=len(drifted) / max(1, len(d.features)),
                min_p=min(ps) if ps else None,
                top=[{"feature": f.feature, "statistic": f.statistic, "p_value": f.p_value} for f in top],
            )
        out["alarms"] = [alarm_dict(a) for a in self.alarms]
        return out


def alarm_dict(a: Alarm) -> dict[str, Any]:
    return {
        "detector": a.detector, "stream": a.stream, "kind": a.kind, "direction": a.direction, "sample": a.sample,
        "change_start": a.change_start, "statistic": a.statistic, "threshold": a.threshold, "at": a.at,
    }  # fmt: skip


@dataclass
class Interval:
    """What one process saw of one model between two drains, as summaries that merge (no raw inputs): the inputs on
    the reference sketch's bins with their moments, and the outputs' count and sums of their stream values."""

    inputs: CurrentSummary
    outputs: int = 0
    sums: np.ndarray | None = None

    def merge(self, other: Interval) -> None:
        """Add another process's (or a later) interval of the same model."""
        self.inputs.merge(other.inputs)
        if other.sums is not None:
            self.sums = other.sums.copy() if self.sums is None else self.sums + other.sums
            self.outputs += other.outputs

    def to_json(self) -> str:
        """Compact JSON: moments per feature, the non-zero bins only, the output sums."""
        s = self.inputs
        body: dict[str, Any] = {
            "rows": s.rows,
            "m": {
                n: [m.count, m.mean, m.m2, m.lo, m.hi, m.missing] for n, m in s.moments.items() if m.count or m.missing
            },
            "b": {n: [np.flatnonzero(b).tolist(), b[b != 0].tolist()] for n, b in s.bins.items() if b.any()},
        }
        if self.sums is not None:
            body.update(o=self.outputs, s=self.sums.tolist())
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes, sketch: ReferenceSketch) -> Interval:
        """Read ``to_json``'s form back, shaped by the sketch the model is monitored against."""
        body = json.loads(text)
        s = CurrentSummary.empty(sketch)
        s.rows = int(body["rows"])
        for name, (count, mean, m2, lo, hi, missing) in body["m"].items():
            s.moments[name] = Moments(int(count), float(mean), float(m2), float(lo), float(hi), int(missing))
        for name, (where, counts) in body["b"].items():
            s.bins[name][np.asarray(where, dtype=np.int64)] = counts
        sums = np.asarray(body["s"], dtype=np.float64) if "s" in body else None
        return cls(s, int(body.get("o", 0)), sums)


class LiveMonitor:
    """A ring buffer of the last ``window`` inputs and a queue of outputs; ``check()`` tests them.

    ``observe`` is safe to call from one thread while ``check`` runs in another.
    """

    def __init__(
        self,
        sketch: ReferenceSketch,
        outputs: OutputReference | None,
        *,
        width: int,
        window: int = 1000,
        min_rows: int = 100,
        drift: DriftConfig | None = None,
        output_window: int = 50,
    ) -> None:
        if window < min_rows or min_rows < 2:
            raise InputError(f"the live window ({window}) must hold at least min_rows ({min_rows}) ≥ 2 inputs")
        self.sketch, self.columns = sketch, sketch_columns(sketch, width)
        self.config = drift or DriftConfig(mmd=False)
        self.window, self.min_rows, self.width = window, min_rows, width
        self.outputs = OutputMonitor(outputs, window=output_window) if outputs is not None else None
        self._ring = np.zeros((window, width), dtype=np.float32)
        self._next = 0
        self._filled = 0
        self._pending: deque[np.ndarray] = deque()
        self._pending_rows = 0
        self._dropped = 0
        self._lock = threading.Lock()
        self.seen = 0
        self.checked_at_seen = 0
        self._drained = 0
        self._fleet: deque[CurrentSummary] = deque()
        self.fleet_seen = 0

    def observe(self, x: np.ndarray) -> None:
        """Copy one batch's flattened inputs into the window: a memcpy, no statistics."""
        rows = x.reshape(len(x), -1)
        if rows.shape[1] != self.width:
            raise InputError(f"inputs have {rows.shape[1]} values; the monitor expects {self.width}")
        n = len(rows)
        with self._lock:
            if n >= self.window:
                self._ring[:] = rows[-self.window :]
                self._next, self._filled = 0, self.window
            else:
                end = self._next + n
                if end <= self.window:
                    self._ring[self._next : end] = rows
                else:
                    cut = self.window - self._next
                    self._ring[self._next :] = rows[:cut]
                    self._ring[: n - cut] = rows[cut:]
                self._next = end % self.window
                self._filled = min(self.window, self._filled + n)
            self.seen += n

    def observe_outputs(self, probs: np.ndarray) -> None:
        """Queue one answered batch's probabilities for the output monitor (bounded; the oldest are dropped)."""
        if self.outputs is None:
            return
        with self._lock:
            self._pending.append(probs)
            self._pending_rows += len(probs)
            while self._pending_rows > MAX_PENDING_OUTPUTS:
                dropped = self._pending.popleft()
                self._pending_rows -= len(dropped)
                self._dropped += len(dropped)

    def snapshot(self) -> np.ndarray:
        """The window's rows, oldest first (a copy)."""
        with self._lock:
            return self._latest(self._filled)

    def _latest(self, n: int) -> np.ndarray:
        """The newest ``n`` rows of the window, oldest first (a copy; call with the lock held)."""
        if self._filled < self.window:
            return self._ring[self._filled - n : self._filled].astype(np.float64)
        return np.roll(self._ring, -self._next, axis=0)[self.window - n :].astype(np.float64)

    def drain(self) -> Interval | None:
        """What this process saw since the last drain (inputs beyond one window are not summarised), or None."""
        with self._lock:
            new = min(self.seen - self._drained, self.window)
            self._drained = self.seen
            rows = self._latest(new)
            pending, self._pending, self._pending_rows = list(self._pending), deque(), 0
        if not new and not pending:
            return None
        inputs = summarise(self.sketch, self._source(rows), self.config) if new else CurrentSummary.empty(self.sketch)
        interval = Interval(inputs)
        if self.outputs is not None and pending:
            values = self.outputs.stream_values(np.concatenate(pending))
            interval.outputs, interval.sums = len(values), values.sum(axis=0)
        return interval

    def check_fleet(self, intervals: list[Interval]) -> LiveCheck:
        """Fold the fleet's merged intervals, oldest first, into the fleet window and the output monitor; test it.

        The window keeps the newest checks' inputs that hold at least ``window`` rows (so it may hold one check's
        worth more), at most ``MAX_FLEET_CHECKS`` checks. The output monitor sees each interval's outputs as that
        many outputs at their mean: windows lying inside one interval average alike, a shift moves them alike."""
        started = time.perf_counter()
        alarms: list[Alarm] = []
        merged = CurrentSummary.empty(self.sketch)
        for interval in intervals:
            merged.merge(interval.inputs)
            if self.outputs is not None and interval.sums is not None and interval.outputs:
                mean = interval.sums / interval.outputs
                alarms.extend(self.outputs.fold(np.repeat(mean[None, :], interval.outputs, axis=0)))
        if merged.rows:
            self._fleet.append(merged)
            self.fleet_seen += merged.rows
        while len(self._fleet) > MAX_FLEET_CHECKS or (
            len(self._fleet) > 1 and sum(c.rows for c in self._fleet) - self._fleet[0].rows >= self.window
        ):
            self._fleet.popleft()
        window = CurrentSummary.empty(self.sketch)
        for part in self._fleet:
            window.merge(part)
        report = drift_of(self.sketch, window, self.config) if window.rows >= self.min_rows else None
        return LiveCheck(time.time(), window.rows, self.fleet_seen, report, alarms, time.perf_counter() - started)

    def check(self) -> LiveCheck:
        """Drift of the current window (when it holds ``min_rows``) and the alarms of the queued outputs."""
        started = time.perf_counter()
        with self._lock:
            pending, self._pending, self._pending_rows = list(self._pending), deque(), 0
            dropped, self._dropped = self._dropped, 0
            seen = self.seen
        rows = self.snapshot()
        report = None
        if len(rows) >= self.min_rows:
            report = detect_drift(self.sketch, self._source(rows), self.config)
        alarms: list[Alarm] = []
        if self.outputs is not None and pending:
            alarms = self.outputs.update(np.concatenate(pending))
        self.checked_at_seen = seen
        return LiveCheck(time.time(), len(rows), seen, report, alarms, time.perf_counter() - started, dropped)

    def _source(self, rows: np.ndarray) -> Any:
        chunk = Chunk(rows=len(rows), columns=[name for name, _ in self.columns])
        by_column = finite(np.ascontiguousarray(rows.T))  # one transposing copy, not one per column
        chunk.numeric = {name: by_column[j] for name, j in self.columns}

        def one() -> Iterator[Chunk]:
            yield chunk

        return one


def sketch_inputs(sketch: ReferenceSketch, width: int) -> np.ndarray:
    """The sketch's reservoir rows as flattened inputs (N, ``width``), for reference outputs when only a sketch is
    given; a value the reservoir lacks (missing, or a column the sketch does not have) is the feature's mean."""
    means = {f.name: f.mean for f in sketch.features if isinstance(f, NumericFeature)}
    rows = np.zeros((len(sketch.reservoir), width))
    where = {name: j for j, name in enumerate(sketch.reservoir_columns)}
    for name, i in sketch_columns(sketch, width):
        col = sketch.reservoir[:, where[name]] if name in where else np.full(len(rows), means[name])
        rows[:, i] = np.where(np.isnan(col), means[name], col)
    return rows


__all__ = [
    "Interval",
    "LiveCheck",
    "LiveMonitor",
    "alarm_dict",
    "sketch_columns",
    "sketch_from_inputs",
    "sketch_inputs",
]
