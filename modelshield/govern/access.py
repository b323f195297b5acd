"""Data-access requests with an approval workflow, and the check that code reading data calls first.

A request names the requester, the data sets (references: see ``modelshield.govern.scopes``), the purposes, the
columns (or all), a justification and an expiry. Its life::

    pending ──approve (by someone else)──▶ approved ──revoke──▶ revoked
       │  └──deny──▶ denied                    │
       └──────────── expiry ───────────────────┴──▶ expired

Approving needs an approver who is not the requester (separation of duties) and a request still pending and not
expired; denying and revoking are refused on a request that is already decided, revoked or expired. Each
transition is an audit event (``govern.access.request|approve|deny|revoke``) naming who, what and when.

``authorize_access`` decides one access with casbin — the gateway's engine and model style (``sub, obj, act,
cond, eft``; deny overrides allow) — over a policy built from the store: an allow rule per approved request ×
data set × purpose (valid from its approval to its expiry or revocation, limited to its columns), a deny rule per
data set with consent scopes for any purpose they do not cover at that instant, and a deny rule for data sets
with no consent scope at all. Every check is an audit event (``govern.access.check``); a denial is also a typed
alert signal (``access_signal``) sent through ``modelshield.monitor.alerts`` when a dispatcher is given (a
``monitor alerts run`` following the audit log sees the same records otherwise).

A training script calls ``require_access("alice", "data/train.csv", "training", db=url)`` before reading.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from modelshield.core.conditions import compile_conditions
from modelshield.core.errors import InputError, ModelShieldError
from modelshield.core.storage import open_engine, write_transaction
from modelshield.govern.consent import ConsentScope, ConsentStore, covering
from modelshield.govern.scopes import (
    AuditedRecords,
    DataTarget,
    check_purpose,
    check_ref,
    insert_row,
    iso,
    lineage_digests,
    login,
    now_utc,
    parse_time,
    ref_matches,
    resolve_target,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from modelshield.audit.log import AuditLog
    from modelshield.monitor.alerts.dispatch import AlertDispatcher, Delivery
    from modelshield.monitor.alerts.signals import Signal

State = Literal["pending", "approved", "denied", "revoked"]
Status = Literal["pending", "approved", "denied", "revoked", "expired"]
_LOCK = "modelshield-govern-access"
CHECK_ACTION = "govern.access.check"

metadata = sa.MetaData()
requests_table = sa.Table(
    "govern_access_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("requester", sa.String(200), nullable=False, index=True),
    sa.Column("datasets", sa.Text, nullable=False),  # JSON list of references
    sa.Column("purposes", sa.Text, nullable=False),  # JSON list
    sa.Column("columns", sa.Text, nullable=True),  # JSON list; NULL: every column
    sa.Column("justification", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("expires_at", sa.String(40), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("decided_by", sa.String(200), nullable=True),
    sa.Column("decided_at", sa.String(40), nullable=True),
    sa.Column("decision_note", sa.Text, nullable=True),
    sa.Column("revoked_by", sa.String(200), nullable=True),
    sa.Column("revoked_at", sa.String(40), nullable=True),
    sa.Column("revoke_note", sa.Text, nullable=True),
)


@dataclass(frozen=True)
class AccessRequest:
    """One request for access to data sets, for purposes, until ``expires_at``."""

    id: int
    requester: str
    datasets: tuple[str, ...]
    purposes: tuple[str, ...]
    columns: tuple[str, ...] | None
    justification: str
    created_at: datetime
    expires_at: datetime
    state: State
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None
    revoked_by: str | None = None
    revoked_at: datetime | None = None
    revoke_note: str | None = None

    def status(self, at: datetime) -> Status:
        """The stored state, or ``expired`` for a pending or approved request past its expiry."""
        if self.state in ("pending", "approved") and at >= self.expires_at:
            return "expired"
        return self.state

    def to_dict(self, at: datetime | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "requester": self.requester,
            "datasets": list(self.datasets),
            "purposes": list(self.purposes),
            "columns": list(self.columns) if self.columns is not None else None,
            "justification": self.justification,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "state": self.state,
            "status": self.status(at or now_utc()),
            "decided_by": self.decided_by,
            "decided_at": iso(self.decided_at) if self.decided_at else None,
            "decision_note": self.decision_note,
            "revoked_by": self.revoked_by,
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
            "revoke_note": self.revoke_note,
        }


def _request(row: Any) -> AccessRequest:
    created, expires = parse_time(row.created_at), parse_time(row.expires_at)
    assert created is not None and expires is not None
    return AccessRequest(
        row.id,
        row.requester,
        tuple(json.loads(row.datasets)),
        tuple(json.loads(row.purposes)),
        tuple(json.loads(row.columns)) if row.columns is not None else None,
        row.justification,
        created,
        expires,
        row.state,
        row.decided_by,
        parse_time(row.decided_at),
        row.decision_note,
        row.revoked_by,
        parse_time(row.revoked_at),
        row.revoke_note,
    )


def _columns(columns: Iterable[str] | None) -> tuple[str, ...] | None:
    if columns is None:
        return None
    out = tuple(dict.fromkeys(c for c in columns if c.strip()))
    return out or None


class AccessStore(AuditedRecords):
    """Access requests in the shared store, each transition checked against the state machine and audited."""

    component = "govern_access"
    metadata = metadata

    def request(
        self,
        requester: str,
        datasets: Iterable[str],
        purposes: Iterable[str],
        *,
        expires: datetime,
        justification: str,
        columns: Iterable[str] | None = None,
        now: datetime | None = None,
    ) -> AccessRequest:
        """File a pending request by ``requester``."""
        when = now or now_utc()
        refs = tuple(dict.fromkeys(check_ref(d) for d in datasets))
        wanted = tuple(dict.fromkeys(check_purpose(p) for p in purposes))
        cols = _columns(columns)
        if not requester.strip() or requester == "*" or any(c in requester for c in ",'\""):
            raise InputError(f"requester {requester!r} must be a person's or a service's name (no '*', commas, quotes)")
        if not refs or not wanted:
            raise InputError("an access request names at least one data set and one purpose")
        if not justification.strip():
            raise InputError("an access request needs a justification (why the data is needed)")
        if expires <= when:
            raise InputError(f"the request would expire at {iso(expires)}, before it is made ({iso(when)})")
        values = {
            "requester": requester,
            "datasets": json.dumps(list(refs)),
            "purposes": json.dumps(list(wanted)),
            "columns": json.dumps(list(cols)) if cols is not None else None,
            "justification": justification.strip(),
            "created_at": iso(when),
            "expires_at": iso(expires),
            "state": "pending",
        }
        with write_transaction(self._engine, _LOCK) as conn:
            rid = insert_row(conn, requests_table, values)
        made = self.get(rid)
        self.record("access.request", requester, **_fields(made))
        return made

    def approve(
        self, request_id: int, *, by: str | None = None, note: str | None = None, now: datetime | None = None
    ) -> AccessRequest:
        """Approve a pending, unexpired request; the approver may not be its requester."""
        return self._decide(request_id, "approved", by or login(), note, now or now_utc())

    def deny(
        self, request_id: int, *, by: str | None = None, note: str | None = None, now: datetime | None = None
    ) -> AccessRequest:
        """Deny a pending request (the requester cannot decide their own)."""
        return self._decide(request_id, "denied", by or login(), note, now or now_utc())

    def _decide(self, request_id: int, state: State, by: str, note: str | None, now: datetime) -> AccessRequest:
        verb = "approve" if state == "approved" else "deny"
        with write_transaction(self._engine, _LOCK) as conn:
            current = self._locked(conn, request_id)
            if by == current.requester:
                raise InputError(
                    f"{by} filed request {request_id} and cannot {verb} it: separation of duties",
                    hint="another approver must decide it",
                )
            status = current.status(now)
            if status != "pending":
                when = f" at {iso(current.expires_at)}" if status == "expired" else ""
                raise InputError(f"request {request_id} is {status}{when}: only a pending request can be {state}")
            conn.execute(
                requests_table.update()
                .where(requests_table.c.id == request_id)
                .values(state=state, decided_by=by, decided_at=iso(now), decision_note=note)
            )
        decided = self.get(request_id)
        self.record(f"access.{verb}", by, decision="allow" if state == "approved" else "deny", **_fields(decided))
        return decided

    def revoke(
        self, request_id: int, *, by: str | None = None, note: str | None = None, now: datetime | None = None
    ) -> AccessRequest:
        """End a pending or approved request before its expiry (the requester may withdraw their own)."""
        when, who = now or now_utc(), by or login()
        with write_transaction(self._engine, _LOCK) as conn:
            status = self._locked(conn, request_id).status(when)
            if status not in ("pending", "approved"):
                raise InputError(f"request {request_id} is {status}: only a pending or approved request can be revoked")
            conn.execute(
                requests_table.update()
                .where(requests_table.c.id == request_id)
                .values(state="revoked", revoked_by=who, revoked_at=iso(when), revoke_note=note)
            )
        revoked = self.get(request_id)
        self.record("access.revoke", who, decision="deny", **_fields(revoked))
        return revoked

    def _locked(self, conn: sa.Connection, request_id: int) -> AccessRequest:
        row = conn.execute(sa.select(requests_table).where(requests_table.c.id == request_id)).first()
        if row is None:
            raise InputError(f"no access request {request_id}")
        return _request(row)

    def get(self, request_id: int) -> AccessRequest:
        with self._engine.connect() as conn:
            return self._locked(conn, request_id)

    def requests(
        self, *, requester: str | None = None, status: Status | None = None, at: datetime | None = None
    ) -> list[AccessRequest]:
        """Every request (of ``requester``; in ``status`` at ``at``), oldest first."""
        query = sa.select(requests_table).order_by(requests_table.c.id)
        if requester is not None:
            query = query.where(requests_table.c.requester == requester)
        with self._engine.connect() as conn:
            found = [_request(r) for r in conn.execute(query)]
        when = at or now_utc()
        return [r for r in found if status is None or r.status(when) == status]


def _fields(req: AccessRequest) -> dict[str, Any]:
    """The audit fields of a request transition."""
    return {
        "request_id": req.id,
        "requester": req.requester,
        "datasets": list(req.datasets),
        "purposes": list(req.purposes),
        "columns": list(req.columns) if req.columns is not None else None,
        "expires_at": iso(req.expires_at),
        "state": req.state,
        "reason": req.revoke_note if req.state == "revoked" else req.decision_note,
    }


# -- the casbin policy ------------------------------------------------------------------------------------------

MODEL_CONF = "access_model.conf"


def _epoch(when: datetime | None) -> str:
    return "1e18" if when is None else repr(when.timestamp())


def _window(start: datetime, *ends: datetime | None) -> str:
    end = min((e for e in ends if e is not None), default=None)
    return f"within(r.env.now, {_epoch(start)}, {_epoch(end)})"


def _rules(requests: Iterable[AccessRequest], scopes: Sequence[ConsentScope]) -> list[list[str]]:
    """The policy lines (sub, obj, act, cond, eft, id) the store's records stand for."""
    rules = []
    for req in requests:
        if req.decided_at is None or req.decided_by is None or req.state not in ("approved", "revoked"):
            continue
        cond = _window(req.decided_at, req.expires_at, req.revoked_at)
        if req.columns is not None:
            cond += f" && columnsWithin(r.obj.columns, 'request:{req.id}')"
        rules += [[req.requester, d, p, cond, "allow", f"request:{req.id}"] for d in req.datasets for p in req.purposes]
    by_ref: dict[str, list[ConsentScope]] = {}
    for scope in scopes:
        by_ref.setdefault(scope.dataset, []).append(scope)
    for ref, mine in by_ref.items():
        allowed = " || ".join(
            f"(r.act == '{s.purpose}' && {_window(s.granted_at, s.expires_at, s.withdrawn_at)})" for s in mine
        )
        rules.append(["*", ref, "*", f"!({allowed})", "deny", f"consent:{ref}"])
    listed = " ".join(by_ref)
    rules.append(["*", "*", "*", f"!anyDataset(r.obj, '{listed}')" if listed else "true", "deny", "no-consent"])
    return rules


