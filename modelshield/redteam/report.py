"""The joint report: ``redteam.json`` (the contract: one row per attack) and a Markdown table beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelshield.core.files import atomic_output


def joint_report(rows: list[dict[str, Any]], *, target: str, budget: int, blue: str) -> dict[str, Any]:
    """The report document: the rows, what was attacked with which budget, and where the blue side looked."""
    return {
        "target": target,
        "budget_per_attack": budget,
        "blue_side": blue,
        "attacks": rows,
        "detected": sum(r["detected"] for r in rows),
        "undetected": [r["attack"] for r in rows if not r["detected"]],
    }


def _pct(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if metric == "auc" else f"{value:.0%}"


def marked(row: dict[str, Any], names: list[str]) -> str:
    """Control names for a table cell, a model-wide one (credited by time window) marked with ``~``."""
    detail = row.get("control_detail", {})
    return ", ".join(f"~{c}" if detail.get(c, {}).get("credited_by") == "time_window" else c for c in names) or "—"


def render_markdown(report: dict[str, Any]) -> str:
    """The joint table: per attack, queries, success, whether and when it was detected, by what, and what the
    attacker had by then."""
    lines = [
        f"# Red team against blue team: {report['target']}",
        "",
        f"Budget per attack: {report['budget_per_attack']} queries. Blue side: {report['blue_side']}.",
        "",
        "| attack | queries | success | stopped | detected | after queries | first control | all controls "
        "| attacker had then |",
        "|---|---:|---:|---|---|---:|---|---|---:|",
    ]
    for r in report["attacks"]:
        metric = r["success_metric"]
        stopped = r["stop_reason"] + (f" ({r['stopped_by']['kind']})" if r.get("stopped_by") else "")
        after = "—" if r["detected_after_queries"] is None else str(r["detected_after_queries"])
        lines.append(
            f"| {r['attack']} | {r['queries']} | {_pct(r['success'], metric)} {metric} | {stopped} "
            f"| {'yes' if r['detected'] else '**no**'} | {after} | {marked(r, r['first_controls'])} "
            f"| {marked(r, r['controls'])} | {_pct(r['attacker_had_at_detection'], metric)} |"
        )
    lines += ["", "`~`: a model-wide alarm, credited to the attack running when it fired (not by its key)."]
    if report["undetected"]:
        lines += ["", f"Not detected: {', '.join(report['undetected'])}."]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``redteam.json`` and ``redteam.md`` into ``out`` (created), atomically."""
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "redteam.json", out / "redteam.md"
    with atomic_output(paths[0], mode=0o644) as f:
        f.write((json.dumps(report, indent=2, default=str) + "\n").encode())
    with atomic_output(paths[1], mode=0o644) as f:
        f.write(render_markdown(report).encode())
    return paths
