"""``AuditLog``: durable, group-committed appends to the hash chain, with periodic signed checkpoints.

Callers on any thread (or asyncio task) hand events to one writer thread. The writer takes every event that
is waiting, chains them, inserts them in ONE transaction and commits (SQLite ``synchronous=FULL`` or
PostgreSQL ``synchronous_commit=on``: the commit is on disk when it returns), then wakes each caller with its
sequence number. While one commit is being flushed the next batch queues up, so concurrent callers share the
cost of an fsync instead of waiting for one each.

Asyncio callers (``append_async``) do not cost a thread hop each: their asyncio futures ride in the queue, and
after a commit the writer wakes each event loop ONCE for the whole batch (one ``call_soon_threadsafe``), which
resolves every waiter of that loop.

``durability="process"`` trades power-loss safety for latency: SQLite ``synchronous=NORMAL`` (WAL), PostgreSQL
``synchronous_commit=off`` — a record is still committed before its caller is woken, so it survives the
process being killed, but not a power loss (see ``modelshield.core.storage``).

Several processes may write to one database: each batch takes the database write lock and re-reads the head
of the chain, so their records interleave into one valid chain. The per-batch statements (head read, insert)
go straight to the driver's cursor: SQLAlchemy's statement machinery cost several times the SQLite commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from modelshield.audit import schema
from modelshield.audit.canonical import MAX_EVENT_BYTES, canonical_event
from modelshield.audit.checkpoint import Checkpoint, append_witness, sign
from modelshield.audit.merkle import Frontier
from modelshield.audit.ocsf import export_ocsf
from modelshield.audit.verify import VerifyReport, verify_log
from modelshield.core.errors import InputError, ModelShieldError
from modelshield.core.storage import Durability, ensure_schema, open_engine, safe_url, write_transaction

log = logging.getLogger(__name__)
MAX_BATCH = 1024
WAIT_SECONDS = 5.0  # the longest an append waits for its commit
RETRY_SECONDS = 1.0  # how often a failing writer tries again while no appends arrive
CHECKPOINT_WAIT_SECONDS = 60.0


class AuditWriteError(ModelShieldError):
    """An audit record could not be made durable; whatever it was recording must not go ahead."""

    hint = "check that the audit database is reachable and writable"


WITNESS_HINT = "check the witness file's path, permissions and free space"


@dataclass
class _Append:
    """One queued event: a thread caller waits on ``future``; an asyncio caller on ``waiter`` in ``loop``.
    ``abandoned`` is set by a caller that stopped waiting: if it is not committed yet, it never will be."""

    data: bytes
    future: Future[int] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[int] | None = None
    abandoned: bool = False


def _settle(outcomes: list[tuple[asyncio.Future[int], int | BaseException]]) -> None:
    """On the event loop: resolve every asyncio waiter of one committed (or failed) batch."""
    for waiter, outcome in outcomes:
        if waiter.done():  # the caller was cancelled or timed out
            continue
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)


def _resolve(batch: list[_Append], outcomes: list[int | BaseException]) -> None:
    """Hand each caller its sequence number (or the error): thread futures directly, one wake-up per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int | BaseException]]] = defaultdict(list)
    for item, outcome in zip(batch, outcomes, strict=True):
        if item.future is not None:
            if item.future.done():
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)
        elif item.loop is not None and item.waiter is not None:
            by_loop[item.loop].append((item.waiter, outcome))
    for loop, waiting in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, waiting)
        except RuntimeError:  # that loop has closed; nobody is left waiting
            log.debug("audit: event loop closed before %d waiters were woken", len(waiting))


@dataclass
class _CheckpointRequest:
    future: Future[Checkpoint]


_STOP = object()


def _now_us() -> int:
    return time.time_ns() // 1000


