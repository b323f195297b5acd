"""Incident drills: start a real attack on a live gateway, wait for its audit log to show it, run the playbook,
and time both halves — time to detect (attack start → the triggering audit record) and time to contain
(detection → every containment check of the playbook holds).

The attack itself is the caller's (``trigger``: a red-team campaign, a scraper, a stolen key probing admin
endpoints); this module reads the audit log the gateway writes, drives the playbook through the admin API
(``playbooks.PlaybookRunner``) and checks containment the way the attacker would meet it: its key refused, its
requests limited, the guard strict, the suspect version no longer served. A drill also says whether every step
it took is in the audit log (an ``incident.step`` record per step, an ``admin.*`` record per admin call) and
whether the log's chain still verifies.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from modelshield.audit import schema
from modelshield.incident.playbooks import (
    ActionError,
    AdminClient,
    Check,
    Incident,
    Playbook,
    PlaybookRunner,
    RunReport,
    fill,
)


def last_seq(engine: sa.Engine) -> int:
    """The newest audit record's seq (0 for an empty log)."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(schema.records.c.seq))).scalar() or 0)


def _events(engine: sa.Engine, after: int) -> list[tuple[int, float, dict[str, Any]]]:
    query = sa.select(schema.records.c.seq, schema.records.c.recorded_at, schema.records.c.event).where(
        schema.records.c.seq > after
    )
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(schema.records.c.seq)).all()
    return [(int(seq), at / 1_000_000, json.loads(event)) for seq, at, event in rows]


def find_incident(engine: sa.Engine, book: Playbook, *, after: int, subject: str | None = None) -> Incident | None:
    """The first moment the trigger holds in records after seq ``after``: ``count`` matching records from one
    subject within ``within_seconds`` (``subject`` given: only that one's records count)."""
    trigger = book.trigger
    seen: dict[str, list[tuple[int, float, dict[str, Any]]]] = {}
    for seq, at, event in _events(engine, after):
        if not trigger.matches(event):
            continue
        who = str((event.get("actor") or {}).get("subject") or "")
        if subject is not None and who != subject:
            continue
        window = [e for e in seen.get(who, []) if at - e[1] <= trigger.within_seconds]
        window.append((seq, at, event))
        seen[who] = window
        if len(window) >= trigger.count:
            version = event.get("model_version")
            return Incident(
                id=f"inc-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(at))}-{secrets.token_hex(3)}",
                playbook=book.name,
                subject=who if (event.get("actor") or {}).get("method") not in (None, "system", "none") else None,
                model=event.get("model") or None,
                version=None if version is None else str(version),
                detected_at=at,
                records=[s for s, _, _ in window],
            )
    return None


@dataclass
class CheckResult:
    check: str
    params: dict[str, Any]
    holds: bool
    detail: str


def check_containment(
    checks: list[Check], incident: Incident, client: AdminClient, predict: Callable[[str], int]
) -> list[CheckResult]:
    """Each containment check, as the attacker would meet it. ``predict(subject)`` sends one request under that
    subject's key and returns the HTTP status."""
    out = []
    controls: dict[str, Any] | None = None
    for check in checks:
        p = fill(check.params, incident.context())
        if check.check == "key_refused":
            status = predict(str(p["subject"]))
            out.append(CheckResult(check.check, p, status == 401, f"the key got HTTP {status}"))
        elif check.check == "rate_limited":
            statuses = [predict(str(p["subject"])) for _ in range(int(p.get("requests") or 3))]
            holds = any(s in (401, 429) for s in statuses)
            out.append(CheckResult(check.check, p, holds, f"statuses {statuses}"))
        else:
            controls = controls or client.request("GET", "/v1/admin/controls")
            if check.check == "guard_strict":
                guards = controls["guards"]
                names = [str(p["model"])] if p.get("model") else list(guards)
                modes = {n: guards.get(n, {}).get("mode") for n in names}
                holds = bool(modes) and all(m == "strict" for m in modes.values())
                out.append(CheckResult(check.check, p, holds, f"guard modes {modes}"))
            else:
                served = controls["models"].get(str(p["model"]), {})
                holds = served.get("version") != str(p["version"]) or not served.get("healthy", True)
                out.append(
                    CheckResult(
                        check.check,
                        p,
                        holds,
                        f"serving version {served.get('version')}, healthy {served.get('healthy')}",
                    )
                )
    return out


