"""``modelshield watermark``: prove a model is yours. Embed a key-derived watermark, verify it later, make keys.

Exit codes of ``verify``: 0 watermark detected, 1 not detected, 2 bad input. Keys are never printed.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.cli._options import parse_arch_kwargs, parse_bounds, parse_floats, parse_headers
from modelshield.core.errors import InputError

if TYPE_CHECKING:  # torch loads only when a command runs, so `modelshield --help` stays fast
    from modelshield.core.model import Model
    from modelshield.integrity.watermark import TriggerSetWatermark, WeightWatermark

DEMO_ARCH = "modelshield.demo:DigitsCNN"
DEFAULT_FPR = 1e-3  # modelshield.integrity.watermark.DEFAULT_FPR; not imported here, so torch stays unloaded


class Kind(StrEnum):
    weights = "weights"
    trigger = "trigger"


watermark_app = typer.Typer(
    help="Watermark models with a secret key: white-box (in the weights) or black-box (a trigger set).",
    no_args_is_help=True,
)

KeyOption = Annotated[Path, typer.Option("--key", help="Watermark key file (32 bytes, mode 0600; see keygen).")]
BitsOption = Annotated[int, typer.Option(help="Weights: message length in bits (must match embed).")]
LayerOption = Annotated[
    str | None, typer.Option(help="Weights: layer carrying the mark (default: chosen from the architecture).")
]
TriggersOption = Annotated[int, typer.Option(help="Trigger: number of trigger inputs (must match embed).")]
ArchOption = Annotated[str | None, typer.Option(help="Architecture for safetensors weights: 'package.module:Class'.")]
ArchKwargsOption = Annotated[str | None, typer.Option(help="JSON keyword arguments for --arch.")]


def _watermark(
    kind: Kind, key: Path, *, bits: int, layer: str | None, triggers: int, fpr: float, epochs: int | None = None
) -> WeightWatermark | TriggerSetWatermark:
    from modelshield.integrity.watermark import TriggerSetWatermark, WeightWatermark, load_key

    secret = load_key(key)
    tuning = {"epochs": epochs} if epochs is not None else {}
    if kind is Kind.weights:
        return WeightWatermark(secret, bits=bits, layer=layer, fpr=fpr, **tuning)
    return TriggerSetWatermark(secret, n_triggers=triggers, fpr=fpr, **tuning)


@watermark_app.command("keygen")
def keygen(out: Annotated[Path, typer.Option("--out", help="Key file to create (never overwritten).")]) -> None:
    """Create a random 256-bit watermark key in a new file with mode 0600."""
    from modelshield.integrity.watermark import generate_key

    generate_key(out)
    typer.echo(f"wrote a new watermark key to {out} (mode 0600); keep it secret and backed up: it proves ownership")


@watermark_app.command("embed")
def embed(
    key: KeyOption,
    kind: Annotated[Kind, typer.Option(help="weights (white-box, Uchida et al.) or trigger (black-box, Adi et al.).")],
    out: Annotated[Path, typer.Option(help="Where to write the watermarked weights (safetensors).")],
    model: Annotated[Path | None, typer.Option(help="Model weights (safetensors) to watermark.")] = None,
    arch: ArchOption = None,
    arch_kwargs: ArchKwargsOption = None,
    data: Annotated[
        str | None, typer.Option(help="Training data: sklearn:digits:train, .npz (x, y), CSV, Parquet, image folder.")
    ] = None,
    test_data: Annotated[str | None, typer.Option(help="Held-out data to report the accuracy cost on.")] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Watermark the built-in digits CNN (trained in seconds).")
    ] = False,
    bits: BitsOption = 64,
    layer: LayerOption = None,
    triggers: TriggersOption = 100,
    epochs: Annotated[
        int | None, typer.Option(help="Embedding fine-tune epochs (default: 10 weights, 20 trigger).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the demo model.")] = 0,
) -> None:
    """Fine-tune a model so that it carries the key's watermark, and write the watermarked weights."""
    from modelshield.core.datasets import Dataset, load_dataset, sklearn_dataset
    from modelshield.core.loading import save_torch_model
    from modelshield.core.model import TorchModel
    from modelshield.integrity.safe_load import load_model
    from modelshield.integrity.watermark import accuracy

    wm = _watermark(kind, key, bits=bits, layer=layer, triggers=triggers, fpr=DEFAULT_FPR, epochs=epochs)
    if out.exists() and not force:
        raise InputError(f"{out} already exists", hint="pass --force to overwrite it")
    if demo == bool(model):
        raise InputError("give either --demo or --model (with --arch and --data)")
    if demo:
        from modelshield.demo import demo_model_and_data

        typer.echo("training the demo CNN on scikit-learn's digits...", err=True)
        m, demo_test = demo_model_and_data(seed=seed)
        test: Dataset | None = demo_test
        train = load_dataset(data) if data else sklearn_dataset("digits", "train", seed=seed)
        arch = DEMO_ARCH
    else:
        assert model is not None
        if model.resolve() == out.resolve():
            raise InputError("--out must differ from --model: the unmarked original is kept")
        if not data:
            raise InputError("--data is required: embedding fine-tunes the model on its training data")
        train = load_dataset(data)
        loaded = load_model(
            model,
            arch=arch,
            arch_kwargs=parse_arch_kwargs(arch_kwargs),
            input_shape=tuple(train.x.shape[1:]),
            bounds=train.bounds,
        )
        if not isinstance(loaded, TorchModel):
            raise InputError(f"{model} is not safetensors weights; embedding fine-tunes a PyTorch network (--arch)")
        m, test = loaded, (load_dataset(test_data) if test_data else None)
    marked = wm.embed(m, train)
    verdict = wm.verify(marked)
    if not verdict.detected:
        typer.echo(f"error: the watermark did not take ({verdict.summary()}); nothing written", err=True)
        typer.echo("hint: raise --epochs, or use more --triggers / fewer --bits", err=True)
        raise typer.Exit(1)
    save_torch_model(marked, out)  # atomic: a failure leaves no partial file
    typer.echo(verdict.summary())
    if test is not None:
        before, after = accuracy(m, test), accuracy(marked, test)
        typer.echo(f"held-out accuracy {before:.2%} -> {after:.2%} ({100 * (after - before):+.2f} points)")
    typer.echo(f"wrote {out}")
    shape = ",".join(map(str, m.input_shape))
    extra = (
        f" --bits {bits}" + (f" --layer {layer}" if layer else "")
        if kind is Kind.weights
        else f" --triggers {triggers}"
    )
    typer.echo(
        f"verify with: modelshield watermark verify --model {out} --arch {arch} --input-shape {shape} "
        f"--key {key} --kind {kind.value}{extra}"
    )