class AccessPolicy:
    """A casbin enforcer over the rules of ``_rules``; ``known`` maps name patterns to lineage digests, ``columns``
    a request (``request:<id>``) to the columns it is limited to (column names may hold any character, so the
    rules name the request rather than spell its columns out)."""

    def __init__(
        self, rules: list[list[str]], known: Mapping[str, frozenset[str]], columns: Mapping[str, frozenset[str]]
    ) -> None:
        cond = compile_conditions(
            (r[3] for r in rules),
            {
                "within": lambda now, start, end: start <= now < end,
                "columnsWithin": lambda cols, scope: cols is not None and set(cols) <= columns[scope],
                "anyDataset": lambda obj, refs: any(ref_matches(r, obj.target, known) for r in refs.split()),
            },
        )  # raises DependencyError without pycasbin, before casbin itself is imported
        import casbin

        text = (resources.files("modelshield.govern") / "data" / MODEL_CONF).read_text(encoding="utf-8")
        self.rules = rules
        scoped = {k: sorted(v) for k, v in columns.items()}
        self.version = hashlib.sha256(json.dumps([text, rules, scoped], sort_keys=True).encode()).hexdigest()[:16]
        self._enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=text))
        self._enforcer.add_function("datasetIs", lambda obj, ref: ref_matches(ref, obj.target, known))
        self._enforcer.add_function("cond", cond)
        if rules:
            self._enforcer.add_policies([tuple(r) for r in rules])

    def enforce(
        self, requester: str, target: DataTarget, purpose: str, columns: tuple[str, ...] | None, at: datetime
    ) -> tuple[bool, tuple[str, ...]]:
        """casbin's answer and the rule that decided it (empty: nothing allowed, the default deny)."""
        sub = SimpleNamespace(name=requester)
        obj = SimpleNamespace(target=target, columns=columns)
        allowed, rule = self._enforcer.enforce_ex(sub, obj, purpose, SimpleNamespace(now=at.timestamp()))
        return bool(allowed), tuple(rule)


