"""``modelshield monitor``: reference sketches and drift checks for scripts and CI, and alerts.

``monitor drift`` exits 0 when no drift is found, 1 when it is, and 2 on bad input (one line on stderr), so a
pipeline can gate on it; ``--format json`` prints ``{"drift": bool, "features": [{"feature", "test",
"statistic", "p_value", "drift", ...}], ...}``.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.audit import AuditLog
    from modelshield.monitor.alerts.dispatch import Delivery
    from modelshield.monitor.drift import DriftReport
    from modelshield.monitor.sketch import ReferenceSketch

monitor_app = typer.Typer(help="Drift of live data against a stored reference sketch.", no_args_is_help=True)
alerts_app = typer.Typer(
    help="Alert rules: check a rules file, run them on the audit log, send a test alert, run the demo.",
    no_args_is_help=True,
)
monitor_app.add_typer(alerts_app, name="alerts")


class DriftFormat(str, Enum):
    table = "table"
    json = "json"


class DriftTest(str, Enum):
    auto = "auto"
    ks = "ks"
    chi2 = "chi2"
    psi = "psi"
    js = "js"
    wasserstein = "wasserstein"


CategoricalOption = Annotated[
    str | None, typer.Option("--categorical", help="comma-separated columns of codes to treat as categories")
]


def _columns(text: str | None) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()] if text else []


def _sketch_of(path: Path, categorical: list[str], bins: int, seed: int, model: Path | None = None) -> ReferenceSketch:
    """A saved sketch as it is, or a fresh one computed from a data file."""
    from modelshield.core.errors import MissingFileError
    from modelshield.monitor.sketch import build_sketch, file_info, is_sketch_file, load_sketch
    from modelshield.monitor.tables import chunk_source

    if not path.is_file():
        raise MissingFileError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    if is_sketch_file(path):
        if categorical:
            raise InputError("--categorical applies to data files; a saved sketch already records each column's type")
        return load_sketch(path)
    if model is not None and not model.is_file():
        raise MissingFileError(f"{model} does not exist")
    model_info = file_info(model) if model else None
    return build_sketch(
        chunk_source(path, categorical=categorical),
        bins=bins,
        seed=seed,
        source_info=file_info(path),
        model_info=model_info,
    )


@monitor_app.command("sketch")
def sketch_command(
    reference: Annotated[Path, typer.Option("--reference", help="reference data: CSV, Parquet or .npz")],
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the sketch (JSON)")],
    categorical: CategoricalOption = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="the model this reference belongs to (its digest is recorded)")
    ] = None,
    bins: Annotated[int, typer.Option("--bins", help="quantile bins per numeric feature")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="seed of the uniform row sample")] = 0,
) -> None:
    """Summarise reference data once, so drift checks never re-read it."""
    from modelshield.monitor.sketch import is_sketch_file, save_sketch

    if reference.is_file() and is_sketch_file(reference):
        raise InputError(f"{reference} is already a sketch; --reference takes the data to summarise")
    sketch = _sketch_of(reference, _columns(categorical), bins, seed, model)
    digest = save_sketch(sketch, out)
    typer.echo(f"sketch of {sketch.rows} rows × {len(sketch.features)} features written to {out} ({digest})")


@monitor_app.command("drift")
def drift_command(
    reference: Annotated[
        Path, typer.Option("--reference", help="a saved sketch, or reference data (CSV/Parquet/.npz)")
    ],
    current: Annotated[Path, typer.Option("--current", help="current data: CSV, Parquet or .npz")],
    format: Annotated[DriftFormat, typer.Option("--format", "-f", help="table or json")] = DriftFormat.table,
    test: Annotated[
        DriftTest, typer.Option("--test", help="deciding test: auto (KS numeric, chi² categorical), psi, js, ...")
    ] = DriftTest.auto,
    alpha: Annotated[float, typer.Option("--alpha", help="false-alarm level of the whole check")] = 0.05,
    no_correction: Annotated[
        bool, typer.Option("--no-correction", help="use alpha per test instead of dividing it (Bonferroni)")
    ] = False,
    no_mmd: Annotated[bool, typer.Option("--no-mmd", help="skip the multivariate MMD permutation test")] = False,
    categorical: CategoricalOption = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="also write the JSON report here")] = None,
    audit_db: Annotated[
        str | None,
        typer.Option("--audit-db", help="also record the result in this audit log, for `monitor alerts run`"),
    ] = None,
) -> None:
    """Test current data for drift from the reference; exit 1 when any feature (or the joint MMD test) drifted."""
    from modelshield.monitor.drift import DriftConfig, detect_drift
    from modelshield.monitor.tables import chunk_source

    config = DriftConfig(
        test=test.value, alpha=alpha, correction="none" if no_correction else "bonferroni", mmd=not no_mmd
    )
    sketch = _sketch_of(reference, _columns(categorical), 1000, 0)
    forced = [f.name for f in sketch.features if f.type == "categorical"]
    report = detect_drift(sketch, chunk_source(current, categorical=forced), config)
    data = report.to_dict()
    if out is not None:
        from modelshield.core.files import atomic_output

        with atomic_output(out, mode=0o644) as f:
            f.write(json.dumps(data, indent=2, allow_nan=False).encode("utf-8"))
    if audit_db is not None:
        from modelshield.audit import AuditLog
        from modelshield.monitor.alerts.signals import drift_signal, signal_event

        with AuditLog.open(audit_db) as audit:
            audit.append(signal_event(drift_signal(report)))
    if format is DriftFormat.json:
        typer.echo(json.dumps(data, indent=2, allow_nan=False))
    else:
        _print_table(report)
    raise typer.Exit(1 if report.drift else 0)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _print_table(report: DriftReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, markup=False)  # column names come from the data
    table = Table()
    for col in ("feature", "type", "test", "statistic", "p-value", "drift"):
        table.add_column(col, justify="left" if col in ("feature", "type", "test") else "right")
    rows = [*report.features, *([report.multivariate] if report.multivariate else [])]
    for f in rows:
        table.add_row(f.feature, f.type, f.test, _fmt(f.statistic), _fmt(f.p_value), "DRIFT" if f.drift else "no")
    console.print(table)
    level = f"α {report.alpha:g}" + (
        f" (per test {report.alpha_per_test:.2g}, Bonferroni)" if report.correction == "bonferroni" else " per test"
    )
    drifted = report.drifted + (["joint (MMD)"] if report.multivariate and report.multivariate.drift else [])
    verdict = f"DRIFT in {len(drifted)}: {', '.join(drifted[:10])}" if drifted else "no drift"
    console.print(f"{report.rows_current} current rows vs {report.rows_reference} reference rows, {level}: {verdict}")


RulesArgument = Annotated[Path, typer.Argument(help="the alert rules file (YAML)")]
RulesOption = Annotated[Path, typer.Option("--rules", help="the alert rules file (YAML)")]
AuditDbOption = Annotated[
    str | None,
    typer.Option(
        "--audit-db", envvar="MODELSHIELD_DB_URL", help="audit log database URL (default: SQLite in $MODELSHIELD_HOME)"
    ),
]


def _existing_audit_log(url: str | None) -> AuditLog:
    """The audit log at ``url``, which must exist already: a mistyped SQLite path would otherwise become a new,
    empty log, and every absence rule would fire on it."""
    import sqlalchemy as sa

    from modelshield.audit import AuditLog
    from modelshield.core.storage import database_url

    chosen = database_url(url)
    parsed = sa.make_url(chosen) if chosen.startswith("sqlite") else None
    if parsed is not None and parsed.database and not Path(parsed.database).expanduser().is_file():
        raise InputError(f"no audit log: {parsed.database} does not exist")
    return AuditLog.open(chosen)


@alerts_app.command("check")
def alerts_check(rules: RulesArgument) -> None:
    """Validate a rules file: exit 0 if it is sound, 2 with the line and rule of the first problem."""
    from modelshield.monitor.alerts.rules import load_rules

    parsed = load_rules(rules)
    kinds = ", ".join(f"{sum(r.kind == k for r in parsed.rules)} {k}" for k in ("threshold", "rate", "absence"))
    typer.echo(
        f"{rules}: {len(parsed.rules)} rules ({kinds}), {len(parsed.routes)} routes, "
        f"escalation for {', '.join(parsed.escalation)}: ok"
    )


def _delivery_lines(deliveries: list[Delivery]) -> None:
    for d in deliveries:
        status = f"ok in {d.seconds * 1000:.0f} ms" if d.ok else f"FAILED: {d.error}"
        typer.echo(f"{d.action:<12} {d.alert_id} {d.rule:<24} → {d.route}: {status}")


@alerts_app.command("run")
def alerts_run(
    rules: RulesOption,
    audit_db: AuditDbOption = None,
    once: Annotated[bool, typer.Option("--once", help="evaluate what is new once and exit (for cron)")] = False,
    interval: Annotated[float, typer.Option("--interval", help="seconds between polls of the audit log")] = 10.0,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="where the engine keeps its cursor and alerts (default: alerts.state.json in $MODELSHIELD_HOME)",
        ),
    ] = None,
) -> None:
    """Evaluate the rules on the audit log's new records (gateway requests and security events, monitor signals,
    acknowledgements) and deliver the alerts they raise; runs until interrupted unless --once."""
    import time

    from modelshield.core.storage import data_home
    from modelshield.monitor.alerts.channels import build_channels, close_channels
    from modelshield.monitor.alerts.dispatch import AlertDispatcher, AuditFollower
    from modelshield.monitor.alerts.engine import AlertEngine
    from modelshield.monitor.alerts.rules import load_rules

    if interval <= 0:
        raise InputError(f"--interval must be positive, not {interval}")
    parsed = load_rules(rules)
    channels = build_channels(parsed.routes)
    try:
        with _existing_audit_log(audit_db) as audit:
            dispatcher = AlertDispatcher(AlertEngine(parsed), channels, audit)
            follower = AuditFollower(dispatcher, audit.engine, state or data_home() / "alerts.state.json")
            while True:
                deliveries = follower.poll()
                _delivery_lines(deliveries)
                if once:
                    firing = dispatcher.engine.firing()
                    typer.echo(f"read through record {follower.cursor}; {len(firing)} alert(s) firing")
                    raise typer.Exit(1 if any(not d.ok for d in deliveries) else 0)
                time.sleep(interval)
    finally:
        close_channels(channels)


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="the alert's id (in its alert.fired record and every message)")],
    by: Annotated[str, typer.Option("--by", help="who is handling it")],
    audit_db: AuditDbOption = None,
) -> None:
    """Acknowledge an alert: its escalation stops once `alerts run` reads the record."""
    from modelshield.monitor.alerts.dispatch import acknowledge_in_log

    if not by.strip():
        raise InputError("--by must name someone")
    with _existing_audit_log(audit_db) as audit:
        alert = acknowledge_in_log(audit, alert_id, by)
    typer.echo(f"alert {alert.id} ({alert.rule}: {alert.summary}) acknowledged by {by}")


@alerts_app.command("test")
def alerts_test(
    rules: RulesOption,
    route: Annotated[str, typer.Option("--route", help="the route to send the test alert to")],
) -> None:
    """Send a test alert to one route and say whether it arrived (exit 1 if not)."""
    from modelshield.monitor.alerts.channels import DeliveryError, build_channels, close_channels
    from modelshield.monitor.alerts.dispatch import send_test
    from modelshield.monitor.alerts.rules import load_rules

    parsed = load_rules(rules)
    channels = build_channels({route: parsed.routes[route]} if route in parsed.routes else parsed.routes)
    try:
        delivery = send_test(channels, route)
    except DeliveryError as e:
        typer.echo(f"test alert to {route}: FAILED: {e}", err=True)
        raise typer.Exit(1) from None
    finally:
        close_channels(channels)
    typer.echo(f"test alert to {route}: delivered in {delivery.seconds * 1000:.0f} ms")


@alerts_app.command("demo")
def alerts_demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for alerts.json, the audit log and its key")],
    rate: Annotated[
        float, typer.Option("--rate", help="share of traffic the campaign sends to the target class")
    ] = 0.2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Simulate a poisoning campaign against a digits model's outputs, with a webhook, an SMTP server and a syslog
    collector on 127.0.0.1: the alert reaches all three (email by escalation) and the audit log verifies."""
    from modelshield.core.files import atomic_output
    from modelshield.monitor.alerts.campaign import run_demo

    if not 0 < rate <= 1:
        raise InputError(f"--rate must be in (0, 1], not {rate}")
    result = run_demo(out, rate=rate, seed=seed)
    with atomic_output(out / "alerts.json", mode=0o644) as f:
        f.write(json.dumps(result, indent=2).encode())
    got = result["received"]
    typer.echo(
        f"campaign of {rate:.0%} poisoned traffic from output {result['campaign']['clean_outputs']:,}: "
        f"first alarm after {result['first_alarm_after']} outputs, alert after {result['first_alert_after']}"
    )
    for channel in ("webhook", "syslog", "email"):
        actions = [_received_action(channel, item) for item in got[channel]]
        typer.echo(f"  {channel:<8} received {len(actions)}: {', '.join(actions) or 'nothing'}")
    audit = result["audit"]
    typer.echo(
        f"audit log: {audit['records']} records, chain {'verifies' if audit['ok'] else 'BROKEN'}; "
        f"webhook signatures {'valid' if result['webhook_signatures_valid'] else 'INVALID'}"
    )
    typer.echo(f"written to {out / 'alerts.json'}")
    reached = all(got[c] for c in ("webhook", "syslog", "email"))
    raise typer.Exit(0 if reached and audit["ok"] and result["webhook_signatures_valid"] else 1)


def _received_action(channel: str, item: dict[str, Any]) -> str:
    if channel == "webhook":
        return str(json.loads(item["body"]).get("action"))
    if channel == "syslog":
        finding = item.get("event") or {}  # an OCSF Detection Finding: the alert record is its evidence
        return str(finding.get("evidences", [{}])[0].get("data", {}).get("action", item.get("msgid")))
    return str(item["subject"]).split("]", 1)[-1].split(":", 1)[0].strip()


def register(app: typer.Typer) -> None:
    """Add `modelshield monitor`."""
    app.add_typer(monitor_app, name="monitor", help="Drift checks against a stored reference sketch, and alerts.")
