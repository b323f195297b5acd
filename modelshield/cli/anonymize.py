"""``modelshield anonymize``: release a table with k-anonymity / l-diversity / t-closeness, measure risk, link.

    modelshield anonymize INPUT.csv --quasi-identifiers a,b,c --sensitive s --k 5 [--l 2] [--t 0.2] \\
        [--hierarchies H.yaml] [--max-suppression 0.05] [--algorithm mondrian|lattice] --out OUT.csv
    modelshield anonymize risk INPUT.csv --quasi-identifiers a,b,c [--population N]
    modelshield anonymize link RELEASED.csv AUX.csv --on a,b,c [--truth id] [--hierarchies H.yaml]

The first form is ``anonymize run`` with the word left out: a first argument that is not a subcommand is
the input file. It writes OUT and ``OUT.report.json`` beside it (``modelshield.privacy.anonymize``).
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.cli._options import default_command_group
from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.privacy.anonymize.hierarchy import Hierarchy


anonymize_app = typer.Typer(
    cls=default_command_group("run"),
    help="Anonymise a table (k-anonymity, l-diversity, t-closeness), measure re-identification risk, link.",
    no_args_is_help=True,
)


class Algorithm(str, Enum):
    mondrian = "mondrian"
    lattice = "lattice"


class Format(str, Enum):
    text = "text"
    json = "json"


QuasiOption = Annotated[str, typer.Option("--quasi-identifiers", "-q", help="comma-separated quasi-identifier columns")]
HierarchiesOption = Annotated[
    Path | None, typer.Option("--hierarchies", help="YAML file of generalisation hierarchies (docs/anonymize.md)")
]
PopulationOption = Annotated[
    int | None, typer.Option("--population", help="size of the population the table was sampled from")
]
FormatOption = Annotated[Format, typer.Option("--format", help="text for people, json for scripts")]


def _columns(text: str | None, what: str) -> list[str]:
    names = [c.strip() for c in (text or "").split(",") if c.strip()]
    if not names:
        raise InputError(f"{what}: name at least one column")
    if len(set(names)) != len(names):
        raise InputError(f"{what}: a column is named twice")
    return names


def _hierarchies(path: Path | None) -> dict[str, Hierarchy] | None:
    from modelshield.privacy.anonymize import load_hierarchies

    return load_hierarchies(path) if path else None


def _risk_lines(before: dict[str, Any], after: dict[str, Any] | None = None) -> list[str]:
    rows = [
        ("records", "records", "{:d}"),
        ("equivalence classes", "classes", "{:d}"),
        ("sample uniques", "sample_uniques", "{:.2%}"),
        ("prosecutor risk, highest", "prosecutor_highest", "{:.4f}"),
        ("prosecutor: records at risk", "prosecutor_at_risk", "{:.2%}"),
        ("prosecutor: success rate", "prosecutor_success", "{:.2%}"),
        ("journalist risk, highest", "journalist_highest", "{:.4f}"),
        ("journalist: records at risk", "journalist_at_risk", "{:.2%}"),
        ("marketer: success rate", "marketer_success", "{:.2%}"),
    ]
    lines = []
    for label, key, fmt in rows:
        text = fmt.format(before[key])
        if after is not None:
            text = f"{text:>10} → {fmt.format(after[key])}"
        lines.append(f"  {label:<30} {text}")
    return lines


@anonymize_app.command("run")
def run(
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV or Parquet table")],
    out: Annotated[Path, typer.Option("--out", "-o", help="released table (.csv or .parquet)")],
    quasi_identifiers: QuasiOption,
    k: Annotated[int, typer.Option("--k", help="every class holds at least k rows")],
    sensitive: Annotated[str | None, typer.Option("--sensitive", help="the sensitive column (for l and t)")] = None,
    l_div: Annotated[int | None, typer.Option("--l", help="distinct l-diversity of the sensitive column")] = None,
    t_close: Annotated[float | None, typer.Option("--t", help="t-closeness (EMD) of the sensitive column")] = None,
    hierarchies: HierarchiesOption = None,
    max_suppression: Annotated[
        float,
        typer.Option(
            "--max-suppression", help="share of rows that may be left out (lattice; Mondrian leaves none out)"
        ),
    ] = 0.0,
    algorithm: Annotated[Algorithm, typer.Option("--algorithm", help="mondrian (local) or lattice (global)")] = (
        Algorithm.mondrian
    ),
    drop: Annotated[str | None, typer.Option("--drop", help="direct identifiers to remove (comma-separated)")] = None,
    population: PopulationOption = None,
    output_format: FormatOption = Format.text,
) -> None:
    """Write the released table and OUT.report.json (k, l, t achieved, suppression, loss, risk before/after)."""
    from modelshield.privacy.anonymize import Criteria, anonymize_file, report_path

    if sensitive is None and (l_div is not None or t_close is not None):
        raise InputError("--l and --t need --sensitive")
    report = anonymize_file(
        source,
        out,
        _columns(quasi_identifiers, "--quasi-identifiers"),
        Criteria(k, l_div, t_close),
        sensitive=sensitive,
        hierarchies=_hierarchies(hierarchies),
        algorithm=algorithm.value,
        max_suppression=max_suppression,
        drop=_columns(drop, "--drop") if drop else [],
        population=population,
    )
    if output_format is Format.json:
        typer.echo(json.dumps(report, indent=2))
        return
    got = report["achieved"]
    achieved = ", ".join(
        f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}" for key, value in got.items()
    )
    loss = report["information_loss"]
    typer.echo(f"released {report['released_rows']} of {report['rows']} rows in {report['classes']} classes → {out}")
    typer.echo(f"  achieved {achieved}; suppressed {report['suppressed_rows']} rows ({report['algorithm']})")
    typer.echo(
        f"  information loss: NCP {loss['ncp']:.3f}, discernibility {loss['discernibility']}, "
        f"average class size {loss['average_class_size']:.2f}×k"
    )
    typer.echo("risk before → after:")
    for line in _risk_lines(report["risk_before"], report["risk_after"]):
        typer.echo(line)
    typer.echo(f"report: {report_path(out)}")


@anonymize_app.command("risk")
def risk(
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV or Parquet table")],
    quasi_identifiers: QuasiOption,
    population: PopulationOption = None,
    output_format: FormatOption = Format.text,
) -> None:
    """Prosecutor, journalist and marketer re-identification risk of a table as it is."""
    from modelshield.privacy.anonymize import file_risk

    report = file_risk(source, _columns(quasi_identifiers, "--quasi-identifiers"), population).as_dict()
    if output_format is Format.json:
        typer.echo(json.dumps(report, indent=2))
        return
    where = f"population {population}" if population else "the table is the population"
    typer.echo(f"{source}: risk on {quasi_identifiers} ({where}; at risk = above {report['threshold']:.2f})")
    for line in _risk_lines(report):
        typer.echo(line)


@anonymize_app.command("link")
def link(
    released: Annotated[Path, typer.Argument(metavar="RELEASED", help="released (or raw) table")],
    auxiliary: Annotated[Path, typer.Argument(metavar="AUX", help="auxiliary table with raw values")],
    on: Annotated[str, typer.Option("--on", help="comma-separated columns to join on")],
    truth: Annotated[
        str | None, typer.Option("--truth", help="an id column in both tables, to count correct re-identifications")
    ] = None,
    hierarchies: HierarchiesOption = None,
    output_format: FormatOption = Format.text,
) -> None:
    """Linkage attack: join AUX to RELEASED on --on and count auxiliary records matching exactly one row."""
    from modelshield.privacy.anonymize import link as run_link
    from modelshield.privacy.anonymize.tables import read_table

    columns = _columns(on, "--on")
    wanted = [*columns, *([truth] if truth else [])]
    result = run_link(
        read_table(released, wanted), read_table(auxiliary, wanted), columns, _hierarchies(hierarchies), truth
    ).as_dict()
    if output_format is Format.json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"linked {result['auxiliary_records']} auxiliary records to {result['released_rows']} released rows")
    typer.echo(f"  matched at least one row   {result['matched']:.2%}")
    typer.echo(f"  re-identified (one match)  {result['reidentified']:.2%}")
    if result["correct"] is not None:
        typer.echo(f"  re-identified correctly    {result['correct']:.2%}")
    typer.echo(
        f"  by guessing a candidate    {result['guessed']:.2%} (mean {result['mean_candidates']:.1f} candidates)"
    )


def register(app: typer.Typer) -> None:
    """Add `modelshield anonymize`."""
    app.add_typer(anonymize_app, name="anonymize")
