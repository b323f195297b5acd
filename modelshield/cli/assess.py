"""``modelshield assess``: how a model breaks under evasion attacks, as a report and a CI gate."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from modelshield.assess.catalog import ALL_ATTACKS, DEFAULT_DETECTORS, DETECTOR_NAMES
from modelshield.cli._options import parse_bounds, parse_floats, parse_headers
from modelshield.core.errors import InputError
from modelshield.core.settings import load_settings

if TYPE_CHECKING:  # torch loads only when an assessment runs, so other commands start fast
    from modelshield.assess.results import AssessmentResult
    from modelshield.core.datasets import Dataset
    from modelshield.core.model import Model

DEMO_EPS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
DEMO_EPS_L2 = (0.25, 0.5, 1.0, 1.5)
DEMO_GATE = 0.1


def redact_url(url: str) -> str:
    """Drop credentials and the query string from a URL before it is written anywhere."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_argv(argv: list[str]) -> list[str]:
    """The command line as it may be recorded in reports: header values and URL secrets masked."""
    out: list[str] = []
    masking = False
    for arg in argv:
        if masking:
            out.append(arg.partition(":")[0] + ": ***")
        elif arg.startswith("--header="):
            out.append("--header=" + arg[9:].partition(":")[0] + ": ***")
        else:
            out.append(redact_url(arg) if "://" in arg else arg)
        masking = arg == "--header"
    return out


def _pick(option: int | None, configured: int | None, default: int | None) -> int | None:
    """The command-line value if given, else the settings file's, else the built-in default."""
    if option is not None:
        return option
    return configured if configured is not None else default


def _load_inputs(
    model: str, data: str, arch: str | None, arch_kwargs: str | None, label_column: str | None,
    bounds: tuple[float, float] | None, mean: str | None, std: str | None, num_classes: int | None,
    headers: list[str], device: str | None,
) -> tuple[Model, Dataset]:
    """Load data first (it fixes the input shape), then the model, safely."""
    from modelshield.core.datasets import load_dataset
    from modelshield.integrity.safe_load import load_model

    ds = load_dataset(data, label_column=label_column, bounds=bounds)
    shape = tuple(ds.x.shape[1:])
    b = bounds or ds.bounds
    n_classes = num_classes
    if model.startswith(("http://", "https://")):
        from modelshield.core.adapters import RemoteModel

        n_classes = n_classes or int(ds.y.max()) + 1
        return RemoteModel(model, input_shape=shape, num_classes=n_classes, bounds=b, headers=parse_headers(headers)), ds
    kwargs = json.loads(arch_kwargs) if arch_kwargs else None
    if kwargs is not None and not isinstance(kwargs, dict):
        raise InputError("--arch-kwargs must be a JSON object, e.g. '{\"num_classes\": 10}'")
    m = load_model(
        model, arch=arch, arch_kwargs=kwargs, input_shape=shape, num_classes=n_classes, bounds=b,
        mean=parse_floats(mean, "--mean") if mean else None, std=parse_floats(std, "--std") if std else None,
        device=device,
    )
    return m, ds


def _summary(console: Console, result: AssessmentResult, paths: dict[str, Path]) -> None:
    table = Table(title=f"modelshield assess — clean accuracy {result.clean_accuracy:.1%}", show_lines=False)
    for col in ("attack", "norm", "ε", "robust acc", "success", "queries", "median L2", "seconds"):
        table.add_column(col, justify="left" if col in ("attack", "norm") else "right")
    for r in result.attacks:
        table.add_row(
            r.attack, r.norm, "min" if r.eps is None else f"{r.eps:g}", f"{r.robust_accuracy:.1%}",
            f"{r.success_rate:.1%}", "—" if r.queries is None else str(r.queries),
            "—" if r.median_l2 is None else f"{r.median_l2:.3f}", f"{r.seconds:.2f}",
        )
    console.print(table)
    for f in result.findings:
        console.print(f"[bold]{f.severity.value.upper():8}[/bold] {f.id} {f.description}", highlight=False)
    for flag in result.sanity:
        mark = "[green]ok[/green]  " if flag.passed else "[red]FAIL[/red]"
        console.print(f"sanity {mark} {flag.name}: {flag.detail}", highlight=False)
    g = result.gating
    if g.get("robust_accuracy") is not None:
        verdict = "[green]PASSED[/green]" if result.passed else "[red]FAILED[/red]"
        limit = f" (required ≥ {g['fail_under']:.1%})" if g.get("fail_under") is not None else ""
        console.print(f"gate {verdict}: robust accuracy {g['robust_accuracy']:.1%} at L∞ ε={g['eps']:g} "
                      f"against {g['attack']}{limit}")
    if result.certified:
        cert = ", ".join(f"r={p.radius:g}: {p.certified_accuracy:.0%}" for p in result.certified[:5])
        console.print(f"certified (σ={result.certified[0].sigma:g}, abstain {result.certified[0].abstain_rate:.1%}): {cert}",
                      highlight=False)
    for rec in result.detectors:
        auc = "—" if rec.auc is None else f"{rec.auc:.3f}"
        console.print(f"detector {rec.name:18} vs {rec.attack:13} {'adaptive' if rec.adaptive else 'standard'} "
                      f"AUC {auc}", highlight=False)
    for kind, path in paths.items():
        console.print(f"{kind:5} {path}", highlight=False)


