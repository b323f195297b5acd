"""Incident response as code: YAML playbooks whose steps act on a live gateway, every step in its audit log.

A playbook names what starts it (``trigger``: audit actions and decisions, how many from one subject within how
long), how bad it is (``severity``, which picks the escalation matrix's row: who is told, how fast — the same
matrix the tabletop exercises use, ``modelshield.threat``'s ``tabletop.yaml``), the steps, and how to tell the
incident is contained (``contain``). A step is one action with parameters; ``{subject}``, ``{model}`` and
``{version}`` in a parameter are filled from the incident (the trigger's events). ``approval: ROLE`` makes a step
wait for that role's approval (``--approve ROLE`` on the command line; a drill approves as ``drill``).

Actions go through the gateway's admin API (``modelshield.serve.admin``) — revoke or rotate keys, pin the previous
version, quarantine a version, tighten an identity's rate limit, switch the guard to strict — or run here: a signed
evidence bundle (``build_bundle``) and notifications through the alert routes (``monitor.alerts``). The runner
records every step (approved, done, failed) as an ``incident.step`` record in the gateway's audit log, and the
gateway records each admin call as ``admin.<action>``; a dry run prints the calls and makes none.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelshield.core.errors import InputError, validation_line
from modelshield.core.files import load_yaml
from modelshield.core.severity import Severity

NAME = r"^[a-z0-9][a-z0-9-]{0,63}$"
PACKAGE_PLAYBOOKS = ("modelshield.incident", "data/playbooks")
Scalar = str | int | float | bool | None

#: action → (required parameters, optional parameters)
ACTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "snapshot_evidence": (frozenset(), frozenset({"window_seconds"})),
    "revoke_keys": (frozenset(), frozenset({"subject", "key_id"})),
    "rotate_key": (frozenset({"key_id"}), frozenset({"overlap_seconds"})),
    "pin_version": (frozenset({"model"}), frozenset({"version"})),
    "quarantine_model": (frozenset({"model"}), frozenset({"version", "reason"})),
    "tighten_rate_limit": (frozenset({"subject", "rps", "burst"}), frozenset({"expires_in"})),
    "guard_strict": (frozenset(), frozenset({"model", "threshold", "min_confidence"})),
    "notify": (frozenset(), frozenset({"message"})),
}
#: containment check → (required parameters, optional parameters)
CHECKS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "key_refused": (frozenset({"subject"}), frozenset()),
    "rate_limited": (frozenset({"subject"}), frozenset({"requests"})),
    "guard_strict": (frozenset(), frozenset({"model"})),
    "model_not_served": (frozenset({"model", "version"}), frozenset()),
}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
CONTEXT_FIELDS = ("subject", "model", "version", "incident")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_params(
    kind: str, name: str, params: dict[str, Scalar], table: dict[str, tuple[frozenset[str], frozenset[str]]]
) -> None:
    required, optional = table[name]
    missing = sorted(required - params.keys())
    unknown = sorted(params.keys() - required - optional)
    if missing:
        raise ValueError(f"{kind} {name} needs {', '.join(missing)}")
    if unknown:
        raise ValueError(
            f"{kind} {name} takes no {', '.join(unknown)} (it takes {', '.join(sorted(required | optional)) or 'nothing'})"
        )
    for value in params.values():
        for placeholder in _PLACEHOLDER.findall(value) if isinstance(value, str) else ():
            if placeholder not in CONTEXT_FIELDS:
                raise ValueError(f"{{{placeholder}}} is not one of {', '.join('{' + f + '}' for f in CONTEXT_FIELDS)}")


class Trigger(_Strict):
    """Audit records that start the incident: ``count`` of them from one subject within ``within_seconds``."""

    actions: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    decisions: list[str] = []
    count: int = Field(default=1, ge=1)
    within_seconds: float = Field(default=300.0, gt=0)

    def matches(self, event: dict[str, Any]) -> bool:
        action = str(event.get("action", ""))
        if not any(fnmatch.fnmatchcase(action, pattern) for pattern in self.actions):
            return False
        return not self.decisions or event.get("decision") in self.decisions


class Step(_Strict):
    name: str = Field(min_length=1, max_length=200)
    action: Literal[
        "snapshot_evidence",
        "revoke_keys",
        "rotate_key",
        "pin_version",
        "quarantine_model",
        "tighten_rate_limit",
        "guard_strict",
        "notify",
    ]
    params: dict[str, Scalar] = {}
    approval: str | None = None
    on_error: Literal["stop", "continue"] = "stop"

    @model_validator(mode="after")
    def _params(self) -> Step:
        _check_params("action", self.action, self.params, ACTIONS)
        if self.action == "revoke_keys" and len(self.params) != 1:
            raise ValueError("action revoke_keys takes subject or key_id (one of them)")
        return self


class Check(_Strict):
    check: Literal["key_refused", "rate_limited", "guard_strict", "model_not_served"]
    params: dict[str, Scalar] = {}

    @model_validator(mode="after")
    def _params(self) -> Check:
        _check_params("check", self.check, self.params, CHECKS)
        return self


class Playbook(_Strict):
    """One incident type's response."""

    name: Annotated[str, Field(pattern=NAME)]
    title: str = Field(min_length=1)
    description: str = ""
    severity: Severity
    trigger: Trigger
    steps: list[Step] = Field(min_length=1)
    contain: list[Check] = Field(min_length=1)


