"""Alerts as OCSF Detection Finding events (class 2004), the class SIEMs file alerts under.

An alert about a model names it in ``resources`` (type "model"); Detection Finding does not take the
``ai_operation`` profile (only Application Activity classes declare it), so there is no ``ai_model`` here.
What made the rule fire goes in ``evidences[].data`` and the rule in ``finding_info.analytic``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

import modelshield
from modelshield.audit.ocsf import OCSF_VERSION
from modelshield.core.errors import InputError

CLASS_UID = 2004
CATEGORY_UID = 2
#: alert severity (as modelshield's alert rules name it) → OCSF severity_id
SEVERITY_ID = {"info": 1, "informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5, "fatal": 6}
_SEVERITY_NAME = {
    0: "Unknown",
    1: "Informational",
    2: "Low",
    3: "Medium",
    4: "High",
    5: "Critical",
    6: "Fatal",
    99: "Other",
}
_ACTIVITY = {
    "create": (1, "Create", 1, "New"),
    "update": (2, "Update", 2, "In Progress"),
    "close": (3, "Close", 4, "Resolved"),
}
#: how the rule decides (OCSF analytic.type_id): modelshield's monitors are statistical tests or thresholds
ANALYTIC_TYPE = {"rule": 1, "behavioral": 2, "statistical": 3, "learning": 4}


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def detection_finding(
    *,
    title: str,
    severity: str | int,
    rule: str,
    time: float,
    uid: str | None = None,
    model: str | None = None,
    model_version: str | int | None = None,
    model_digest: str | None = None,
    evidence: Mapping[str, Any] | None = None,
    description: str | None = None,
    activity: Literal["create", "update", "close"] = "create",
    analytic: Literal["rule", "behavioral", "statistical", "learning"] = "rule",
    first_seen: float | None = None,
    last_seen: float | None = None,
    types: list[str] | None = None,
) -> dict[str, Any]:
    """An OCSF Detection Finding for one alert.

    ``time`` (and ``first_seen``/``last_seen``) are Unix seconds; ``severity`` is a name ("info" … "critical")
    or an OCSF severity_id; ``uid`` identifies the alert across its create/update/close findings (a random one
    when absent); ``evidence`` is what made ``rule`` fire (values, thresholds, labels), kept as JSON data.
    """
    if isinstance(severity, str):
        if severity.lower() not in SEVERITY_ID:
            raise InputError(f"unknown severity {severity!r} (one of: {', '.join(SEVERITY_ID)})")
        severity_id = SEVERITY_ID[severity.lower()]
    elif severity in _SEVERITY_NAME:
        severity_id = severity
    else:
        raise InputError(f"severity_id {severity} is not an OCSF severity (0-6 or 99)")
    if activity not in _ACTIVITY:
        raise InputError(f"unknown finding activity {activity!r} (create, update or close)")
    activity_id, activity_name, status_id, status = _ACTIVITY[activity]
    alert_uid = uid or str(uuid.uuid4())
    info: dict[str, Any] = {
        "uid": alert_uid,
        "title": title,
        "analytic": {"name": rule, "uid": rule, "type_id": ANALYTIC_TYPE[analytic], "type": analytic.capitalize()},
        "created_time": _ms(first_seen if first_seen is not None else time),
    }
    if description:
        info["desc"] = description
    if first_seen is not None:
        info["first_seen_time"] = _ms(first_seen)
    if last_seen is not None:
        info["last_seen_time"] = _ms(last_seen)
    if types:
        info["types"] = list(types)
    out: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": f"Detection Finding: {activity_name}",
        "time": _ms(time),
        "severity_id": severity_id,
        "severity": _SEVERITY_NAME[severity_id],
        "status_id": status_id,
        "status": status,
        "is_alert": activity != "close",
        "message": title,
        "finding_info": info,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": f"{alert_uid}:{activity}:{_ms(time)}",
            "log_name": "modelshield-alerts",
            "product": {"name": "modelshield", "vendor_name": "modelshield", "version": modelshield.__version__},
        },
    }
    resource: dict[str, Any] = {}
    if model is not None:
        resource = {"name": model, "type": "model"}
        if model_version is not None:
            resource["version"] = str(model_version)
        if model_digest:
            resource["uid"] = model_digest
        out["resources"] = [resource]
    if evidence:
        out["evidences"] = [{"data": dict(evidence), **({"resources": [resource]} if resource else {})}]
    return out
