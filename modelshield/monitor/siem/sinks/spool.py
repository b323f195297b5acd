"""A bounded on-disk FIFO of events waiting for a collector: one SQLite file, survives a process restart.

Every event is committed to the spool before ``send`` returns (WAL, ``synchronous=NORMAL``: it survives the
process being killed, not a power loss — ``durability="fsync"`` fsyncs each commit instead). The sender reads
the oldest rows, and deletes them only once the collector has acknowledged them, so delivery is in order and
at least once: a batch whose acknowledgement was lost is sent again (``metadata.uid`` identifies duplicates).

When the spool is full (``max_records`` or ``max_bytes``), ``on_full`` decides:
- ``"block"`` (default): ``put`` waits up to ``block_seconds`` for room, then raises ``SpoolFullError`` —
  nothing is lost, the caller knows the event was not taken;
- ``"drop-oldest"``: the oldest events make room; each one dropped is counted (``dropped`` in ``status()``,
  kept across restarts) and logged.
Batches the collector refuses for good (a 4xx other than 408/429) move to a dead-letter table, kept, counted
and logged, instead of blocking the queue forever.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelshield.core.errors import FormatError, InputError
from modelshield.monitor.siem.sinks.base import SinkError

log = logging.getLogger(__name__)
OnFull = Literal["block", "drop-oldest"]
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY, body TEXT NOT NULL, status INTEGER, error TEXT, at REAL)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)


def _is_spool(path: Path) -> bool:
    """An empty file, or a SQLite database whose tables are ours (never write our tables into someone's database)."""
    if path.stat().st_size == 0:
        return True
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return False
    return "events" in tables and tables <= {"events", "dead", "counters", "sqlite_sequence"}


class SpoolFullError(SinkError):
    """The spool is at its bound and ``on_full="block"`` waited in vain."""

    hint = "the collector has been unreachable for long: fix it, or raise the spool's max_records/max_bytes"


@dataclass(frozen=True)
class SpoolStatus:
    pending: int
    pending_bytes: int
    oldest_id: int | None
    dead: int
    dropped: int


class Spool:
    """The spool file at ``path``; safe to use from several threads of one process."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_records: int = 1_000_000,
        max_bytes: int = 1 << 30,
        on_full: OnFull = "block",
        block_seconds: float = 30.0,
        durability: Literal["process", "fsync"] = "process",
    ) -> None:
        if on_full not in ("block", "drop-oldest"):
            raise InputError(f"unknown spool policy {on_full!r} (block or drop-oldest)")
        if max_records < 1 or max_bytes < 1:
            raise InputError("the spool bounds max_records and max_bytes must be positive")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_records, self.max_bytes = max_records, max_bytes
        self.on_full, self.block_seconds = on_full, block_seconds
        if self.path.exists() and not _is_spool(self.path):
            raise FormatError(f"{self.path} exists and is not a SIEM spool; pick another --spool path")
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durability == 'fsync' else 'NORMAL'}")
        for stmt in _SCHEMA:
            self._db.execute(stmt)
        self._lock = threading.Condition()
        self._count, self._bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM events"
        ).fetchone()

    def put(self, body: str) -> None:
        """Append one event (its JSON text), applying ``on_full`` at the bound."""
        self.put_many([body])

    def put_many(self, bodies: list[str]) -> None:
        """Append events in one transaction (one commit instead of one each: what a bulk export wants)."""
        size, n = sum(len(b) for b in bodies), len(bodies)
        if size > self.max_bytes or n > self.max_records:
            raise InputError(f"{n} event(s) of {size} bytes cannot fit the spool at all; send fewer at once")
        with self._lock:
            if self._full(size, n):
                if self.on_full == "block":
                    deadline = time.monotonic() + self.block_seconds
                    while self._full(size, n):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise SpoolFullError(
                                f"spool {self.path} is full ({self._count} events, {self._bytes} bytes)"
                            )
                        self._lock.wait(left)
                else:
                    self._drop_oldest(size, n)
            if n == 1:  # one statement in autocommit: half the cost of an explicit transaction
                self._db.execute("INSERT INTO events (body) VALUES (?)", (bodies[0],))
            else:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany("INSERT INTO events (body) VALUES (?)", [(b,) for b in bodies])
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            self._count += n
            self._bytes += size

    def _full(self, size: int, n: int) -> bool:
        return self._count + n > self.max_records or self._bytes + size > self.max_bytes

    def _drop_oldest(self, size: int, n: int) -> None:
        dropped = freed = 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = self._db.execute("SELECT id, length(body) FROM events ORDER BY id")
            for row_id, length in rows:
                if not (self._count - dropped + n > self.max_records or self._bytes - freed + size > self.max_bytes):
                    break
                dropped += 1
                freed += length
                last = row_id
            rows.close()
            if dropped:
                self._db.execute("DELETE FROM events WHERE id <= ?", (last,))
                self._bump("dropped", dropped)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._count -= dropped
        self._bytes -= freed
        log.warning("SIEM spool %s full: dropped the %d oldest event(s) (policy drop-oldest)", self.path, dropped)

    def _bump(self, name: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
            (name, by, by),
        )

    def peek(self, n: int) -> list[tuple[int, str]]:
        """The ``n`` oldest events, (id, body), oldest first."""
        with self._lock:
            return list(self._db.execute("SELECT id, body FROM events ORDER BY id LIMIT ?", (n,)))

    def ack(self, rows: list[tuple[int, str]]) -> None:
        """The collector has ``rows``: delete them and wake any ``put`` waiting for room."""
        if not rows:
            return
        span = (rows[0][0], rows[-1][0])
        with self._lock:  # counted in the database: drop-oldest may have removed some of these meanwhile
            n, size = self._db.execute(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM events WHERE id BETWEEN ? AND ?", span
            ).fetchone()
            self._db.execute("DELETE FROM events WHERE id BETWEEN ? AND ?", span)
            self._count -= n
            self._bytes -= size
            self._lock.notify_all()

    def bury(self, rows: list[tuple[int, str]], status: int, error: str) -> None:
        """Move ``rows`` the collector refused for good to the dead-letter table."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO dead (id, body, status, error, at) VALUES (?, ?, ?, ?, ?)",
                [(i, b, status, error[:500], time.time()) for i, b in rows],
            )
            self._db.execute("COMMIT")
        self.ack(rows)
        log.error(
            "SIEM collector refused %d event(s) with HTTP %d; kept as dead letters in %s", len(rows), status, self.path
        )

    def status(self) -> SpoolStatus:
        with self._lock:
            oldest = self._db.execute("SELECT min(id) FROM events").fetchone()[0]
            dead = self._db.execute("SELECT count(*) FROM dead").fetchone()[0]
            dropped = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
            return SpoolStatus(self._count, self._bytes, oldest, dead, dropped[0] if dropped else 0)

    def wait_for_room_or_empty(self, timeout: float) -> None:
        """Sleep until an ``ack`` or ``timeout`` (what ``HttpCollectorSink.drain`` waits on)."""
        with self._lock:
            if self._count:
                self._lock.wait(timeout)

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        with self._lock:
            self._db.close()
