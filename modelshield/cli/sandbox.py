"""``modelshield sandbox``: run untrusted vendor models isolated (no network, read-only view, limits)."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    import numpy as np

sandbox_app = typer.Typer(
    help="Run an untrusted model in an isolated process: no network, read-only files, resource and time limits.",
    no_args_is_help=True,
)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from '2G', '512M', '1.5GiB' or a plain number of bytes."""
    match = _SIZE.match(text)
    if not match:
        raise InputError(f"{text!r} is not a size; use e.g. 512M or 2G")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


class Output(StrEnum):
    scores = "scores"
    probabilities = "probabilities"
    labels = "labels"


AllowNetwork = Annotated[
    bool,
    typer.Option(
        "--allow-network",
        help="UNSAFE: let the model use the network (isolation off, reported loudly).",
    ),
]


def _warn_network() -> None:
    typer.secho(
        "WARNING: network isolation is OFF (--allow-network): the model can reach the network.",
        err=True,
        fg=typer.colors.RED,
        bold=True,
    )


@sandbox_app.command("check")
def check(
    allow_network: AllowNetwork = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print layers and escape attempts as JSON.")] = False,
) -> None:
    """Show which isolation layers work here, and prove them: a sandbox tries to escape and must fail.

    Exit 0 when every escape attempt failed (and writing in scratch worked), 1 otherwise.
    """
    from modelshield.supplychain.sandbox.client import check_isolation

    if allow_network:
        _warn_network()
    layers, probes = check_isolation(allow_network=allow_network)
    ok = all(p.ok for p in probes)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "isolated": ok,
                    "layers": [vars(layer) for layer in layers],
                    "probes": [{**vars(p), "ok": p.ok} for p in probes],
                },
                indent=2,
            )
        )
    else:
        typer.echo("layers:")
        for layer in layers:
            typer.echo(f"  [{'on ' if layer.active else 'off'}] {layer.name:18} {layer.detail}")
        typer.echo("escape attempts:")
        for p in probes:
            verdict = "ok     " if p.ok else "ESCAPED" if p.succeeded else "FAILED "
            typer.echo(f"  [{verdict}] {p.attempt}: {p.detail}")
        typer.echo("sandbox isolation holds" if ok else "sandbox isolation does NOT hold here")
    raise typer.Exit(0 if ok else 1)


def _read_inputs(path: Path) -> np.ndarray:
    import numpy as np

    from modelshield.core.file_formats import detect_format

    if detect_format(path) != "npy":
        raise InputError(f"{path} is not a .npy array", hint="save the inputs with numpy.save")
    x = np.load(path, allow_pickle=False)
    if x.ndim < 2 or x.dtype.kind not in "biuf" or len(x) == 0:
        raise InputError(f"{path} holds {x.dtype} of shape {x.shape}; expected numbers of shape (N, ...) with N > 0")
    if not np.isfinite(x).all():
        raise InputError(f"{path} contains NaN or Inf values")
    return x.astype(np.float32)


@sandbox_app.command("predict")
def predict(
    data: Annotated[Path, typer.Option("--data", help="Inputs as a .npy array of shape (N, ...).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the predictions (.npy).")],
    vendor: Annotated[Path | None, typer.Option("--vendor", help="Folder holding the vendor's Python code.")] = None,
    entry: Annotated[
        str | None,
        typer.Option("--entry", help="Factory building the model: 'package.module:function' inside --vendor."),
    ] = None,
    factory_kwargs: Annotated[
        str | None, typer.Option("--kwargs", help="JSON object of keyword arguments for the factory.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="Model file instead of vendor code (safetensors needs --arch; TorchScript, ONNX, skops)."
        ),
    ] = None,
    arch: Annotated[
        str | None, typer.Option("--arch", help="With a safetensors --model: 'package.module:Class'.")
    ] = None,
    num_classes: Annotated[int | None, typer.Option(help="Number of classes, when the model cannot say.")] = None,
    bounds: Annotated[tuple[float, float], typer.Option(help="Input range (low high).")] = (0.0, 1.0),
    output: Annotated[Output, typer.Option(help="scores (logits), probabilities or labels.")] = Output.scores,
    memory: Annotated[str, typer.Option(help="Address-space limit, e.g. 2G.")] = "4G",
    timeout: Annotated[float, typer.Option(help="Wall-clock seconds per batch before the model is killed.")] = 30.0,
    startup_timeout: Annotated[float, typer.Option(help="Wall-clock seconds to load the model.")] = 120.0,
    cpu: Annotated[int, typer.Option(help="CPU seconds for the model's whole life.")] = 600,
    batch_size: Annotated[int, typer.Option(help="Samples per request to the sandbox.")] = 256,
    allow_network: AllowNetwork = False,
) -> None:
    """Predict with an untrusted model inside the sandbox and write the predictions as .npy."""
    import numpy as np
    import torch

    from modelshield.core.files import atomic_output
    from modelshield.supplychain.sandbox.client import Sandbox, SandboxedModel
    from modelshield.supplychain.sandbox.isolation import Limits

    if timeout <= 0 or startup_timeout <= 0 or cpu < 1 or batch_size < 1:
        raise InputError("--timeout and --startup-timeout must be positive, --cpu and --batch-size at least 1")
    try:
        kwargs = json.loads(factory_kwargs) if factory_kwargs else {}
    except json.JSONDecodeError as e:
        raise InputError(f"--kwargs is not JSON: {e}") from None
    if not isinstance(kwargs, dict):
        raise InputError("--kwargs must be a JSON object")
    x = _read_inputs(data)
    limits = Limits(memory=parse_size(memory), cpu_seconds=cpu, timeout=timeout, startup_timeout=startup_timeout)
    if allow_network:
        _warn_network()
    box = Sandbox(
        vendor=vendor,
        entry=entry,
        factory_kwargs=kwargs,
        model=model,
        load_options={"arch": arch} if arch else None,
        input_shape=x.shape[1:],
        num_classes=num_classes,
        bounds=bounds,
        limits=limits,
        allow_network=allow_network,
    )
    with box:
        sandboxed = SandboxedModel(box, batch_size=batch_size)
        inputs = torch.from_numpy(x)
        if output is Output.labels:
            result = sandboxed.predict(inputs, batch_size=batch_size).numpy()
        elif output is Output.probabilities:
            result = sandboxed.predict_proba(inputs).numpy()
        else:
            result = sandboxed.logits(inputs).numpy()
        active = sum(layer.active for layer in box.layers)
    with atomic_output(out, mode=0o644) as f:
        np.save(f, result, allow_pickle=False)
    typer.echo(f"wrote {output.value} for {len(x)} samples to {out} ({active}/{len(box.layers)} isolation layers on)")


def register(app: typer.Typer) -> None:
    """Add `modelshield sandbox ...`."""
    app.add_typer(
        sandbox_app, name="sandbox", help="Run untrusted vendor models isolated: no network, read-only, limits."
    )
