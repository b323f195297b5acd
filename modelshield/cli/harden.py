"""``modelshield harden``: robust training from the command line, with before/after robustness.

A run's settings are written to ``OUT/harden.json`` before training starts, so
``modelshield harden --resume OUT`` continues an interrupted run from its last checkpoint with
exactly the settings it began with (``--epochs`` may extend it). The training loop's data access is
monitored (``--no-monitor`` turns it off): its summary goes to ``OUT/data-access.json`` after every epoch
(a resumed run numbers its epochs from the checkpoint's and merges its record into the earlier one), and an
alarm makes the command exit 1 after everything is written.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from modelshield.cli._options import parse_arch_kwargs, parse_bounds, parse_floats
from modelshield.cli._training_monitor import (
    AuditDbOption,
    MonitorOption,
    MonitorZOption,
    finish,
    make_monitor,
    watching,
)
from modelshield.cli.assess import DEMO_EPS, DEMO_EPS_L2, DEMO_GATE, redact_argv
from modelshield.core.errors import InputError

if TYPE_CHECKING:  # torch loads only when a run starts, so `modelshield --help` stays fast
    from modelshield.core.datasets import Dataset
    from modelshield.core.model import TorchModel
    from modelshield.defenses.training.config import Optimizer, Schedule
    from modelshield.defenses.training.harden import HardenOutcome
    from modelshield.monitor.training import DataAccessMonitor

SETTINGS_FILE = "harden.json"
DEMO_ARCH = "modelshield.demo:DigitsCNN"


@dataclass
class Settings:
    """Everything that defines a run; saved as OUT/harden.json and reloaded by --resume."""

    demo: bool = False
    model: str | None = None
    arch: str | None = None
    arch_kwargs: dict[str, Any] | None = None
    data: str | None = None
    test_data: str | None = None
    test_fraction: float = 0.2
    label_column: str | None = None
    bounds: list[float] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    method: str = "pgd"
    eps: float | None = None
    gating_eps: float | None = None
    steps: int | None = None
    beta: float | None = None
    replays: int | None = None
    temperature: float | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    lr_schedule: str = "constant"
    val_fraction: float = 0.1
    patience: int | None = None
    eval_steps: int = 20
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    bf16: bool = False
    channels_last: bool = False


def _settings_from_file(folder: Path) -> Settings:
    from modelshield.defenses.training.history import read_json_object

    path = folder / SETTINGS_FILE
    data = read_json_object(path, f"{folder} holds no harden run to resume ({SETTINGS_FILE} is missing)")
    known = {f.name for f in fields(Settings)}
    if set(data) - known:
        raise InputError(f"{path} is not a harden settings file")
    return Settings(**data)


def _split(ds: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A reproducible (train, test) split of one dataset."""
    import numpy as np
    import torch

    from modelshield.core.datasets import Dataset

    n_test = int(round(len(ds) * fraction))
    if not 0 < n_test < len(ds):
        raise InputError(f"--test-fraction {fraction} leaves no training or no test data out of {len(ds)} samples")
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(ds)))
    te, tr = perm[:n_test], perm[n_test:]
    return (
        Dataset(ds.x[tr], ds.y[tr], ds.name, ds.bounds, ds.class_names),
        Dataset(ds.x[te], ds.y[te], ds.name, ds.bounds, ds.class_names),
    )


