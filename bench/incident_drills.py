"""Incident drills on the demo gateway: time to detect and time to contain per shipped playbook.

`python bench/incident_drills.py --markdown [--repeats 3]` runs `modelshield incident drill all --demo` (a fresh demo
gateway in its own process per drill, each playbook's attack under a fresh key, auto-approved steps, notifications to a
loopback webhook, evidence bundles signed with the demo's audit key) ``--repeats`` times on one state folder and
prints, per playbook, the median and worst time to detect (attack start → the triggering audit record) and to
contain (that record → every containment check holding), and whether every run was contained with every step
audited. There is no peer to run side by side: no open-source ML gateway ships executable playbooks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def _drills(state: Path, out: Path) -> list[dict[str, Any]]:
    cmd = [sys.executable, "-m", "modelshield", "incident", "drill", "all", "--demo", "--state-dir", str(state)]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, env={**os.environ})
    if not (out / "drill.json").is_file():
        raise SystemExit(f"the drill did not run:\n{done.stderr[-2000:]}")
    results: list[dict[str, Any]] = json.loads((out / "drill.json").read_text())
    return results


def _cell(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):.1f} (max {max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="ms-drills-") as tmp:
        for i in range(args.repeats):
            for result in _drills(Path(tmp) / "state", Path(tmp) / f"out{i}"):
                runs.setdefault(result["playbook"], []).append(result)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    rows = []
    for name, results in runs.items():
        detect = [r["time_to_detect_s"] for r in results if r["time_to_detect_s"] is not None]
        contain = [r["time_to_contain_s"] for r in results if r["time_to_contain_s"] is not None]
        rows.append(
            {
                "playbook": name,
                "attack": results[0]["attack"],
                "runs": len(results),
                "contained_and_audited": sum(r["ok"] for r in results),
                "detect": _cell(detect),
                "contain": _cell(contain),
                "steps": len(results[0]["run"].get("steps", [])),
            }
        )
    if not args.markdown:
        print(json.dumps({"machine": machine, "commit": _commit(), "rows": rows}, indent=2))
        return
    runs_note = f"{args.repeats} runs of every playbook, each drill on a fresh demo gateway"
    print(f"Machine: {machine}; commit {_commit()}; {runs_note}.\n")
    print("| playbook | attack (trigger) | steps | time to detect, s: median (max) | time to contain, s: median (max) "
          "| contained, every step audited |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['playbook']} | {r['attack']} | {r['steps']} | {r['detect']} | {r['contain']} "
            f"| {r['contained_and_audited']} of {r['runs']} |"
        )


if __name__ == "__main__":
    main()
