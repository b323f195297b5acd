"""Drift checks at scale against Evidently, and detection delay of the output monitors.

`python bench/drift.py [--rows 1000000] [--features 50] [--markdown]`

Part 1 — drift. Generated Parquet tables (45 numeric columns of assorted shapes, 5 text categoricals; the
current table shifts 5 of them) are checked by

* modelshield: ``build_sketch`` on the reference file (one-time), then ``detect_drift`` streaming the current
  file against the saved sketch (KS/χ² decide, every other measure and the MMD permutation test computed too);
* Evidently 0.7 (``Report([DataDriftPreset()]).run(current, reference)`` on pandas frames read from the same
  files — it has no streaming input), in the interpreter given by ``--evidently-python`` (Evidently 0.7.23
  does not import with pandas 3, so it may need its own virtual environment).

Each measurement runs in a fresh child process (``--child``) so its peak resident memory (ru_maxrss) is its
own; wall-clock and CPU time (all threads) are taken inside the child, excluding interpreter start-up and
imports. On a shared machine CPU time is the steadier of the two; a run stopped at the timeout reports the CPU
time and memory it had used by then. modelshield is measured at
every size in ``--sizes`` to show its memory stays flat; Evidently at ``--rows`` if it finishes within
``--evidently-timeout`` seconds, else at the sizes it does finish.

Part 2 — detection delay. A logistic regression on scikit-learn's digits gives the outputs: reference traffic
is its predictions on 450 held-out images, live traffic is drawn from the other 449. A real evasion campaign
too: the demo digits CNN attacked by modelshield's Square (black-box, L∞ ε = 0.1), whose queries' outputs are
interleaved, in the order Square sent them, with clean traffic (reference: 225 test images, pool: the other 225). A poisoning campaign sends
a share of inputs the model maps to one target class (class-mix shift); an evasion campaign sends a share of
boundary inputs (pixel-wise midpoints of two images of different classes — low confidence, as a query-based
attack's probes). The campaign starts after 20,000 clean outputs, in batches of 100; the delay is the number of
campaign outputs seen when the first alarm of its kind fires. False alarms are counted over 1,000,000 clean
outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NUMERIC, CATEGORICAL, DRIFTED = 45, 5, ("n00", "n07", "n21", "n33", "c01")
THREADS = {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}


def _column(rng: np.random.Generator, j: int, n: int, shift: bool) -> np.ndarray:
    """Numeric column j of a table: normal, log-normal, uniform or Poisson counts; ``shift`` moves it."""
    kind = j % 4
    if kind == 0:
        x = rng.normal(0.3 if shift else 0.0, 1.0, n)
    elif kind == 1:
        x = rng.lognormal(0.0, 0.6 if shift else 0.5, n)
    elif kind == 2:
        x = rng.uniform(0.0, 1.1 if shift else 1.0, n)
    else:
        x = rng.poisson(3.6 if shift else 3.0, n).astype(np.float64)
    return x


def write_table(path: Path, rows: int, drifted: bool, seed: int) -> None:
    """A Parquet table written in slices of 100k rows, so generating it never holds it in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        cols: dict[str, Any] = {}
        for j in range(NUMERIC):
            name = f"n{j:02d}"
            cols[name] = _column(rng, j, n, drifted and name in DRIFTED)
        for j in range(CATEGORICAL):
            name = f"c{j:02d}"
            p = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.05])
            if drifted and name in DRIFTED:
                p = np.array([0.3, 0.25, 0.15, 0.1, 0.1, 0.1])
            cols[name] = np.array(["red", "green", "blue", "cyan", "magenta", "yellow"])[rng.choice(6, n, p=p)]
        table = pa.table(cols)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    """CPU seconds of this process (all its threads): on a loaded machine, less disturbed than wall time."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(engine: str, ref: Path, cur: Path, sketch_path: Path) -> dict[str, Any]:
    """One measurement in this (fresh) process: seconds and peak RSS of ``engine`` on ref/cur."""
    if engine == "sketch":
        from modelshield.monitor.sketch import build_sketch, file_info, save_sketch
        from modelshield.monitor.tables import chunk_source

        base, cpu = _rss_mib(), _cpu()
        t = time.perf_counter()
        save_sketch(build_sketch(chunk_source(ref), source_info=file_info(ref)), sketch_path)
        return {"seconds": time.perf_counter() - t, "cpu": _cpu() - cpu, "peak_mib": _rss_mib(), "base_mib": base}
    if engine == "modelshield":
        from modelshield.monitor.drift import detect_drift
        from modelshield.monitor.sketch import load_sketch
        from modelshield.monitor.tables import chunk_source

        base, cpu = _rss_mib(), _cpu()
        t = time.perf_counter()
        sketch = load_sketch(sketch_path)
        forced = [f.name for f in sketch.features if f.type == "categorical"]
        report = detect_drift(sketch, chunk_source(cur, categorical=forced))
        seconds = time.perf_counter() - t
        drifted = sorted(report.drifted)
        return {"seconds": seconds, "cpu": _cpu() - cpu, "peak_mib": _rss_mib(), "base_mib": base, "drifted": drifted}
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    base, cpu = _rss_mib(), _cpu()
    t = time.perf_counter()
    reference, current = pd.read_parquet(ref), pd.read_parquet(cur)
    read = time.perf_counter() - t
    result = Report([DataDriftPreset()]).run(current, reference)
    seconds = time.perf_counter() - t
    drifted = sorted(
        str(m["config"]["column"])
        for m in result.dict()["metrics"]
        if str(m["config"].get("type", "")).endswith("ValueDrift") and _evidently_drifted(m)
    )
    return {
        "seconds": seconds, "cpu": _cpu() - cpu, "read_seconds": read, "peak_mib": _rss_mib(), "base_mib": base,
        "drifted": drifted,
    }  # fmt: skip


def _evidently_drifted(metric: dict[str, Any]) -> bool:
    """Evidently 0.7 reports a column's drift score and the threshold; normed Wasserstein and JS drift above it,
    p-value tests below it."""
    value = metric["value"]
    config = metric.get("config", {})
    method = str(config.get("method", "")).lower()
    threshold = config.get("threshold")
    if threshold is None:
        return False
    return bool(value < threshold) if "p_value" in method or "p-value" in method else bool(value >= threshold)


def _run_child(python: str, engine: str, ref: Path, cur: Path, sketch: Path, timeout: float) -> dict[str, Any]:
    env = {**os.environ, **THREADS, "PYTHONPATH": str(ROOT)}
    cmd = [python, __file__, "--child", engine, "--ref", str(ref), "--cur", str(cur), "--sketch", str(sketch)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, _, usage = os.wait4(proc.pid, 0)  # reap it here, keeping the CPU time and memory it had used
            cpu = usage.ru_utime + usage.ru_stime
            return {"timed_out": timeout, "cpu": cpu, "peak_mib": usage.ru_maxrss / 1024}
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{engine} child failed: {err.read().strip()[-2000:]}")
        return dict(json.loads(out.read().strip().splitlines()[-1]))


def drift_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    folder = Path(args.dir or tempfile.mkdtemp(prefix="drift-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    sizes = sorted({*args.sizes, args.rows})
    for n in sizes:
        ref, cur, sketch = folder / f"ref-{n}.parquet", folder / f"cur-{n}.parquet", folder / f"ref-{n}.sketch.json"
        if not ref.exists():
            write_table(ref, n, False, seed=1)
            write_table(cur, n, True, seed=2)
        s = _run_child(sys.executable, "sketch", ref, cur, sketch, 3600)
        m = _run_child(sys.executable, "modelshield", ref, cur, sketch, 3600)
        row: dict[str, Any] = {"rows": n, "sketch": s, "modelshield": m}
        if args.evidently_python and n in args.evidently_sizes:
            row["evidently"] = _run_child(args.evidently_python, "evidently", ref, cur, sketch, args.evidently_timeout)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def _digits_outputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(reference outputs, live pool, poisoning outputs (target class 0), evasion outputs) of a digits model."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x / 16, y, test_size=0.5, random_state=0, stratify=y)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # BLAS threads contend on a shared 2-core machine: 26 s instead of 0.6 s
        model = LogisticRegression(max_iter=2000).fit(x_tr, y_tr)
    probs = model.predict_proba(x_te)
    reference, pool = probs[:450], probs[450:]
    poison = pool[pool.argmax(axis=1) == 0]
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(x_te), 4000), rng.integers(0, len(x_te), 4000)
    keep = y_te[a] != y_te[b]
    evasion = model.predict_proba((x_te[a[keep]] + x_te[b[keep]]) / 2)
    return reference, pool, poison, evasion


def _campaign(
    reference: Any, pool: np.ndarray, bad: np.ndarray | None, rate: float, kind: str, seed: int, clean: int, after: int
) -> dict[str, int | None]:
    from modelshield.monitor.outputs import OutputMonitor

    rng = np.random.default_rng(seed)
    monitor = OutputMonitor(reference)
    first: dict[str, int | None] = {"cusum": None, "page-hinkley": None}
    false = 0
    for i in range((clean + after) // 100):
        batch = pool[rng.integers(0, len(pool), 100)]
        if bad is not None and i * 100 >= clean:
            mask = rng.random(100) < rate
            batch = batch.copy()
            batch[mask] = bad[rng.integers(0, len(bad), int(mask.sum()))]
        for alarm in monitor.update(batch):
            if alarm.sample <= clean:
                false += 1
            elif alarm.kind == kind and first[alarm.detector] is None:
                first[alarm.detector] = alarm.sample - clean
    return {**first, "false": false}


def _square_outputs(images: int, queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference outputs, clean pool, Square's query outputs in the order it sent them) of the demo digits CNN:
    a real black-box evasion campaign (L∞ ε = 0.1, the demo's gating ε) on ``images`` test images."""
    import torch

    from modelshield.attacks.evasion.square import Square
    from modelshield.demo import demo_model_and_data

    torch.manual_seed(0)
    model, test = demo_model_and_data(seed=0)
    with torch.no_grad():
        probs = model.predict_proba(test.x).numpy()
    recorded: list[np.ndarray] = []
    scores = model._scores

    def recording(x: torch.Tensor) -> torch.Tensor:
        out = scores(x)
        recorded.append(torch.softmax(out.detach().float(), dim=1).numpy())
        return out

    model._scores = recording  # type: ignore[method-assign]
    Square(eps=0.1, n_queries=queries, seed=0)(model, test.x[:images], test.y[:images])
    return probs[:225], probs[225:], np.concatenate(recorded)


