"""Storage faults under the audit writer fail closed and visibly, and heal: a witness file that cannot be written,
a full disk, a locked SQLite database, PostgreSQL crashing mid-load. In every case each caller gets its sequence
number or an ``AuditWriteError`` within a bounded time, ``problem()`` says what is wrong until it is fixed, no
acknowledged record is lost, the witness file never holds a torn line, and the log verifies afterwards."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from stores import PrivatePostgres, fill
from stores import run_cli as run

from modelshield.audit import AuditLog, AuditWriteError, generate_keypair, load_private_key, schema
from modelshield.audit.checkpoint import Checkpoint, append_witness, read_witness, sign
from modelshield.core.storage import open_engine

WAIT, RETRY = 2.0, 0.05  # callers wait at most WAIT s; an idle failing writer retries every RETRY s


def until(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Wait for a condition the writer brings about on its own (recovery needs no traffic)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.01)


def timed(call: Callable[[], object]) -> tuple[object, float]:
    """(result or the exception raised, seconds taken)."""
    started = time.monotonic()
    try:
        result: object = call()
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        result = exc
    return result, time.monotonic() - started


def stored_seqs(url: str) -> set[int]:
    engine = open_engine(url)
    with engine.connect() as conn:
        seqs = set(conn.execute(sa.select(schema.records.c.seq)).scalars())
    engine.dispose()
    return seqs


def test_witness_replaced_by_a_directory_fails_closed_and_heals(db_url: str, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    witness, aside = tmp_path / "audit.witness", tmp_path / "audit.witness.saved"
    log = AuditLog.open(
        db_url,
        signing_key=key,
        checkpoint_every=2,
        checkpoint_seconds=3600,
        witness=witness,
        wait_seconds=WAIT,
        retry_seconds=RETRY,
    )
    acked = [log.append({"i": i}) for i in range(3)]  # checkpoint 2 is witnessed
    witness.rename(aside)
    witness.mkdir()
    result, took = timed(lambda: log.append({"i": 3}))  # record 4 commits, its checkpoint cannot be witnessed
    assert isinstance(result, AuditWriteError) and took < WAIT  # failed at once, not by timing out
    assert "committed" in str(result) and "Is a directory" in str(result)
    assert "witness file" in (log.problem() or "")
    result, took = timed(lambda: log.append({"i": 4}))  # nothing new is committed while the witness is behind
    assert isinstance(result, AuditWriteError) and "witness" in str(result) and took < WAIT
    assert stored_seqs(db_url) == {1, 2, 3, 4}
    witness.rmdir()
    aside.rename(witness)
    until(lambda: log.problem() is None, "the writer writes the missed checkpoint and reports healthy")
    acked.append(log.append({"i": 5}))
    log.close()
    assert acked == [1, 2, 3, 5]
    assert [cp.seq for cp in read_witness(witness).checkpoints] == [2, 4, 5]
    report = AuditLog.open(db_url).verify(key.public_key(), witness=witness)
    assert report.ok and report.records == 5 and report.witnessed == 3, report.problems


def _length(cp: Checkpoint) -> int:
    return len(json.dumps(cp.to_json(), sort_keys=True, separators=(",", ":"))) + 1


def test_a_short_write_on_a_full_disk_never_leaves_a_torn_witness_line(tiny_disk: Path) -> None:
    key = Ed25519PrivateKey.generate()
    cps = [sign(key, "ab" * 16, n, "cd" * 32, 1_700_000_000_000_000 + n) for n in range(1, 200)]
    witness = tiny_disk / "audit.witness"
    n = 0
    while not witness.exists() or witness.stat().st_size % 4096 + _length(cps[n]) <= 4096:
        append_witness(witness, [cps[n]])  # stop where the next line must start a new page
        n += 1
    before = witness.read_bytes()
    filler = fill(tiny_disk)  # tmpfs: the open page still has room, the next one does not -> a short write
    with pytest.raises(OSError, match=r"only \d+ of \d+ bytes written"):
        append_witness(witness, [cps[n]])
    assert witness.read_bytes() == before and before.endswith(b"\n")
    assert [cp.seq for cp in read_witness(witness).checkpoints] == list(range(1, n + 1))
    filler.unlink()
    append_witness(witness, [cps[n]])
    assert read_witness(witness).checkpoints[-1] == cps[n] and read_witness(witness).torn_tail == 0


def test_full_disk_under_load_fails_closed_loses_nothing_acknowledged(tiny_disk: Path) -> None:
    key = Ed25519PrivateKey.generate()
    url, witness = f"sqlite:///{tiny_disk / 'audit.db'}", tiny_disk / "audit.witness"
    log = AuditLog.open(
        url, signing_key=key, checkpoint_every=5, witness=witness, wait_seconds=WAIT, retry_seconds=RETRY
    )
    acked = [log.append({"phase": "before", "i": i}) for i in range(20)]
    filler = fill(tiny_disk)
    outcomes: list[tuple[object, float]] = []
    lock = threading.Lock()

    def client(t: int) -> None:
        for i in range(10):
            event = {"phase": "full", "t": t, "i": i, "pad": "x" * 2000}
            result, took = timed(lambda: log.append(event))  # noqa: B023 - called at once
            with lock:
                outcomes.append((result, took))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive(), "an append hung on a full disk"
    failures = [r for r, _ in outcomes if isinstance(r, BaseException)]
    assert failures and all(isinstance(r, AuditWriteError) for r in failures)
    assert max(took for _, took in outcomes) < WAIT + 1
    assert log.problem() is not None
    assert witness.read_bytes().endswith(b"\n") and read_witness(witness).torn_tail == 0
    acked += [r for r, _ in outcomes if isinstance(r, int)]
    filler.unlink()
    acked.append(log.append({"phase": "after"}))
    assert log.problem() is None
    log.close()
    assert set(acked) <= stored_seqs(url) and len(set(acked)) == len(acked)
    report = AuditLog.open(url).verify(key.public_key(), witness=witness)
    assert report.ok and report.warnings == [], (report.problems, report.warnings)


def test_locked_sqlite_times_out_refuses_fast_and_closes_in_bounded_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    log = AuditLog.open(url, wait_seconds=0.5, retry_seconds=0.05)
    assert log.append({"i": 0}) == 1
    holder = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    result, took = timed(lambda: log.append({"i": 1}))  # the writer waits on the lock; the caller does not
    assert isinstance(result, AuditWriteError) and "within 0.5 s" in str(result) and took < 1.5
    until(lambda: "stuck on one write" in (log.problem() or ""), "readiness reports the blocked writer")
    result, took = timed(lambda: log.append({"i": 2}))
    assert isinstance(result, AuditWriteError) and "refused" in str(result) and took < 0.5
    holder.execute("COMMIT")
    until(lambda: log.problem() is None, "the writer gets the lock and reports healthy")
    assert log.append({"i": 3}) == 2  # the abandoned record was dropped, not committed behind its caller's back
    holder.execute("BEGIN EXCLUSIVE")
    blocked = threading.Thread(target=lambda: timed(lambda: log.append({"i": 4})))
    blocked.start()
    until(lambda: log.problem() is not None, "the writer is blocked again")
    _, took = timed(lambda: log.close(timeout=0.5))
    assert took < 1.5  # shutdown does not wait for a writer stuck on the database
    blocked.join(timeout=5)
    assert not blocked.is_alive()
    holder.execute("COMMIT")
    holder.close()
    assert stored_seqs(url) == {1, 2}  # neither abandoned record was written


def test_postgres_killed_and_restarted_mid_load(private_postgres: PrivatePostgres) -> None:
    key = Ed25519PrivateKey.generate()
    log = AuditLog.open(
        private_postgres.url, signing_key=key, checkpoint_every=20, wait_seconds=WAIT, retry_seconds=RETRY
    )
    acked: list[int] = []
    errors: list[BaseException] = []
    slowest = [0.0]
    lock = threading.Lock()
    stop, failing, restarted, recovered = threading.Event(), threading.Event(), threading.Event(), threading.Event()

    def client(t: int) -> None:
        i = 0
        while not stop.is_set():
            event = {"t": t, "i": i}
            result, took = timed(lambda: log.append(event))  # noqa: B023 - called at once
            i += 1
            with lock:
                slowest[0] = max(slowest[0], took)
                if isinstance(result, int):
                    acked.append(result)
                    if restarted.is_set():
                        recovered.set()
                else:
                    errors.append(result)  # type: ignore[arg-type]
                    failing.set()
            if not isinstance(result, int):
                stop.wait(0.01)  # a client backing off, not a busy loop of refusals

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    until(lambda: len(acked) >= 100, "appends before the crash")
    private_postgres.crash()
    assert failing.wait(10), "no append failed while PostgreSQL was down"
    until(lambda: log.problem() is not None, "readiness reports the database down")
    private_postgres.start()
    restarted.set()
    assert recovered.wait(20), "appends did not resume after PostgreSQL came back"
    stop.set()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive(), "a client hung"
    assert log.problem() is None
    log.close()
    assert errors and all(isinstance(e, AuditWriteError) for e in errors)
    assert slowest[0] < WAIT + 1
    assert set(acked) <= stored_seqs(private_postgres.url) and len(set(acked)) == len(acked)
    report = AuditLog.open(private_postgres.url).verify(key.public_key())
    assert report.ok, report.problems


def test_torn_witness_line_is_reported_not_fatal_and_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    generate_keypair(tmp_path / "audit.key", tmp_path / "audit.pub")
    key, witness = load_private_key(tmp_path / "audit.key"), tmp_path / "audit.witness"
    with AuditLog.open(url, signing_key=key, checkpoint_every=3, checkpoint_seconds=3600, witness=witness) as log:
        for i in range(6):
            log.append({"i": i})
    whole = witness.read_bytes()
    with witness.open("ab") as f:  # what a crash in the middle of an append leaves behind
        f.write(whole.splitlines(keepends=True)[-1][:90])
    args = ["audit", "verify", "--db", url, "--public-key", str(tmp_path / "audit.pub"), "--witness", str(witness)]
    code, out, err = run(args, monkeypatch, capsys)
    assert code == 0 and out.startswith("intact: 6 records") and "torn line (90 bytes" in err, (out, err)
    with AuditLog.open(url, signing_key=key, checkpoint_every=3, checkpoint_seconds=3600, witness=witness) as log:
        log.append({"i": 6})  # the next checkpoint removes the torn line before appending
    assert witness.read_bytes().startswith(whole) and read_witness(witness).torn_tail == 0
    code, out, err = run(args, monkeypatch, capsys)
    assert code == 0 and "torn" not in err and "7 records" in out
    with witness.open("ab") as f:
        f.write(b"not a checkpoint\n")  # a damaged complete line is still an error, with its line number
    code, _, err = run(args, monkeypatch, capsys)
    assert code == 2 and "line 4: not a modelshield checkpoint" in err


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the injected death
def test_a_dead_writer_thread_fails_its_callers_and_is_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog.open(f"sqlite:///{tmp_path / 'audit.db'}", wait_seconds=WAIT, retry_seconds=RETRY)
    assert log.append({"i": 0}) == 1
    real = log._sync_head

    def dies_once(conn: sa.Connection) -> None:
        monkeypatch.setattr(log, "_sync_head", real)
        raise SystemExit("injected: the writer thread dies")

    monkeypatch.setattr(log, "_sync_head", dies_once)
    result, took = timed(lambda: log.append({"i": 1}))
    assert isinstance(result, AuditWriteError) and "stopped unexpectedly" in str(result) and took < WAIT
    until(lambda: not log._thread.is_alive(), "the writer thread ends")
    assert "stopped unexpectedly" in (log.problem() or "")  # readiness asks, and a new writer starts
    until(lambda: log.problem() is None, "the new writer reports healthy")
    assert log.append({"i": 2}) == 2
    log.close()


def test_witness_lines_from_several_workers_may_land_out_of_order(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    url, witness = f"sqlite:///{tmp_path / 'audit.db'}", tmp_path / "audit.witness"
    with AuditLog.open(url, signing_key=key, checkpoint_every=3, checkpoint_seconds=3600, witness=witness) as log:
        for i in range(6):
            log.append({"i": i})
    first, second = witness.read_bytes().splitlines(keepends=True)
    witness.write_bytes(second + first)  # worker B's later checkpoint written before worker A's
    with AuditLog.open(url) as log:
        assert log.verify(key.public_key(), witness=witness).ok


def test_a_whole_checkpoint_that_lost_only_its_newline_is_kept(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    first, second = (sign(key, "ab" * 16, n, "cd" * 32, 1_700_000_000_000_000 + n) for n in (1, 2))
    witness = tmp_path / "audit.witness"
    append_witness(witness, [first])
    witness.write_bytes(witness.read_bytes().rstrip(b"\n"))  # cut exactly before the newline
    assert read_witness(witness).checkpoints == [first] and read_witness(witness).torn_tail == 0
    append_witness(witness, [second])
    assert read_witness(witness).checkpoints == [first, second] and witness.read_bytes().count(b"\n") == 2
