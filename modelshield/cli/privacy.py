"""``modelshield privacy audit``: membership-inference attacks on a model and its training data.

Give the model, the data it was trained on (members) and data it never saw (non-members); each attack
scores every sample, and the table shows how well the scores separate the two: AUC, TPR at 0.1 % and
1 % FPR (the figure Carlini et al. argue matters) and the ε lower bound the attack demonstrates
(``modelshield.privacy.audit``). Reference-model attacks (LiRA, RMIA, shadow) retrain the target's
recipe on random halves of members ∪ non-members ∪ ``--population``: a scikit-learn model is refitted
from a clone, a PyTorch network is re-initialised and trained with the project's training loop.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.core.errors import InputError

if TYPE_CHECKING:  # torch loads only when a run starts, so `modelshield --help` stays fast
    from torch import Tensor

    from modelshield.attacks.privacy import RocSummary, TrainFn
    from modelshield.core.datasets import Dataset
    from modelshield.core.model import Model, TorchModel

privacy_app = typer.Typer(help="Privacy attacks: membership inference audits.", no_args_is_help=True)

DEFAULT_ATTACKS = "loss,confidence,label-only,lira,lira-offline,rmia,shadow"
DEMO_MEMBERS = 100


def _attack_names(text: str) -> list[str]:
    from modelshield.attacks.privacy import MEMBERSHIP_ATTACKS

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError("--attacks: no attack named")
    bad = [n for n in names if n not in MEMBERSHIP_ATTACKS]
    if bad:
        raise InputError(f"--attacks: unknown attack {bad[0]!r}; choose from {', '.join(MEMBERSHIP_ATTACKS)}")
    return list(dict.fromkeys(names))


def torch_train_fn(
    template: TorchModel, *, epochs: int, lr: float, batch_size: int | None, seed: int, weight_decay: float = 0.0
) -> TrainFn:
    """Re-initialise a copy of ``template``'s network and train it with plain cross-entropy (defenses.training)."""
    import copy

    import torch

    from modelshield.core.datasets import Dataset
    from modelshield.core.model import TorchModel
    from modelshield.defenses.training import StandardTraining, TrainConfig

    if isinstance(template.module, torch.jit.ScriptModule):
        raise InputError("reference models retrain the network: give safetensors weights with --arch, not TorchScript")
    stateless = [
        type(m).__name__
        for m in template.module.modules()
        if any(True for _ in m.parameters(recurse=False)) and not hasattr(m, "reset_parameters")
    ]
    if stateless:
        raise InputError(f"cannot re-initialise {stateless[0]} layers for reference models (no reset_parameters)")

    def train(x: Tensor, y: Tensor) -> Model:
        torch.manual_seed(seed)
        net = copy.deepcopy(template.module)
        for m in net.modules():
            if any(True for _ in m.parameters(recurse=False)):
                m.reset_parameters()  # type: ignore[operator]
        model = TorchModel(
            net, input_shape=template.input_shape, num_classes=template.num_classes, bounds=template.bounds
        )
        cfg = TrainConfig(
            epochs=epochs,
            batch_size=batch_size or len(x),
            lr=lr,
            weight_decay=weight_decay,
            val_fraction=0.0,
            progress=False,
            seed=seed,
        )
        StandardTraining().fit(model, Dataset(x, y, "reference"), cfg)
        return model

    return train


def _train_fn(model: Model, epochs: int, lr: float, batch_size: int | None, seed: int) -> TrainFn:
    from modelshield.attacks.privacy import sklearn_train_fn
    from modelshield.core.adapters import SklearnModel
    from modelshield.core.model import TorchModel

    if isinstance(model, SklearnModel):
        return sklearn_train_fn(model.estimator, input_shape=model.input_shape, bounds=model.bounds)
    if isinstance(model, TorchModel):
        return torch_train_fn(model, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    raise InputError(
        f"reference-model attacks retrain the model, and a {type(model).__name__} cannot be retrained here",
        hint="give a skops or safetensors (--arch) model, or choose --attacks loss,confidence,label-only",
    )


def _demo(seed: int) -> tuple[TorchModel, Dataset, Dataset]:
    """An MLP that memorises 100 digits (300 full-batch epochs), 100 other digits as non-members."""
    import numpy as np
    import torch
    from torch import nn

    from modelshield.core.datasets import Dataset, sklearn_dataset
    from modelshield.core.model import TorchModel

    data = sklearn_dataset("digits", "all", seed=seed)
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(data))[: 2 * DEMO_MEMBERS])
    x, y = data.x[order].reshape(-1, 64), data.y[order]
    net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    template = TorchModel(net, input_shape=(64,), num_classes=10)
    model = torch_train_fn(template, epochs=300, lr=1e-2, batch_size=None, seed=seed)(
        x[:DEMO_MEMBERS], y[:DEMO_MEMBERS]
    )
    assert isinstance(model, TorchModel)
    return (
        model,
        Dataset(x[:DEMO_MEMBERS], y[:DEMO_MEMBERS], "digits members"),
        Dataset(x[DEMO_MEMBERS:], y[DEMO_MEMBERS:], "digits non-members"),
    )