@dataclass(frozen=True)
class Escalation:
    """Who is told and how fast, for one severity (the tabletop matrix's row)."""

    severity: str
    within_minutes: int
    notify: tuple[str, ...]
    roles: dict[str, str] = field(default_factory=dict)


def escalation(severity: Severity) -> Escalation:
    """The escalation matrix's row for ``severity`` (the built-in tabletop settings)."""
    from modelshield.threat.tabletop import builtin_playbook

    book = builtin_playbook()
    row = book.escalation.get(severity)
    if row is None:
        raise InputError(f"the escalation matrix has no row for severity {severity.value}")
    names = {r.id: r.name for r in book.roles}
    return Escalation(severity.value, row.within_minutes, tuple(row.notify), names)


def roles() -> set[str]:
    """The role ids approvals and notifications may name."""
    from modelshield.threat.tabletop import builtin_playbook

    return {r.id for r in builtin_playbook().roles}


def parse_playbook(data: Any, source: str) -> Playbook:
    """A checked playbook; any problem is one line naming the field."""
    try:
        book = Playbook.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{source}: {validation_line(exc)}") from None
    known = roles()
    for i, step in enumerate(book.steps):
        if step.approval is not None and step.approval not in known:
            raise InputError(
                f"{source}: steps.{i}.approval: {step.approval!r} is not a role ({', '.join(sorted(known))})"
            )
    return book


def load_playbook(path: Path) -> Playbook:
    """A playbook from a YAML file."""
    if not path.is_file():
        raise InputError(f"no playbook file at {path}")
    return parse_playbook(load_yaml(path), str(path))


def builtin_playbooks() -> dict[str, Playbook]:
    """The shipped playbooks by name."""
    package, folder = PACKAGE_PLAYBOOKS
    out = {}
    for entry in sorted(resources.files(package).joinpath(folder).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            book = parse_playbook(yaml.safe_load(entry.read_text(encoding="utf-8")), f"built-in {entry.name}")
            out[book.name] = book
    return out


def find_playbook(spec: str) -> Playbook:
    """A shipped playbook by name, or a YAML file by path."""
    shipped = builtin_playbooks()
    if spec in shipped:
        return shipped[spec]
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_playbook(path)
    raise InputError(f"no playbook {spec!r}: give a file or one of {', '.join(shipped)}")


def fill(params: dict[str, Scalar], context: dict[str, str | None]) -> dict[str, Scalar]:
    """``params`` with ``{subject}``/``{model}``/``{version}``/``{incident}`` filled in from the incident."""

    def one(value: Scalar) -> Scalar:
        if not isinstance(value, str):
            return value
        missing = [p for p in _PLACEHOLDER.findall(value) if not context.get(p)]
        if missing:
            raise InputError(f"the incident has no {missing[0]} for {value!r}", hint=f"give --{missing[0]}")
        whole = _PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) == "version" and str(context["version"]).isdigit():
            return int(str(context["version"]))
        return _PLACEHOLDER.sub(lambda m: str(context[m.group(1)]), value)

    return {k: one(v) for k, v in params.items()}


