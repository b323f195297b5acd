"""Retention schedules: each data set keeps rows for ``keep_days`` after their timestamp, then they go.

A schedule is YAML, one entry per data set (a path or a glob, relative to the schedule's folder)::

    datasets:
      - path: data/events-*.csv
        timestamp_column: created_at
        keep_days: 90
        action: tombstone        # or delete
        id_column: record_id     # optional: names the rows in tombstones

``enforce(schedule, now)`` rewrites each file without its expired rows (atomically) and reports rows removed and
the digests before and after. ``tombstone`` also appends, per row, its id and digest (never the data) to
``<file>.tombstones.jsonl``; ``delete`` leaves no trace. A file with nothing expired is not rewritten, so
running the command again (as a scheduler will) changes nothing.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from modelshield.core.errors import InputError, MissingFileError
from modelshield.core.files import load_yaml
from modelshield.govern.erasure import DatasetChange, read_table, remove_rows

RetentionAction = Literal["delete", "tombstone"]


@dataclass(frozen=True)
class RetentionRule:
    """Keep rows of the files matching ``path`` for ``keep_days`` after ``timestamp_column``."""

    path: str
    timestamp_column: str
    keep_days: float
    action: RetentionAction = "tombstone"
    id_column: str | None = None


@dataclass(frozen=True)
class Schedule:
    rules: tuple[RetentionRule, ...]
    base: Path


def _rule(raw: Any, where: str) -> RetentionRule:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: each data set entry is a mapping")
    if unknown := sorted(set(raw) - {"path", "timestamp_column", "keep_days", "action", "id_column"}):
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}")
    path, column, days = raw.get("path"), raw.get("timestamp_column"), raw.get("keep_days")
    action = raw.get("action", "tombstone")
    if not isinstance(path, str) or not path or not isinstance(column, str) or not column:
        raise InputError(f"{where}: needs path and timestamp_column")
    if isinstance(days, bool) or not isinstance(days, (int, float)) or days < 0:
        raise InputError(f"{where}: keep_days must be a number of days ≥ 0")
    if action not in ("delete", "tombstone"):
        raise InputError(f"{where}: action must be delete or tombstone, not {action!r}")
    id_column = raw.get("id_column")
    if id_column is not None and not isinstance(id_column, str):
        raise InputError(f"{where}: id_column must be a column name")
    return RetentionRule(path, column, float(days), action, id_column)


def load_schedule(path: Path | str) -> Schedule:
    """Read and check a retention schedule (YAML, safe loader)."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"retention schedule {p} does not exist")
    raw = load_yaml(p)
    entries = raw.get("datasets") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{p}: expected a 'datasets' list of retention rules")
    return Schedule(tuple(_rule(e, f"{p} datasets[{i}]") for i, e in enumerate(entries)), p.parent)


@dataclass
class RetentionChange:
    """What enforcement did to one file."""

    path: str
    action: RetentionAction
    keep_days: float
    rows_before: int
    rows_removed: int
    old_digest: str
    new_digest: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RetentionReport:
    now: str
    datasets: list[RetentionChange] = field(default_factory=list)

    @property
    def rows_removed(self) -> int:
        return sum(d.rows_removed for d in self.datasets)

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now, "rows_removed": self.rows_removed, "datasets": [d.to_dict() for d in self.datasets]}


def _files(rule: RetentionRule, base: Path) -> list[Path]:
    pattern = rule.path if Path(rule.path).is_absolute() else str(base / rule.path)
    found = sorted(Path(p) for p in glob.glob(pattern) if not p.endswith(".tombstones.jsonl"))
    if not found:
        raise MissingFileError(f"retention rule {rule.path!r} matches no file")
    return found


def enforce(schedule: Schedule, now: datetime) -> RetentionReport:
    """Remove every row older than its rule's ``keep_days`` as of ``now`` (timezone-aware; naive means UTC)."""
    import pandas as pd

    when = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    report = RetentionReport(when.isoformat())
    for rule in schedule.rules:
        cutoff = when - timedelta(days=rule.keep_days)
        for path in _files(rule, schedule.base):
            frame = read_table(path)
            if rule.timestamp_column not in frame.columns:
                raise InputError(f"{path} has no column {rule.timestamp_column!r}")
            if rule.id_column is not None and rule.id_column not in frame.columns:
                raise InputError(f"{path} has no column {rule.id_column!r}")
            stamps = pd.to_datetime(frame[rule.timestamp_column], errors="coerce", utc=True, format="mixed")
            if bad := int(stamps.isna().sum()):
                raise InputError(f"{path}: {bad} row(s) have no readable {rule.timestamp_column}; fix them first")
            drop = (stamps < pd.Timestamp(cutoff)).to_numpy()
            tombstones = path.with_name(path.name + ".tombstones.jsonl") if rule.action == "tombstone" else None
            reason = {"reason": "retention", "keep_days": rule.keep_days, "time": when.isoformat()}
            change: DatasetChange = remove_rows(
                path, frame, drop, id_column=rule.id_column, tombstones=tombstones, reason=reason
            )
            report.datasets.append(
                RetentionChange(
                    str(path),
                    rule.action,
                    rule.keep_days,
                    change.rows_before,
                    change.rows_removed,
                    change.old_digest,
                    change.new_digest,
                )
            )
    return report


__all__ = ["RetentionReport", "RetentionRule", "Schedule", "enforce", "load_schedule"]
