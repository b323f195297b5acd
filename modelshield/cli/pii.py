"""``modelshield pii``: find PII in text, CSV or Parquet files offline (checksummed recognisers, a name gazetteer) and
mask it with the same masker the gateway applies to its logs. A Parquet table is read as the CSV of its values."""

from __future__ import annotations

import csv
import enum
import io
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from modelshield.core.errors import FormatError, InputError, MissingFileError
from modelshield.privacy.pii import BUILTIN, Finding, Masker, find_pii

pii_app = typer.Typer(help="Find and mask personal data offline: cards, IBANs, national ids, e-mails, phones, names.")


class Engine(enum.StrEnum):
    builtin = "builtin"
    presidio = "presidio"


class Format(enum.StrEnum):
    text = "text"
    json = "json"


FileArgument = Annotated[
    str, typer.Argument(help="Text, CSV or Parquet file (.csv/.parquet: scanned per column), or - for stdin.")
]


def _is_table(source: str) -> bool:
    return source.lower().endswith((".csv", ".parquet"))


def _read(source: str) -> str:
    """The file's text; a Parquet table as CSV text, every value as written."""
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if not path.is_file():
        raise MissingFileError(f"no such file: {source}")
    if source.lower().endswith(".parquet"):
        import pandas as pd

        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise FormatError(f"cannot read {source} as Parquet: {' '.join(str(e).split())[:200]}") from None
        return str(frame.to_csv(index=False, lineterminator="\n"))
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{source} is not UTF-8 text (a table: .csv or .parquet)") from None


def _detector(engine: Engine) -> Any:
    if engine is Engine.presidio:
        from modelshield.privacy.pii.presidio import presidio_findings

        return lambda text, hint: presidio_findings(text)
    return lambda text, hint: find_pii(text, BUILTIN, hint)


def _scan_csv(text: str, detect: Any) -> dict[str, Any]:
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if not header:
        raise InputError("the CSV file has no header row")
    counts: dict[str, Counter[str]] = {c: Counter() for c in header}
    n = 0
    for row in rows:
        n += 1
        for name, cell in zip(header, row, strict=False):
            for f in detect(cell, name):
                counts[name][f.entity] += 1
    return {"rows": n, "columns": {c: dict(cnt) for c, cnt in counts.items() if cnt}}


def _scan_text(text: str, detect: Any) -> list[dict[str, Any]]:
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        f: Finding
        for f in detect(line, ""):
            out.append({"line": lineno, "column": f.start + 1, "entity": f.entity, "recognizer": f.recognizer})
    return out


@pii_app.command("scan")
def scan(
    file: FileArgument,
    format: Annotated[Format, typer.Option("--format", help="text or json.")] = Format.text,
    engine: Annotated[
        Engine, typer.Option("--engine", help="builtin, or presidio (its pattern recognisers; no spaCy model).")
    ] = Engine.builtin,
    csv_mode: Annotated[
        bool | None, typer.Option("--csv/--text", help="Force CSV or text (default: by suffix).")
    ] = None,
) -> None:
    """Report where PII is (never the values): per column for CSV, per line and column for text.
    Exit 1 when something was found, 0 when nothing was."""
    text = _read(file)
    detect = _detector(engine)
    as_csv = csv_mode if csv_mode is not None else _is_table(file)
    if as_csv:
        report: dict[str, Any] = _scan_csv(text, detect)
        found = bool(report["columns"])
    else:
        findings = _scan_text(text, detect)
        report = {"findings": findings, "by_entity": dict(Counter(f["entity"] for f in findings))}
        found = bool(findings)
    if format is Format.json:
        typer.echo(json.dumps(report, indent=2))
    elif as_csv:
        typer.echo(f"{report['rows']} rows; columns with PII: {len(report['columns'])}")
        for col, cnt in report["columns"].items():
            typer.echo(f"  {col}: " + ", ".join(f"{e} {n}" for e, n in sorted(cnt.items())))
    else:
        for f in report["findings"]:
            typer.echo(f"{file}:{f['line']}:{f['column']}: {f['entity']} ({f['recognizer']})")
        typer.echo(
            f"{len(report['findings'])} findings" + "".join(f", {e} {n}" for e, n in report["by_entity"].items())
        )
    raise typer.Exit(1 if found else 0)


@pii_app.command("mask")
def mask(
    file: FileArgument,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of stdout (.parquet: a Parquet table of text).")
    ] = None,
    log_rules: Annotated[
        bool, typer.Option("--log-rules", help="Only the gateway's log rules (no names, no context-bound ids).")
    ] = False,
) -> None:
    """Replace PII with placeholders ([EMAIL], [CARD], [NATIONAL_ID], [PERSON] ...); table cells are masked with their
    column name as context."""
    text = _read(file)
    masker = Masker() if log_rules else Masker(patterns=BUILTIN)
    if _is_table(file):
        rows = csv.reader(io.StringIO(text, newline=""))
        header = next(rows, None) or []
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([masker.mask_text(cell, name) for name, cell in zip(header, row, strict=False)])
        result = buf.getvalue()
    else:
        result = "".join(masker.mask_text(line) for line in text.splitlines(keepends=True))
    if out is None:
        typer.echo(result, nl=False)
        return
    if out.suffix.lower() == ".parquet":
        import pandas as pd

        masked = pd.read_csv(io.StringIO(result), dtype=str, keep_default_na=False)
        masked.to_parquet(out, index=False)
    else:
        out.write_text(result, encoding="utf-8")
    typer.echo(f"masked {file} -> {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add `modelshield pii ...`."""
    app.add_typer(pii_app, name="pii", help="Find and mask personal data offline (checksummed recognisers).")