# -- running a playbook ------------------------------------------------------------------------------------------


class ActionError(InputError):
    """An action the gateway refused or could not take (its status and error line)."""


class AdminClient:
    """The gateway's admin API over HTTP, with an admin API key (``modelshield serve --demo`` writes one)."""

    def __init__(self, url: str, key: str, *, timeout: float = 60.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One admin call; a refusal is an ``ActionError`` with the gateway's status and error line."""
        import httpx

        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise ActionError(f"{method} {self.url}{path}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            try:
                error = response.json().get("error", "")
            except ValueError:
                error = response.text[:200]
            raise ActionError(f"{method} {path}: HTTP {response.status_code}: {error}")
        result: dict[str, Any] = response.json()
        return result

    def close(self) -> None:
        self._http.close()


@dataclass
class Incident:
    """What the trigger's records say: who, which model and version, when it was detected, which records."""

    id: str
    playbook: str
    subject: str | None = None
    model: str | None = None
    version: str | None = None
    detected_at: float | None = None
    records: list[int] = field(default_factory=list)

    def context(self) -> dict[str, str | None]:
        return {"subject": self.subject, "model": self.model, "version": self.version, "incident": self.id}


@dataclass
class EvidenceSource:
    """Where ``snapshot_evidence`` reads the audit log and how it signs the bundle (``build_bundle``)."""

    engine: Any
    key: Any
    folder: Path
    checkpoint_key: Any = None
    wait_seconds: float = 20.0


@dataclass
class StepResult:
    name: str
    action: str
    status: str
    call: str
    seconds: float = 0.0
    approved_by: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


_OK_STATUSES = ("done", "dry-run", "failed-continued")  # a failed ``on_error: continue`` step does not fail the run


@dataclass
class RunReport:
    incident: Incident
    playbook: str
    severity: str
    escalation: Escalation
    dry_run: bool
    steps: list[StepResult] = field(default_factory=list)
    awaiting_approval: str | None = None

    @property
    def ok(self) -> bool:
        """Every step that had to succeed did, and none waits for an approval."""
        return self.awaiting_approval is None and all(s.status in _OK_STATUSES for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "incident": asdict(self.incident),
            "playbook": self.playbook,
            "severity": self.severity,
            "escalation": {"within_minutes": self.escalation.within_minutes, "notify": list(self.escalation.notify)},
            "dry_run": self.dry_run,
            "ok": self.ok,
            "awaiting_approval": self.awaiting_approval,
            "steps": [asdict(s) for s in self.steps],
        }


def _admin_call(action: str, params: dict[str, Scalar]) -> tuple[str, str, dict[str, Any]]:
    """(method, path, body) of an admin-API action."""
    p = {k: v for k, v in params.items() if v is not None}
    if action == "revoke_keys":
        return "POST", "/v1/admin/keys/revoke", p
    if action == "rotate_key":
        return "POST", "/v1/admin/keys/rotate", p
    if action == "tighten_rate_limit":
        return "POST", "/v1/admin/limits", {k: float(v) if k != "subject" else v for k, v in p.items()}
    if action == "guard_strict":
        return "POST", "/v1/admin/guard", {"mode": "strict", **p}
    model = p.pop("model")
    verb = {"pin_version": "pin", "quarantine_model": "quarantine"}[action]
    return "POST", f"/v1/admin/models/{model}/{verb}", p


def describe_call(action: str, params: dict[str, Scalar]) -> str:
    """What a step would do, in one line (the dry run's output)."""
    if action == "snapshot_evidence":
        return f"build a signed evidence bundle of the last {params.get('window_seconds', 900)} s of the audit log"
    if action == "notify":
        return f"send {params.get('message', '')!r} to the alert routes"
    method, path, body = _admin_call(action, params)
    import json

    return f"{method} {path} {json.dumps(body, sort_keys=True)}"


class PlaybookRunner:
    """Runs a playbook's steps for one incident; every step is recorded in the gateway's audit log.

    ``approvals`` maps a role to who approved for it (``--approve ROLE``); a step whose role has not approved
    stops the run with ``awaiting_approval`` set (and is recorded as waiting). ``channels`` are alert routes
    (``monitor.alerts.channels.build_channels``) for ``notify``; ``evidence`` is where ``snapshot_evidence``
    reads the audit log and how it signs. Secrets (a rotated key) go to ``out`` with mode 0600, never into a
    record.
    """

    def __init__(
        self,
        client: AdminClient | None,
        *,
        approvals: dict[str, str] | None = None,
        channels: dict[str, Any] | None = None,
        evidence: EvidenceSource | None = None,
        out: Path | None = None,
    ) -> None:
        self.client = client
        self.approvals = approvals or {}
        self.channels = channels or {}
        self.evidence = evidence
        self.out = out

    def run(self, book: Playbook, incident: Incident, *, dry_run: bool = False) -> RunReport:
        """Every step in order (or, with ``dry_run``, what each would call, calling nothing)."""
        import time

        report = RunReport(incident, book.name, book.severity.value, escalation(book.severity), dry_run)
        context = incident.context()
        for step in book.steps:
            params = fill(step.params, context)
            call = describe_call(step.action, params)
            if dry_run:
                needs = {"needs_approval": step.approval} if step.approval else {}
                report.steps.append(StepResult(step.name, step.action, "dry-run", call, detail=needs))
                continue
            if self.client is None:
                raise InputError("running a playbook needs the gateway's admin API (--target and --admin-key-file)")
            approver = None
            if step.approval is not None:
                approver = self.approvals.get(step.approval)
                if approver is None:
                    result = StepResult(step.name, step.action, "awaiting-approval", call)
                    self._note(book, incident, result, "skipped", {"waiting_for": step.approval})
                    report.steps.append(result)
                    report.awaiting_approval = step.approval
                    return report
                self._note(
                    book,
                    incident,
                    StepResult(step.name, step.action, "approved", call),
                    "approved",
                    {"role": step.approval, "approved_by": approver},
                )
            started = time.monotonic()
            try:
                detail = self._act(step.action, params, book, incident, report.escalation)
                status = "done"
            except InputError as exc:
                detail, status = {"error": str(exc)}, "failed"
            result = StepResult(
                step.name, step.action, status, call, round(time.monotonic() - started, 3), approver, detail
            )
            self._note(book, incident, result, status, detail)
            if status == "failed" and step.on_error == "continue":
                result.status = "failed-continued"
            report.steps.append(result)
            if status == "failed" and step.on_error == "stop":
                break
        return report

    def _note(self, book: Playbook, incident: Incident, step: StepResult, status: str, detail: dict[str, Any]) -> None:
        assert self.client is not None
        self.client.request(
            "POST",
            "/v1/admin/incident/notes",
            {
                "incident": incident.id,
                "playbook": book.name,
                "step": step.name,
                "action": step.action,
                "status": status,
                "detail": detail,
            },
        )

    def _act(
        self, action: str, params: dict[str, Scalar], book: Playbook, incident: Incident, esc: Escalation
    ) -> dict[str, Any]:
        assert self.client is not None
        if action == "snapshot_evidence":
            return self._snapshot(incident, float(params.get("window_seconds") or 900))
        if action == "notify":
            return self._notify(str(params.get("message") or book.title), book, incident, esc)
        method, path, body = _admin_call(action, params)
        answer = self.client.request(method, path, body)
        if "new_key" in answer:
            answer = self._keep_secret(answer)
        return answer

    def _keep_secret(self, answer: dict[str, Any]) -> dict[str, Any]:
        """A rotated key's successor goes to a 0600 file in ``out``; the record names the file, not the key."""
        from modelshield.integrity.keys import atomic_output

        if self.out is None:
            raise InputError("a rotated key needs a folder to be written to (--out)")
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{answer['new_key_id']}.key"
        with atomic_output(path, mode=0o600) as f:
            f.write((str(answer.pop("new_key")) + "\n").encode())
        return {**answer, "new_key_file": str(path)}

    def _snapshot(self, incident: Incident, window: float) -> dict[str, Any]:
        """A signed evidence bundle from ``window`` seconds before detection, once a checkpoint covers the trigger."""
        import time

        import sqlalchemy as sa

        from modelshield.audit import schema
        from modelshield.incident.bundle import build_bundle

        ev = self.evidence
        if ev is None:
            raise InputError("snapshot_evidence needs the audit database and a bundle key (--audit-db, --evidence-key)")
        wanted = max(incident.records, default=0)
        deadline = time.monotonic() + ev.wait_seconds
        while True:
            with ev.engine.connect() as conn:
                covered = conn.execute(sa.select(sa.func.max(schema.checkpoints.c.seq))).scalar() or 0
            if covered >= wanted or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        since = (incident.detected_at or time.time()) - window
        ev.folder.mkdir(parents=True, exist_ok=True)
        out = ev.folder / f"{incident.id}.tar"
        summary = build_bundle(
            ev.engine,
            out,
            ev.key,
            checkpoint_key=ev.checkpoint_key,
            since_us=int(since * 1_000_000),
            note=f"incident {incident.id} ({incident.playbook})",
        )
        return {
            "bundle": str(summary.path),
            "records": summary.records,
            "first_seq": summary.first_seq,
            "last_seq": summary.last_seq,
            "checkpoint_seq": summary.checkpoint_seq,
            "covers_trigger": summary.checkpoint_seq >= wanted,
        }

    def _notify(self, message: str, book: Playbook, incident: Incident, esc: Escalation) -> dict[str, Any]:
        """The incident as an alert (``monitor.alerts``' payload) to every route; says who the matrix names."""
        import time

        from modelshield.monitor.alerts.channels import DeliveryError
        from modelshield.monitor.alerts.engine import Alert, Notice
        from modelshield.monitor.alerts.events import alert_event

        if not self.channels:
            raise InputError("notify needs alert routes (--routes RULES.yaml)")
        now = time.time()
        alert = Alert(
            id=incident.id,
            rule=book.name,
            kind="incident",
            severity=book.severity.value,
            key=incident.subject or incident.model or book.name,
            labels={
                "model": incident.model or "",
                "subject": incident.subject or "",
                "notify": ",".join(esc.notify),
                "within_minutes": str(esc.within_minutes),
            },
            summary=message,
            fired_at=incident.detected_at or now,
            last_seen=now,
            value=float(len(incident.records)),
        )
        payload = alert_event(Notice("fired", alert, list(self.channels), now))
        sent, failed = [], {}
        for name, channel in self.channels.items():
            try:
                channel.send(payload)
                sent.append(name)
            except DeliveryError as exc:
                failed[name] = str(exc)
        if not sent:
            raise ActionError(f"no route took the notification: {failed}")
        return {"routes": sent, "failed": failed, "notify": list(esc.notify), "within_minutes": esc.within_minutes}
