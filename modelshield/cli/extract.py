"""``modelshield extract``: steal a model through its prediction interface, to measure how cheaply it can be done.

The victim is a model file (``--model``) or a served endpoint (``--target`` with ``--key``): the attack sees only
its answers, spends at most ``--budget`` samples, and stops cleanly if the victim refuses (rate limit, quota,
denial). ``--data`` is where fidelity (agreement with the victim) and accuracy are measured; the victim's labels
on it are asked once, outside the budget. Writes ``extraction.json`` (the fidelity curve against queries, why it
stopped) and the stolen model as ``stolen.safetensors`` with the ``--arch`` that rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.attacks.extraction import ExtractionResult
    from modelshield.core.datasets import Dataset
    from modelshield.core.model import Model

ATTACKS = ("equation", "jacobian", "knockoff")
KEY_ENV = "MODELSHIELD_API_KEY"


def _victim(
    model: str | None,
    target: str | None,
    key: str | None,
    data: Dataset,
    arch: str | None,
    arch_kwargs: str | None,
    num_classes: int | None,
    trust_types: list[str],
) -> Model:
    from modelshield.cli._options import parse_arch_kwargs

    if (model is None) == (target is None):
        raise InputError("give the victim as --model FILE or --target URL (one of them)")
    shape = tuple(data.x.shape[1:])
    if target is not None:
        from modelshield.core.adapters import RemoteModel

        headers = {"Authorization": f"Bearer {key}"} if key else {}
        classes = num_classes or int(data.y.max()) + 1
        return RemoteModel(target, input_shape=shape, num_classes=classes, bounds=data.bounds, headers=headers)
    from modelshield.integrity.safe_load import load_model

    assert model is not None
    return load_model(
        model,
        arch=arch,
        arch_kwargs=parse_arch_kwargs(arch_kwargs),
        input_shape=shape,
        num_classes=num_classes,
        bounds=data.bounds,
        trusted_types=trust_types or None,
    )


def _surrogate(spec: str, victim: Model, n: int, seed: int) -> tuple[Any, Any]:
    """The attacker's own data: ``natural-patches`` or any dataset spec, checked against the victim's inputs."""
    from modelshield.attacks.extraction.surrogate import NATURAL_PATCHES, natural_patches
    from modelshield.core.datasets import load_dataset

    if spec == NATURAL_PATCHES:
        return natural_patches(n, victim.input_shape, bounds=victim.bounds, seed=seed)
    ds = load_dataset(spec, bounds=victim.bounds, input_shape=victim.input_shape)
    return ds.x, ds.y


def _run(
    name: str,
    victim: Model,
    data: Dataset,
    *,
    budget: int,
    surrogate: str | None,
    strategy: str,
    seed_size: int,
    rounds: int,
    epochs: int,
    batch_size: int,
    seed: int,
) -> ExtractionResult:
    import numpy as np
    import torch

    from modelshield.attacks.extraction import EquationSolving, EvalSet, JacobianAugmentation, KnockoffNets
    from modelshield.attacks.extraction.surrogate import NATURAL_PATCHES
    from modelshield.core.adapters import SklearnModel

    def progress(spent: int, total: int) -> None:
        if spent == total or spent * 10 // total != (spent - batch_size) * 10 // total:
            typer.echo(f"  {spent}/{total} queries", err=True)

    evaluation = EvalSet(data.x, data.y)
    if name == "equation":
        estimator = victim.estimator if isinstance(victim, SklearnModel) else None
        coef, intercept = getattr(estimator, "coef_", None), getattr(estimator, "intercept_", None)
        reference = (coef, intercept) if coef is not None and intercept is not None else None
        return EquationSolving(seed=seed, batch_size=batch_size)(
            victim, budget=budget, evaluation=evaluation, on_query=progress, reference=reference
        )
    if name == "knockoff":
        pool, labels = _surrogate(surrogate or NATURAL_PATCHES, victim, max(budget, 1), seed)
        attack: KnockoffNets | JacobianAugmentation = KnockoffNets(
            pool,
            surrogate_labels=labels,
            strategy=strategy,  # type: ignore[arg-type]
            rounds=rounds,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
        )
    else:
        if surrogate is None or surrogate == NATURAL_PATCHES:
            raise InputError("--attack jacobian starts from a few samples like the victim's: give them as --surrogate")
        x, _ = _surrogate(surrogate, victim, seed_size, seed)
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(x))[:seed_size])
        attack = JacobianAugmentation(x[order], iterations=rounds, epochs=epochs, batch_size=batch_size, seed=seed)
    return attack(victim, budget=budget, evaluation=evaluation, on_query=progress)


def _print(result: ExtractionResult, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)  # refusals, errors and paths print as written
    table = Table(title=f"{result.attack}: fidelity against queries")
    for col in ("queries", "fidelity", "accuracy", "seconds"):
        table.add_column(col, justify="right")
    for p in result.curve:
        acc = "n/a" if p.accuracy is None else f"{p.accuracy:.1%}"
        table.add_row(str(p.queries), f"{p.fidelity:.1%}", acc, f"{p.seconds:.1f}")
    console.print(table)
    line = f"stopped: {result.stop_reason} after {result.queries} of {result.budget} queries"
    if result.refusal is not None:
        line += f" ({result.refusal.kind}: {result.refusal})"
    if result.error:
        line += f" ({result.error})"
    console.print(line, highlight=False)
    if "parameter_error" in result.details:
        console.print(f"parameter error (relative, max): {result.details['parameter_error']:.2e}", highlight=False)
    console.print(f"wrote {out / 'extraction.json'} and {out / 'stolen.safetensors'}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``modelshield extract``."""

    @app.command("extract")
    def extract(
        attack: Annotated[str, typer.Option(help="equation, jacobian or knockoff.")],
        budget: Annotated[int, typer.Option(min=1, help="Most samples to ask the victim about.")],
        data: Annotated[
            str, typer.Option(help="Evaluation data (sklearn:..., .npz with x and y, ...): fidelity and accuracy.")
        ],
        out: Annotated[Path, typer.Option(help="Folder for extraction.json and stolen.safetensors.")],
        model: Annotated[
            str | None, typer.Option(help="Victim model file: skops, ONNX, TorchScript, or safetensors with --arch.")
        ] = None,
        target: Annotated[
            str | None, typer.Option(help="Victim endpoint, e.g. http://127.0.0.1:8000/v1/models/demo/predict.")
        ] = None,
        key: Annotated[
            str | None, typer.Option(envvar=KEY_ENV, help=f"API key for --target (or ${KEY_ENV}); never printed.")
        ] = None,
        surrogate: Annotated[
            str | None,
            typer.Option(
                help="Attacker data: 'natural-patches' (knockoff's default) or a dataset spec; "
                "jacobian draws its seed set from it."
            ),
        ] = None,
        strategy: Annotated[str, typer.Option(help="Knockoff sampling: random or adaptive.")] = "random",
        seed_size: Annotated[int, typer.Option(min=1, help="Jacobian: seed samples drawn from --surrogate.")] = 100,
        rounds: Annotated[int, typer.Option(min=1, help="Training rounds (knockoff) or iterations (jacobian).")] = 6,
        epochs: Annotated[int, typer.Option(min=1, help="Substitute training epochs per round.")] = 20,
        batch_size: Annotated[int, typer.Option(min=1, help="Samples per request to the victim.")] = 64,
        arch: Annotated[
            str | None, typer.Option(help="Network for safetensors weights: 'package.module:Class'.")
        ] = None,
        arch_kwargs: Annotated[str | None, typer.Option(help="JSON keyword arguments for --arch.")] = None,
        num_classes: Annotated[int | None, typer.Option(help="Victim classes (default: from --data labels).")] = None,
        trust_type: Annotated[
            list[str] | None,
            typer.Option("--trust-type", help="A type a skops model needs that skops does not trust (repeatable)."),
        ] = None,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    ) -> None:
        """Extract (steal) a model under a query budget; report fidelity and accuracy against queries spent."""
        if attack not in ATTACKS:
            raise InputError(f"--attack must be one of {', '.join(ATTACKS)}, not {attack!r}")
        if strategy not in ("random", "adaptive"):
            raise InputError(f"--strategy must be random or adaptive, not {strategy!r}")
        from modelshield.core.datasets import load_dataset
        from modelshield.core.files import atomic_output
        from modelshield.core.loading import save_torch_model

        ds = load_dataset(data)
        victim = _victim(model, target, key, ds, arch, arch_kwargs, num_classes, trust_type or [])
        try:
            result = _run(
                attack,
                victim,
                ds,
                budget=budget,
                surrogate=surrogate,
                strategy=strategy,
                seed_size=seed_size,
                rounds=rounds,
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
            )
        finally:
            close = getattr(victim, "close", None)
            if callable(close):
                close()
        out.mkdir(parents=True, exist_ok=True)
        report = {"victim": target or model, "data": data, **result.to_dict()}
        with atomic_output(out / "extraction.json", mode=0o644) as f:
            f.write(json.dumps(report, indent=2).encode())
        meta = {"arch": result.arch["arch"], "arch_kwargs": json.dumps(result.arch["arch_kwargs"])}
        save_torch_model(result.stolen, out / "stolen.safetensors", metadata=meta)
        _print(result, out)