def _inputs(
    model_path: str | None,
    members: str | None,
    non_members: str | None,
    arch: str | None,
    arch_kwargs: str | None,
    label_column: str | None,
    bounds: str | None,
    trust_types: list[str],
) -> tuple[Model, Dataset, Dataset]:
    from modelshield.cli._options import flag_words, parse_arch_kwargs, parse_bounds
    from modelshield.core.datasets import load_dataset
    from modelshield.core.errors import ModelShieldError
    from modelshield.integrity.safe_load import load_model

    if not (model_path and members and non_members):
        raise InputError("give --model, --members and --non-members (or --demo)")
    box = parse_bounds(bounds) if bounds else None
    kwargs = parse_arch_kwargs(arch_kwargs)
    ins = load_dataset(members, label_column=label_column, bounds=box)
    outs = load_dataset(non_members, label_column=label_column, bounds=box)
    if tuple(ins.x.shape[1:]) != tuple(outs.x.shape[1:]):
        raise InputError(f"members have shape {tuple(ins.x.shape[1:])}, non-members {tuple(outs.x.shape[1:])}")
    lo = min(ins.bounds[0], outs.bounds[0]) if box is None else box[0]
    hi = max(ins.bounds[1], outs.bounds[1]) if box is None else box[1]
    try:
        model = load_model(
            model_path,
            arch=arch,
            arch_kwargs=kwargs,
            input_shape=tuple(ins.x.shape[1:]),
            bounds=(lo, hi),
            trusted_types=trust_types or None,
        )
    except ModelShieldError as e:
        raise flag_words(e) from e
    return model, ins, outs


def _row(name: str, roc: RocSummary, bound: float, seconds: float) -> dict[str, Any]:
    return {
        "attack": name,
        **roc.to_dict(curve=True),
        "epsilon_lower_bound": round(bound, 4),
        "seconds": round(seconds, 3),
    }


def _plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Log-log ROC curves, as Carlini et al. draw them: the low-FPR corner is where attacks differ."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from modelshield.core.files import atomic_output

    fig = Figure(figsize=(5.2, 4.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    floor = min(r["fpr_resolution"] for r in rows) / 2
    grid = np.logspace(np.log10(floor), 0, 50)
    ax.plot(grid, grid, color="#999999", linestyle=":", label="chance")
    for r in rows:
        fpr = np.maximum(np.asarray(r["roc"]["fpr"]), floor)
        tpr = np.maximum(np.asarray(r["roc"]["tpr"]), floor)
        ax.plot(fpr, tpr, label=f"{r['attack']} (AUC {r['auc']:.2f})")
    ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1.05), xlabel="false-positive rate")
    ax.set(ylabel="true-positive rate", title=title)
    ax.axvline(rows[0]["fpr_resolution"], color="#c62828", linewidth=0.8, alpha=0.6)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_output(path, mode=0o644) as f:
        fig.savefig(f, format="png", dpi=110, metadata={"Software": None})


def _print(rows: list[dict[str, Any]], header: str, notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)
    console.print(header, highlight=False)
    table = Table()
    for col in ("attack", "AUC", "TPR@0.1%FPR", "TPR@1%FPR", "ε lower bound", "seconds"):
        table.add_column(col, justify="left" if col == "attack" else "right")
    for r in rows:
        star = "*" if 0.001 in r["unresolved_fprs"] else ""
        table.add_row(
            r["attack"],
            f"{r['auc']:.3f}",
            f"{r['tpr_at_fpr_0.001']:.1%}{star}",
            f"{r['tpr_at_fpr_0.01']:.1%}",
            f"{r['epsilon_lower_bound']:.2f}",
            f"{r['seconds']:.1f}",
        )
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)


