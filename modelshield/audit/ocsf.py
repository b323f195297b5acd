"""Audit records as OCSF API Activity events (class 6003), one JSON object per line, for a SIEM.

Gateway fields map onto OCSF attributes (actor.user, api.operation, src_endpoint.ip, status, duration,
resources); everything else, and the record's place in the hash chain, goes to ``unmapped`` so nothing the
audit log holds is dropped on the way to the SIEM.
"""

from __future__ import annotations

import json
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import modelshield
from modelshield.audit import schema

OCSF_VERSION = "1.8.0"
CLASS_UID = 6003
CATEGORY_UID = 6
_ACTIVITY = {
    "create": 1,
    "register": 1,
    "read": 2,
    "list": 2,
    "show": 2,
    "get": 2,
    "verify": 2,
    "update": 3,
    "promote": 3,
    "pin": 3,
    "rotate": 3,
    "delete": 4,
    "retire": 4,
    "revoke": 4,
}
_ACTIVITY_NAME = {0: "Unknown", 1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"}
_SEVERITY = {"allow": 1, "rate_limited": 2, "invalid": 2, "error": 2, "deny": 3, "guard_reject": 3}
_MAPPED = {
    "time",
    "actor",
    "action",
    "decision",
    "reason",
    "status_code",
    "latency_ms",
    "client_ip",
    "request_id",
    "model",
    "model_version",
    "model_digest",
}


def _activity(action: str) -> int:
    """Create/Read/Update/Delete from the action's last verb; inference and the rest are Other (99)."""
    verb = action.rsplit(".", 1)[-1].lower()
    return _ACTIVITY.get(verb, 99 if action else 0)


def to_ocsf(seq: int, recorded_at_us: int, record_hash: str, event: dict[str, Any], log_id: str = "") -> dict[str, Any]:
    """One audit record as an OCSF 1.8 API Activity event."""
    action = str(event.get("action", ""))
    decision = event.get("decision")
    activity = _activity(action)
    raw_actor = event.get("actor")
    actor: dict[str, Any] = raw_actor if isinstance(raw_actor, dict) else {"subject": raw_actor}
    user: dict[str, Any] = {"uid": str(actor["subject"]), "name": str(actor["subject"])} if actor.get("subject") else {}
    if actor.get("tenant"):
        user["org"] = {"name": str(actor["tenant"])}
    status_id = 1 if decision == "allow" else 2 if decision else 0
    out: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "API Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": activity,
        "activity_name": _ACTIVITY_NAME[activity],
        "type_uid": CLASS_UID * 100 + activity,
        "time": recorded_at_us // 1000,
        "severity_id": 4 if event.get("type") == "security" else _SEVERITY.get(str(decision), 1),
        "status_id": status_id,
        "status": {0: "Unknown", 1: "Success", 2: "Failure"}[status_id],
        "actor": {"user": user},
        "api": {"operation": action},
        "metadata": {
            "version": OCSF_VERSION,
            "uid": f"{log_id}:{seq}" if log_id else str(seq),
            "sequence": seq,
            "log_name": "modelshield-audit",
            "product": {"name": "modelshield", "vendor_name": "modelshield", "version": modelshield.__version__},
        },
    }
    if event.get("request_id"):
        out["api"]["request"] = {"uid": str(event["request_id"])}
        out["metadata"]["correlation_uid"] = str(event["request_id"])
    if event.get("status_code") is not None:
        out["api"]["response"] = {"code": event["status_code"]}
        out["status_code"] = str(event["status_code"])
    if event.get("reason"):
        out["status_detail"] = str(event["reason"])
    if isinstance(event.get("latency_ms"), (int, float)):
        out["duration"] = round(event["latency_ms"])
    if event.get("client_ip"):
        out["src_endpoint"] = {"ip": event["client_ip"]}
    if event.get("model"):
        out["resources"] = [
            {
                k: v
                for k, v in (
                    ("name", event["model"]),
                    ("type", "model"),
                    ("version", event.get("model_version")),
                    ("uid", event.get("model_digest")),
                )
                if v is not None
            }
        ]
    unmapped = {k: v for k, v in event.items() if k not in _MAPPED}
    unmapped.update({f"actor.{k}": v for k, v in actor.items() if k not in ("subject", "tenant")})
    if event.get("time") is not None:
        unmapped["event_time"] = event["time"]
    unmapped["audit"] = {"seq": seq, "hash": record_hash, "decision": decision}
    out["unmapped"] = unmapped
    return out


def export_ocsf(engine: Engine, out: IO[str], since: int = 0) -> int:
    """Write every record with ``seq > since`` as an OCSF JSON line; returns how many were written."""
    n = 0
    with engine.connect() as conn:
        log_id = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "log_id")).scalar() or ""
        query = sa.select(schema.records).where(schema.records.c.seq > since).order_by(schema.records.c.seq)
        for row in conn.execution_options(yield_per=2000).execute(query):
            event = to_ocsf(row.seq, row.recorded_at, row.hash, json.loads(row.event), log_id)
            out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    return n