def assess_command(
    model: Annotated[str | None, typer.Option(help="Model file (safetensors, TorchScript, ONNX, skops) or http(s) URL.")] = None,
    data: Annotated[str | None, typer.Option(help="Data: sklearn:digits, .npz (x, y), CSV, Parquet or an image folder.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for report.html, report.json, report.sarif, report.md.")] = Path("assessment"),
    demo: Annotated[bool, typer.Option("--demo", help="Assess the built-in digits CNN (trained in seconds).")] = False,
    arch: Annotated[str | None, typer.Option(help="Architecture for safetensors weights: 'package.module:Class'.")] = None,
    arch_kwargs: Annotated[str | None, typer.Option(help="JSON keyword arguments for --arch.")] = None,
    eps: Annotated[str | None, typer.Option(help="L∞ ε sweep, comma separated; fractions allowed (8/255).")] = None,
    eps_l2: Annotated[str | None, typer.Option("--eps-l2", help="L2 ε sweep, comma separated.")] = None,
    gating_eps: Annotated[str | None, typer.Option(help="L∞ ε the gate decides at (default: middle of the sweep).")] = None,
    fail_under: Annotated[float | None, typer.Option(help="Exit 1 when robust accuracy at the gating ε is below this fraction.")] = None,
    attacks: Annotated[str | None, typer.Option(help=f"Attacks to run (default all): {','.join(ALL_ATTACKS)}.")] = None,
    samples: Annotated[int | None, typer.Option(help="Evaluate on a random subset of this many samples.")] = None,
    steps: Annotated[int | None, typer.Option(help="PGD steps (default 20).")] = None,
    queries: Annotated[int | None, typer.Option(help="Square attack query budget per sample (default 1000).")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column for CSV/Parquet data.")] = None,
    bounds: Annotated[str | None, typer.Option(help="Input bounds 'lo,hi' (default: [0,1] for images, data range otherwise).")] = None,
    mean: Annotated[str | None, typer.Option(help="Per-channel normalisation mean applied inside the model adapter.")] = None,
    std: Annotated[str | None, typer.Option(help="Per-channel normalisation std applied inside the model adapter.")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Number of classes, when it cannot be inferred.")] = None,
    header: Annotated[list[str], typer.Option(help="HTTP header 'Name: value' for a remote model (repeatable).")] = [],  # noqa: B006
    device: Annotated[str | None, typer.Option(help="Torch device, e.g. cuda:0 (default: where the model is).")] = None,
    bf16: Annotated[bool, typer.Option("--bf16", help="Run PyTorch forwards under bf16 autocast (GPU speed).")] = False,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Channels-last memory for PyTorch models.")] = False,
    config: Annotated[Path | None, typer.Option(help="Settings file (default: $MODELSHIELD_CONFIG or ./modelshield.toml).")] = None,
    batch_size: Annotated[int, typer.Option(help="Attack batch size.")] = 512,
    seed: Annotated[int, typer.Option(help="Random seed for subsets and randomised attacks.")] = 0,
    certify: Annotated[bool, typer.Option("--certify", help="Certify L2 robustness by randomized smoothing.")] = False,
    sigma: Annotated[float, typer.Option(help="Smoothing noise σ for --certify, in input units.")] = 0.25,
    n0: Annotated[int, typer.Option("--n0", help="Noise samples to pick the class (--certify).")] = 100,
    n: Annotated[int, typer.Option("--n", help="Noise samples to bound its probability (--certify).")] = 1000,
    alpha: Annotated[float, typer.Option(help="Certificate failure probability (--certify).")] = 0.001,
    certify_samples: Annotated[int, typer.Option(help="Inputs to certify (--certify).")] = 100,
    detectors: Annotated[bool, typer.Option("--detectors", help="Evaluate adversarial-input detectors, standard and adaptive attacks.")] = False,
    detector_list: Annotated[str, typer.Option(help=f"Detectors for --detectors: {','.join(DETECTOR_NAMES)}.")] = ",".join(DEFAULT_DETECTORS),
) -> None:
    """Run evasion attacks on a model and write HTML, JSON, SARIF and Markdown reports."""
    import torch

    from modelshield.assess.runner import AssessConfig, assess, planned_steps
    from modelshield.core.model import TorchModel
    from modelshield.report import write_reports

    console = Console(stderr=True)
    settings = load_settings(config)
    policy = settings.assess
    device = device or settings.device
    if demo == bool(model or data):
        raise InputError("give either --demo or both --model and --data")
    if not demo and not (model and data):
        raise InputError("--model and --data are both required")
    bnds = None
    if bounds:
        bnds = parse_bounds(bounds)
    cfg = AssessConfig(
        attacks=[a.strip() for a in attacks.split(",") if a.strip()] if attacks else policy.attacks or list(ALL_ATTACKS),
        fail_under=fail_under if fail_under is not None else policy.fail_under,
        pgd_steps=_pick(steps, policy.steps, 20),
        square_queries=_pick(queries, policy.queries, 1000),
        batch_size=batch_size,
        seed=seed,
        command="modelshield " + " ".join(shlex.quote(a) for a in redact_argv(sys.argv[1:])),
        certify=certify, sigma=sigma, n0=n0, n=n, alpha=alpha, certify_samples=certify_samples,
        detectors=[d.strip() for d in detector_list.split(",") if d.strip()] if detectors else (),
    )
    if eps or policy.eps:
        cfg.eps_linf = parse_floats(eps, "--eps") if eps else policy.eps  # type: ignore[assignment]
    if eps_l2 or policy.eps_l2:
        cfg.eps_l2 = parse_floats(eps_l2, "--eps-l2") if eps_l2 else policy.eps_l2  # type: ignore[assignment]
    if gating_eps or policy.gating_eps:
        cfg.gating_eps = parse_floats(gating_eps, "--gating-eps")[0] if gating_eps else policy.gating_eps
    samples = _pick(samples, policy.samples, None)
    cfg.validate()

    out.mkdir(parents=True, exist_ok=True)
    if demo:
        from modelshield.core.loading import save_torch_model
        from modelshield.demo import demo_model_and_data

        with console.status("training the demo CNN on scikit-learn's digits..."):
            m, ds = demo_model_and_data(seed=seed)
        weights = out / "model.safetensors"
        save_torch_model(m.module, weights)
        cfg.model_info = {"name": "demo digits CNN", "path": str(weights), "arch": "modelshield.demo:DigitsCNN"}
        if not (eps or policy.eps):
            cfg.eps_linf = DEMO_EPS
        if not (eps_l2 or policy.eps_l2):
            cfg.eps_l2 = DEMO_EPS_L2
        if not (eps or policy.eps or gating_eps or policy.gating_eps):
            cfg.gating_eps = DEMO_GATE
    else:
        assert model is not None and data is not None
        m, ds = _load_inputs(model, data, arch, arch_kwargs, label_column, bnds, mean, std, num_classes, header, device)
        shown = redact_url(model)
        cfg.model_info = {"name": Path(model).name if "://" not in model else shown, "path": shown, "arch": arch}
    if samples is not None:
        if samples < 1:
            raise InputError("--samples must be at least 1")
        ds = ds.subset(samples, seed=seed)
    if bf16 or channels_last:
        if not isinstance(m, TorchModel):
            raise InputError("--bf16 and --channels-last apply to PyTorch models only")
        m.use_fast_path(autocast_dtype=torch.bfloat16 if bf16 else None, channels_last=channels_last)

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("assessing", total=planned_steps(cfg, m.white_box))

        def advance(desc: str, n: int) -> None:
            bar.update(task, description=desc, advance=n)

        result, examples = assess(m, ds, cfg, progress=advance)
    paths = write_reports(result, out, examples)
    _summary(console, result, paths)
    if not result.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `modelshield assess`."""
    app.command("assess")(assess_command)