@dataclass(frozen=True)
class AccessDecision:
    """An access check's answer, why, and by which rule of which policy version."""

    allowed: bool
    requester: str
    target: DataTarget
    purpose: str
    columns: tuple[str, ...] | None
    at: datetime
    reason: str
    #: consent, no-consent, no-request, pending, denied, expired, revoked, columns (why a denial happened)
    kind: str
    policy_version: str
    rule: tuple[str, ...] = ()
    request_id: int | None = None
    consent_ids: tuple[int, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": "allow" if self.allowed else "deny",
            "requester": self.requester,
            "dataset": self.target.to_dict(),
            "purpose": self.purpose,
            "columns": list(self.columns) if self.columns is not None else None,
            "time": iso(self.at),
            "reason": self.reason,
            "kind": self.kind,
            "request_id": self.request_id,
            "consent_ids": list(self.consent_ids),
            "policy_version": self.policy_version,
            "rule": ", ".join(self.rule) or None,
        }


class AccessDenied(ModelShieldError):
    """An access the policy does not allow (raised by ``require_access``)."""

    hint = "file an access request (modelshield govern access request) or check the data set's consent scopes"


def _explain(
    allowed: bool,
    rule: tuple[str, ...],
    requester: str,
    target: DataTarget,
    purpose: str,
    columns: tuple[str, ...] | None,
    at: datetime,
    requests: Sequence[AccessRequest],
    scopes: Sequence[ConsentScope],
    known: Mapping[str, frozenset[str]],
) -> tuple[str, str, int | None, tuple[int, ...]]:
    """(reason, kind, request id, consent scope ids) for an auditor to read."""
    relevant = covering(scopes, target, known)
    consent_ids = tuple(s.id for s in relevant if s.purpose == purpose and s.active(at))
    mine = [
        r
        for r in requests
        if r.requester == requester and purpose in r.purposes and any(ref_matches(d, target, known) for d in r.datasets)
    ]
    if allowed:
        rid = int(rule[5].partition(":")[2])
        req = next(r for r in mine if r.id == rid)
        basis = ", ".join(sorted({s.legal_basis for s in relevant if s.id in consent_ids}))
        return (
            f"request {rid} approved by {req.decided_by}, until {iso(req.expires_at)}; consent ({basis}) "
            f"scope(s) {', '.join(map(str, consent_ids))}",
            "allowed",
            rid,
            consent_ids,
        )
    if rule and rule[5] == "no-consent":
        return f"no consent scope covers {target.name}", "no-consent", None, ()
    if rule and rule[5].startswith("consent:"):
        active = sorted({s.purpose for s in relevant if s.active(at)})
        return (
            f"{purpose} is outside the consent for {rule[1]} (active purposes: {', '.join(active) or 'none'})",
            "consent",
            None,
            (),
        )
    for req in reversed(mine):
        status = req.status(at)
        if status == "approved" and req.decided_at is not None and req.decided_at <= at:
            outside = sorted(set(columns or ("(every column)",)) - set(req.columns or ()))
            return f"columns {', '.join(outside)} are outside request {req.id}'s scope", "columns", req.id, ()
        if status in ("expired", "revoked", "pending", "denied"):
            when = {
                "expired": f" at {iso(req.expires_at)}",
                "revoked": f" by {req.revoked_by}",
                "denied": f" by {req.decided_by}",
            }.get(status, "")
            return f"request {req.id} is {status}{when}", status, req.id, ()
    return f"no approved access request lets {requester} use {target.name} for {purpose}", "no-request", None, ()


