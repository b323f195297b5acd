"""The model inventory: every registered version, who owns it, what it hashes to, and its share of traffic now.

One row per version (the registry's table) joined with the serving configuration the registry's audit log
says is current (``history.timeline``), so retired and quarantined versions stay on the list with 0 %.
CSV for spreadsheets, JSON for scripts.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlalchemy.engine import Engine

from modelshield.core.errors import InputError
from modelshield.govern.history import timeline
from modelshield.registry.store import ModelVersion

COLUMNS = (
    "model",
    "version",
    "status",
    "traffic_percent",
    "pinned",
    "owner",
    "digest",
    "signed",
    "registered",
    "datasets",
    "approved_by",
    "approved_at",
)


def current_shares(audit: Engine, model: str) -> tuple[dict[int, float], dict[str, Any] | None]:
    """Percent of traffic by version now, and the approval of that configuration (None if never served)."""
    try:
        history = timeline(audit, model)
    except InputError:  # registered elsewhere, or its audit records are in another database
        return {}, None
    if not history:
        return {}, None
    last = history[-1]
    return last.shares, last.approval.to_dict()


def inventory(versions: list[ModelVersion], audit: Engine) -> list[dict[str, Any]]:
    """One row per registered version (``COLUMNS``), oldest first within each model."""
    rows = []
    shares: dict[str, tuple[dict[int, float], dict[str, Any] | None]] = {}
    for mv in versions:
        if mv.name not in shares:
            shares[mv.name] = current_shares(audit, mv.name)
        percent, approval = shares[mv.name]
        serving = mv.version in percent
        rows.append(
            {
                "model": mv.name,
                "version": mv.version,
                "status": mv.status,
                "traffic_percent": percent.get(mv.version, 0.0),
                "pinned": mv.pinned,
                "owner": mv.owner,
                "digest": mv.digest,
                "signed": mv.signature_path is not None,
                "registered": mv.created_at,
                "datasets": list(mv.datasets),
                "approved_by": approval["actor"] if serving and approval else None,
                "approved_at": approval["time"] if serving and approval else None,
            }
        )
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The inventory as CSV (datasets joined with ';'); a cell that a spreadsheet would run as a formula is
    prefixed with a quote (OWASP CSV injection)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        cells = {k: ";".join(v) if isinstance(v, list) else v for k, v in row.items()}
        writer.writerow({k: _cell(v) for k, v in cells.items()})
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2) + "\n"
