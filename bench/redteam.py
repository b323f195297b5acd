"""Red team against blue team on the demo gateway: the joint table of ``modelshield redteam --demo``.

Runs the command as a user would (the demo gateway in its own process with every control on: API keys, rate
limits 50 rps / burst 100 per identity, daily quota, feature-squeezing guard that abstains, extraction signal,
live drift and output monitor, audit log) once per budget, and prints per attack: queries sent, success, why it
stopped, whether and after how many queries the blue side was told, by which control, and what the attacker had
by then. The demo's weights are trained once and cached in the state folder (``--state-dir``).

    python bench/redteam.py --markdown
    python bench/redteam.py --markdown --budgets 300,1000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.certify import machine_name  # noqa: E402
from modelshield.redteam.report import marked  # noqa: E402


def campaign(budget: int, state: Path | None, seed: int) -> tuple[dict[str, Any], float]:
    """One ``modelshield redteam --demo`` run: its report and its wall time."""
    with TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "modelshield", "redteam", "--demo", "--out", str(out)]
        cmd += ["--budget", str(budget), "--seed", str(seed)]
        if state is not None:
            cmd += ["--state-dir", str(state)]
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"modelshield redteam failed ({done.returncode}): {done.stderr[-1500:]}")
        return json.loads((out / "redteam.json").read_text()), seconds


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if metric == "auc" else f"{value:.0%}"


def markdown(results: list[tuple[int, dict[str, Any], float]]) -> str:
    lines = [
        f"Machine: {machine_name()} VM, shared with other jobs and loaded while measured.",
        "",
        "| budget | attack | queries sent | success | stopped | detected | after queries | first control "
        "| attacker had then | controls that acted |",
        "|---:|---|---:|---:|---|---|---:|---|---:|---|",
    ]
    for budget, report, _ in results:
        for r in report["attacks"]:
            m = r["success_metric"]
            stopped = r["stop_reason"] + (f" ({r['stopped_by']['kind']})" if r.get("stopped_by") else "")
            after = "—" if r["detected_after_queries"] is None else str(r["detected_after_queries"])
            lines.append(
                f"| {budget} | {r['attack']} | {r['queries']} | {_fmt(r['success'], m)} {m} | {stopped} "
                f"| {'yes' if r['detected'] else '**no**'} | {after} | {marked(r, r['first_controls'])} "
                f"| {_fmt(r['attacker_had_at_detection'], m)} | {marked(r, r['controls'])} |"
            )
    lines += ["", "`~`: a model-wide alarm (drift, output), credited to the attack running when it fired.", ""]
    lines += [f"Budget {b}: {s:.0f} s wall for the whole run (gateway start included)." for b, _, s in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="300", help="comma list of per-attack budgets (one run each)")
    parser.add_argument("--state-dir", type=Path, default=None, help="demo state folder (cached weights)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true", help="print the Markdown table")
    parser.add_argument("--json", type=Path, default=None, help="write the reports here")
    args = parser.parse_args()
    results = []
    for budget in (int(b) for b in args.budgets.split(",")):
        report, seconds = campaign(budget, args.state_dir, args.seed)
        results.append((budget, report, seconds))
    if args.json is not None:
        args.json.write_text(json.dumps([{"budget": b, "seconds": s, **r} for b, r, s in results], indent=2))
    print(markdown(results) if args.markdown else json.dumps([r for _, r, _ in results], indent=2))


if __name__ == "__main__":
    main()
