"""``modelshield assess``: how a model breaks under evasion attacks, as a report and a CI gate."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from modelshield.assess.catalog import ALL_ATTACKS, DEFAULT_DETECTORS, DETECTOR_NAMES
from modelshield.cli._options import (
    flag_words,
    parse_arch_kwargs,
    parse_bounds,
    parse_floats,
    parse_headers,
    parse_shape,
    parse_step,
)
from modelshield.cli._training_monitor import AuditDbOption, MonitorZOption, finish, make_monitor, watching
from modelshield.core.errors import InputError, ModelShieldError
from modelshield.core.settings import load_settings

if TYPE_CHECKING:  # torch loads only when an assessment runs, so other commands start fast
    from modelshield.assess.config import AssessConfig
    from modelshield.assess.results import AssessmentResult, AttackRecord, PoisoningRecord
    from modelshield.assess.runner import AttackRunner
    from modelshield.core.datasets import Dataset
    from modelshield.core.model import Model

DEMO_EPS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
DEMO_EPS_L2 = (0.25, 0.5, 1.0, 1.5)
DEMO_GATE = 0.1


_D = TypeVar("_D", int, None)


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


def _names(text: str, flag: str) -> list[str]:
    """Comma-separated names; an empty one (a doubled or trailing comma) is refused, not silently dropped."""
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise InputError(f"{flag} {text!r} has an empty name: separate names with single commas, e.g. fgsm,pgd")
    return names


def _counts(text: str, flag: str) -> list[int]:
    """Comma-separated whole numbers ≥ 1, e.g. query budgets."""
    out = []
    for part in _names(text, flag):
        if not part.isdigit() or int(part) < 1:
            raise InputError(f"{flag}: {part!r} is not a whole number ≥ 1 (e.g. 100,300,1000)")
        out.append(int(part))
    return out


def _pick(option: int | None, configured: int | None, default: _D) -> int | _D:
    """The command-line value if given, else the settings file's, else the built-in default."""
    if option is not None:
        return option
    return configured if configured is not None else default


def _load_inputs(opts: _Inputs) -> tuple[Model, Dataset]:
    """Load data first (it fixes the input shape), then the model, safely; errors name the flags."""
    try:
        return _load(opts)
    except ModelShieldError as exc:
        raise flag_words(exc) from None


@dataclass
class _Inputs:
    model: str
    data: str
    arch: str | None
    arch_kwargs: str | None
    label_column: str | None
    bounds: tuple[float, float] | None
    mean: str | None
    std: str | None
    num_classes: int | None
    headers: list[str]
    device: str | None
    trust_types: list[str]
    input_shape: tuple[int, ...] | None
    image_size: tuple[int, ...] | None


def _load(o: _Inputs) -> tuple[Model, Dataset]:
    from modelshield.core.datasets import load_dataset

    if o.image_size is not None and len(o.image_size) != 2:
        raise InputError("--image-size takes H,W, e.g. 32,32")
    ds = load_dataset(
        o.data, label_column=o.label_column, bounds=o.bounds, input_shape=o.input_shape, image_size=o.image_size
    )
    source = _ModelSource(o, tuple(ds.x.shape[1:]), o.bounds or ds.bounds, o.num_classes or int(ds.y.max()) + 1)
    return source.load(), ds


@dataclass(frozen=True)
class _ModelSource:
    """Where the model comes from, in plain values: the driver loads it from here, and so does every Ray worker
    (``--ray``), so no model object is ever pickled across the wire."""

    inputs: _Inputs
    shape: tuple[int, ...]
    bounds: tuple[float, float]
    remote_classes: int
    bf16: bool = False
    channels_last: bool = False

    def load(self) -> Model:
        """The model, safely loaded (signatures checked, no pickle), on the fast path if asked."""
        from modelshield.integrity.safe_load import load_model

        o = self.inputs
        if o.model.startswith(("http://", "https://")):
            from modelshield.core.adapters import RemoteModel

            return RemoteModel(
                o.model,
                input_shape=self.shape,
                num_classes=self.remote_classes,
                bounds=self.bounds,
                headers=parse_headers(o.headers),
                abstentions="count",  # a guard's abstention is label -1: wrong when clean, never a success
            )
        m = load_model(
            o.model,
            arch=o.arch,
            arch_kwargs=parse_arch_kwargs(o.arch_kwargs),
            input_shape=self.shape,
            num_classes=o.num_classes,
            bounds=self.bounds,
            mean=parse_floats(o.mean, "--mean") if o.mean else None,
            std=parse_floats(o.std, "--std") if o.std else None,
            device=o.device,
            trusted_types=o.trust_types or None,
        )
        _fast_path(m, self.bf16, self.channels_last)
        return m