@privacy_app.command("audit")
def audit_command(
    model: Annotated[
        str | None, typer.Option(help="The model: skops, ONNX, TorchScript, or safetensors with --arch.")
    ] = None,
    members: Annotated[
        str | None, typer.Option(help="Data the model was trained on: sklearn:..., .npz (x, y), CSV, Parquet, folder.")
    ] = None,
    non_members: Annotated[
        str | None, typer.Option(help="Data from the same distribution the model never saw.")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Audit a digits MLP that memorises its 100 training samples.")
    ] = False,
    attacks: Annotated[
        str,
        typer.Option(
            help="Comma-separated: loss, confidence, label-only, lira, lira-offline, rmia, rmia-offline, shadow."
        ),
    ] = DEFAULT_ATTACKS,
    population: Annotated[
        str | None, typer.Option(help="More non-member data for the reference models' training pool.")
    ] = None,
    reference_models: Annotated[int, typer.Option(help="Reference models to train (even; LiRA wants 16+).")] = 8,
    ref_epochs: Annotated[int, typer.Option(help="Epochs per PyTorch reference model (the target's recipe).")] = 300,
    ref_lr: Annotated[float, typer.Option(help="Adam learning rate of PyTorch reference models.")] = 1e-2,
    ref_batch_size: Annotated[
        int | None, typer.Option(help="Minibatch of PyTorch reference models (default: full batch).")
    ] = None,
    arch: Annotated[str | None, typer.Option(help="Network for safetensors weights: 'package.module:Class'.")] = None,
    arch_kwargs: Annotated[str | None, typer.Option(help="JSON keyword arguments for --arch.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column for CSV/Parquet data.")] = None,
    trust_type: Annotated[
        list[str] | None,
        typer.Option("--trust-type", help="A type a skops model needs that skops does not trust (repeatable)."),
    ] = None,
    bounds: Annotated[str | None, typer.Option(help="Input bounds 'lo,hi' (default: the data's range).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed for reference-model splits and noise.")] = 0,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the figures and ROC curves here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a log-scale ROC plot (PNG) here.")] = None,
) -> None:
    """Attack a model's membership privacy: AUC, TPR at 0.1 %/1 % FPR and the ε lower bound per attack."""
    names = _attack_names(attacks)
    if reference_models < 2 or reference_models % 2:
        raise InputError(f"--reference-models must be an even number ≥ 2, got {reference_models}")
    if ref_epochs < 1 or not ref_lr > 0 or (ref_batch_size is not None and ref_batch_size < 1):
        raise InputError("--ref-epochs and --ref-batch-size must be ≥ 1, --ref-lr positive")
    if threads is not None and threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    if demo and (model or members or non_members):
        raise InputError("--demo brings its own model and data; drop --model/--members/--non-members")
    import numpy as np
    import torch

    from modelshield.attacks.privacy import ReferenceModels, membership_attacks, needs_references, roc_summary
    from modelshield.core.datasets import load_dataset
    from modelshield.privacy.audit import epsilon_lower_bound

    if threads is not None:
        torch.set_num_threads(threads)
    target: Model
    if demo:
        target, ins, outs = _demo(seed)
        what = "demo: digits MLP, 100 memorised training samples"
    else:
        target, ins, outs = _inputs(
            model, members, non_members, arch, arch_kwargs, label_column, bounds, trust_type or []
        )
        what = str(model)
    x = torch.cat([ins.x, outs.x])
    y = torch.cat([ins.y, outs.y])
    is_member = np.r_[np.ones(len(ins), bool), np.zeros(len(outs), bool)]
    target.check_inputs(x, y)
    references = None
    ref_seconds = 0.0
    if needs_references(names):
        train_fn = _train_fn(target, ref_epochs, ref_lr, ref_batch_size, seed + 1)
        pool_x, pool_y = x, y
        if population:
            extra = load_dataset(population, label_column=label_column, bounds=target.bounds)
            pool_x, pool_y = torch.cat([x, extra.x]), torch.cat([y, extra.y])
        start = time.perf_counter()
        references = ReferenceModels.train(train_fn, pool_x, pool_y, n_models=reference_models, seed=seed)
        ref_seconds = time.perf_counter() - start
    rows = []
    for attack in membership_attacks(names, references, seed=seed):
        start = time.perf_counter()
        scores = attack.scores(target, x, y)
        seconds = time.perf_counter() - start
        bound = epsilon_lower_bound(scores, is_member)
        rows.append(_row(attack.name, roc_summary(scores, is_member), bound.epsilon, seconds))
    n_out = len(outs)
    notes = []
    if any(0.001 in r["unresolved_fprs"] for r in rows):
        notes.append(
            f"* {n_out} non-members resolve FPR down to 1/{n_out} = {1 / n_out:.2%}: TPR at 0.1 % FPR is interpolated "
            "below that resolution (give more non-members to measure it)"
        )
    if references is not None:
        notes.append(f"{reference_models} reference models trained in {ref_seconds:.1f} s (not in the seconds column)")
    header = f"modelshield privacy audit — {what}: {len(ins)} members, {n_out} non-members"
    if plot is not None:
        _plot(rows, plot, f"membership inference: {Path(what).name if not demo else 'demo digits MLP'}")
        notes.append(f"plot     {plot}")
    if json_out is not None:
        from modelshield.core.files import atomic_output

        doc = {
            "model": what,
            "members": len(ins),
            "non_members": n_out,
            "reference_models": reference_models if references is not None else 0,
            "reference_seconds": round(ref_seconds, 3),
            "seed": seed,
            "attacks": rows,
        }
        with atomic_output(json_out, mode=0o644) as f:
            f.write(json.dumps(doc, indent=2).encode())
        notes.append(f"json     {json_out}")
    _print(rows, header, notes)


def register(app: typer.Typer) -> None:
    """Add `modelshield privacy ...`."""
    app.add_typer(privacy_app, name="privacy", help="Privacy attacks: membership inference audits.")