def _campaign_ordered(
    reference: Any, pool: np.ndarray, queries: np.ndarray, rate: float, seed: int
) -> dict[str, int | None]:
    """Clean traffic with the attack's queries interleaved in the order the attack sent them, at ``rate`` of it."""
    from modelshield.monitor.outputs import OutputMonitor

    rng = np.random.default_rng(seed)
    clean = 20_000
    monitor = OutputMonitor(reference)
    first: dict[str, int | None] = {"cusum": None, "page-hinkley": None}
    false, sent, seen = 0, 0, 0
    while sent < len(queries):
        batch = pool[rng.integers(0, len(pool), 100)]
        if seen >= clean:
            mask = np.flatnonzero(rng.random(100) < rate)[: len(queries) - sent]
            batch[mask] = queries[sent : sent + len(mask)]
            sent += len(mask)
        seen += 100
        for alarm in monitor.update(batch):
            if alarm.sample <= clean:
                false += 1
            elif alarm.kind == "evasion" and first[alarm.detector] is None:
                first[alarm.detector] = alarm.sample - clean
    return {**first, "false": false}


def delay_part(repeats: int) -> dict[str, Any]:
    from modelshield.monitor.outputs import OutputReference

    ref_out, pool, poison, evasion = _digits_outputs()
    reference = OutputReference.from_outputs(ref_out)
    results: dict[str, Any] = {}
    for name, bad, kind in (("poisoning", poison, "poisoning"), ("evasion", evasion, "evasion")):
        for rate in (0.1, 0.2):
            runs = [_campaign(reference, pool, bad, rate, kind, s, 20_000, 20_000) for s in range(repeats)]
            results[f"{name} {rate:.0%}"] = runs
    square_ref, square_pool, square = _square_outputs(images=100, queries=300)
    square_reference = OutputReference.from_outputs(square_ref)
    for rate in (0.1, 0.2):
        runs = [_campaign_ordered(square_reference, square_pool, square, rate, s) for s in range(repeats)]
        results[f"Square evasion {rate:.0%} (demo CNN)"] = runs
    results["square"] = {
        "queries": len(square), "confidence": float(square.max(axis=1).mean()),
        "reference_confidence": float(square_ref.max(axis=1).mean()),
    }  # fmt: skip
    t = time.perf_counter()
    clean = _campaign(reference, pool, None, 0.0, "poisoning", 99, 1_000_000, 0)
    results["clean"] = {"false_alarms": clean["false"], "outputs": 1_000_000, "seconds": time.perf_counter() - t}
    results["confidence"] = {
        "reference": float(ref_out.max(axis=1).mean()),
        "evasion": float(evasion.max(axis=1).mean()),
        "target_share_reference": float((ref_out.argmax(axis=1) == 0).mean()),
    }
    return results


