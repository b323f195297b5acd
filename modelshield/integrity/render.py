"""Scan reports as a table for people, JSON for scripts, SARIF for code-scanning hubs.

Each renderer imports what only it needs (rich for the table), so `modelshield scan` starts without the
others. SARIF is the shared writer, ``modelshield.core.sarif``."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelshield.integrity.results import ScanReport


def to_dict(report: ScanReport, allow_unknown: bool = False) -> dict[str, Any]:
    """The JSON shape: one entry per file, its verdict and findings."""
    return {
        "passed": report.passed(allow_unknown),
        "files": [
            {
                "path": f.path,
                "format": f.format,
                "verdict": f.verdict.value,
                "passed": f.passed(allow_unknown),
                "findings": [x.model_dump(mode="json") for x in f.findings],
            }
            for f in report.files
        ],
    }


def render_json(report: ScanReport, allow_unknown: bool = False) -> str:
    return json.dumps(to_dict(report, allow_unknown), indent=2) + "\n"


def render_sarif(report: ScanReport, allow_unknown: bool = False) -> str:
    """One SARIF run, each finding located at its scanned file."""
    from modelshield.core.sarif import artifact_uri, render_sarif

    return render_sarif([(finding, artifact_uri(f.path)) for f in report.files for finding in f.findings])


def render_table(report: ScanReport, allow_unknown: bool = False) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table("file", "format", "verdict", "why")
    for f in report.files:
        why = "\n".join(sorted({x.description.removeprefix(f"{f.path}: ") for x in f.findings})) or "-"
        table.add_row(f.path, f.format, f.verdict.value + ("" if f.passed(allow_unknown) else " ✗"), why)
    out = io.StringIO()
    # markup off: file names and findings come from the files scanned, and "[...]" in them must print as written
    Console(file=out, width=160, highlight=False, markup=False).print(table)
    return out.getvalue()


RENDERERS = {"table": render_table, "json": render_json, "sarif": render_sarif}