def access_signal(decision: AccessDecision) -> Signal:
    """The alert signal of a check (``govern.access.check``; value 1 for a denial), labelled as ``monitor alerts
    run`` labels the same audit record, plus the data set, purpose and the kind of denial."""
    from modelshield.monitor.alerts.signals import Signal

    return Signal(
        CHECK_ACTION,
        decision.at.timestamp(),
        0.0 if decision.allowed else 1.0,
        {
            "action": CHECK_ACTION,
            "decision": "allow" if decision.allowed else "deny",
            "subject": decision.requester,
            "dataset": decision.target.name,
            "purpose": decision.purpose,
            "kind": decision.kind,
        },
    )


@dataclass
class AccessCheck:
    """A decision and what became of it: its audit record and the alert deliveries it caused."""

    decision: AccessDecision
    audit_seq: int
    deliveries: list[Delivery] = field(default_factory=list)


def check_access(
    engine: Engine,
    requester: str,
    dataset: str | Path,
    purpose: str,
    *,
    columns: Iterable[str] | None = None,
    now: datetime | None = None,
    audit: AuditLog | None = None,
    alerts: AlertDispatcher | None = None,
) -> AccessCheck:
    """Decide an access on the store at ``engine``, record it in the audit log, and alert on a denial."""
    at = now or now_utc()
    target, wanted, cols = resolve_target(engine, dataset), check_purpose(purpose), _columns(columns)
    store = AccessStore(engine, audit)
    try:
        requests = store.requests(requester=requester)  # the policy for this check: its rules and the consent
        scopes = ConsentStore(engine, audit).scopes()
        known = lineage_digests(engine, [*(d for r in requests for d in r.datasets), *(s.dataset for s in scopes)])
        limits = {f"request:{r.id}": frozenset(r.columns) for r in requests if r.columns is not None}
        policy = AccessPolicy(_rules(requests, scopes), known, limits)
        allowed, rule = policy.enforce(requester, target, wanted, cols, at)
        reason, kind, rid, consent_ids = _explain(
            allowed, rule, requester, target, wanted, cols, at, requests, scopes, known
        )
        decision = AccessDecision(
            allowed, requester, target, wanted, cols, at, reason, kind, policy.version, rule, rid, consent_ids
        )
        fields = decision.to_dict()
        del fields["decision"]
        seq = store.record("access.check", requester, decision="allow" if allowed else "deny", **fields)
    finally:
        store.close()
    deliveries = [] if allowed or alerts is None else alerts.observe(access_signal(decision))
    return AccessCheck(decision, seq, deliveries)