def _inputs(s: Settings) -> tuple[TorchModel, Dataset, Dataset, dict[str, Any]]:
    """The model to harden, its training and test data, and its architecture reference."""
    from modelshield.core.datasets import load_dataset, sklearn_dataset
    from modelshield.core.model import TorchModel
    from modelshield.integrity.safe_load import load_model

    if s.demo:
        from modelshield.demo import demo_model_and_data

        model, test = demo_model_and_data(seed=s.seed)
        train = sklearn_dataset("digits", "train", seed=s.seed)
        return model, train, test, {"name": "demo digits CNN", "arch": DEMO_ARCH, "arch_kwargs": None}
    assert s.model is not None and s.data is not None
    bounds = (s.bounds[0], s.bounds[1]) if s.bounds else None
    train = load_dataset(s.data, label_column=s.label_column, bounds=bounds)
    if s.test_data:
        test = load_dataset(s.test_data, label_column=s.label_column, bounds=bounds or train.bounds)
    else:
        train, test = _split(train, s.test_fraction, s.seed)
    loaded = load_model(
        s.model,
        arch=s.arch,
        arch_kwargs=s.arch_kwargs,
        input_shape=tuple(train.x.shape[1:]),
        bounds=bounds or train.bounds,
        mean=s.mean,
        std=s.std,
        device=s.device,
    )
    if not isinstance(loaded, TorchModel):
        raise InputError(f"{s.model} is not safetensors weights; robust training needs a PyTorch network and --arch")
    info = {"name": Path(s.model).name, "arch": s.arch, "arch_kwargs": s.arch_kwargs, "mean": s.mean, "std": s.std}
    return loaded, train, test, info


def _print(outcome: HardenOutcome, method: str) -> None:
    console = Console(markup=False)  # paths print as written
    console.print(
        f"modelshield harden — {method}: robustness under PGD-{outcome.steps} at L∞ ε={outcome.eps:g}", highlight=False
    )
    table = Table()
    for col in ("model", "clean acc", "robust acc"):
        table.add_column(col, justify="left" if col == "model" else "right")
    table.add_row("before", f"{outcome.before.clean:.1%}", f"{outcome.before.robust:.1%}")
    table.add_row(f"after ({method})", f"{outcome.after.clean:.1%}", f"{outcome.after.robust:.1%}")
    console.print(table)
    r = outcome.result
    ran = len(r.history)
    note = " (stopped early)" if r.stopped_early else ""
    best = f", best epoch {r.best_epoch} restored" if r.best_epoch is not None and r.best_epoch != ran else ""
    console.print(f"{ran} epochs{note}{best}, {sum(h.seconds for h in r.history):.1f} s of training", highlight=False)
    for kind, path in outcome.paths.items():
        console.print(f"{kind:8} {path}", highlight=False)


def _report(model: TorchModel, test: Dataset, s: Settings, gate: float, out: Path, info: dict[str, Any]) -> None:
    """The usual assessment of the hardened model, written to OUT/report."""
    from modelshield.assess.runner import AssessConfig, assess
    from modelshield.report import write_reports

    cfg = AssessConfig(
        gating_eps=gate,
        seed=s.seed,
        command="modelshield " + " ".join(shlex.quote(a) for a in redact_argv(sys.argv[1:])),
    )
    if s.demo:
        cfg.eps_linf, cfg.eps_l2 = DEMO_EPS, DEMO_EPS_L2
    cfg.model_info = {
        "name": f"{info['name']} hardened with {s.method}",
        "path": str(out / "model.safetensors"),
        "arch": info["arch"],
    }
    with Console(stderr=True).status("assessing the hardened model..."):
        result, examples = assess(model, test, cfg)
    for kind, path in write_reports(result, out / "report", examples).items():
        Console(markup=False).print(f"report   {kind}: {path}", highlight=False)