class AuditLog:
    """The tamper-evident audit log in the store at ``url`` (see ``modelshield.core.storage``).

    Faults fail closed and visibly: a batch that cannot be committed (database down, full or locked) or whose
    checkpoint cannot be mirrored to the witness file fails its callers with ``AuditWriteError``; no caller
    waits longer than ``wait_seconds``; ``problem()`` says why appends are failing until the writer has
    succeeded again, which it tries on the next append and every ``retry_seconds`` while idle. The writer
    never dies of an error; should its thread stop anyway, the next call starts a new one.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 5.0,
        witness: Path | str | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
        wait_seconds: float = WAIT_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        if checkpoint_every < 1 or checkpoint_seconds <= 0:
            raise InputError("checkpoint_every must be at least 1 and checkpoint_seconds positive")
        if wait_seconds <= 0 or retry_seconds <= 0:
            raise InputError("wait_seconds and retry_seconds must be positive")
        ensure_schema(engine, schema.COMPONENT, schema.metadata, schema.SCHEMA_VERSION, after_create=_initialise)
        self._engine = engine
        self._key = signing_key
        self._every = checkpoint_every
        self._seconds = checkpoint_seconds
        self._witness = Path(witness) if witness is not None else None
        self._max_event_bytes = max_event_bytes
        self._wait = wait_seconds
        self._retry = retry_seconds
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        # Health, written by the writer thread and read by any: why appends fail, since when it is busy.
        self._failure: AuditWriteError | None = None
        self._busy_since: float | None = None
        self._writer_stopped = False
        # Writer-thread state: the head of the chain as last seen inside a locked transaction.
        self._log_id = ""
        self._head_seq = -1
        self._head_hash = schema.GENESIS
        self._head_time = 0
        self._frontier = Frontier()
        self._last_cp_seq = 0
        self._next_cp = time.monotonic() + checkpoint_seconds
        self._unwitnessed: list[Checkpoint] = []  # committed checkpoints the witness file does not have yet
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        table = schema.records.name
        self._head_sql = f"SELECT seq, hash, recorded_at FROM {table} ORDER BY seq DESC LIMIT 1"
        self._insert_sql = (
            f"INSERT INTO {table} (seq, recorded_at, event, prev_hash, hash) VALUES ({', '.join([mark] * 5)})"
        )
        self._driver_errors: tuple[type[BaseException], ...] = (SQLAlchemyError, engine.dialect.loaded_dbapi.Error)
        self._thread = self._start_writer()

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 5.0,
        witness: Path | str | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
        durability: Durability = "fsync",
        wait_seconds: float = WAIT_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
    ) -> AuditLog:
        """Open (creating if needed) the audit log; with ``signing_key`` it signs a checkpoint every
        ``checkpoint_every`` records or ``checkpoint_seconds``, whichever comes first, mirrored to ``witness``.
        ``durability``: "fsync" (on disk before an append returns) or "process" (survives kill -9, not power loss).
        ``wait_seconds``: the longest an append waits for its commit before failing."""
        return cls(
            open_engine(url, durability=durability),
            signing_key=signing_key,
            checkpoint_every=checkpoint_every,
            checkpoint_seconds=checkpoint_seconds,
            witness=witness,
            max_event_bytes=max_event_bytes,
            wait_seconds=wait_seconds,
            retry_seconds=retry_seconds,
        )

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- callers -------------------------------------------------------------------------------------------

    def problem(self) -> str | None:
        """None while appends are being committed; otherwise why they are failing (for readiness probes)."""
        if self._closed:
            return "the audit log is closed"
        self._ensure_writer()
        failure = self._failure
        return self._blocked() or (None if failure is None else str(failure.args[0]))

    def _blocked(self) -> str | None:
        busy = self._busy_since
        if busy is not None and (stuck := time.monotonic() - busy) > self._wait:
            return f"the audit writer has been stuck on one write for {stuck:.0f} s (database locked, slow or not answering)"
        return None

    def _start_writer(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="modelshield-audit-writer", daemon=True)
        thread.start()
        return thread

    def _ensure_writer(self) -> None:
        """Start a new writer thread if the last one stopped (it re-reads the chain head from the database)."""
        if not self._writer_stopped:
            return
        with self._close_lock:
            if self._writer_stopped and not self._closed:
                self._writer_stopped = False
                self._head_seq = -1
                self._thread = self._start_writer()

    def _submit(self, item: Any) -> None:
        self._ensure_writer()
        blocked = self._blocked()
        if blocked is not None:  # queueing behind a blocked writer would only time out
            raise AuditWriteError(f"audit append refused: {blocked}")
        with self._close_lock:
            if self._closed:
                raise InputError("the audit log is closed")
            self._queue.put(item)

    def _timed_out(self) -> AuditWriteError:
        why = self.problem()
        return AuditWriteError(
            f"the audit record was not committed within {self._wait:g} s" + (f": {why}" if why else "")
        )

    def append(self, event: Mapping[str, Any]) -> int:
        """Append an event and return its sequence number once it is committed and on disk; raises
        ``AuditWriteError`` if that fails or takes longer than ``wait_seconds``."""
        item = _Append(canonical_event(event, self._max_event_bytes), future=Future())
        self._submit(item)
        assert item.future is not None
        try:
            return item.future.result(timeout=self._wait)
        except TimeoutError:
            item.abandoned = True
            raise self._timed_out() from None

    async def append_async(self, event: Mapping[str, Any]) -> int:
        """``append`` for asyncio code: waits for the writer without blocking the event loop (nor a thread)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int] = loop.create_future()
        item = _Append(canonical_event(event, self._max_event_bytes), loop=loop, waiter=waiter)
        self._submit(item)
        timer = loop.call_later(self._wait, self._expire, item)
        try:
            return await waiter
        finally:
            timer.cancel()

    def _expire(self, item: _Append) -> None:
        """On the event loop: an asyncio caller's wait is over; its record is dropped unless already committed."""
        if item.waiter is not None and not item.waiter.done():
            item.abandoned = True
            item.waiter.set_exception(self._timed_out())

    def checkpoint(self, timeout: float = CHECKPOINT_WAIT_SECONDS) -> Checkpoint:
        """Sign a checkpoint over every record so far now (or return the latest, if nothing is new); waits at most
        ``timeout`` seconds (a first checkpoint over a long log re-reads every record hash)."""
        if self._key is None:
            raise InputError(
                "this audit log has no signing key, so it cannot sign checkpoints",
                hint="open it with signing_key=..., or use: modelshield audit checkpoint --key PRIV",
            )
        future: Future[Checkpoint] = Future()
        self._submit(_CheckpointRequest(future))
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            raise AuditWriteError(f"the checkpoint was not signed within {timeout:g} s: {self.problem()}") from None

    def verify(
        self,
        public_key: Ed25519PublicKey,
        *,
        witness: Path | str | None = None,
        expected_seq: int | None = None,
        expected_root: str | None = None,
    ) -> VerifyReport:
        """Walk the chain and checkpoints (see ``modelshield.audit.verify``)."""
        return verify_log(
            self._engine, public_key, witness=witness, expected_seq=expected_seq, expected_root=expected_root
        )

    def export_ocsf(self, out: IO[str], since: int = 0) -> int:
        """Write records after ``since`` as OCSF API Activity JSON lines; returns how many."""
        return export_ocsf(self._engine, out, since)

    def close(self, timeout: float | None = None) -> None:
        """Finish every queued append, sign a last checkpoint if records were added since the last one, stop.

        Waits at most ``timeout`` seconds (default ``wait_seconds``; none at all for a writer already blocked that
        long), so shutdown is bounded: a writer stuck on the database is left behind (a daemon thread) with an error
        logged; whatever it still held was never acknowledged to its callers."""
        blocked = self._blocked()
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(0 if blocked else self._wait if timeout is None else timeout)
        if self._thread.is_alive():
            log.error("audit log closed with its writer still blocked (%s)", blocked or self._failure or "no answer")
            return
        self._engine.dispose()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        try:
            while not stopping:
                stopping = self._step()
            if self._key is not None:
                self._checkpoint_quietly()
        finally:
            if not stopping:  # only a BaseException gets here: every Exception is handed to the callers
                self._writer_died()

    def _step(self) -> bool:
        """Wait for work (or the next timed checkpoint / recovery attempt), do it; True once told to stop."""
        if self._failure is not None:
            timeout: float | None = self._retry
        else:
            timeout = max(0.0, self._next_cp - time.monotonic()) if self._key is not None else None
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            self._busy_since = time.monotonic()
            try:
                if self._failure is not None:
                    self._recover()
                else:
                    self._checkpoint_quietly()
            finally:
                self._busy_since = None
            return False
        batch, requests, stopping = self._collect(first)
        self._busy_since = time.monotonic()
        try:
            if batch:
                self._write(batch)
            for request in requests:
                try:
                    request.future.set_result(self._checkpoint(force=True))
                except Exception as exc:  # noqa: BLE001 - handed to the caller waiting on it
                    request.future.set_exception(exc if isinstance(exc, InputError) else self._record_failure(exc))
            if self._failure is None and self._key is not None and time.monotonic() >= self._next_cp:
                self._checkpoint_quietly()
        except BaseException:  # the thread is going down: nobody may be left waiting on this batch
            error = AuditWriteError("the audit writer stopped unexpectedly")
            _resolve(batch, [error] * len(batch))
            for request in requests:
                if not request.future.done():
                    request.future.set_exception(error)
            raise
        finally:
            self._busy_since = None
        return stopping

    def _collect(self, first: Any) -> tuple[list[_Append], list[_CheckpointRequest], bool]:
        """``first`` and everything else already queued (up to ``MAX_BATCH`` appends)."""
        batch: list[_Append] = []
        requests: list[_CheckpointRequest] = []
        item, stopping = first, False
        while True:
            if item is _STOP:
                stopping = True
            elif isinstance(item, _CheckpointRequest):
                requests.append(item)
            else:
                batch.append(item)
            if stopping or len(batch) >= MAX_BATCH:
                return batch, requests, stopping
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, requests, stopping

    def _writer_died(self) -> None:
        """Fail everything queued and let the next caller start a new writer."""
        with self._close_lock:
            self._writer_stopped = True
            self._failure = AuditWriteError(
                "the audit writer thread stopped unexpectedly; a new one starts on the next call"
            )
            pending = []
            while True:
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
        log.critical("audit writer thread stopped unexpectedly; %d queued calls failed", len(pending))
        error = AuditWriteError(str(self._failure.args[0]))
        _resolve([p for p in pending if isinstance(p, _Append)], [error] * sum(isinstance(p, _Append) for p in pending))
        for p in pending:
            if isinstance(p, _CheckpointRequest):
                p.future.set_exception(error)

    def _record_failure(self, exc: Exception) -> AuditWriteError:
        """Remember why the writer failed (readiness reports it until a write succeeds); the error for callers."""
        if isinstance(exc, AuditWriteError):
            error = AuditWriteError(str(exc.args[0]), exc.hint)
        elif isinstance(exc, self._driver_errors):
            error = AuditWriteError(
                f"audit append to {safe_url(str(self._engine.url))} failed: "
                f"{type(exc).__name__}: {(str(getattr(exc, 'orig', exc)).splitlines() or [''])[0]}"
            )
        else:
            error = AuditWriteError(f"audit writer failed: {type(exc).__name__}: {exc}")
        self._head_seq = -1  # re-read everything inside the next transaction
        if self._failure is None or self._failure.args != error.args:
            log.error("%s (appends fail until it succeeds again)", error)
        self._failure = error
        return error

    def _healthy(self) -> None:
        if self._failure is not None:
            log.warning("audit writer healthy again after: %s", self._failure)
            self._failure = None

    def _recover(self) -> None:
        """While failing and idle: try the witness file and the database again, so readiness comes back by itself."""
        try:
            self._flush_witness()
            with write_transaction(self._engine, schema.WRITE_LOCK) as conn:
                self._sync_head(conn)
        except Exception as exc:  # noqa: BLE001 - still failing; kept for problem() and retried
            self._record_failure(exc)
            return
        self._healthy()

    def _sync_head(self, conn: Connection) -> None:
        """Bring the cached head and Merkle frontier up to the database's head (other writers may have added)."""
        if not self._log_id:
            self._log_id = conn.execute(
                sa.select(schema.meta.c.value).where(schema.meta.c.key == "log_id")
            ).scalar_one()
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self._head_sql)
            head = cursor.fetchone()
        finally:
            cursor.close()
        head_seq = head[0] if head else 0
        if head_seq == self._head_seq:
            return
        if head_seq < self._head_seq or self._head_seq < 0:
            self._frontier, self._last_cp_seq = self._resume_frontier(conn, head_seq)
        rows = conn.execute(
            sa.select(schema.records.c.hash)
            .where(schema.records.c.seq > self._frontier.size)
            .order_by(schema.records.c.seq)
        )
        self._frontier.extend(bytes.fromhex(r.hash) for r in rows)
        self._head_seq = head_seq
        self._head_hash = bytes.fromhex(head[1]) if head else schema.GENESIS
        self._head_time = head[2] if head else 0

    def _resume_frontier(self, conn: Connection, head_seq: int) -> tuple[Frontier, int]:
        """The latest checkpoint's cached frontier when it checks out (else an empty one), and its seq."""
        row = conn.execute(sa.select(schema.checkpoints).order_by(schema.checkpoints.c.seq.desc()).limit(1)).first()
        if row is None:
            return Frontier(), 0
        try:
            frontier = Frontier(row.seq, [bytes.fromhex(h) for h in json.loads(row.frontier)])
        except (ValueError, TypeError):
            return Frontier(), row.seq
        usable = frontier.size <= head_seq and frontier.root().hex() == row.root
        return (frontier if usable else Frontier()), row.seq

    def _write(self, batch: list[_Append]) -> None:
        """Chain, insert and commit one batch; then (and only then) tell each caller its sequence number.

        A checkpoint the witness file is missing is written first: while that fails nothing new is committed."""
        checkpoint: Checkpoint | None = None
        outcomes: list[int | BaseException] = []
        try:
            self._flush_witness()
            with write_transaction(self._engine, schema.WRITE_LOCK) as conn:
                self._sync_head(conn)
                now = max(_now_us(), self._head_time)
                prev, seq, rows = self._head_hash, self._head_seq, []
                frontier = self._frontier.copy()
                for item in batch:
                    if item.abandoned:  # its caller gave up waiting (and answered with an error)
                        outcomes.append(AuditWriteError("the caller stopped waiting; not recorded"))
                        continue
                    seq += 1
                    digest = schema.record_hash(prev, seq, now, item.data)
                    rows.append((seq, now, item.data.decode("utf-8"), prev.hex(), digest.hex()))
                    frontier.append(digest)
                    prev = digest
                    outcomes.append(seq)
                if rows:
                    cursor = conn.connection.cursor()
                    try:
                        cursor.executemany(self._insert_sql, rows)
                    finally:
                        cursor.close()
                if self._key is not None and seq - self._last_cp_seq >= self._every:
                    checkpoint = self._insert_checkpoint(conn, frontier, now)
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the error
            error = self._record_failure(exc)
            _resolve(batch, [error] * len(batch))
            return
        self._head_seq, self._head_hash, self._head_time, self._frontier = seq, prev, now, frontier
        if checkpoint is not None:
            try:
                self._after_checkpoint(checkpoint)
            except Exception as exc:  # noqa: BLE001 - committed, but the witness is behind: fail closed
                error = self._record_failure(exc)
                error = AuditWriteError(f"records up to seq {seq} were committed, but {error.args[0]}", error.hint)
                _resolve(batch, [error] * len(batch))
                return
        self._healthy()
        _resolve(batch, outcomes)

    def _insert_checkpoint(self, conn: Connection, frontier: Frontier, now: int) -> Checkpoint:
        assert self._key is not None
        cp = sign(self._key, self._log_id, frontier.size, frontier.root().hex(), now)
        conn.execute(
            schema.checkpoints.insert().values(
                seq=cp.seq,
                created_at=cp.created_at,
                root=cp.root,
                key_id=cp.key_id,
                signature=cp.signature,
                frontier=json.dumps([n.hex() for n in frontier.nodes]),
            )
        )
        return cp

    def _after_checkpoint(self, cp: Checkpoint) -> None:
        self._last_cp_seq = cp.seq
        self._next_cp = time.monotonic() + self._seconds
        if self._witness is not None:
            self._unwitnessed.append(cp)
            self._flush_witness()

    def _flush_witness(self) -> None:
        """Append the checkpoints the witness file is missing, oldest first (all or none of them)."""
        if not self._unwitnessed or self._witness is None:
            return
        try:
            append_witness(self._witness, self._unwitnessed)
        except OSError as exc:
            raise AuditWriteError(
                f"cannot append checkpoint {self._unwitnessed[0].seq} to the witness file "
                f"{self._witness}: {exc.strerror or exc}",
                WITNESS_HINT,
            ) from exc
        self._unwitnessed.clear()

    def _checkpoint(self, force: bool) -> Checkpoint:
        """Sign a checkpoint at the current head if records were added since the last one."""
        self._flush_witness()
        with write_transaction(self._engine, schema.WRITE_LOCK) as conn:
            self._sync_head(conn)
            latest = conn.execute(
                sa.select(schema.checkpoints).order_by(schema.checkpoints.c.seq.desc()).limit(1)
            ).first()
            if latest is not None and latest.seq >= self._head_seq:
                self._last_cp_seq = latest.seq
                self._next_cp = time.monotonic() + self._seconds
                return Checkpoint(
                    self._log_id, latest.seq, latest.created_at, latest.root, latest.key_id, latest.signature
                )
            if self._head_seq == 0 and not force:
                self._next_cp = time.monotonic() + self._seconds
                raise InputError("the audit log is empty; there is nothing to checkpoint")
            cp = self._insert_checkpoint(conn, self._frontier, max(_now_us(), self._head_time))
        self._after_checkpoint(cp)
        return cp

    def _checkpoint_quietly(self) -> None:
        """A timed checkpoint: a failure is kept for ``problem()`` and retried, never lost silently."""
        try:
            self._checkpoint(force=False)
        except InputError:
            pass
        except Exception as exc:  # noqa: BLE001 - reported through problem() and the log
            self._next_cp = time.monotonic() + self._seconds
            self._record_failure(exc)


def _initialise(conn: Connection) -> None:
    """First open: give the log its identity and install the append-only guards."""
    conn.execute(
        schema.meta.insert(),
        [{"key": "log_id", "value": secrets.token_hex(16)}, {"key": "created_at", "value": str(_now_us())}],
    )
    schema.install_append_only(conn)