def authorize_access(
    requester: str,
    dataset: str | Path,
    purpose: str,
    *,
    columns: Iterable[str] | None = None,
    db: str | None = None,
    now: datetime | None = None,
    alerts: AlertDispatcher | None = None,
) -> AccessDecision:
    """Decide (and audit) whether ``requester`` may use ``dataset`` (a file, digest or name) for ``purpose``."""
    engine = open_engine(db)
    try:
        return check_access(engine, requester, dataset, purpose, columns=columns, now=now, alerts=alerts).decision
    finally:
        engine.dispose()


def require_access(
    requester: str,
    dataset: str | Path,
    purpose: str,
    *,
    columns: Iterable[str] | None = None,
    db: str | None = None,
    alerts: AlertDispatcher | None = None,
) -> AccessDecision:
    """``authorize_access`` for code about to read data: returns the decision, raises ``AccessDenied`` if refused."""
    decision = authorize_access(requester, dataset, purpose, columns=columns, db=db, alerts=alerts)
    if not decision.allowed:
        raise AccessDenied(f"{requester} may not use {decision.target.name} for {purpose}: {decision.reason}")
    return decision


__all__ = [
    "AccessCheck",
    "AccessDecision",
    "AccessDenied",
    "AccessPolicy",
    "AccessRequest",
    "AccessStore",
    "access_signal",
    "authorize_access",
    "check_access",
    "require_access",
]
