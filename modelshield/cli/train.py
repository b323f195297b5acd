"""``modelshield train --dp``: train a model with DP-SGD and save it with the privacy budget it spent.

The network is the demo digits CNN (``--demo``, or digits-shaped image data), a built-in MLP for
feature vectors, or any ``--arch package.module:Class`` (optionally starting from ``--model`` weights).
Progress per epoch and the spent ε go to the terminal; ``OUT/model.safetensors`` carries the budget in
its header and ``OUT/model.json`` beside it; ``--register NAME --owner TEAM`` also records it in the
model registry. The Poisson sampler's data access is monitored (``--no-monitor`` turns it off): its
summary goes to ``OUT/data-access.json``, and an alarm makes the command exit 1 after the model is saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from modelshield.cli._training_monitor import (
    AuditDbOption,
    MonitorOption,
    MonitorZOption,
    finish,
    make_monitor,
    watching,
)
from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from torch import nn

    from modelshield.core.datasets import Dataset
    from modelshield.privacy.dp import DPReport, EpochStats

DEMO_ARCH = "modelshield.demo:DigitsCNN"
MLP_ARCH = "modelshield.privacy.dp.models:TabularMLP"


def _network(
    arch: str | None, arch_kwargs: dict[str, Any] | None, weights: str | None, train: Dataset
) -> tuple[nn.Module, str, dict[str, Any] | None]:
    """The network to train and the architecture reference that rebuilds it."""
    from modelshield.core.loading import read_model
    from modelshield.core.model import TorchModel

    num_classes = int(train.y.max()) + 1
    if arch is None:
        if tuple(train.x.shape[1:]) == (1, 8, 8):
            arch, arch_kwargs = DEMO_ARCH, {"num_classes": num_classes}
        elif train.x.ndim == 2:
            arch, arch_kwargs = MLP_ARCH, {"in_features": int(train.x.shape[1]), "num_classes": num_classes}
        else:
            raise InputError(
                f"no built-in network for inputs of shape {tuple(train.x.shape[1:])}; give --arch package.module:Class"
            )
    if weights is not None:
        loaded = read_model(weights, arch=arch, arch_kwargs=arch_kwargs, input_shape=tuple(train.x.shape[1:]))
        if not isinstance(loaded, TorchModel):
            raise InputError(f"{weights} is not safetensors weights for {arch}")
        net = loaded.module
        for p in net.parameters():
            p.requires_grad_(True)
        return net, arch, arch_kwargs
    from modelshield.core.loading import build_arch

    return build_arch(arch, arch_kwargs), arch, arch_kwargs


def _data(
    demo: bool, data: str | None, test_data: str | None, label_column: str | None
) -> tuple[Dataset, Dataset | None]:
    from modelshield.core.datasets import load_dataset, sklearn_dataset

    if demo:
        return sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")
    if data is None:
        raise InputError("give --data (or --demo for the digits CNN on scikit-learn's digits)")
    train = load_dataset(data, label_column=label_column)
    test = load_dataset(test_data, label_column=label_column) if test_data else None
    return train, test


def _accuracy(net: nn.Module, test: Dataset) -> float:
    import torch

    device = next(net.parameters()).device
    with torch.no_grad():
        pred = torch.cat([net(test.x[i : i + 1024].to(device)).argmax(1).cpu() for i in range(0, len(test), 1024)])
    return float((pred == test.y).float().mean())


def _summary(report: DPReport, accuracy: float | None, paths: dict[str, Path]) -> None:
    console = Console(markup=False)  # paths print as written
    table = Table(title="DP-SGD: privacy budget spent", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    rows = [
        ("ε spent", f"{report.epsilon:.3f}"),
        ("target ε", "—" if report.target_epsilon is None else f"{report.target_epsilon:g}"),
        ("δ", f"{report.delta:g}"),
        ("noise multiplier σ", f"{report.noise_multiplier:.3f}"),
        ("sampling rate q", f"{report.sample_rate:.4g}"),
        ("steps", f"{report.steps} of {report.planned_steps}"),
        ("max grad norm C", f"{report.max_grad_norm:g}"),
        ("accountant", report.accountant),
    ]
    if accuracy is not None:
        rows.append(("test accuracy", f"{accuracy:.1%}"))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    if report.stopped_at_target:
        console.print(
            f"stopped after step {report.steps}: the next would have spent more than ε={report.target_epsilon:g}"
        )
    for kind, path in paths.items():
        console.print(f"{kind:8} {path}", highlight=False)


def train_command(
    dp: Annotated[
        bool, typer.Option("--dp", help="Train with DP-SGD (required: the only mode of this command).")
    ] = False,
    demo: Annotated[bool, typer.Option("--demo", help="The digits CNN on scikit-learn's digits.")] = False,
    data: Annotated[
        str | None, typer.Option(help="Training data: sklearn:breast_cancer:train, .npz (x, y), CSV, Parquet, images.")
    ] = None,
    test_data: Annotated[str | None, typer.Option(help="Evaluation data for the test accuracy.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column for CSV/Parquet data.")] = None,
    arch: Annotated[
        str | None, typer.Option(help="Network 'package.module:Class' (default: digits CNN or a built-in MLP).")
    ] = None,
    arch_kwargs: Annotated[str | None, typer.Option(help="JSON keyword arguments for --arch.")] = None,
    model: Annotated[str | None, typer.Option(help="Start from these safetensors weights (with --arch).")] = None,
    epsilon: Annotated[float | None, typer.Option(help="Target ε: training never spends more.")] = None,
    delta: Annotated[
        float | None,
        typer.Option(help="δ of the (ε, δ) guarantee, below 1/N; default 1e-5, or 10^⌊log10(0.1/N)⌋ for N ≥ 100,000."),
    ] = None,
    max_grad_norm: Annotated[float, typer.Option(help="Per-sample gradient clipping norm C.")] = 1.0,
    noise_multiplier: Annotated[
        float | None, typer.Option(help="σ; default: derived from --epsilon for the planned epochs.")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Epochs planned (each ≈ N / batch-size Poisson-sampled steps).")] = 20,
    batch_size: Annotated[int, typer.Option(help="Expected batch size q·N.")] = 128,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: 0.01 for adam, 1.0 for sgd).")] = None,
    optimizer: Annotated[str, typer.Option(help="adam (default) or sgd (momentum 0.9).")] = "adam",
    accountant: Annotated[str, typer.Option(help="rdp (default) or pld (tighter, slower).")] = "rdp",
    seed: Annotated[int, typer.Option(help="Seed for sampling, noise and initial weights.")] = 0,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    device: Annotated[str | None, typer.Option(help="Torch device, e.g. cuda:0.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for model.safetensors and model.json.")] = Path("dp-model"),
    register_as: Annotated[
        str | None, typer.Option("--register", help="Also register the model in the registry under this name.")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Owner recorded with --register.")] = None,
    db: Annotated[
        str | None, typer.Option("--db", envvar="MODELSHIELD_DB_URL", help="Registry database URL for --register.")
    ] = None,
    monitor: MonitorOption = True,
    monitor_z: MonitorZOption = 5.0,
    audit_db: AuditDbOption = None,
) -> None:
    """Train a model with differential privacy (DP-SGD) and save it with the ε it spent."""
    if not dp:
        raise InputError(
            "modelshield train trains with differential privacy only; add --dp",
            hint="for non-private training use modelshield harden --method standard",
        )
    if demo and data:
        raise InputError("give --demo or --data, not both")
    if register_as is not None and not owner:
        raise InputError("--register needs --owner (who is accountable for the model)")
    if (out / "model.safetensors").exists():
        raise InputError(f"{out} already holds a model", hint="pick another --out")
    import torch

    from modelshield.cli._options import parse_arch_kwargs
    from modelshield.privacy.dp import save_dp_model, train_dp
    from modelshield.privacy.dp.accountant import ACCOUNTANTS
    from modelshield.privacy.dp.training import DPOptimizer, default_delta

    if accountant not in ACCOUNTANTS:
        raise InputError(f"--accountant must be one of {', '.join(ACCOUNTANTS)}, not {accountant!r}")
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    train, test = _data(demo, data, test_data, label_column)
    net, arch_ref, arch_kw = _network(arch, parse_arch_kwargs(arch_kwargs), model, train)
    if device is not None:
        net = net.to(device)
    err = Console(stderr=True, highlight=False, markup=False)

    def progress(s: EpochStats) -> None:
        err.print(
            f"epoch {s.epoch:>3}/{epochs}  step {s.steps:>5}  loss {s.loss:.4f}  ε {s.epsilon:.3f}  {s.seconds:.1f} s"
        )

    watch = make_monitor(monitor, batch_size, "poisson", monitor_z, out)
    with watching(watch):
        net, report = train_dp(
            net,
            train.x,
            train.y,
            epsilon=epsilon,
            delta=default_delta(len(train.x)) if delta is None else delta,
            epochs=epochs,
            batch_size=batch_size,
            max_grad_norm=max_grad_norm,
            noise_multiplier=noise_multiplier,
            lr=lr if lr is not None else (0.01 if optimizer == "adam" else None),
            optimizer=cast("DPOptimizer", optimizer),
            accountant=accountant,
            seed=seed,
            progress=progress,
            data_observer=watch,
        )
    accuracy = _accuracy(net, test) if test is not None else None
    info = {
        "name": "demo digits CNN" if demo else Path(data or "").name,
        "arch": arch_ref,
        "arch_kwargs": arch_kw,
        "input_shape": list(train.x.shape[1:]),
        "num_classes": int(train.y.max()) + 1,
        "bounds": list(train.bounds),
        "method": "dp-sgd",
        "data": "sklearn:digits:train" if demo else data,
        "test_accuracy": accuracy,
    }
    paths = save_dp_model(net, report, out, info)
    if register_as is not None:
        from modelshield.privacy.dp import registry_metadata
        from modelshield.registry import Registry

        with Registry.open(db) as reg:
            mv = reg.register(
                register_as,
                paths["weights"],
                owner=cast(str, owner),
                datasets=[cast(str, info["data"])],
                metadata=registry_metadata(report),
            )
        err.print(f"registered {mv.ref} {mv.digest} with ε={report.epsilon:.3f} at δ={report.delta:g}")
    _summary(report, accuracy, paths)
    if finish(watch, audit_db):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `modelshield train`."""
    app.command("train")(train_command)