def _fast_path(m: Model, bf16: bool, channels_last: bool) -> None:
    """``--bf16`` / ``--channels-last`` on a PyTorch model; refused on any other."""
    if not (bf16 or channels_last):
        return
    import torch

    from modelshield.core.model import TorchModel

    if not isinstance(m, TorchModel):
        raise InputError("--bf16 and --channels-last apply to PyTorch models only")
    m.use_fast_path(autocast_dtype=torch.bfloat16 if bf16 else None, channels_last=channels_last)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _demo_poisoning(seed: int) -> list[PoisoningRecord]:
    """``--poisoning``: ``assess.poisoning``'s demo scenarios on digits, each model trained like the demo CNN."""
    from modelshield.assess.poisoning import assess_poisoning
    from modelshield.assess.results import PoisoningRecord
    from modelshield.core.datasets import sklearn_dataset
    from modelshield.core.model import TorchModel
    from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, train_digits_cnn

    def fit(train: Dataset) -> TorchModel:
        net = train_digits_cnn(train, seed=seed)
        return TorchModel(net, input_shape=DEMO_INPUT_SHAPE, num_classes=DEMO_NUM_CLASSES, bounds=(0.0, 1.0))

    train, test = sklearn_dataset("digits", "train", seed=seed), sklearn_dataset("digits", "test", seed=seed)
    return [PoisoningRecord(**row) for row in assess_poisoning(train, test, fit, seed=seed)]


def _verdict_lines(console: Console, result: AssessmentResult) -> None:
    from modelshield.report.formatting import verdict

    outcome = verdict(result)
    colour = {"pass": "green", "fail": "red", "warn": "yellow"}.get(outcome.tone, "white")
    console.print(f"[bold {colour}]{outcome.status}[/bold {colour}] {escape(outcome.sentence)}", highlight=False)
    console.print(f"worst finding: {escape(outcome.worst)}", highlight=False)


def _success(r: AttackRecord) -> str:
    """The success rate among correctly classified samples; "n/a" when there were none (0 of 0 is no rate)."""
    # robust accuracy 0 with success 0 means no sample was classified correctly in the first place
    return "n/a" if r.robust_accuracy == 0 and r.success_rate == 0 else f"{r.success_rate:.1%}"


