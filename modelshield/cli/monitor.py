"""``modelshield monitor``: reference sketches and drift checks for scripts and CI.

``monitor drift`` exits 0 when no drift is found, 1 when it is, and 2 on bad input (one line on stderr), so a
pipeline can gate on it; ``--format json`` prints ``{"drift": bool, "features": [{"feature", "test",
"statistic", "p_value", "drift", ...}], ...}``.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.monitor.drift import DriftReport
    from modelshield.monitor.sketch import ReferenceSketch

monitor_app = typer.Typer(help="Drift of live data against a stored reference sketch.", no_args_is_help=True)


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

    console = Console(highlight=False)
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


def register(app: typer.Typer) -> None:
    """Add `modelshield monitor`."""
    app.add_typer(monitor_app, name="monitor", help="Drift checks against a stored reference sketch.")
