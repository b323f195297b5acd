"""Audit records as OCSF API Activity events (class 6003), one JSON object per line, for a SIEM.

Gateway fields map onto OCSF attributes (actor.user, api.operation, src_endpoint.ip, status, duration,
resources); a record about a model also carries the 1.8 ``ai_operation`` profile's ``ai_model`` object (name,
version, digest as uid, provider) and names the profile in ``metadata.profiles``. Everything else, and the record's place in the hash chain, goes to ``unmapped`` so nothing the
audit log holds is dropped on the way to the SIEM.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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


#: ``ai_model.ai_provider`` (required by OCSF) for models modelshield serves itself
DEFAULT_AI_PROVIDER = "Internal"
#: ``src_endpoint`` (required by API Activity) for records made in-process (registry, CLI): there is no client
LOCAL_ENDPOINT = {"name": "local"}


def to_ocsf(
    seq: int,
    recorded_at_us: int,
    record_hash: str,
    event: dict[str, Any],
    log_id: str = "",
    ai_provider: str = DEFAULT_AI_PROVIDER,
) -> dict[str, Any]:
    """One audit record as an OCSF 1.8 API Activity event (with the ``ai_operation`` profile when a model is named)."""
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
        # OCSF needs an actor with a user, process or app: a record that names no subject was made by modelshield
        "actor": {"user": user} if user else {"app_name": "modelshield"},
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
    out["src_endpoint"] = {"ip": event["client_ip"]} if event.get("client_ip") else dict(LOCAL_ENDPOINT)
    if event.get("model"):
        version = None if event.get("model_version") is None else str(event["model_version"])
        model = {
            k: v
            for k, v in (("name", str(event["model"])), ("version", version), ("uid", event.get("model_digest")))
            if v is not None
        }
        out["resources"] = [{**model, "type": "model"}]
        out["ai_model"] = {**model, "ai_provider": ai_provider}
        out["metadata"]["profiles"] = ["ai_operation"]
    unmapped = {k: v for k, v in event.items() if k not in _MAPPED}
    unmapped.update({f"actor.{k}": v for k, v in actor.items() if k not in ("subject", "tenant")})
    if event.get("time") is not None:
        unmapped["event_time"] = event["time"]
    unmapped["audit"] = {"seq": seq, "hash": record_hash, "decision": decision}
    out["unmapped"] = unmapped
    return out


def iter_ocsf(engine: Engine, since: int = 0, ai_provider: str = DEFAULT_AI_PROVIDER) -> Iterator[dict[str, Any]]:
    """Every record with ``seq > since``, in order, as an OCSF event (streamed: the log may be large)."""
    with engine.connect() as conn:
        log_id = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "log_id")).scalar() or ""
        query = sa.select(schema.records).where(schema.records.c.seq > since).order_by(schema.records.c.seq)
        for row in conn.execution_options(yield_per=2000).execute(query):
            yield to_ocsf(row.seq, row.recorded_at, row.hash, json.loads(row.event), log_id, ai_provider)


def export_ocsf(engine: Engine, out: IO[str], since: int = 0) -> int:
    """Write every record with ``seq > since`` as an OCSF JSON line; returns how many were written."""
    n = 0
    for event in iter_ocsf(engine, since):
        out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        n += 1
    return n
