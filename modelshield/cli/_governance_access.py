"""``modelshield govern consent | access | dpa``: consent scopes per data set and purpose, data-access requests with
an approval workflow and the casbin check code runs before reading data, and DPAs mapped to the models that use
the vendor's data. Attached to the ``govern`` group by ``attach``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from modelshield.audit.log import AuditLog
    from modelshield.govern.access import Status as AccessStatus

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="MODELSHIELD_DB_URL",
        help="Database of the governance records, their audit log and the lineage (default: SQLite in $MODELSHIELD_HOME).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who acts (default: the login name).")]
PurposeOption = Annotated[
    list[str],
    typer.Option("--purpose", "-p", help="A purpose: training, evaluation, inference, analytics, ... (repeat)."),
]
DatasetOption = Annotated[
    list[str],
    typer.Option("--dataset", "-d", help="A data set: its lineage name, a name pattern or a sha256: digest (repeat)."),
]
ExpiresOption = Annotated[str, typer.Option("--expires", help="ISO 8601 time (2027-01-01) or a duration (90d, 12h).")]


class Status(str, Enum):
    pending = "pending"
    approved = "approved"
    denied = "denied"
    revoked = "revoked"
    expired = "expired"


@contextmanager
def _records(db: str | None, *, audited: bool) -> Iterator[tuple[Engine, AuditLog | None]]:
    """The store's engine and, for commands that change records, its audit log (closed, with the engine, after)."""
    from modelshield.core.storage import open_engine

    engine = open_engine(db)
    audit = None
    if audited:
        from modelshield.audit.log import AuditLog

        audit = AuditLog(engine)
    try:
        yield engine, audit
    finally:
        if audit is not None:
            audit.close()
        else:
            engine.dispose()


def _expiry(text: str | None, now: datetime, what: str = "--expires") -> datetime | None:
    from modelshield.govern.scopes import parse_expiry

    return None if text is None else parse_expiry(text, now, what)


def _echo_json(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2))


# -- consent ----------------------------------------------------------------------------------------------------

consent_app = typer.Typer(help="Consent scopes: which purposes each data set may be used for, on which legal basis.")


def _scope_line(doc: dict[str, Any]) -> str:
    until = f"until {doc['expires_at']}" if doc["expires_at"] else "no expiry"
    state = f"  [{doc['state']}]" if doc.get("state") not in (None, "active") else ""
    return f"#{doc['id']}  {doc['dataset']}  {doc['purpose']}  ({doc['legal_basis']})  {until}{state}"