@dataclass
class DrillResult:
    """One drill: the times, the playbook run, the checks, and whether every step is audited."""

    playbook: str
    attack: str
    started_at: float
    detected: bool
    time_to_detect_s: float | None = None
    time_to_contain_s: float | None = None
    contained: bool = False
    audited: bool = False
    chain_ok: bool = False
    incident: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.detected and self.contained and self.audited and self.chain_ok

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def audit_coverage(engine: sa.Engine, report: RunReport, after: int) -> dict[str, Any]:
    """Which of the run's steps have their ``incident.step`` record, and the ``admin.*`` calls the runner's
    identity made after seq ``after`` (an attacker's refused admin calls are not the runner's)."""
    events = [event for _, _, event in _events(engine, after)]
    steps: dict[str, set[str]] = {}
    runners = set()
    for event in events:
        note = event.get("incident")
        if (
            event.get("action") == "incident.step"
            and isinstance(note, dict)
            and note.get("incident") == report.incident.id
        ):
            steps.setdefault(str(note.get("step")), set()).add(str(note.get("status")))
            runners.add((event.get("actor") or {}).get("subject"))
    admin = [
        {"action": e["action"], "decision": e.get("decision"), "status": e.get("status_code"), "admin": e.get("admin")}
        for e in events
        if str(e.get("action", "")).startswith("admin.")
        and e["action"] != "admin.controls.read"
        and (e.get("actor") or {}).get("subject") in runners
    ]
    missing = [s.name for s in report.steps if s.status != "dry-run" and s.name not in steps]
    return {"steps_recorded": {k: sorted(v) for k, v in steps.items()}, "missing": missing, "admin_calls": admin}


def run_drill(
    book: Playbook,
    *,
    engine: sa.Engine,
    client: AdminClient,
    runner: PlaybookRunner,
    trigger: Callable[[], Any],
    attack: str,
    predict: Callable[[str], int],
    subject: str | None = None,
    detect_timeout: float = 120.0,
    contain_timeout: float = 60.0,
    current_version: Callable[[str], str | None] | None = None,
) -> DrillResult:
    """Run ``trigger`` (the attack) in a thread, wait for the playbook's trigger in the audit log, run the
    playbook and wait until every containment check holds; time both."""
    after = last_seq(engine)
    started = time.time()
    failure: list[BaseException] = []

    def attack_thread() -> None:
        try:
            trigger()
        except Exception as exc:  # a refused attack is the point; anything else is reported
            failure.append(exc)

    thread = threading.Thread(target=attack_thread, name=f"drill-{book.name}", daemon=True)
    thread.start()
    result = DrillResult(book.name, attack, started, detected=False)
    incident = None
    deadline, grace = time.monotonic() + detect_timeout, None
    while time.monotonic() < deadline:
        incident = find_incident(engine, book, after=after, subject=subject)
        if incident is not None:
            break
        if not thread.is_alive():  # the attack is over: give late controls (the live monitor's checks) a while
            grace = grace or time.monotonic() + 10.0
            if time.monotonic() > grace:
                break
        time.sleep(0.2)
    if incident is None:
        thread.join(timeout=60)
        result.problem = "the trigger never showed in the audit log" + (f" (attack: {failure[0]})" if failure else "")
        return result
    if incident.version is None and incident.model and current_version is not None:
        incident.version = current_version(incident.model)
    if incident.subject is None and subject is not None:
        incident.subject = subject
    result.detected = True
    detected_at = incident.detected_at or time.time()
    result.time_to_detect_s = round(detected_at - started, 3)
    result.incident = asdict(incident)
    report = runner.run(book, incident)
    result.run = report.to_dict()
    checks: list[CheckResult] = []
    end = time.monotonic() + contain_timeout
    while report.ok:
        try:
            checks = check_containment(book.contain, incident, client, predict)
        except ActionError as exc:
            result.problem = str(exc)
            break
        if all(c.holds for c in checks) or time.monotonic() > end:
            break
        time.sleep(0.2)
    contained_at = time.time()
    result.checks = [asdict(c) for c in checks]
    result.contained = bool(checks) and all(c.holds for c in checks)
    if result.contained:
        result.time_to_contain_s = round(contained_at - detected_at, 3)
    elif result.problem is None:
        result.problem = "not contained: " + (
            f"waiting for {report.awaiting_approval} approval" if report.awaiting_approval else "a check failed"
        )
    thread.join(timeout=120)
    result.audit = audit_coverage(engine, report, after)
    local = ("snapshot_evidence", "notify")  # run here, recorded by their incident.step record only
    calls = [s for s in report.steps if s.action not in local and s.status not in ("dry-run", "awaiting-approval")]
    result.audited = not result.audit["missing"] and len(result.audit["admin_calls"]) >= len(calls)
    try:
        result.chain_ok = bool(client.request("GET", "/v1/admin/audit/verify").get("ok"))
    except ActionError as exc:
        result.problem = result.problem or str(exc)
    return result


def render_markdown(results: list[DrillResult]) -> str:
    """The drills as a Markdown table (times in seconds)."""

    def sec(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f}"

    lines = [
        "| playbook | attack (trigger) | detected | time to detect (s) | contained | time to contain (s) "
        "| steps audited | chain verifies |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.playbook} | {r.attack} | {'yes' if r.detected else 'no'} | {sec(r.time_to_detect_s)} "
            f"| {'yes' if r.contained else 'no'} | {sec(r.time_to_contain_s)} | {'yes' if r.audited else 'no'} "
            f"| {'yes' if r.chain_ok else 'no'} |"
        )
    problems = [f"- {r.playbook}: {r.problem}" for r in results if r.problem]
    return "\n".join(lines + ([""] + problems if problems else [])) + "\n"


__all__ = [
    "CheckResult",
    "DrillResult",
    "audit_coverage",
    "check_containment",
    "find_incident",
    "last_seq",
    "render_markdown",
    "run_drill",
]