def _summary(console: Console, result: AssessmentResult, paths: dict[str, Path]) -> None:
    """The verdict first, then the numbers, then where the reports are."""
    _verdict_lines(console, result)
    from modelshield.assess.findings import units_note

    if note := units_note(result):  # also a finding (MS-SANITY-003), so the reports carry it too
        console.print(f"note: {note}", highlight=False, markup=False)
    table = Table(title=f"modelshield assess — clean accuracy {result.clean_accuracy:.1%}", show_lines=False)
    for col in ("attack", "norm", "ε", "robust acc", "success", "queries", "median L2", "seconds"):
        table.add_column(col, justify="left" if col in ("attack", "norm") else "right")
    for r in result.attacks:
        table.add_row(
            r.attack,
            r.norm,
            "min" if r.eps is None else f"{r.eps:g}",
            f"{r.robust_accuracy:.1%}",
            _success(r),
            "—" if r.queries is None else str(r.queries),
            "—" if r.median_l2 is None else f"{r.median_l2:.3f}",
            f"{r.seconds:.2f}",
        )
    console.print(table)
    for e in result.errors:
        what = "not applicable" if e.kind == "not-applicable" else "ERROR"
        console.print(f"{what:14} {e.attack}: {e.error}: {e.message}", highlight=False, markup=False)
    for f in result.findings:
        console.print(f"[bold]{f.severity.value.upper():8}[/bold] {f.id} {escape(f.description)}", highlight=False)
    for flag in result.sanity:
        mark = "[green]ok[/green]  " if flag.passed else "[red]FAIL[/red]"
        console.print(f"sanity {mark} {flag.name}: {escape(flag.detail)}", highlight=False)
    if result.certified:
        cert = ", ".join(f"r={p.radius:g}: {p.certified_accuracy:.0%}" for p in result.certified[:5])
        console.print(
            f"certified (σ={result.certified[0].sigma:g}, abstain {result.certified[0].abstain_rate:.1%}): {cert}",
            highlight=False,
        )
    for rec in result.detectors:
        auc = "—" if rec.auc is None else f"{rec.auc:.3f}"
        console.print(
            f"detector {rec.name:18} vs {rec.attack:13} {'adaptive' if rec.adaptive else 'standard'} AUC {auc}",
            highlight=False,
        )
    for row in result.privacy:
        eps = "none" if row.epsilon is None else f"{row.epsilon:.2f}"
        console.print(
            f"privacy  {row.attack:12} {row.model:8} ε {eps:>5} · lower bound {row.epsilon_lower_bound:.2f} · "
            f"AUC {row.auc:.3f} · TPR {row.tpr_at_fpr_0001:.1%} @ 0.1% FPR, {row.tpr_at_fpr_001:.1%} @ 1%",
            highlight=False,
            markup=False,
        )
    for p in result.poisoning:
        defended = (
            ""
            if p.defence is None
            else f" → {p.defence}: success {_share(p.defended_attack_success_rate)}, "
            f"clean {_share(p.defended_clean_accuracy)}, detection F1 "
            f"{'n/a' if p.detection_f1 is None else f'{p.detection_f1:.2f}'}"
        )
        console.print(
            f"poison   {p.attack:12} {p.poison_rate:.0%}: success {p.attack_success_rate:.1%}, "
            f"clean {p.clean_accuracy:.1%}{defended}",
            highlight=False,
            markup=False,
        )
    for kind, path in paths.items():
        console.print(f"{kind:5} {path}", highlight=False, markup=False)
    console.print(f"verdict: {result.verdict} (exit {0 if result.passed else 1})", highlight=False)


@contextmanager
def _progress(console: Console, total: int) -> Iterator[Callable[[str, int], None]]:
    """A progress bar with an ETA on a terminal; one plain line per stage in logs and CI."""
    if console.is_terminal:
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("assessing", total=total)
            yield lambda desc, n: bar.update(task, description=desc, advance=n)
        return
    start, done = time.monotonic(), 0

    def line(desc: str, n: int) -> None:
        nonlocal done
        done += n
        if n == 0:  # a stage starts: say what runs now, so a stuck job shows where it is
            elapsed = int(time.monotonic() - start)
            console.print(
                f"assess [{done + 1}/{total}] {elapsed // 60}:{elapsed % 60:02d} {desc}", highlight=False, markup=False
            )

    yield line


def _stage(console: Console, text: str) -> AbstractContextManager[object]:
    """A spinner on a terminal; a plain line otherwise."""
    if console.is_terminal:
        return console.status(text)
    console.print(text, highlight=False, markup=False)
    return nullcontext()


MODEL = "Model and data"
ATTACKS = "Attacks"
GATE = "Gate and verdict"
CERTIFY = "Certification (--certify)"
DETECT = "Detectors (--detectors)"
AUDITS = "Privacy and poisoning audits (with --demo)"
RUN = "Run and output"
RAY = "Sharding on Ray (--ray)"