@consent_app.command("grant")
def consent_grant(
    dataset: Annotated[str, typer.Argument(help="The data set: lineage name, name pattern or sha256: digest.")],
    purpose: PurposeOption,
    basis: Annotated[
        str,
        typer.Option(
            "--basis",
            help="GDPR Art. 6(1) legal basis: consent, contract, legal_obligation, vital_interests, public_task, "
            "legitimate_interests.",
        ),
    ],
    expires: Annotated[str | None, typer.Option("--expires", help="ISO 8601 time or a duration (365d).")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Where the consent is recorded (form, version).")] = None,
    by: ByOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record that DATASET may be used for each --purpose on --basis (until --expires)."""
    from modelshield.govern.consent import ConsentStore
    from modelshield.govern.scopes import now_utc

    now = now_utc()
    with _records(db, audited=True) as (engine, audit), ConsentStore(engine, audit) as store:
        scopes = store.grant(dataset, purpose, basis, expires=_expiry(expires, now), by=by, note=note, now=now)
    if as_json:
        _echo_json([s.to_dict() for s in scopes])
        return
    for s in scopes:
        typer.echo("granted " + _scope_line(s.to_dict()))


@consent_app.command("withdraw")
def consent_withdraw(
    scope_id: Annotated[int, typer.Argument(help="The scope's id (from consent list).")],
    by: ByOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """End a consent scope now: no access may rely on it from this moment."""
    from modelshield.govern.consent import ConsentStore

    with _records(db, audited=True) as (engine, audit), ConsentStore(engine, audit) as store:
        scope = store.withdraw(scope_id, by=by)
    if as_json:
        _echo_json(scope.to_dict())
        return
    typer.echo(f"withdrawn #{scope.id}  {scope.dataset}  {scope.purpose}  by {scope.withdrawn_by}")


@consent_app.command("list")
def consent_list(
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Only this data-set reference.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only scopes in force now.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The consent scopes recorded, with their state now (active, expired, withdrawn)."""
    from modelshield.govern.consent import ConsentStore
    from modelshield.govern.scopes import now_utc

    now = now_utc()
    with _records(db, audited=False) as (engine, _), ConsentStore(engine) as store:
        scopes = store.scopes(dataset=dataset, active_at=now if active else None)
    docs = [{**s.to_dict(), "state": s.state(now)} for s in scopes]
    if as_json:
        _echo_json(docs)
        return
    if not docs:
        typer.echo("no consent scopes recorded")
    for doc in docs:
        typer.echo(_scope_line(doc))


# -- access requests --------------------------------------------------------------------------------------------

access_app = typer.Typer(help="Data-access requests: request, approve (by someone else), deny, revoke, check.")


def _request_line(doc: dict[str, Any]) -> str:
    cols = ",".join(doc["columns"]) if doc["columns"] is not None else "all columns"
    who = f" by {doc['decided_by']}" if doc["decided_by"] and doc["status"] in ("approved", "denied") else ""
    if doc["status"] == "revoked":
        who = f" by {doc['revoked_by']}"
    return (
        f"#{doc['id']}  {doc['status']}{who}  {doc['requester']}  {' '.join(doc['datasets'])}  "
        f"for {','.join(doc['purposes'])}  ({cols})  until {doc['expires_at']}"
    )


def _show_request(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _echo_json(doc)
    else:
        typer.echo(_request_line(doc))


@access_app.command("request")
def access_request(
    requester: Annotated[str, typer.Option("--requester", help="Who will use the data.")],
    dataset: DatasetOption,
    purpose: PurposeOption,
    expires: ExpiresOption,
    justification: Annotated[str, typer.Option("--justification", help="Why the data is needed.")],
    column: Annotated[
        list[str] | None,
        typer.Option("--column", "-c", help="A column the access is limited to (repeat; default all)."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """File an access request (pending until someone other than the requester approves it)."""
    from modelshield.govern.access import AccessStore
    from modelshield.govern.scopes import now_utc

    now = now_utc()
    when = _expiry(expires, now)
    assert when is not None
    with _records(db, audited=True) as (engine, audit), AccessStore(engine, audit) as store:
        made = store.request(
            requester, dataset, purpose, expires=when, justification=justification, columns=column, now=now
        )
    _show_request(made.to_dict(now), as_json)


def _transition(verb: str, request_id: int, by: str | None, note: str | None, db: str | None, as_json: bool) -> None:
    from modelshield.govern.access import AccessStore

    with _records(db, audited=True) as (engine, audit), AccessStore(engine, audit) as store:
        changed = getattr(store, verb)(request_id, by=by, note=note)
    _show_request(changed.to_dict(), as_json)


RequestId = Annotated[int, typer.Argument(help="The request's id (from access list).")]
NoteOption = Annotated[str | None, typer.Option("--note", help="The reason, kept with the record.")]


def _transition_command(verb: str, summary: str) -> None:
    """Register ``access VERB REQUEST_ID``: the three decisions on a request take the same options."""

    def command(
        request_id: RequestId,
        by: ByOption = None,
        note: NoteOption = None,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        _transition(verb, request_id, by, note, db, as_json)

    command.__doc__ = summary
    command.__name__ = f"access_{verb}"
    access_app.command(verb)(command)


for _verb, _summary in (
    ("approve", "Approve a pending, unexpired request (refused to its own requester: separation of duties)."),
    ("deny", "Deny a pending request."),
    ("revoke", "End a pending or approved request before it expires."),
):
    _transition_command(_verb, _summary)


@access_app.command("list")
def access_list(
    requester: Annotated[str | None, typer.Option("--requester", help="Only this requester's.")] = None,
    status: Annotated[Status | None, typer.Option("--status", help="Only requests in this state now.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The access requests and their state now."""
    from modelshield.govern.access import AccessStore
    from modelshield.govern.scopes import now_utc

    now = now_utc()
    with _records(db, audited=False) as (engine, _), AccessStore(engine) as store:
        found = store.requests(requester=requester, status=cast("AccessStatus | None", status and status.value), at=now)
    docs = [r.to_dict(now) for r in found]
    if as_json:
        _echo_json(docs)
        return
    if not docs:
        typer.echo("no access requests")
    for doc in docs:
        typer.echo(_request_line(doc))


@access_app.command("check")
def access_check(
    requester: Annotated[str, typer.Argument(help="Who reads the data.")],
    dataset: Annotated[str, typer.Argument(help="The data file (or its lineage name, or a sha256: digest).")],
    purpose: Annotated[str, typer.Option("--purpose", "-p", help="What the data is read for.")],
    column: Annotated[
        list[str] | None, typer.Option("--column", "-c", help="A column read (repeat; default all).")
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="Decide as of this ISO 8601 time (default: now).")] = None,
    alerts: Annotated[
        Path | None, typer.Option("--alerts", help="An alert rules file: deliver the alert a denial raises.")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decide one access with the casbin policy built from approved requests and consent scopes; record it in the
    audit log. Exit 0 allowed, 1 denied (an alert through --alerts' routes), 2 bad input."""
    from modelshield.govern.access import check_access
    from modelshield.govern.scopes import now_utc, parse_expiry

    now = parse_expiry(at, now_utc(), "--at") if at is not None else None
    with _records(db, audited=True) as (engine, audit):
        assert audit is not None
        if alerts is None:
            result = check_access(engine, requester, dataset, purpose, columns=column, now=now, audit=audit)
        else:
            from modelshield.monitor.alerts.channels import build_channels, close_channels
            from modelshield.monitor.alerts.dispatch import AlertDispatcher
            from modelshield.monitor.alerts.engine import AlertEngine
            from modelshield.monitor.alerts.rules import load_rules

            rules = load_rules(alerts)
            channels = build_channels(rules.routes)
            try:
                dispatcher = AlertDispatcher(AlertEngine(rules), channels, audit)
                result = check_access(
                    engine, requester, dataset, purpose, columns=column, now=now, audit=audit, alerts=dispatcher
                )
            finally:
                close_channels(channels)
    d = result.decision
    if as_json:
        doc = {**d.to_dict(), "audit_seq": result.audit_seq}
        doc["alerts"] = [
            {"route": x.route, "action": x.action, "ok": x.ok, "error": x.error} for x in result.deliveries
        ]
        _echo_json(doc)
    else:
        typer.echo(f"{'ALLOW' if d.allowed else 'DENY'}  {d.requester}  {d.target.name}  for {d.purpose}: {d.reason}")
        typer.echo(f"policy {d.policy_version}, audit record {result.audit_seq}")
        for x in result.deliveries:
            typer.echo(f"alert {x.action} → {x.route}: {'delivered' if x.ok else 'NOT delivered: ' + str(x.error)}")
    if not d.allowed:
        sys.exit(1)


# -- DPAs -------------------------------------------------------------------------------------------------------

dpa_app = typer.Typer(help="Data processing agreements for third-party data, mapped to the models that use it.")


def _dpa_line(doc: dict[str, Any]) -> str:
    return (
        f"#{doc['id']}  {doc['vendor']}  {' '.join(doc['datasets'])}  for {','.join(doc['purposes'])}  "
        f"{doc['signed_at']} → {doc['expires_at'] or 'no expiry'}"
    )


@dpa_app.command("add")
def dpa_add(
    vendor: Annotated[str, typer.Argument(help="The third party supplying the data.")],
    dataset: DatasetOption,
    purpose: Annotated[list[str], typer.Option("--purpose", "-p", help="A purpose the DPA permits (repeat).")],
    terms: Annotated[str, typer.Option("--terms", help="The processing terms, or the contract's reference.")],
    signed: Annotated[str | None, typer.Option("--signed", help="When it took effect (default: now).")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="When it ends: ISO 8601 or a duration.")] = None,
    by: ByOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a DPA: VENDOR supplies --dataset for --purpose under --terms, from --signed to --expires."""
    from modelshield.govern.dpa import DpaStore
    from modelshield.govern.scopes import now_utc

    now = now_utc()
    start = _expiry(signed, now, "--signed")
    with _records(db, audited=True) as (engine, audit), DpaStore(engine, audit) as store:
        made = store.add(
            vendor, dataset, purpose, terms=terms, signed=start, expires=_expiry(expires, now), by=by, now=now
        )
    if as_json:
        _echo_json(made.to_dict())
    else:
        typer.echo("recorded " + _dpa_line(made.to_dict()))


@dpa_app.command("list")
def dpa_list(
    vendor: Annotated[str | None, typer.Option("--vendor", help="Only this vendor's.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The DPAs recorded."""
    from modelshield.govern.dpa import DpaStore

    with _records(db, audited=False) as (engine, _), DpaStore(engine) as store:
        docs = [d.to_dict() for d in store.dpas(vendor=vendor)]
    if as_json:
        _echo_json(docs)
        return
    if not docs:
        typer.echo("no DPAs recorded")
    for doc in docs:
        typer.echo(_dpa_line(doc))


@dpa_app.command("check")
def dpa_check(
    dpa_id: Annotated[int | None, typer.Argument(help="One DPA (default: every one).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Which model versions used each vendor's data (through lineage), how, and which break the DPA (a purpose
    it does not permit, a use after it expired). Exit 0 none flagged, 1 some flagged, 2 bad input."""
    from modelshield.govern.dpa import DpaStore, dpa_models
    from modelshield.govern.lineage import LineageStore

    with _records(db, audited=False) as (engine, _), DpaStore(engine) as store:
        chosen = [store.get(dpa_id)] if dpa_id is not None else store.dpas()
        if not chosen:
            raise InputError("no DPAs recorded", hint="modelshield govern dpa add VENDOR --dataset ... --purpose ...")
        lineage = LineageStore(engine)
        report = [(d, dpa_models(d, lineage)) for d in chosen]
    flagged = sum(1 for _, models in report for m in models if m.flags)
    if as_json:
        _echo_json([{**d.to_dict(), "models": [m.to_dict() for m in models]} for d, models in report])
    else:
        for d, models in report:
            typer.echo(_dpa_line(d.to_dict()))
            if not models:
                typer.echo("  no registered model version uses this data (per the lineage store)")
            for m in models:
                purposes = sorted({u.purpose for u in m.uses if u.purpose})
                typer.echo(f"  {m.ref}  {'FLAGGED' if m.flags else 'ok'}  uses: {', '.join(purposes) or 'none'}")
                for flag in m.flags:
                    typer.echo(f"    - {flag}")
        typer.echo(f"{flagged} model version(s) flagged")
    if flagged:
        sys.exit(1)


def attach(govern_app: typer.Typer) -> None:
    """Add ``consent``, ``access`` and ``dpa`` to the ``govern`` group."""
    govern_app.add_typer(consent_app, name="consent")
    govern_app.add_typer(access_app, name="access")
    govern_app.add_typer(dpa_app, name="dpa")
