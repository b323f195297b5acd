"""``modelshield siem``: ship audit records to a SIEM as OCSF, validate OCSF files, look after the HTTP spool."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from modelshield.core.errors import InputError

EXPORT_BATCH = 500
siem_app = typer.Typer(
    help="SIEM export: audit records as OCSF to syslog, an HTTP collector or a file; validate; the spool.",
    no_args_is_help=True,
)
spool_app = typer.Typer(help="The HTTP collector's on-disk spool: status, flush.", no_args_is_help=True)
siem_app.add_typer(spool_app, name="spool")

CaOption = Annotated[str | None, typer.Option("--ca-file", help="CA bundle that signs the TLS/HTTPS receiver.")]
SpoolOption = Annotated[
    Path | None, typer.Option("--spool", help="HTTP spool file (default: $MODELSHIELD_HOME/siem-spool.db).")
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token-env", help="Environment variable holding the collector's bearer token (never logged)."),
]
WaitOption = Annotated[
    float, typer.Option("--wait", min=0, help="Seconds to wait for the HTTP collector before leaving the rest spooled.")
]


def _headers(token_env: str | None) -> dict[str, str]:
    if token_env is None:
        return {}
    token = os.environ.get(token_env)
    if not token:
        raise InputError(f"environment variable {token_env} (the collector token) is not set")
    return {"Authorization": f"Bearer {token}"}


def _read_state(path: Path) -> int:
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["last_seq"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not an export state file ({exc}); delete it or pass --since") from None


def _write_state(path: Path, last_seq: int) -> None:
    """Atomically: a crash leaves the old state or the new one, never half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"last_seq": last_seq}) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@siem_app.command("export")
def export(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="syslog://host:port (UDP), syslog+tcp://, syslog+tls://, http(s)://collector/path, or a file.",
        ),
    ],
    audit_db: Annotated[
        str | None,
        typer.Option(
            "--audit-db", envvar="MODELSHIELD_DB_URL", help="Audit database URL (default: SQLite in $MODELSHIELD_HOME)."
        ),
    ] = None,
    since: Annotated[int, typer.Option(min=0, help="Ship records with seq above this (resume point).")] = 0,
    ca_file: CaOption = None,
    spool: SpoolOption = None,
    token_env: TokenOption = None,
    provider: Annotated[str, typer.Option(help="ai_model.ai_provider for the models in the records.")] = "Internal",
    check: Annotated[bool, typer.Option("--check/--no-check", help="Validate every event against OCSF first.")] = True,
    wait: WaitOption = 60.0,
    state: Annotated[
        Path | None,
        typer.Option(help="File remembering the last seq shipped: resumes from it, updated after each batch."),
    ] = None,
) -> None:
    """Ship audit records (seq > --since) as OCSF API Activity events (ai_operation profile for model calls).

    With --state, a timer (cron, systemd) can run the same command again and again: each run ships what is new."""
    from modelshield.audit.ocsf import iter_ocsf
    from modelshield.cli.audit import existing_log
    from modelshield.monitor.siem import HttpCollectorSink, check_event, open_sink

    engine = existing_log(audit_db)
    sink = (
        open_sink(to, ca_file=ca_file, spool=spool, headers=_headers(token_env))
        if to.startswith("http")
        else open_sink(to, ca_file=ca_file)
    )
    if state is not None and state.exists():
        since = max(since, _read_state(state))
    n, last = 0, since
    records = iter_ocsf(engine, since, provider)
    try:
        while chunk := list(itertools.islice(records, EXPORT_BATCH)):
            if check:
                for event in chunk:
                    check_event(event)
            if isinstance(sink, HttpCollectorSink):
                sink.send_many(chunk)  # one spool commit per chunk
            else:
                for event in chunk:
                    sink.send(event)
            n += len(chunk)
            last = chunk[-1]["metadata"]["sequence"]
            if state is not None:
                sink.flush()  # on disk (file), spooled (HTTP) or with the kernel (syslog) before we say so
                _write_state(state, last)
        sink.flush()
        if isinstance(sink, HttpCollectorSink) and not sink.drain(wait):
            left = len(sink.spool)
            typer.echo(
                f"shipped {n} records (seq {since + 1}..{last}); {left} still spooled in {sink.spool.path} "
                f"({sink.last_error}); run `modelshield siem spool flush --to {to}` later",
                err=True,
            )
            raise typer.Exit(1)
    finally:
        if isinstance(sink, HttpCollectorSink):
            sink.close(timeout=0)  # drained above; what is left stays spooled
        else:
            sink.close()
    typer.echo(f"shipped {n} records (seq {since + 1}..{last}) to {to}; next --since {last}")


@siem_app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="OCSF events, one JSON object per line.", exists=True, dir_okay=False)],
    warnings: Annotated[bool, typer.Option("--warnings", help="Also list recommended attributes missing etc.")] = False,
) -> None:
    """Check each line against the vendored OCSF schema; exit 1 naming the line and attribute of each error."""
    from modelshield.monitor.siem import default_schema, validate_event

    schema = default_schema()
    n = bad = 0
    with file.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            n += 1
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                typer.echo(f"{file}:{lineno}: not JSON: {exc.msg} (column {exc.colno})")
                bad += 1
                continue
            problems = [p for p in validate_event(event, schema) if warnings or p.level == "error"]
            for p in problems:
                typer.echo(f"{file}:{lineno}: {p.level}: {p}")
            bad += any(p.level == "error" for p in problems)
    typer.echo(f"{n - bad} of {n} events valid OCSF (schema {schema.version}, vendored source)", err=True)
    if bad:
        raise typer.Exit(1)


@spool_app.command("status")
def spool_status(spool: SpoolOption = None) -> None:
    """Events waiting for the collector, dead letters (refused batches), and events dropped at the bound."""
    from modelshield.monitor.siem import Spool
    from modelshield.monitor.siem.sinks import default_spool

    path = spool or default_spool()
    if not path.is_file():
        raise InputError(f"no spool at {path}")
    s = Spool(path)
    try:
        st = s.status()
    finally:
        s.close()
    typer.echo(f"{path}: {st.pending} pending ({st.pending_bytes} bytes), {st.dead} dead letters, {st.dropped} dropped")


@spool_app.command("flush")
def spool_flush(
    to: Annotated[str, typer.Option("--to", help="The collector URL, http(s)://…")],
    spool: SpoolOption = None,
    ca_file: CaOption = None,
    token_env: TokenOption = None,
    wait: WaitOption = 60.0,
) -> None:
    """Deliver what the spool holds to the collector now, in order; exit 1 if some is still left after --wait."""
    from modelshield.monitor.siem import HttpCollectorSink
    from modelshield.monitor.siem.sinks import default_spool

    path = spool or default_spool()
    if not path.is_file():
        raise InputError(f"no spool at {path}")
    sink = HttpCollectorSink(to, path, ca_file=ca_file, headers=_headers(token_env))
    try:
        done = sink.drain(wait)
        delivered, left, error = sink.delivered, len(sink.spool), sink.last_error
    finally:
        sink.close(timeout=0)
    typer.echo(f"delivered {delivered}; {left} left in {path}" + (f" ({error})" if left else ""))
    if not done:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `modelshield siem`."""
    app.add_typer(siem_app, name="siem", help="SIEM export (OCSF over syslog, HTTP, files) and OCSF validation.")