def assess_command(
    model: Annotated[
        str | None,
        typer.Option(help="Model file (safetensors, TorchScript, ONNX, skops) or http(s) URL.", rich_help_panel=MODEL),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="Data: sklearn:digits, .npz (x, y), CSV, Parquet or an image folder.", rich_help_panel=MODEL),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Assess the built-in digits CNN (trained in seconds).", rich_help_panel=MODEL)
    ] = False,
    arch: Annotated[
        str | None,
        typer.Option(help="Architecture for safetensors weights: 'package.module:Class'.", rich_help_panel=MODEL),
    ] = None,
    arch_kwargs: Annotated[
        str | None, typer.Option(help="JSON keyword arguments for --arch.", rich_help_panel=MODEL)
    ] = None,
    trust_type: Annotated[
        list[str],
        typer.Option(
            "--trust-type",
            metavar="MODULE.CLASS",
            help="A type a skops file may load that skops does not trust by default (repeatable); review it first.",
            rich_help_panel=MODEL,
        ),
    ] = [],  # noqa: B006
    input_shape: Annotated[
        str | None,
        typer.Option(
            metavar="C,H,W",
            help="Reshape flat data rows to this per-sample shape (e.g. 1,28,28).",
            rich_help_panel=MODEL,
        ),
    ] = None,
    image_size: Annotated[
        str | None,
        typer.Option(
            metavar="H,W",
            help="Resize every image of an image folder to H,W (for folders of mixed sizes).",
            rich_help_panel=MODEL,
        ),
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Label column for CSV/Parquet data.", rich_help_panel=MODEL)
    ] = None,
    bounds: Annotated[
        str | None,
        typer.Option(
            help="Input bounds 'lo,hi' (default: [0,1] for images, data range otherwise).", rich_help_panel=MODEL
        ),
    ] = None,
    mean: Annotated[
        str | None,
        typer.Option(help="Per-channel normalisation mean applied inside the model adapter.", rich_help_panel=MODEL),
    ] = None,
    std: Annotated[
        str | None,
        typer.Option(help="Per-channel normalisation std applied inside the model adapter.", rich_help_panel=MODEL),
    ] = None,
    num_classes: Annotated[
        int | None, typer.Option(help="Number of classes, when it cannot be inferred.", rich_help_panel=MODEL)
    ] = None,
    header: Annotated[
        list[str],
        typer.Option(help="HTTP header 'Name: value' for a remote model (repeatable).", rich_help_panel=MODEL),
    ] = [],  # noqa: B006
    samples: Annotated[
        int | None, typer.Option(help="Evaluate on a random subset of this many samples.", rich_help_panel=MODEL)
    ] = None,
    attacks: Annotated[
        str | None,
        typer.Option(help=f"Attacks to run (default all): {','.join(ALL_ATTACKS)}.", rich_help_panel=ATTACKS),
    ] = None,
    eps: Annotated[
        str | None,
        typer.Option(help="L∞ ε sweep, comma separated; fractions allowed (8/255).", rich_help_panel=ATTACKS),
    ] = None,
    eps_l2: Annotated[
        str | None, typer.Option("--eps-l2", help="L2 ε sweep, comma separated.", rich_help_panel=ATTACKS)
    ] = None,
    steps: Annotated[int | None, typer.Option(help="PGD steps (default 20).", rich_help_panel=ATTACKS)] = None,
    pgd_step: Annotated[
        str | None,
        typer.Option(
            metavar="STEP",
            help="PGD step size: absolute (0.01, 2/255) or relative to ε (eps/4, 2.5*eps/10); default 2.5*eps/steps.",
            rich_help_panel=ATTACKS,
        ),
    ] = None,
    random_start: Annotated[
        bool,
        typer.Option(
            "--random-start/--no-random-start",
            help="Start PGD at a random point of the ε-ball.",
            rich_help_panel=ATTACKS,
        ),
    ] = True,
    restarts: Annotated[
        int,
        typer.Option(
            help="Restarts for PGD and APGD; a sample counts as fooled if any restart fools it.",
            rich_help_panel=ATTACKS,
        ),
    ] = 1,
    queries: Annotated[
        int | None, typer.Option(help="Square attack query budget per sample (default 1000).", rich_help_panel=ATTACKS)
    ] = None,
    apgd_steps: Annotated[
        int | None, typer.Option(help="APGD-CE and APGD-DLR steps (default 50).", rich_help_panel=ATTACKS)
    ] = None,
    cw_steps: Annotated[
        int | None,
        typer.Option(
            help="C&W-L2 Adam steps per binary-search round (default 100, 5 rounds).", rich_help_panel=ATTACKS
        ),
    ] = None,
    hsj_queries: Annotated[
        str | None,
        typer.Option(
            metavar="Q,...",
            help="HopSkipJump query budgets per sample, comma separated (default 100,300,1000).",
            rich_help_panel=ATTACKS,
        ),
    ] = None,
    gating_eps: Annotated[
        str | None, typer.Option(help="L∞ ε the gate decides at (default: middle of the sweep).", rich_help_panel=GATE)
    ] = None,
    fail_under: Annotated[
        float | None,
        typer.Option(
            help="Exit 1 when robust accuracy at the gating ε is below this fraction; without it the verdict is NO GATE.",
            rich_help_panel=GATE,
        ),
    ] = None,
    allow_untrusted: Annotated[
        bool,
        typer.Option(
            "--allow-untrusted",
            help="Exit 0 on an UNTRUSTED verdict (gradient masking detected) unless the gate failed.",
            rich_help_panel=GATE,
        ),
    ] = False,
    certify: Annotated[
        bool, typer.Option("--certify", help="Certify L2 robustness by randomized smoothing.", rich_help_panel=CERTIFY)
    ] = False,
    sigma: Annotated[float, typer.Option(help="Smoothing noise σ, in input units.", rich_help_panel=CERTIFY)] = 0.25,
    n0: Annotated[int, typer.Option("--n0", help="Noise samples to pick the class.", rich_help_panel=CERTIFY)] = 100,
    n: Annotated[
        int, typer.Option("--n", help="Noise samples to bound its probability.", rich_help_panel=CERTIFY)
    ] = 1000,
    cert_alpha: Annotated[
        float,
        typer.Option(
            help="Certificate failure probability (Cohen et al.'s α; not a step size).", rich_help_panel=CERTIFY
        ),
    ] = 0.001,
    certify_samples: Annotated[int, typer.Option(help="Inputs to certify.", rich_help_panel=CERTIFY)] = 100,
    detectors: Annotated[
        bool,
        typer.Option(
            "--detectors",
            help="Evaluate adversarial-input detectors, standard and adaptive attacks.",
            rich_help_panel=DETECT,
        ),
    ] = False,
    detector_list: Annotated[
        str, typer.Option(help=f"Detectors to evaluate: {','.join(DETECTOR_NAMES)}.", rich_help_panel=DETECT)
    ] = ",".join(DEFAULT_DETECTORS),
    privacy: Annotated[
        bool,
        typer.Option(
            "--privacy",
            help="Membership attacks on an overfit model and its DP-trained twin: AUC, TPR at low FPR, ε lower bound.",
            rich_help_panel=AUDITS,
        ),
    ] = False,
    poisoning: Annotated[
        bool,
        typer.Option(
            "--poisoning",
            help="BadNets and label flips on digits: what the poison does and what a defence wins back.",
            rich_help_panel=AUDITS,
        ),
    ] = False,
    out: Annotated[
        Path, typer.Option(help="Folder for report.html, report.json, report.sarif, report.md.", rich_help_panel=RUN)
    ] = Path("assessment"),
    config: Annotated[
        Path | None,
        typer.Option(help="Settings file (default: $MODELSHIELD_CONFIG or ./modelshield.toml).", rich_help_panel=RUN),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="Attack batch size (memory only: results do not depend on it).", rich_help_panel=RUN)
    ] = 512,
    seed: Annotated[int, typer.Option(help="Random seed for subsets and randomised attacks.", rich_help_panel=RUN)] = 0,
    device: Annotated[
        str | None, typer.Option(help="Torch device, e.g. cuda:0 (default: where the model is).", rich_help_panel=RUN)
    ] = None,
    bf16: Annotated[
        bool, typer.Option("--bf16", help="Run PyTorch forwards under bf16 autocast (GPU speed).", rich_help_panel=RUN)
    ] = False,
    channels_last: Annotated[
        bool, typer.Option("--channels-last", help="Channels-last memory for PyTorch models.", rich_help_panel=RUN)
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Shard the attacks by sample range over Ray workers: local (start Ray here), auto, ray://host:port "
            "or host:port. Same report as one process; workers load the model from its file or URL themselves.",
            rich_help_panel=RAY,
        ),
    ] = None,
    ray_workers: Annotated[int, typer.Option(help="Ray workers (one sample range each).", rich_help_panel=RAY)] = 2,
    ray_cpus: Annotated[int, typer.Option(help="CPUs per Ray worker (its torch threads).", rich_help_panel=RAY)] = 1,
    ray_gpus: Annotated[
        float, typer.Option(help="GPUs per Ray worker (0.5: two workers share one GPU).", rich_help_panel=RAY)
    ] = 0.0,
    monitor: Annotated[
        bool,
        typer.Option(
            "--monitor/--no-monitor",
            help="With --privacy: record and check what the DP twin's training reads (OUT/data-access.json).",
            rich_help_panel=AUDITS,
        ),
    ] = True,
    monitor_z: MonitorZOption = 5.0,
    audit_db: AuditDbOption = None,
    alpha: Annotated[str | None, typer.Option("--alpha", hidden=True)] = None,
) -> None:
    """Run evasion attacks on a model and write HTML, JSON, SARIF and Markdown reports.

    Exit codes: 0 passed (or NO GATE: no --fail-under), 1 gate FAILED or UNTRUSTED (gradient masking; see
    --allow-untrusted) or a data-access alarm in --privacy's DP training, 2 bad input, 3 internal error.
    """
    import torch

    from modelshield.assess.runner import AssessConfig, assess, planned_steps
    from modelshield.report import write_reports

    if alpha is not None:
        raise InputError(
            "--alpha was renamed --cert-alpha (the certificate's failure probability); PGD's step size is --pgd-step"
        )
    console = Console(stderr=True, soft_wrap=True)  # logs keep each message on one line
    settings = load_settings(config)
    policy = settings.assess
    device = device or settings.device
    if demo == bool(model or data):
        raise InputError("give either --demo or both --model and --data")
    if not demo and not (model and data):
        raise InputError("--model and --data are both required")
    step, relative = parse_step(pgd_step) if pgd_step else (None, False)
    cfg = AssessConfig(
        attacks=_names(attacks, "--attacks") if attacks is not None else policy.attacks or list(ALL_ATTACKS),
        fail_under=fail_under if fail_under is not None else policy.fail_under,
        allow_untrusted=allow_untrusted,
        pgd_steps=_pick(steps, policy.steps, 20),
        pgd_step=step,
        pgd_step_relative=relative,
        random_start=random_start,
        restarts=restarts,
        square_queries=_pick(queries, policy.queries, 1000),
        batch_size=batch_size,
        seed=seed,
        command="modelshield " + " ".join(shlex.quote(a) for a in redact_argv(sys.argv[1:])),
        certify=certify,
        sigma=sigma,
        n0=n0,
        n=n,
        cert_alpha=cert_alpha,
        certify_samples=certify_samples,
        detectors=_names(detector_list, "--detector-list") if detectors else (),
        demo=demo,
        privacy=privacy,
        poisoning=poisoning,
    )
    if apgd_steps is not None:
        cfg.apgd_steps = apgd_steps
    if cw_steps is not None:
        cfg.cw_steps = cw_steps
    if hsj_queries is not None:
        cfg.hsj_budgets = _counts(hsj_queries, "--hsj-queries")
    if eps or policy.eps:
        cfg.eps_linf = parse_floats(eps, "--eps") if eps else policy.eps  # type: ignore[assignment]
    if eps_l2 or policy.eps_l2:
        cfg.eps_l2 = parse_floats(eps_l2, "--eps-l2") if eps_l2 else policy.eps_l2  # type: ignore[assignment]
    if gating_eps or policy.gating_eps:
        cfg.gating_eps = parse_floats(gating_eps, "--gating-eps")[0] if gating_eps else policy.gating_eps
    samples = _pick(samples, policy.samples, None)
    cfg.validate()
    if ray is not None:
        from modelshield.assess.sharded import check_address, check_reachable

        check_reachable(check_address(ray))
        if ray_workers < 1 or ray_cpus < 1 or ray_gpus < 0:
            raise InputError("--ray-workers and --ray-cpus must be at least 1, --ray-gpus at least 0")

    out.mkdir(parents=True, exist_ok=True)
    if demo:
        from modelshield.core.loading import save_torch_model
        from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, demo_model_and_data

        # The demo CNN's batches are tiny (8×8 digits): on one thread the whole demo used 40 s of CPU against 233 s
        # with torch's default threads on 2 shared cores, whose idle workers spin (docs/assess.md, "Timings").
        torch.set_num_threads(1)
        with _stage(console, "training the demo CNN on scikit-learn's digits..."):
            demo_model, ds = demo_model_and_data(seed=seed)
        m: Model = demo_model
        weights = out / "model.safetensors"
        save_torch_model(demo_model.module, weights)
        cfg.model_info = {"name": "demo digits CNN", "path": str(weights), "arch": "modelshield.demo:DigitsCNN"}
        demo_inputs = _Inputs(
            str(weights.resolve()), "", "modelshield.demo:DigitsCNN", None, None, None, None, None, DEMO_NUM_CLASSES, [],
            device, [], None, None,
        )  # fmt: skip
        source = _ModelSource(demo_inputs, DEMO_INPUT_SHAPE, (0.0, 1.0), DEMO_NUM_CLASSES, bf16, channels_last)
        if not (eps or policy.eps):
            cfg.eps_linf = DEMO_EPS
        if not (eps_l2 or policy.eps_l2):
            cfg.eps_l2 = DEMO_EPS_L2
        if not (eps or policy.eps or gating_eps or policy.gating_eps):
            cfg.gating_eps = DEMO_GATE
    else:
        assert model is not None and data is not None
        inputs = _Inputs(
            model,
            data,
            arch,
            arch_kwargs,
            label_column,
            parse_bounds(bounds) if bounds else None,
            mean,
            std,
            num_classes,
            header,
            device,
            trust_type,
            parse_shape(input_shape, "--input-shape") if input_shape else None,
            parse_shape(image_size, "--image-size") if image_size else None,
        )
        m, ds = _load_inputs(inputs)
        where = model if "://" in model else str(Path(model).resolve())  # workers may start in another folder
        source = _ModelSource(replace(inputs, model=where), m.input_shape, m.bounds, m.num_classes, bf16, channels_last)
        shown = redact_url(model)
        cfg.model_info = {"name": Path(model).name if "://" not in model else shown, "path": shown, "arch": arch}
    if samples is not None:
        if samples < 1:
            raise InputError("--samples must be at least 1")
        ds = ds.subset(samples, seed=seed)
    _fast_path(m, bf16, channels_last)
    if ray is not None:  # Ray's start and the workers' model loading take a while before the first attack
        console.print(
            f"ray {ray}: starting {ray_workers} workers, each loading the model itself...",
            highlight=False,
            markup=False,
        )

    watch = None
    if cfg.privacy:
        from modelshield.assess.privacy import DEMO_BATCH

        watch = make_monitor(monitor, DEMO_BATCH, "poisson", monitor_z, out)
    with (
        _progress(console, planned_steps(cfg, m.white_box)) as advance,
        _shards(ray, source, cfg, ray_workers, ray_cpus, ray_gpus, m) as runner,
        watching(watch),
    ):
        result, examples = assess(m, ds, cfg, progress=advance, runner=runner, data_observer=watch)
        if cfg.poisoning:
            stage = "poisoning: BadNets and label flips on digits, screened and retrained"
            advance(stage, 0)
            result.poisoning = _demo_poisoning(seed)
            advance(stage, 1)
    paths = write_reports(result, out, examples)
    _summary(console, result, paths)
    alarms = finish(watch, audit_db)
    if not result.passed or alarms:
        raise typer.Exit(1)


def _shards(
    address: str | None, source: _ModelSource, cfg: AssessConfig, workers: int, cpus: int, gpus: float, driver: Model
) -> AbstractContextManager[AttackRunner | None]:
    """Ray workers for ``--ray`` (each loads the model from ``source``; a guarded endpoint's abstentions they
    see are counted on ``driver``), or nothing: one process."""
    if address is None:
        return nullcontext(None)
    from modelshield.assess.sharded import RayShards

    return RayShards(
        source.load,
        address=address,
        workers=workers,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        cpus_per_worker=cpus,
        gpus_per_worker=gpus,
        driver=driver,
    )


def register(app: typer.Typer) -> None:
    """Add `modelshield assess`."""
    app.command("assess")(assess_command)