def _shape(text: str) -> tuple[int, ...]:
    dims = parse_floats(text, "--input-shape")
    if any(d != int(d) or d < 1 for d in dims):
        raise InputError(f"--input-shape takes positive integers like 1,8,8, not {text!r}")
    return tuple(int(d) for d in dims)


def _load_suspect(
    model: str,
    arch: str | None,
    arch_kwargs: str | None,
    input_shape: str | None,
    num_classes: int | None,
    bounds: str,
    headers: list[str],
) -> Model:
    """A local model file, or a remote endpoint queried for labels only."""
    from modelshield.integrity.safe_load import load_model

    shape = _shape(input_shape) if input_shape else None
    box = parse_bounds(bounds)
    if model.startswith(("http://", "https://")):
        from modelshield.core.adapters import RemoteModel

        if shape is None or num_classes is None:
            raise InputError("a remote model needs --input-shape and --num-classes")
        return RemoteModel(
            model, input_shape=shape, num_classes=num_classes, bounds=box, headers=parse_headers(headers)
        )
    if shape is None and arch:
        raise InputError("safetensors weights need --input-shape, e.g. --input-shape 1,8,8")
    return load_model(
        model,
        arch=arch,
        arch_kwargs=parse_arch_kwargs(arch_kwargs),
        input_shape=shape,
        num_classes=num_classes,
        bounds=box,
    )


@watermark_app.command("verify")
def verify(
    model: Annotated[
        str, typer.Option(help="Suspect model: a file (safetensors, TorchScript, ONNX, skops) or an http(s) URL.")
    ],
    key: KeyOption,
    kind: Annotated[
        Kind | None, typer.Option(help="Which watermark to test (default: every one the model allows).")
    ] = None,
    fpr: Annotated[
        float, typer.Option(help="False-positive rate the decision is held to (split across kinds).")
    ] = DEFAULT_FPR,
    arch: ArchOption = None,
    arch_kwargs: ArchKwargsOption = None,
    input_shape: Annotated[str | None, typer.Option(help="Input shape without the batch axis, e.g. 1,8,8.")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Number of classes (required for a URL).")] = None,
    bounds: Annotated[str, typer.Option(help="Input box 'lo,hi' the triggers are drawn in.")] = "0,1",
    header: Annotated[list[str], typer.Option(help="HTTP header 'Name: value' for a remote model (repeatable).")] = [],  # noqa: B006
    bits: BitsOption = 64,
    layer: LayerOption = None,
    triggers: TriggersOption = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")] = False,
) -> None:
    """Test a model for the key's watermark: exit 0 detected, 1 not detected, 2 bad input."""
    from modelshield.integrity.watermark.stats import check_fpr

    check_fpr(fpr)
    suspect = _load_suspect(model, arch, arch_kwargs, input_shape, num_classes, bounds, header)
    if kind is Kind.weights and not suspect.white_box:
        raise InputError("a weight watermark can only be read from a local PyTorch model", hint="use --kind trigger")
    kinds = [kind] if kind else ([Kind.weights, Kind.trigger] if suspect.white_box else [Kind.trigger])
    per_test = fpr / len(kinds)  # Bonferroni: the chance of any false alarm stays <= fpr
    verdicts = [
        _watermark(k, key, bits=bits, layer=layer, triggers=triggers, fpr=per_test).verify(suspect) for k in kinds
    ]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "detected": any(v.detected for v in verdicts),
                    "fpr": fpr,
                    "verdicts": [v.to_dict() for v in verdicts],
                },
                indent=2,
            )
        )
    else:
        for v in verdicts:
            typer.echo(v.summary())
    if not any(v.detected for v in verdicts):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `modelshield watermark ...`."""
    app.add_typer(watermark_app, name="watermark", help="Embed and verify model watermarks (white-box and black-box).")
