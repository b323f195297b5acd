"""Lineage store at scale: `python bench/govern_lineage.py [--events 100000] [--db URL] [--markdown]`.

Builds pipeline-shaped OpenLineage events with the pipeline's own builder (``modelshield.ingest.lineage``):
per model, an ingest run (source CSV → training data) and a train run (training data + base model → model),
START and COMPLETE each, so 4 events per model. Loads them through ``LineageStore.ingest_events`` (each
validated against the vendored schema, deduplicated), then times ``upstream`` (the whole graph from a model
digest back to its source records) and ``downstream`` for 200 random models: median and p95.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from modelshield.govern.lineage import LineageStore
from modelshield.ingest.lineage import DatasetRef, run_event, run_id


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _events(models: int) -> list[dict[str, Any]]:
    out = []
    base = DatasetRef(Path("/models/base"), _digest("base"))
    for i in range(models):
        source = DatasetRef(Path(f"/data/batch-{i}.csv"), _digest(f"src{i}"), records=500)
        data = DatasetRef(Path(f"/runs/{i}/training-data"), _digest(f"data{i}"), records=450, size=10_000)
        model = DatasetRef(Path(f"/runs/{i}/model"), _digest(f"model{i}"), size=150_000)
        for job, ins, outs, kind in (
            (f"pipeline.m{i}.ingest", [source], [data], "INGEST"),
            (f"pipeline.m{i}.train", [data, base], [model], "TRAIN"),
        ):
            rid = run_id([r.digest for r in ins], {"job": job})
            t = f"2026-01-01T00:00:{i % 60:02d}Z"
            out.append(run_event(rid, job, t, ins, [], event_type="START", job_type=kind))
            out.append(run_event(rid, job, t, ins, outs, job_type=kind))
    return out


def _timed(fn: Any, n: int, models: int) -> list[float]:
    rng = random.Random(0)
    times = []
    for _ in range(n):
        digest = _digest(f"model{rng.randrange(models)}")
        start = time.perf_counter()
        fn(digest)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events to store (4 per model)")
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in a temporary folder)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    models = max(1, args.events // 4)
    events = _events(models)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'lineage.db'}"
        with LineageStore.open(url) as store:
            start = time.perf_counter()
            for i in range(0, len(events), 5000):
                store.ingest_events(events[i : i + 5000])
            load = time.perf_counter() - start
            node = store.upstream(_digest("model0"))
            assert [d.name for d in node.sources()] == ["/data/batch-0.csv", "/models/base"]
            up = _timed(store.upstream, 200, models)
            down = _timed(store.downstream, 200, models)
            count = store.count()
    rows = [
        ("events stored (validated, deduplicated)", f"{count:,}"),
        ("load throughput", f"{count / load:,.0f} events/s ({load:.1f} s)"),
        ("upstream: model → source records, median / p95", f"{statistics.median(up):.2f} / {_p95(up):.2f} ms"),
        ("downstream: runs that read a model, median / p95", f"{statistics.median(down):.2f} / {_p95(down):.2f} ms"),
    ]
    if args.markdown:
        print("| measure | value |\n|---|---|")
        for k, v in rows:
            print(f"| {k} | {v} |")
    else:
        for k, v in rows:
            print(f"{k:<52} {v}")


def _p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


if __name__ == "__main__":
    main()
