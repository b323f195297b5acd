"""Durable audit appends per second and verify speed: `python bench/audit.py [--appends 3000] [--no-postgres]`.

For SQLite (a file under --dir) and the local PostgreSQL (a throwaway database), at 1, 8 and 64 threads:
``AuditLog.append`` (group commit: one writer thread, one fsynced transaction per batch of waiting appends)
against the plain way of doing the same thing, one locked transaction per append (read the head, chain,
insert, commit) from every thread. Both are durable: every append is committed and fsynced before it
returns. Then ``verify`` over the whole log in records per second.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelshield.audit import AuditLog, canonical_event, schema
from modelshield.core.storage import open_engine, write_transaction

EVENT = {
    "action": "predict",
    "actor": {"subject": "bench", "method": "api_key", "tenant": "t1"},
    "model": "digits",
    "model_version": 1,
    "decision": "allow",
    "status_code": 200,
    "latency_ms": 0.8,
    "input_digest": "ab" * 32,
    "request_id": "r",
    "client_ip": "127.0.0.1",
}


def _threads(total: int, threads: int, one: Callable[[], object]) -> float:
    """Appends per second with ``threads`` callers sharing ``total`` appends."""
    per = max(1, total // threads)

    def work() -> None:
        for _ in range(per):
            one()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return per * threads / (time.perf_counter() - start)


def _naive_append(engine: sa.Engine) -> Callable[[], object]:
    """One locked, durable transaction per append: what a straightforward chained log does."""
    data = canonical_event(EVENT)

    def one() -> None:
        with write_transaction(engine, schema.WRITE_LOCK) as conn:
            head = conn.execute(
                sa.select(schema.records.c.seq, schema.records.c.hash).order_by(schema.records.c.seq.desc()).limit(1)
            ).first()
            seq, prev = (head.seq, bytes.fromhex(head.hash)) if head else (0, schema.GENESIS)
            now = time.time_ns() // 1000
            digest = schema.record_hash(prev, seq + 1, now, data)
            conn.execute(
                schema.records.insert().values(
                    seq=seq + 1, recorded_at=now, event=data.decode(), prev_hash=prev.hex(), hash=digest.hex()
                )
            )

    return one


def bench_store(label: str, make_url: Callable[[], str], appends: int) -> None:
    key = Ed25519PrivateKey.generate()
    print(
        f"\n### {label}\n\n| threads | AuditLog.append /s | one transaction per append /s | ratio |\n|---:|---:|---:|---:|"
    )
    for threads in (1, 8, 64):
        url = make_url()
        with AuditLog.open(url, signing_key=key) as log:
            log.append(EVENT)  # schema created, writer warm
            ours = _threads(appends, threads, lambda log=log: log.append(EVENT))
        naive_url = make_url()
        AuditLog.open(naive_url).close()
        engine = open_engine(naive_url)
        plain = _threads(max(threads, appends // 3), threads, _naive_append(engine))
        engine.dispose()
        print(f"| {threads} | {ours:,.0f} | {plain:,.0f} | {ours / plain:.1f}x |")
    with AuditLog.open(url, signing_key=key) as log:
        for _ in range(20):
            log.append(EVENT)
        start = time.perf_counter()
        report = log.verify(key.public_key())
        took = time.perf_counter() - start
    assert report.ok, report.problems
    print(
        f"\nverify: {report.records:,} records, {report.checkpoints} checkpoints in {took:.2f} s = "
        f"{report.records / took:,.0f} records/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=3000, help="appends per measurement (split over the threads)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the SQLite files go")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server URL (no db)")
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} cores; durable appends (fsync per commit); one process; events of "
        f"{len(canonical_event(EVENT))} bytes"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        counter = iter(range(1_000_000))
        bench_store(
            f"SQLite (WAL, synchronous=FULL, {args.dir})",
            lambda: f"sqlite:///{Path(tmp) / f'audit-{next(counter)}.db'}",
            args.appends,
        )
    if args.no_postgres:
        return
    import psycopg

    created: list[str] = []

    def fresh_pg() -> str:
        name = f"ms_bench_{secrets.token_hex(4)}"
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        created.append(name)
        return f"{args.pg}/{name}"

    try:
        bench_store("PostgreSQL 127.0.0.1 (synchronous_commit=on)", fresh_pg, args.appends)
    finally:
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
            for name in created:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
