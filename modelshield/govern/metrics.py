"""The security-metrics summary per model: the CISO's one line per model, each figure traceable to its evidence.

For each model, the version that takes most of its traffic now (the registry's serving configuration, see
``history``) or else its newest version, with: worst robust accuracy (assess), ε spent (DP training) and the
ε lower bound a membership audit demonstrated, open threats (the threat model), scan status (every scan
stage passed, failed, or none ran), whether the version is signed, and incidents — the security-relevant audit
records that name the model: ``security.*`` (extraction flags, integrity failures), ``monitor.*`` (drift and
output alarms) and ``registry.quarantine``, with the time of the last one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelshield.audit import schema as audit_schema
from modelshield.govern.evidence import Evidence

INCIDENT_ACTIONS = ("security.", "monitor.", "registry.quarantine")


@dataclass(frozen=True)
class ModelMetrics:
    """One row of the CISO view."""

    model: str
    version: int
    status: str
    traffic_percent: float | None
    robust_accuracy: float | None
    epsilon_spent: float | None
    epsilon_demonstrated: float | None
    open_threats: int | None
    scan: str
    signed: bool
    incidents: int
    last_incident: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def incidents(audit: Engine | None, model: str) -> tuple[int, str | None]:
    """How many security-relevant audit records name ``model``, and when the last was recorded."""
    if audit is None:
        return 0, None
    r = audit_schema.records
    name = json.dumps(model)
    query = (
        sa.select(r.c.recorded_at, r.c.event)
        .where(sa.or_(*(r.c.event.like(f'{{"action":"{a}%') for a in INCIDENT_ACTIONS)))
        .where(r.c.event.contains(f'"model":{name}'))
        .order_by(r.c.seq)
    )
    count, last = 0, None
    with audit.connect() as conn:
        for row in conn.execution_options(yield_per=10_000).execute(query):
            if json.loads(row.event).get("model") == model:
                count += 1
                last = int(row.recorded_at)
    when = datetime.fromtimestamp(last / 1e6, UTC).isoformat(timespec="seconds") if last is not None else None
    return count, when


def _scan_status(ev: Evidence) -> str:
    scans = ev.security.get("scans") or []
    if not scans:
        return "not scanned"
    return "passed" if all(s.get("status") == "passed" for s in scans) else "failed"


def _open_threats(ev: Evidence) -> int | None:
    threats = ev.security.get("threats")
    if not threats:
        return None
    return int((threats.get("counts") or {}).get("open", 0))


def summarise(ev: Evidence, traffic: float | None, audit: Engine | None) -> ModelMetrics:
    """The CISO row for the version ``ev`` describes; ``audit`` is where incidents are counted."""
    count, last = incidents(audit, ev.model.name)
    return ModelMetrics(
        model=ev.model.name,
        version=ev.model.version,
        status=ev.model.status,
        traffic_percent=traffic,
        robust_accuracy=ev.robust_accuracy,
        epsilon_spent=ev.privacy.get("epsilon_spent"),
        epsilon_demonstrated=ev.privacy.get("epsilon_lower_bound"),
        open_threats=_open_threats(ev),
        scan=_scan_status(ev),
        signed=bool(ev.security.get("signed")),
        incidents=count,
        last_incident=last,
    )
