"""``modelshield govern minimise | dpia``: which features a model could do without (measured), and a data
protection impact assessment in the ICO's seven steps filled from what modelshield recorded. Attached to the
``govern`` group by ``attach``."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from modelshield.cli._options import emit_text
from modelshield.core.errors import InputError


class ReportFormat(str, Enum):
    md = "md"
    html = "html"
    json = "json"


class MinimiseMethod(str, Enum):
    permutation = "permutation"
    drop_column = "drop-column"


def minimise_command(
    data: Annotated[Path, typer.Argument(help="The training table (CSV or Parquet).")],
    target: Annotated[str, typer.Option("--target", "-t", help="The column the model predicts.")],
    model: Annotated[
        str, typer.Option(help="hist-gradient-boosting, logistic-regression or random-forest (scikit-learn).")
    ] = "hist-gradient-boosting",
    method: Annotated[
        MinimiseMethod, typer.Option(help="permutation (held-out split) or drop-column (retrain, cross-validated).")
    ] = MinimiseMethod.permutation,
    threshold: Annotated[
        float, typer.Option(help="A feature whose removal costs less than this (in --metric) is a candidate.")
    ] = 0.01,
    metric: Annotated[
        str | None, typer.Option(help="accuracy (default), balanced_accuracy, f1_macro, roc_auc; r2 for regression.")
    ] = None,
    quasi_identifiers: Annotated[
        str | None, typer.Option("--quasi-identifiers", "-q", help="Comma-separated columns to flag as such.")
    ] = None,
    repeats: Annotated[int, typer.Option(help="Permutations per feature.")] = 5,
    folds: Annotated[int, typer.Option(help="Cross-validation folds of drop-column.")] = 3,
    max_train_rows: Annotated[int, typer.Option(help="Train on a random sample of at most this many rows.")] = 200_000,
    max_importance_rows: Annotated[
        int, typer.Option(help="Permutation importance on at most this many held-out rows.")
    ] = 20_000,
    threads: Annotated[int | None, typer.Option(help="Cap BLAS/OpenMP threads (default: all cores).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the split, sampling and permutations.")] = 0,
    format: Annotated[ReportFormat, typer.Option("--format", "-f", help="md, html or json.")] = ReportFormat.md,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of standard output.")] = None,
) -> None:
    """Measure what each feature earns a model (permutation importance or drop-column retraining), recommend
    those costing less than --threshold, check that removing them together stays within it, and flag the
    personal data among them."""
    from modelshield.govern.minimise import html, markdown, minimise, read_frame

    if threads is not None and threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    named = [q.strip() for q in quasi_identifiers.split(",") if q.strip()] if quasi_identifiers else []
    report = minimise(
        read_frame(data),
        target,
        model=model,
        method="drop-column" if method is MinimiseMethod.drop_column else "permutation",
        metric=metric,
        threshold=threshold,
        repeats=repeats,
        folds=folds,
        max_train_rows=max_train_rows,
        max_importance_rows=max_importance_rows,
        quasi_identifiers=named,
        source=data.name,
        seed=seed,
        threads=threads,
    )
    if format is ReportFormat.json:
        text = json.dumps(report.to_dict(), indent=2) + "\n"
    else:
        text = html(report) if format is ReportFormat.html else markdown(report)
    emit_text(text, out, "minimisation report")


def dpia_command(
    model: Annotated[str, typer.Argument(help="MODEL or MODEL:VERSION (default version: the one served).")],
    answers: Annotated[
        Path | None,
        typer.Option(help="YAML: purposes, nature, context, consultation, lawful_basis, risks, measures, sign_off."),
    ] = None,
    minimisation: Annotated[
        Path | None, typer.Option(help="A govern minimise --format json report of the training table.")
    ] = None,
    run: Annotated[Path | None, typer.Option("--run", help="Pipeline run folder (default: found by digest).")] = None,
    assess: Annotated[Path | None, typer.Option("--assess", help="An assess report.json.")] = None,
    privacy: Annotated[Path | None, typer.Option("--privacy", help="A privacy audit --json file.")] = None,
    threat: Annotated[Path | None, typer.Option("--threat", help="A threat check JSON report.")] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", envvar="MODELSHIELD_DB_URL", help="Registry, lineage, consent and DPA database."),
    ] = None,
    audit_db: Annotated[
        str | None, typer.Option("--audit-db", help="Where incidents are counted (default: --db).")
    ] = None,
    record: Annotated[
        bool, typer.Option("--record", help="Record a signed-off DPIA as a govern.dpia audit event in --db.")
    ] = False,
    format: Annotated[ReportFormat, typer.Option("--format", "-f", help="md, html or json.")] = ReportFormat.md,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of standard output.")] = None,
) -> None:
    """A data protection impact assessment in the ICO's seven steps: filled from the registry, lineage,
    assessments, privacy audits, threat model, incidents, minimisation, consent and DPAs; the rest (purposes,
    consultation, sign-off) from --answers. What nothing records is marked "not recorded"."""
    from modelshield.govern import dpia
    from modelshield.govern.evidence import gather
    from modelshield.registry import Registry
    from modelshield.registry.store import check_name

    name, sep, number = model.partition(":")
    if sep and not number.isdigit():
        raise InputError(f"{model!r}: the version after ':' must be a number")
    version = int(number) if sep else None
    given = dpia.load_answers(answers) if answers is not None else None
    report = dpia.load_minimisation(minimisation) if minimisation is not None else None
    with Registry.open(db) as reg:
        mv = reg.get(check_name(name), version)
    ev = gather(mv, run=run, assess=assess, privacy=privacy, threat=threat)
    if privacy is not None and "membership_advantage" not in ev.privacy:
        ev.privacy["membership_advantage"] = dpia.audit_advantage(privacy)
    doc = dpia.build(ev, answers=given, minimisation=report, **dpia.records(ev, db, audit_db))
    if format is ReportFormat.json:
        text = json.dumps(doc.to_dict(), indent=2) + "\n"
    else:
        text = dpia.html(doc) if format is ReportFormat.html else dpia.markdown(doc)
    if record:
        seq = dpia.record_sign_off(doc, text, db)
        typer.echo(f"signed-off DPIA recorded as audit event #{seq}", err=True)
    emit_text(text, out, "DPIA")


def attach(govern_app: typer.Typer) -> None:
    """Add ``minimise`` and ``dpia`` to the ``govern`` group."""
    govern_app.command("minimise")(minimise_command)
    govern_app.command("dpia")(dpia_command)
