"""``modelshield sbom``: a CycloneDX 1.6 bill of materials for a model, its datasets and the Python environment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelshield.supplychain.sbom import build_sbom, write_sbom


def sbom_command(
    model: Annotated[Path, typer.Argument(help="Model file or folder (the BOM's subject).")],
    name: Annotated[str | None, typer.Option(help="Model name (default: the file or folder name).")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Model version.")] = None,
    licence: Annotated[str | None, typer.Option(help="Model licence: SPDX id or expression, e.g. Apache-2.0.")] = None,
    dataset: Annotated[
        list[Path] | None,
        typer.Option(
            help="Training or evaluation dataset (file or folder); repeat for several.",
        ),
    ] = None,
    task: Annotated[str | None, typer.Option(help="Model card task, e.g. image-classification.")] = None,
    architecture: Annotated[str | None, typer.Option(help="Model card architecture family, e.g. resnet.")] = None,
    out: Annotated[Path, typer.Option(help="Where to write the CycloneDX JSON.")] = Path("sbom.cdx.json"),
) -> None:
    """Write a CycloneDX 1.6 JSON SBOM: the model (SHA-256 hashes, licence, datasets) and every installed package."""
    document = build_sbom(
        model, name=name, version=version, licence=licence, datasets=dataset or (), task=task, architecture=architecture
    )
    typer.echo(write_sbom(document, out))


def register(app: typer.Typer) -> None:
    """Add `modelshield sbom`."""
    app.command("sbom")(sbom_command)
