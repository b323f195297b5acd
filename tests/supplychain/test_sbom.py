"""``modelshield sbom``: CycloneDX 1.6 JSON with the model, its datasets and the installed packages."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from safetensors.torch import save_file
from typer.testing import CliRunner

from modelshield.cli.sbom import sbom_command
from modelshield.core.errors import InputError, MissingFileError
from modelshield.supplychain.sbom import build_sbom, write_sbom


@pytest.fixture()
def model_and_data(tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "tiny.safetensors"
    save_file({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, str(model))
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n2,1\n")
    return model, data


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _all_refs(doc: dict[str, Any]) -> list[str]:
    refs, stack = [], [doc["metadata"]["component"], *doc["components"]]
    while stack:
        component = stack.pop()
        refs.append(component["bom-ref"])
        stack.extend(component.get("components", []))
    return refs


def test_model_dataset_and_packages(model_and_data: tuple[Path, Path]) -> None:
    model, data = model_and_data
    doc = build_sbom(model, name="tiny", version="1.0", licence="Apache-2.0", datasets=[data], task="classification")
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    assert doc["serialNumber"].startswith("urn:uuid:")
    subject = doc["metadata"]["component"]
    assert subject["type"] == "machine-learning-model" and subject["name"] == "tiny"
    assert subject["hashes"] == [{"alg": "SHA-256", "content": _sha256(model)}]
    assert subject["licenses"] == [{"expression": "Apache-2.0"}]
    assert doc["metadata"]["tools"]["components"][0]["name"] == "modelshield"

    by_ref = {c["bom-ref"]: c for c in doc["components"]}
    (dataset,) = (c for c in doc["components"] if c["type"] == "data")
    assert dataset["name"] == "train.csv" and dataset["hashes"][0]["content"] == _sha256(data)
    assert subject["modelCard"]["modelParameters"] == {
        "task": "classification",
        "datasets": [{"ref": dataset["bom-ref"]}],
    }
    deps = {d["ref"]: d["dependsOn"] for d in doc["dependencies"]}
    assert deps[subject["bom-ref"]] == [dataset["bom-ref"]]

    purls = {}
    for package in ("torch", "numpy"):
        installed = metadata.version(package)
        purls[package] = f"pkg:pypi/{package}@{installed.replace('+', '%2B')}"
        assert by_ref[purls[package]]["version"] == installed and by_ref[purls[package]]["purl"] == purls[package]
    assert any(ref.startswith("pkg:pypi/typing-extensions@") for ref in deps[purls["torch"]])
    assert all(dep in by_ref for targets in deps.values() for dep in targets)
    refs = _all_refs(doc)
    assert len(refs) == len(set(refs))


def test_folder_model_hashes_each_file(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "weights.bin").write_bytes(b"\x00" * 10)
    subject = build_sbom(folder)["metadata"]["component"]
    files = {c["name"]: c["hashes"][0]["content"] for c in subject["components"]}
    assert files == {"config.json": _sha256(folder / "config.json"), "weights.bin": _sha256(folder / "weights.bin")}
    assert subject["properties"][0]["value"].startswith("sha256:")


def test_validates_against_cyclonedx_1_6_schema(model_and_data: tuple[Path, Path], tmp_path: Path) -> None:
    validation = pytest.importorskip("cyclonedx.validation.json")
    from cyclonedx.schema import SchemaVersion

    model, data = model_and_data
    out = write_sbom(
        build_sbom(model, licence="MIT OR Apache-2.0", datasets=[data], architecture="mlp"), tmp_path / "s.json"
    )
    error = validation.JsonStrictValidator(SchemaVersion.V1_6).validate_str(out.read_text())
    assert error is None, error


def test_errors(model_and_data: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = model_and_data
    with pytest.raises(MissingFileError):
        build_sbom(tmp_path / "absent.safetensors")
    with pytest.raises(MissingFileError):
        build_sbom(model, datasets=[tmp_path / "absent.csv"])
    with pytest.raises(InputError):
        build_sbom(model, licence="not\nspdx")
    with pytest.raises(InputError):
        build_sbom(model, datasets=[data, data])


def test_cli_writes_the_file(model_and_data: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = model_and_data
    app = typer.Typer()
    app.command()(sbom_command)
    out = tmp_path / "out" / "sbom.cdx.json"
    result = CliRunner().invoke(app, [str(model), "--name", "tiny", "--dataset", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    doc = json.loads(out.read_text())
    assert doc["metadata"]["component"]["name"] == "tiny"
    assert [c["name"] for c in doc["components"] if c["type"] == "data"] == ["train.csv"]
