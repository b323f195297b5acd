"""The registry's history: which version served which share of a model's traffic, from when, on whose approval.

The registry's table holds only the current state (MLflow's registry has the same gap, mlflow#2169); every
change is also an audit record (``registry.register``, ``promote``, ``pin``, ``unpin``, ``retire``,
``quarantine``) with its time, actor and, for a canary, its traffic share. Replaying those records with the
registry's own rules — a full promotion demotes the other production versions, a canary replaces the previous
canary, a pin moves from the version that had it — rebuilds the state at every instant, and so the routing the
gateway derives from it: the pinned version takes everything, else production takes ``100 - canary`` percent
and the canary the rest. ``served_shares`` measures what the gateway actually answered with, from its
predict records, for comparison.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelshield.audit import schema as audit_schema
from modelshield.core.errors import InputError
from modelshield.registry.store import check_name


@dataclass(frozen=True)
class Approval:
    """The audit record that made a serving configuration: who did what to which version, when."""

    seq: int
    action: str
    actor: str
    version: int
    time: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "action": self.action, "actor": self.actor, "version": self.version, "time": self.time}


@dataclass(frozen=True)
class Serving:
    """One serving configuration of a model: traffic percent by version, from ``since`` until ``until``."""

    model: str
    since: str
    until: str | None
    shares: dict[int, float]
    pinned: int | None
    approval: Approval

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "since": self.since,
            "until": self.until,
            "shares": {str(v): p for v, p in self.shares.items()},
            "pinned": self.pinned,
            "approval": self.approval.to_dict(),
        }


@dataclass
class _Version:
    status: str = "registered"
    pinned: bool = False
    canary: float | None = None


@dataclass
class _State:
    versions: dict[int, _Version] = field(default_factory=dict)

    def apply(self, action: str, version: int, record: dict[str, Any]) -> None:
        """One registry audit record, with the side effects ``Registry`` applies but does not record."""
        v = self.versions.setdefault(version, _Version())
        if action == "register":
            self.versions[version] = _Version()
        elif action == "promote":
            canary = record.get("canary_percent")
            status = str(record.get("status", "production"))
            if status == "production":
                for n, other in self.versions.items():
                    if n != version and other.status == "production" and (canary is None or other.canary is not None):
                        other.status, other.canary = "staged", None
            v.status, v.canary = status, float(canary) if canary is not None else None
        elif action == "pin":
            for other in self.versions.values():
                other.pinned = False
            v.pinned = True
        elif action == "unpin":
            v.pinned = False
        elif action in ("retire", "quarantine"):
            v.status, v.pinned, v.canary = str(record.get("status", action + "d")), False, None

    def routing(self) -> tuple[dict[int, float], int | None]:
        """Percent of traffic by version, as the gateway routes it, and the pinned version if any."""
        pinned = next((n for n, v in self.versions.items() if v.pinned), None)
        if pinned is not None:
            return {pinned: 100.0}, pinned
        primary = max(
            (n for n, v in self.versions.items() if v.status == "production" and v.canary is None), default=None
        )
        if primary is None:
            return {}, None
        canary = next(((n, v.canary) for n, v in self.versions.items() if v.status == "production" and v.canary), None)
        if canary is None:
            return {primary: 100.0}, None
        return {primary: 100.0 - canary[1], canary[0]: canary[1]}, None


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="microseconds")


def _micros(instant: datetime) -> int:
    if instant.tzinfo is None:
        raise InputError(f"{instant.isoformat()} has no time zone (give one, e.g. 2026-05-01T12:00:00Z)")
    return int(instant.timestamp() * 1_000_000)


def _actor(record: dict[str, Any]) -> str:
    actor = record.get("actor")
    return str(actor.get("subject", "")) if isinstance(actor, dict) else str(actor or "")


def _registry_records(audit: Engine, model: str) -> list[tuple[int, int, dict[str, Any]]]:
    r = audit_schema.records
    name = json.dumps(check_name(model))
    query = (
        sa.select(r.c.seq, r.c.recorded_at, r.c.event)
        .where(r.c.event.like('{"action":"registry.%'), r.c.event.contains(f'"model":{name}'))
        .order_by(r.c.seq)
    )
    with audit.connect() as conn:
        rows = [(int(x.seq), int(x.recorded_at), json.loads(x.event)) for x in conn.execute(query)]
    return [(s, us, e) for s, us, e in rows if e.get("model") == model]


def timeline(audit: Engine, model: str) -> list[Serving]:
    """Every serving configuration ``model`` has had, oldest first, each with the record that approved it."""
    records = _registry_records(audit, model)
    if not records:
        raise InputError(f"the registry's audit log has no record of a model named {model!r}")
    state = _State()
    out: list[Serving] = []
    for seq, us, record in records:
        action = str(record["action"]).removeprefix("registry.")
        version = record.get("model_version")
        if not isinstance(version, int):
            continue
        state.apply(action, version, record)
        shares, pinned = state.routing()
        if out and out[-1].shares == shares and out[-1].pinned == pinned:
            continue
        approval = Approval(seq, action, _actor(record), version, _iso(us))
        if out:
            out[-1] = Serving(model, out[-1].since, _iso(us), out[-1].shares, out[-1].pinned, out[-1].approval)
        out.append(Serving(model, _iso(us), None, shares, pinned, approval))
    return out


def version_at(audit: Engine, model: str, instant: datetime) -> Serving | None:
    """The serving configuration of ``model`` at ``instant`` (None before it first served anything)."""
    at = _micros(instant)
    current = None
    for serving in timeline(audit, model):
        if _micros(datetime.fromisoformat(serving.since)) > at:
            break
        current = serving
    return current if current is not None and current.shares else None


def served_shares(
    gateway_audit: Engine, model: str, since: datetime | None = None, until: datetime | None = None
) -> dict[int, int]:
    """Predictions the gateway answered for public model name ``model``, by version, between two instants."""
    r = audit_schema.records
    name = json.dumps(model)
    query = sa.select(r.c.event).where(r.c.event.like('{"action":"predict"%'), r.c.event.contains(f'"model":{name}'))
    if since is not None:
        query = query.where(r.c.recorded_at >= _micros(since))
    if until is not None:
        query = query.where(r.c.recorded_at < _micros(until))
    counts: Counter[int] = Counter()
    with gateway_audit.connect() as conn:
        for row in conn.execution_options(yield_per=10_000).execute(query):
            event = json.loads(row.event)
            if event.get("model") == model and isinstance(event.get("model_version"), int):
                counts[event["model_version"]] += 1
    return dict(sorted(counts.items()))
