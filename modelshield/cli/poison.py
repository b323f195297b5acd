"""``modelshield poison``: poison a dataset file for a red-team exercise or a defence test, and show the effect.

Writes the poisoned set as an .npz (arrays x and y, which every modelshield command reads) and a JSON
sidecar beside it (``<out>.json``: the attack, its settings, the poisoned row indices, the output's
SHA-256), so a detector can be scored against the truth later. ``--evaluate`` trains a simple built-in
model on the clean and on the poisoned set and prints clean accuracy, attack success rate and poison rate.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.cli._options import parse_bounds, parse_floats, parse_shape
from modelshield.core.errors import InputError

if TYPE_CHECKING:  # numpy and the attacks load only when a run starts, so `modelshield --help` stays fast
    import numpy as np

    from modelshield.attacks.poisoning import PoisonAttack, PoisonResult

ATTACKS = ("random-flip", "targeted-flip", "lossmax-flip", "badnets", "blend", "tabular-trigger")
TRAINERS = ("auto", "digits-cnn", "mlp", "logistic")
Predict = Callable[["np.ndarray"], "np.ndarray"]
NATURAL_SIGNAL = 0.5  # a clean model's ASR above this: the trigger is a sign of the class, not a backdoor


def poison_command(
    data: Annotated[str, typer.Argument(help="Training data: sklearn:digits:train, .npz (x, y), CSV, Parquet.")],
    attack: Annotated[str, typer.Option("--attack", "-a", help=f"One of: {', '.join(ATTACKS)}.")],
    rate: Annotated[float, typer.Option(help="Fraction of the training rows to poison, in (0, 1].")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The poisoned set (.npz); the sidecar goes to OUT.json.")],
    target: Annotated[int | None, typer.Option(help="Backdoors: the class the trigger calls up.")] = None,
    pairs: Annotated[
        str | None, typer.Option(help="targeted-flip: source:destination class pairs, e.g. '1:7,3:8'.")
    ] = None,
    patch_size: Annotated[int, typer.Option(help="badnets: side of the square patch in pixels.")] = 3,
    corner: Annotated[str, typer.Option(help="badnets: bottom-right, bottom-left, top-right or top-left.")] = (
        "bottom-right"
    ),
    alpha: Annotated[float, typer.Option(help="blend: opacity of the blended pattern, in (0, 1].")] = 0.2,
    columns: Annotated[str | None, typer.Option(help="tabular-trigger: feature columns, e.g. '0,5,9'.")] = None,
    values: Annotated[
        str | None,
        typer.Option(help="tabular-trigger: a value per column (default: a min/max pattern rare in the data)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for every random choice: one seed, one result.")] = 0,
    label_column: Annotated[str | None, typer.Option(help="Tables: the label column (default label/target/y).")] = None,
    input_shape: Annotated[
        str | None, typer.Option(help="Reshape flat rows, e.g. 1,8,8 (BadNets needs images).")
    ] = None,
    bounds: Annotated[
        str | None, typer.Option(help="The valid input range 'lo,hi', checked on both files (default: no check).")
    ] = None,
    evaluate: Annotated[
        bool, typer.Option("--evaluate", help="Train a built-in model on the clean and the poisoned set and compare.")
    ] = False,
    test_data: Annotated[str | None, typer.Option(help="Clean test data for --evaluate.")] = None,
    trainer: Annotated[
        str,
        typer.Option(
            help="--evaluate's model: auto (digits-cnn for 1×8×8 images, else mlp), digits-cnn, mlp, logistic."
        ),
    ] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace OUT and its sidecar if they exist.")] = False,
) -> None:
    """Poison a training set with a label flip or a backdoor; write it with a sidecar naming the poisoned rows."""
    if out.suffix != ".npz":
        raise InputError(f"--out must name an .npz file, got {out}")
    sidecar = out.with_name(out.name + ".json")
    if not force and (out.exists() or sidecar.exists()):
        raise InputError(
            f"{out} or its sidecar already exists", hint="pass --force to replace them, or pick another --out"
        )
    if evaluate and not test_data:
        raise InputError("--evaluate needs --test-data: clean data to measure the models on")
    if trainer not in TRAINERS:
        raise InputError(f"unknown --trainer {trainer!r}; choose from {', '.join(TRAINERS)}")
    poisoner = _attack(attack, rate, target, pairs, patch_size, corner, alpha, columns, values, seed)

    from modelshield.core.datasets import load_dataset

    shape = parse_shape(input_shape, "--input-shape") if input_shape else None
    box = parse_bounds(bounds) if bounds else None
    train = load_dataset(data, label_column=label_column, bounds=box, input_shape=shape)
    x, y = train.x.numpy(), train.y.numpy()
    n_classes = int(y.max()) + 1
    if target is not None and target >= n_classes:
        raise InputError(f"--target {target} is not a class of {data} (labels 0..{n_classes - 1})")
    result = poisoner.poison(x, y)
    measures = None
    if evaluate:
        assert test_data is not None
        # the attacks take their trigger values from the training rows, not from a box, so without --bounds
        # a test set is not held to the training file's range (unscaled tables rarely fit it)
        test = load_dataset(test_data, label_column=label_column, bounds=box, input_shape=shape)
        measures = _evaluate(result, x, y, test.x.numpy(), test.y.numpy(), trainer, n_classes, seed)
    _write(result, out, sidecar, data, measures)
    _print(result, out, sidecar, measures)


def _attack(
    name: str,
    rate: float,
    target: int | None,
    pairs: str | None,
    patch_size: int,
    corner: str,
    alpha: float,
    columns: str | None,
    values: str | None,
    seed: int,
) -> PoisonAttack:
    """The attack the options describe, refusing options it does not take."""
    from modelshield.attacks.poisoning import (
        BadNets,
        Blend,
        LossMaxLabelFlip,
        RandomLabelFlip,
        TabularBackdoor,
        TargetedLabelFlip,
    )

    if name not in ATTACKS:
        raise InputError(f"unknown --attack {name!r}; choose from {', '.join(ATTACKS)}")
    backdoor = name in ("badnets", "blend", "tabular-trigger")
    if backdoor and target is None:
        raise InputError(f"--attack {name} needs --target: the class its trigger calls up")
    if not backdoor and target is not None:
        raise InputError(f"--target applies to backdoors; --attack {name} does not take it")
    if (pairs is not None) != (name == "targeted-flip"):
        raise InputError("--pairs goes with --attack targeted-flip, and targeted-flip needs it")
    if (columns is not None) != (name == "tabular-trigger") or (values is not None and columns is None):
        raise InputError(
            "--columns (and --values) go with --attack tabular-trigger, and tabular-trigger needs --columns"
        )
    if name == "random-flip":
        return RandomLabelFlip(rate, seed=seed)
    if name == "lossmax-flip":
        return LossMaxLabelFlip(rate, seed=seed)
    if name == "targeted-flip":
        assert pairs is not None
        return TargetedLabelFlip(_pairs(pairs), rate, seed=seed)
    assert target is not None
    if name == "badnets":
        return BadNets(target, rate, patch_size=patch_size, corner=corner, seed=seed)  # type: ignore[arg-type]
    if name == "blend":
        return Blend(target, rate, alpha=alpha, seed=seed)
    assert columns is not None
    cols = _indices(columns, "--columns")
    vals = parse_floats(values, "--values") if values else None
    return TabularBackdoor(target, rate, columns=cols, values=vals, seed=seed)


def _indices(text: str, what: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise InputError(f"{what} takes column indices like 0,5,9, not {text!r}")
    return [int(p) for p in parts]


def _pairs(text: str) -> list[tuple[int, int]]:
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        src, sep, dst = part.partition(":")
        if not sep or not src.strip().isdigit() or not dst.strip().isdigit():
            raise InputError(f"--pairs takes source:destination class pairs like '1:7,3:8', not {part!r}")
        out.append((int(src), int(dst)))
    if not out:
        raise InputError("--pairs is empty; give source:destination class pairs like '1:7'")
    return out


def _evaluate(
    result: PoisonResult,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    trainer: str,
    n_classes: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """The built-in model trained on the clean and on the poisoned set, each measured on the test set."""
    from modelshield.attacks.poisoning import evaluate_poisoning

    if x_test.shape[1:] != x.shape[1:]:
        raise InputError(f"--test-data rows have shape {x_test.shape[1:]}, the training rows {x.shape[1:]}")
    if int(y_test.max()) >= n_classes:
        raise InputError(f"--test-data has label {int(y_test.max())}, a class the training data lacks")
    chosen = ("digits-cnn" if x.shape[1:] == (1, 8, 8) else "mlp") if trainer == "auto" else trainer
    out = {}
    for name, (xs, ys) in (("clean", (x, y)), ("poisoned", (result.x, result.y))):
        ev = evaluate_poisoning(_train(chosen, xs, ys, seed), result, x_test, y_test)
        out[name] = {"trainer": chosen, **ev.as_dict()}
    return out


def _train(trainer: str, x: np.ndarray, y: np.ndarray, seed: int) -> Predict:
    """Fit the built-in model and return its predict function over numpy inputs.

    The scikit-learn models standardise the features first (fitted on the training rows only): raw
    tables mix scales (breast_cancer's areas run to thousands, its smoothness below 0.2), which leaves
    an MLP or logistic regression under-trained and the measured effect of the poison meaningless.
    """
    import numpy as np

    if trainer == "digits-cnn":
        import torch

        from modelshield.core.datasets import Dataset
        from modelshield.demo import DEMO_INPUT_SHAPE, train_digits_cnn

        if x.shape[1:] != DEMO_INPUT_SHAPE or int(y.max()) >= 10:
            raise InputError("--trainer digits-cnn takes 1×8×8 images of 10 classes (pass --input-shape 1,8,8)")
        net = train_digits_cnn(Dataset(torch.from_numpy(x), torch.from_numpy(y), "poison"), seed=seed)

        def predict(a: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return net(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))).argmax(1).numpy()

        return predict
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(),
        MLPClassifier((128,), max_iter=300, random_state=seed)
        if trainer == "mlp"
        else LogisticRegression(max_iter=1000, random_state=seed),
    )
    with warnings.catch_warnings():  # a poisoned set may not converge in max_iter: that is the poison's doing
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x.reshape(len(x), -1), y)
    return lambda a: np.asarray(model.predict(np.asarray(a).reshape(len(a), -1)))


def _write(
    result: PoisonResult, out: Path, sidecar: Path, data: str, measures: dict[str, dict[str, Any]] | None
) -> None:
    """The poisoned set, then its sidecar (which names the set's digest), each written whole or not at all."""
    import numpy as np

    import modelshield
    from modelshield.core.files import atomic_output, atomic_path, hash_file

    with atomic_path(out, mode=0o644) as tmp:
        with tmp.open("wb") as f:
            np.savez(f, x=result.x, y=result.y)
    digest, size = hash_file(out)
    record = {
        "source": data,
        "output": out.name,
        "sha256": digest,
        "bytes": size,
        "modelshield": modelshield.__version__,
        **result.sidecar(),
        "evaluation": measures,
    }
    with atomic_output(sidecar, mode=0o644) as f:
        f.write((json.dumps(record, indent=2) + "\n").encode("utf-8"))


def _print(result: PoisonResult, out: Path, sidecar: Path, measures: dict[str, dict[str, Any]] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)  # paths print as written
    target = "" if result.target is None else f", target class {result.target}"
    console.print(
        f"{result.attack}: poisoned {int(result.poisoned.sum())} of {len(result.y)} rows "
        f"({result.poison_rate:.1%}){target}",
        highlight=False,
    )
    if measures is not None:
        table = Table(title=f"built-in {measures['clean']['trainer']} model")
        for col in ("trained on", "clean accuracy", "attack success rate", "poison rate"):
            table.add_column(col, justify="left" if col == "trained on" else "right")
        for name, m in measures.items():
            table.add_row(
                f"{name} set",
                f"{m['clean_accuracy']:.1%}",
                f"{m['attack_success_rate']:.1%}",
                f"{m['poison_rate']:.1%}",
            )
        console.print(table)
        if result.trigger is None:
            console.print("label flips: the attack success rate is the test error rate", highlight=False)
        elif measures["clean"]["attack_success_rate"] > NATURAL_SIGNAL:
            typer.echo(
                f"warning: the model trained on the clean set already sends "
                f"{measures['clean']['attack_success_rate']:.0%} of triggered test inputs to class {result.target}: "
                "the trigger is not a backdoor signal on this data"
                + ("; choose other --columns or --values" if result.attack == "tabular-trigger" else ""),
                err=True,
            )
    console.print(f"poisoned set {out}", highlight=False)
    console.print(f"sidecar      {sidecar}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `modelshield poison`."""
    app.command("poison")(poison_command)