def harden_command(
    demo: Annotated[bool, typer.Option("--demo", help="Harden the built-in digits CNN (trained in seconds).")] = False,
    model: Annotated[str | None, typer.Option(help="Model weights to harden (safetensors, with --arch).")] = None,
    arch: Annotated[str | None, typer.Option(help="Network for the weights: 'package.module:Class'.")] = None,
    arch_kwargs: Annotated[str | None, typer.Option(help="JSON keyword arguments for --arch.")] = None,
    data: Annotated[
        str | None, typer.Option(help="Training data: sklearn:digits:train, .npz (x, y), CSV, Parquet, image folder.")
    ] = None,
    test_data: Annotated[
        str | None, typer.Option(help="Evaluation data (default: --test-fraction held out of --data).")
    ] = None,
    test_fraction: Annotated[
        float | None, typer.Option(help="Share of --data held out for the before/after evaluation (0.2).")
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="pgd (Madry), trades, fast (Wong), free (Shafahi), distill (Papernot), standard.")
    ] = None,
    eps: Annotated[
        str | None, typer.Option(help="L∞ budget to train against; fractions allowed (8/255). Demo default 0.1.")
    ] = None,
    gating_eps: Annotated[
        str | None, typer.Option(help="L∞ ε for the before/after evaluation (default: --eps).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Attack steps per batch: PGD (7) or TRADES (10).")] = None,
    beta: Annotated[float | None, typer.Option(help="TRADES robustness weight β (6).")] = None,
    replays: Annotated[int | None, typer.Option(help="Free training: replays m per minibatch (4).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Distillation temperature T (20).")] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs (10); with --resume, a larger number extends the run.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Minibatch size (128).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (1e-3).")] = None,
    optimizer: Annotated[str | None, typer.Option(help="adam (default) or sgd.")] = None,
    lr_schedule: Annotated[
        str | None, typer.Option(help="constant (default) or cyclic (one cycle, as fast training uses).")
    ] = None,
    val_fraction: Annotated[
        float | None, typer.Option(help="Share of training data held out for validation (0.1).")
    ] = None,
    patience: Annotated[
        int | None, typer.Option(help="Stop after this many epochs without a validation robust-accuracy gain.")
    ] = None,
    eval_steps: Annotated[int | None, typer.Option(help="PGD steps of the before/after evaluation (20).")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column for CSV/Parquet data.")] = None,
    bounds: Annotated[
        str | None, typer.Option(help="Input bounds 'lo,hi' (default: [0,1] for images, data range otherwise).")
    ] = None,
    mean: Annotated[
        str | None, typer.Option(help="Per-channel normalisation mean applied inside the model adapter.")
    ] = None,
    std: Annotated[
        str | None, typer.Option(help="Per-channel normalisation std applied inside the model adapter.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="Torch device, e.g. cuda:0.")] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for torch (demo: 1, fastest for its small network).")
    ] = None,
    bf16: Annotated[bool, typer.Option("--bf16", help="Forwards under bf16 autocast (GPU speed).")] = False,
    channels_last: Annotated[
        bool, typer.Option("--channels-last", help="Channels-last memory for the network.")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Random seed (0).")] = None,
    out: Annotated[
        Path, typer.Option(help="Folder for model.safetensors, model.json, history.json, checkpoints/.")
    ] = Path("hardened"),
    resume: Annotated[Path | None, typer.Option(help="Continue the interrupted run in this folder.")] = None,
    report: Annotated[bool, typer.Option("--report", help="Also assess the hardened model into OUT/report.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr.")] = True,
    monitor: MonitorOption = True,
    monitor_z: MonitorZOption = 5.0,
    audit_db: AuditDbOption = None,
) -> None:
    """Train a model to resist evasion attacks and show its robustness before and after."""
    given: dict[str, Any] = {
        "model": model,
        "arch": arch,
        "data": data,
        "test_data": test_data,
        "test_fraction": test_fraction,
        "method": method,
        "steps": steps,
        "beta": beta,
        "replays": replays,
        "temperature": temperature,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": optimizer,
        "lr_schedule": lr_schedule,
        "val_fraction": val_fraction,
        "patience": patience,
        "eval_steps": eval_steps,
        "label_column": label_column,
        "device": device,
        "threads": threads,
        "seed": seed,
        "arch_kwargs": parse_arch_kwargs(arch_kwargs),
        "eps": _one(eps, "--eps"),
        "gating_eps": _one(gating_eps, "--gating-eps"),
        "bounds": _bounds(bounds),
        "mean": parse_floats(mean, "--mean") if mean else None,
        "std": parse_floats(std, "--std") if std else None,
    }
    flags = {"demo": demo, "bf16": bf16, "channels_last": channels_last}
    if resume is not None:
        clash = sorted(k for k, v in {**given, **flags}.items() if v not in (None, False))
        if clash:
            raise InputError(
                f"--resume reuses the run's settings; drop {', '.join('--' + k.replace('_', '-') for k in clash)}"
            )
        s = _settings_from_file(resume)
        out = resume
    else:
        s = Settings(**{**asdict(Settings()), **{k: v for k, v in given.items() if v is not None}, **flags})
        _check_sources(s)
        if s.demo and s.eps is None and s.method not in ("standard", "distill"):
            s.eps = DEMO_GATE
        if s.demo and s.threads is None:
            s.threads = 1
    if epochs is not None:
        s.epochs = epochs
    watch = make_monitor(monitor, s.batch_size, "shuffle", monitor_z, out, resumed=resume is not None)
    _run(s, out, resume is not None, report, progress, watch)
    if finish(watch, audit_db):
        raise typer.Exit(1)


def _run(s: Settings, out: Path, resuming: bool, report: bool, progress: bool, watch: DataAccessMonitor | None) -> None:
    import torch

    from modelshield.defenses.training import TrainConfig, make_trainer
    from modelshield.defenses.training.harden import harden

    trainer = make_trainer(
        s.method, eps=s.eps, steps=s.steps, beta=s.beta, replays=s.replays, temperature=s.temperature
    )
    gate = s.gating_eps or s.eps or (DEMO_GATE if s.demo else None)
    if gate is None:
        raise InputError(f"method {s.method} trains without ε; give --gating-eps for the before/after evaluation")
    cfg = TrainConfig(
        epochs=s.epochs,
        batch_size=s.batch_size,
        lr=s.lr,
        optimizer=cast("Optimizer", s.optimizer),  # TrainConfig checks both and says what it takes
        lr_schedule=cast("Schedule", s.lr_schedule),
        seed=s.seed,
        val_fraction=s.val_fraction,
        val_eps=gate,
        patience=s.patience,
        checkpoint_dir=out / "checkpoints",
        resume=resuming,
        progress=progress,
    )
    cfg.validate()
    if s.threads is not None:
        if s.threads < 1:
            raise InputError(f"--threads must be at least 1, got {s.threads}")
        torch.set_num_threads(s.threads)
    if s.eval_steps < 1 or not 0 < s.test_fraction < 1:
        raise InputError("--eval-steps must be at least 1 and --test-fraction lie in (0, 1)")
    if not resuming and (out / SETTINGS_FILE).exists():
        raise InputError(
            f"{out} already holds a harden run", hint=f"continue it with --resume {out}, or pick another --out"
        )
    torch.manual_seed(s.seed)
    with Console(stderr=True).status("loading the model and data..."):
        m, train, test, info = _inputs(s)
    if s.bf16 or s.channels_last:
        m.use_fast_path(autocast_dtype=torch.bfloat16 if s.bf16 else None, channels_last=s.channels_last)
    out.mkdir(parents=True, exist_ok=True)
    (out / SETTINGS_FILE).write_text(json.dumps(asdict(s), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    with watching(watch):
        outcome = harden(
            m, train, test, trainer, cfg, out=out, eval_eps=gate, eval_steps=s.eval_steps, model_info=info,
            data_observer=watch,
        )  # fmt: skip
    _print(outcome, s.method)
    if report:
        _report(m, test, s, gate, out, info)


def _check_sources(s: Settings) -> None:
    if s.demo == bool(s.model or s.data):
        raise InputError("give either --demo or both --model and --data")
    if not s.demo and not (s.model and s.data):
        raise InputError("--model and --data are both required (or use --demo)")


def _one(text: str | None, what: str) -> float | None:
    if text is None:
        return None
    values = parse_floats(text, what)
    if len(values) != 1 or values[0] <= 0:
        raise InputError(f"{what} takes one positive number, got {text!r}")
    return values[0]


def _bounds(text: str | None) -> list[float] | None:
    if text is None:
        return None
    return list(parse_bounds(text))


def register(app: typer.Typer) -> None:
    """Add `modelshield harden`."""
    app.command("harden")(harden_command)