def _delay_summary(runs: list[dict[str, int | None]], detector: str) -> str:
    found = [r[detector] for r in runs if r[detector] is not None]
    missed = len(runs) - len(found)
    if not found:
        return f"missed {missed}/{len(runs)}"
    med, p90 = np.median(found), np.percentile(found, 90)
    return f"{med:,.0f} / {p90:,.0f}" + (f" (missed {missed})" if missed else "")


def markdown(drift: list[dict[str, Any]], delays: dict[str, Any] | None, args: argparse.Namespace) -> str:
    load = os.getloadavg()[0]
    lines = [
        f"Machine: {os.cpu_count()} cores, load average {load:.1f} at the end of the run; each measurement in a fresh "
        f"process with 2 BLAS threads. Tables: {NUMERIC} numeric + {CATEGORICAL} categorical columns, Parquet; the "
        f"current table shifts {', '.join(DRIFTED)}.",
        "",
        "| rows | modelshield sketch, once: wall s / CPU s / peak MiB | modelshield drift: wall s / CPU s / peak MiB "
        "| Evidently drift: wall s / CPU s / peak MiB | speed-up wall / CPU | drifted columns found (ms / Evidently) |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def cell(x: dict[str, Any]) -> str:
        return f"{x['seconds']:.1f} / {x['cpu']:.1f} / {x['peak_mib']:,.0f}"

    for r in drift:
        s, m, e = r["sketch"], r["modelshield"], r.get("evidently")
        if e and "timed_out" in e:
            ev = f"> {e['timed_out']:.0f} (stopped) / {e['cpu']:.0f} so far / {e['peak_mib']:,.0f} so far"
            speed = f"> {e['timed_out'] / m['seconds']:.0f}× / > {e['cpu'] / m['cpu']:.0f}×"
            found = f"{len(m['drifted'])} / —"
        elif e:
            ev, found = cell(e), f"{len(m['drifted'])} / {len(e['drifted'])}"
            speed = f"{e['seconds'] / m['seconds']:.1f}× / {e['cpu'] / m['cpu']:.1f}×"
        else:
            ev, speed, found = "not run", "—", f"{len(m['drifted'])} / —"
        lines.append(f"| {r['rows']:,} | {cell(s)} | {cell(m)} | {ev} | {speed} | {found} |")
    if delays:
        lines += [
            "",
            "Detection delay (campaign outputs until the first alarm of its kind; median / 90th percentile over "
            f"{args.repeats} runs; batches of 100, windows of 50):",
            "",
            "| campaign | CUSUM | Page–Hinkley | false alarms before the campaign (20k clean outputs × runs) |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, runs in delays.items():
            if name in ("clean", "confidence", "square"):
                continue
            false = sum(int(r["false"] or 0) for r in runs)
            lines.append(
                f"| {name} | {_delay_summary(runs, 'cusum')} | {_delay_summary(runs, 'page-hinkley')} | {false} |"
            )
        c, conf = delays["clean"], delays["confidence"]
        lines += [
            "",
            f"False alarms on {c['outputs']:,} clean outputs (12 streams × 2 detectors): {c['false_alarms']} "
            f"({c['seconds']:.1f} s to monitor them). Mean confidence: reference {conf['reference']:.3f}, evasion "
            f"inputs {conf['evasion']:.3f}; target class share in the reference {conf['target_share_reference']:.3f}. "
            f"Square campaign: {delays['square']['queries']:,} queries (100 images, ≤ 300 queries each, L∞ ε = 0.1) "
            f"with mean confidence {delays['square']['confidence']:.3f} against {delays['square']['reference_confidence']:.3f} "
            "on clean test images; the delay counts all outputs since the campaign began (clean and attack).",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sizes", default="250000", help="more sizes for modelshield's memory curve")
    parser.add_argument("--evidently-python", default=None, help="interpreter with evidently installed")
    parser.add_argument("--evidently-sizes", default=None, help="sizes to run Evidently at (default: all)")
    parser.add_argument("--evidently-timeout", type=float, default=900)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-drift", action="store_true")
    parser.add_argument("--no-delay", action="store_true")
    parser.add_argument("--dir", default=None, help="folder for the generated tables (kept between runs)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--child", choices=("sketch", "modelshield", "evidently"), help=argparse.SUPPRESS)
    parser.add_argument("--ref", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cur", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sketch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.ref, args.cur, args.sketch)))
        return
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    all_sizes = sorted({*args.sizes, args.rows})
    args.evidently_sizes = [int(s) for s in args.evidently_sizes.split(",")] if args.evidently_sizes else all_sizes
    drift = [] if args.no_drift else drift_part(args)
    delays = None if args.no_delay else delay_part(args.repeats)
    if args.markdown:
        print(markdown(drift, delays, args))
    else:
        print(json.dumps({"drift": drift, "delays": delays}, indent=2))


if __name__ == "__main__":
    main()
