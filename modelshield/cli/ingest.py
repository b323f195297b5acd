"""``modelshield ingest``: admit a table into training only after provenance, schema, drift and poisoning checks.

Exit codes: 0 ingested (suspicious records quarantined, the rest accepted); 1 refused — the source failed its
signature or lock check (nothing written), or a gate set by ``--fail-on-drift`` / ``--max-quarantined`` tripped
(outputs written, so the quarantine can be reviewed); 2 bad input (nothing written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelshield.core.errors import IntegrityError


def ingest_command(
    data: Annotated[Path, typer.Argument(help="Table to ingest: CSV with a header row, or Parquet.")],
    reference: Annotated[
        Path, typer.Option("--reference", help="Trusted reference set (same columns): what clean data looks like.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for accepted set, quarantine, lineage and reports.")],
    schema: Annotated[
        Path | None,
        typer.Option(
            "--schema", help="Schema JSON (defenses.poisoning.schema format); default: inferred from --reference."
        ),
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="Label column (enables the label detectors).")] = None,
    detectors: Annotated[
        str | None,
        typer.Option(
            "--detectors",
            help="Comma-separated: mad, isolation-forest, lof, trimmed-loss (default: mad,isolation-forest, "
            "plus trimmed-loss with --label); 'none' for schema and drift checks only.",
        ),
    ] = None,
    fpr: Annotated[
        float, typer.Option("--fpr", help="Share of clean records each detector may flag (sets its threshold).")
    ] = 0.01,
    key: Annotated[
        Path | None, typer.Option("--key", help="Public key PEM that the data's signature must verify with.")
    ] = None,
    signature: Annotated[
        Path | None, typer.Option("--signature", help="Signature file (default: DATA.sig or model.sig beside it).")
    ] = None,
    lock: Annotated[
        Path | None,
        typer.Option("--lock", envvar="MODELSHIELD_LOCK", help="Provenance lock whose entry for DATA must match."),
    ] = None,
    require_signature: Annotated[
        bool, typer.Option("--require-signature", help="Refuse data that has no signature.")
    ] = False,
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", help="Records per chunk (memory follows this).")] = 50_000,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Exit 1 when a feature's distribution drifted from the reference.")
    ] = False,
    max_quarantined: Annotated[
        float | None,
        typer.Option("--max-quarantined", help="Exit 1 when more than this share of records is quarantined."),
    ] = None,
) -> None:
    """Check DATA against a trusted reference; write the accepted records, the quarantine (with reasons), an
    OpenLineage run event and an HTML + JSON report to OUT."""
    from modelshield.core.errors import InputError
    from modelshield.ingest import IngestConfig, ingest

    names: tuple[str, ...] | None = None  # the library's default set
    if detectors is not None:
        names = () if detectors.strip() == "none" else tuple(n.strip() for n in detectors.split(",") if n.strip())
    if max_quarantined is not None and not 0 <= max_quarantined <= 1:
        raise InputError(f"--max-quarantined is a share of records, in [0, 1]; got {max_quarantined}")
    config = IngestConfig(
        reference=reference,
        schema=schema,
        label=label,
        chunk_rows=chunk_rows,
        public_key=key,
        signature=signature,
        lock=lock,
        require_signature=require_signature,
        detectors=names,
        fpr=fpr,
    )
    try:
        result = ingest(data, out, config)
    except IntegrityError as exc:
        typer.echo(f"refused: {exc.diagnostics()}", err=True)
        raise typer.Exit(1) from None
    share = result.quarantined / result.records if result.records else 0.0
    typer.echo(
        f"{result.records} records: {result.accepted} accepted, {result.quarantined} quarantined ({share:.2%}); "
        f"run {result.run_id}"
    )
    for reason, n in result.report["reasons"].items():
        typer.echo(f"  {n:>8}  {reason}")
    if result.drifted:
        typer.echo(f"  drift from the reference in: {', '.join(result.drifted)}")
    typer.echo(f"wrote {', '.join(str(p) for p in result.outputs.values())}")
    if (fail_on_drift and result.drifted) or (max_quarantined is not None and share > max_quarantined):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `modelshield ingest`."""
    app.command("ingest")(ingest_command)
