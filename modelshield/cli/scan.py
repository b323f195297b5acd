"""``modelshield scan``: static model-file scanning as a CI gate (0 safe, 1 unsafe/unknown/unparsed, 2 error).

A gate runs once per file or folder, so start-up is most of its time: this module imports only the
scanner and the renderer table, and each renderer and ``--out`` import what they need when used."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from modelshield.integrity.render import RENDERERS
from modelshield.integrity.scanner import scan_paths


class ScanFormat(str, Enum):
    table = "table"
    json = "json"
    sarif = "sarif"


def scan_command(
    paths: Annotated[list[Path], typer.Argument(help="model files and directories to scan")],
    format: Annotated[ScanFormat, typer.Option("--format", "-f", help="table, json or sarif")] = ScanFormat.table,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the report here instead of stdout")] = None,
    allow_unknown: Annotated[
        bool, typer.Option("--allow-unknown", help="let unknown globals and formats pass (unsafe still fails)")
    ] = False,
) -> None:
    """Scan model files by content, without loading them; fail on anything unsafe, unknown or unparsed."""
    report = scan_paths(paths)
    text = RENDERERS[format.value](report, allow_unknown)
    if out is None:
        typer.echo(text, nl=False)
    else:
        from modelshield.core.files import atomic_output

        with atomic_output(out, mode=0o644) as f:  # a failed write never leaves half a report
            f.write(text.encode("utf-8"))
    raise typer.Exit(0 if report.passed(allow_unknown) else 1)


def register(app: typer.Typer) -> None:
    """Add `modelshield scan`."""
    app.command("scan")(scan_command)
