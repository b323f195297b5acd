"""``modelshield provenance``: pin third-party weights and datasets in a lock file; verify before fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from modelshield.integrity.provenance import KINDS, LOCK_NAME, VerifyReport, add_artifact, load_lock, verify

provenance_app = typer.Typer(
    help="Provenance lock files: name -> digest, source and licence of third-party models and datasets.",
    no_args_is_help=True,
)

LockOption = Annotated[
    Path,
    typer.Option(
        "--lock",
        envvar="MODELSHIELD_LOCK",
        help="Lock file; paths in it are relative to its folder.",
    ),
]
WorkersOption = Annotated[int | None, typer.Option(help="Files hashed at once (default: one per CPU).")]


@provenance_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Name to pin the artifact under, e.g. meta-llama/Llama-3-8B.")],
    path: Annotated[Path, typer.Argument(help="File or folder, inside the lock file's folder.")],
    kind: Annotated[str, typer.Option(help=f"One of: {', '.join(KINDS)}.")],
    source: Annotated[str, typer.Option(help="Where it came from: URL, or a description.")],
    licence: Annotated[str, typer.Option(help="SPDX licence id or expression, e.g. Apache-2.0.")],
    lock: LockOption = Path(LOCK_NAME),
    replace: Annotated[bool, typer.Option(help="Re-pin an artifact the lock already has.")] = False,
    workers: WorkersOption = None,
) -> None:
    """Hash a file or folder and record its digest, source and licence in the lock file."""
    entry = add_artifact(lock, name, path, kind=kind, source=source, licence=licence, replace=replace, workers=workers)
    n = len(entry.files) if entry.files is not None else 0
    count = f", {n} file{'s' * (n != 1)}" if entry.files is not None else ""
    typer.echo(f"pinned {name} ({entry.kind}, {entry.path}, {entry.size} bytes{count}) {entry.digest} in {lock}")


def _print_table(report: VerifyReport) -> None:
    """One row per artifact, then one indented line per file that differs."""
    header = ("NAME", "KIND", "STATUS", "PATH")
    rows = [(r.name, r.kind, r.status, r.path) for r in report.results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    typer.echo(line(header))
    for result, row in zip(report.results, rows, strict=True):
        typer.echo(line(row))
        for how, files in (("changed", result.changed), ("missing", result.missing), ("extra", result.extra)):
            for rel in files:
                typer.echo(f"    {how:8} {rel}")
        for problem in result.problems:
            typer.echo(f"    {problem}")
    matching = sum(r.status == "ok" for r in report.results)
    typer.echo(f"{matching} of {len(report.results)} artifacts match {report.lock}")


@provenance_app.command("verify")
def verify_command(
    names: Annotated[list[str] | None, typer.Argument(help="Artifacts to check (default: all in the lock).")] = None,
    lock: LockOption = Path(LOCK_NAME),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    workers: WorkersOption = None,
) -> None:
    """Re-hash locked artifacts; exit 0 if all match, 1 if any differs or is missing (each differing file named)."""
    report = verify(lock, names, workers)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_table(report)
    if not report.ok:
        raise typer.Exit(1)


@provenance_app.command("list")
def list_command(lock: LockOption = Path(LOCK_NAME)) -> None:
    """Show what the lock file pins: name, kind, path, size, licence, source and when it was added."""
    for name, a in load_lock(lock).items():
        typer.echo(f"{name}  {a.kind}  {a.path}  {a.size} bytes  {a.licence}  {a.source}  added {a.added}  {a.digest}")


def register(app: typer.Typer) -> None:
    """Add `modelshield provenance ...`."""
    app.add_typer(
        provenance_app, name="provenance", help="Pin third-party weights and datasets by digest; verify before use."
    )
