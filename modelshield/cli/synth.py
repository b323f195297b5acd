"""``modelshield synth``: differentially private synthetic tables (MST) and DP statistics.

    modelshield synth INPUT.csv --epsilon E [--delta D] [--rows N] [--domain DOMAIN.yaml] [--label COL] \\
        --out SYNTH.csv
    modelshield synth stats INPUT.csv --epsilon E [--delta D] (--count | --histogram COL | --mean COL
        | --quantile COL [--q 0.5]) [--bounds LO,HI] [--bins B] [--categories a,b,c]

The first form is ``synth data`` with the word left out: a first argument that is not a subcommand is the
input file. It writes SYNTH.csv and ``SYNTH.report.json`` beside it (``modelshield.privacy.synth``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.cli._options import default_command_group
from modelshield.core.errors import DependencyError, FormatError, InputError, MissingFileError

if TYPE_CHECKING:
    import pandas as pd

    from modelshield.privacy.synth.stats import Release


synth_app = typer.Typer(
    cls=default_command_group("data"),
    help="Differentially private synthetic data (MST) and DP statistics (counts, histograms, means, quantiles).",
    no_args_is_help=True,
)

Epsilon = Annotated[float, typer.Option("--epsilon", help="Privacy budget ε (total for this run).")]
Delta = Annotated[float, typer.Option("--delta", help="δ of the (ε, δ) guarantee.")]


def _read(path: Path) -> pd.DataFrame:
    try:
        import pandas as pd
    except ImportError:
        raise DependencyError("reading tables needs pandas", hint="pip install 'modelshield[data]'") from None

    if not path.is_file():
        raise MissingFileError(f"input not found: {path}")
    kind = "Parquet" if path.suffix.lower() == ".parquet" else "CSV"
    try:
        frame = pd.read_parquet(path) if kind == "Parquet" else pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise FormatError(f"cannot read {path} as {kind}: {' '.join(str(e).split())[:200]}") from None
    if len(frame) == 0:
        raise InputError(f"{path} has no rows")
    return frame


@synth_app.command("data")
def data(
    input: Annotated[Path, typer.Argument(help="The private table (CSV with a header row, or Parquet).")],
    epsilon: Epsilon,
    out: Annotated[Path, typer.Option("--out", help="Where to write the synthetic CSV.")],
    delta: Delta = 1e-9,
    rows: Annotated[int | None, typer.Option("--rows", help="Rows to draw (default: the noisy row count).")] = None,
    domain: Annotated[
        Path | None,
        typer.Option("--domain", help="Declared (public) domain YAML; without it the domain is read from the data."),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Class column: report train-synthetic-test-real accuracy.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (for reproducible runs only).")] = None,
) -> None:
    """Write an MST synthetic copy of INPUT and OUT.report.json (budget, shift, utility)."""
    from modelshield.privacy.synth import load_domain, synthesize

    frame = _read(input)
    declared = load_domain(domain) if domain is not None else None
    synthetic, report = synthesize(
        frame, epsilon=epsilon, delta=delta, rows=rows, domain=declared, label=label, seed=seed
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    synthetic.to_csv(out, index=False)
    report_path = out.with_suffix(".report.json")
    report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    privacy, shift = report["privacy"], report["shift"]
    typer.echo(f"wrote {out} ({len(synthetic)} rows) and {report_path}")
    typer.echo(f"privacy: ε={privacy['epsilon']:.4g}, δ={privacy['delta']:g} (ρ={privacy['rho_total']:.4g} zCDP)")
    pair = shift["mean_2way_tvd"]
    typer.echo(
        f"shift: mean 1-way TVD {shift['mean_1way_tvd']:.3f}"
        + (f", mean 2-way TVD {pair:.3f}" if pair is not None else "")
    )
    if "utility" in report:
        u = report["utility"]
        typer.echo(
            f"utility: TSTR accuracy {u['train_synthetic_test_real']:.3f} vs train-on-real "
            f"{u['train_real_test_real']:.3f} (majority class {u['majority_class']:.3f})"
        )
    if "warning" in report:
        typer.echo(f"warning: {report['warning']}", err=True)


def _bounds(text: str | None, what: str) -> tuple[float, float]:
    if text is None:
        raise InputError(f"{what} needs --bounds LO,HI (public bounds; values are clipped to them)")
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--bounds must be two numbers LO,HI, got {text!r}") from None
    return lo, hi


def _release(
    frame: pd.DataFrame,
    rho: float,
    count: bool,
    histogram: str | None,
    mean: str | None,
    quantile: str | None,
    q: float,
    bounds: str | None,
    bins: int,
    categories: str | None,
    seed: int | None,
) -> tuple[Release, bool]:
    """The one statistic asked for, and whether its labels came from the private data."""
    import numpy as np

    from modelshield.privacy.synth import Categorical, Numeric, dp_count, dp_histogram, dp_mean, dp_quantile
    from modelshield.privacy.synth.domain import _numbers

    rng = np.random.default_rng(seed)
    column = histogram or mean or quantile
    if column is not None and column not in frame.columns:
        raise InputError(f"no column {column!r}; columns: {', '.join(map(str, frame.columns))}")
    if count:
        return dp_count(len(frame), rho, rng), False
    if mean is not None:
        lo, hi = _bounds(bounds, "--mean")
        return dp_mean(_numbers(frame[mean], mean), lo, hi, rho, rng), False
    if quantile is not None:
        lo, hi = _bounds(bounds, "--quantile")
        return dp_quantile(_numbers(frame[quantile], quantile), q, lo, hi, rho, rng), False
    assert histogram is not None
    from modelshield.privacy.synth import Domain

    if bounds is not None:
        lo, hi = _bounds(bounds, "--histogram")
        binned = Numeric(histogram, lo, hi, bins)
        labels = [f"[{a:g}, {b:g})" for a, b in zip(binned.edges[:-1], binned.edges[1:], strict=True)]
        col: Categorical | Numeric = binned
    else:
        values = [v.strip() for v in categories.split(",")] if categories else None
        from modelshield.privacy.synth.domain import _text

        col = Categorical(histogram, tuple(values or sorted(set(_text(frame[histogram]).tolist()))))
        labels = list(col.values)
    cells = Domain((col,)).encode(frame)[:, 0]
    return dp_histogram(np.bincount(cells, minlength=col.size), rho, rng, labels), bounds is None and not categories


@synth_app.command("stats")
def stats(
    input: Annotated[Path, typer.Argument(help="The private table (CSV with a header row, or Parquet).")],
    epsilon: Epsilon,
    delta: Delta = 1e-9,
    count: Annotated[bool, typer.Option("--count", help="The number of rows.")] = False,
    histogram: Annotated[
        str | None, typer.Option("--histogram", help="Counts per category (or per bin with --bounds).")
    ] = None,
    mean: Annotated[str | None, typer.Option("--mean", help="Mean of a numeric column clipped to --bounds.")] = None,
    quantile: Annotated[
        str | None, typer.Option("--quantile", help="A quantile (--q) of a numeric column within --bounds.")
    ] = None,
    q: Annotated[float, typer.Option("--q", help="Which quantile, in [0, 1].")] = 0.5,
    bounds: Annotated[str | None, typer.Option("--bounds", help="Public bounds LO,HI of the column.")] = None,
    bins: Annotated[int, typer.Option("--bins", help="Histogram bins on --bounds.")] = 10,
    categories: Annotated[
        str | None, typer.Option("--categories", help="Public category list a,b,c for --histogram.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the release as JSON.")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (for reproducible runs only).")] = None,
) -> None:
    """Release one DP statistic of INPUT under the Gaussian (or exponential) mechanism, ρ-zCDP accounted."""
    from dataclasses import asdict

    from modelshield.privacy.synth import ZcdpLedger

    asked = [count, histogram is not None, mean is not None, quantile is not None]
    if sum(asked) != 1:
        raise InputError("give exactly one of --count, --histogram COL, --mean COL, --quantile COL")
    if bins < 1:
        raise InputError(f"--bins must be at least 1, got {bins}")
    frame = _read(input)
    ledger = ZcdpLedger.for_epsilon(epsilon, delta)
    release, leaked = _release(
        frame,
        ledger.spend("statistic", ledger.total_rho),
        count,
        histogram,
        mean,
        quantile,
        q,
        bounds,
        bins,
        categories,
        seed,
    )
    result = {**asdict(release), "epsilon": ledger.epsilon(), "delta": delta}
    if leaked:
        result["warning"] = "categories were read from the private data; pass --categories for a full guarantee"
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    sigma = f", σ={release.sigma:.4g}" if release.sigma is not None else ""
    typer.echo(f"{release.statistic}: ε={result['epsilon']:.4g}, δ={delta:g} (ρ={release.rho:.4g}{sigma})")
    if isinstance(release.value, list):
        for name, value in zip(release.labels or [], release.value, strict=True):
            typer.echo(f"  {name}\t{value:.1f}")
    else:
        typer.echo(f"  {release.value:.6g}")
    if leaked:
        typer.echo(f"warning: {result['warning']}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(synth_app, name="synth")
