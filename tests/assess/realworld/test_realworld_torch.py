"""PyTorch networks as users ship them — TorchScript (scripted or traced), safetensors + --arch, an ONNX
export and a model behind HTTP — assessed with the default attack list through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi import FastAPI
from pydantic import BaseModel
from realworld_settings import QUICK, N
from safetensors.torch import save_model

WHITE_BOX = {"fgsm", "pgd", "apgd-ce", "apgd-dlr", "cw-l2", "deepfool", "square", "hopskipjump"}
BLACK_BOX = {"square", "hopskipjump"}


def saved(net: torch.nn.Module, folder: Path, how: str) -> list[str]:
    """Save ``net`` the way users do; return the --model/--arch arguments that load it."""
    name = type(net).__name__
    if how == "script":
        path = folder / f"{name}.pt"
        torch.jit.script(net).save(str(path))
        return ["--model", str(path)]
    if how == "trace":
        path = folder / f"{name}.pt"
        torch.jit.trace(net, torch.rand(2, 3, 32, 32)).save(str(path))
        return ["--model", str(path)]
    if how == "safetensors":
        path = folder / f"{name}.safetensors"
        save_model(net, str(path))
        return ["--model", str(path), "--arch", f"realworld_models:{name}"]
    assert how == "onnx"
    path = folder / f"{name}.onnx"
    torch.onnx.export(
        net,
        (torch.rand(1, 3, 32, 32),),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return ["--model", str(path)]


def check_white_box(report: dict) -> None:
    assert {r["attack"] for r in report["attacks"]} == WHITE_BOX
    assert {r["norm"] for r in report["attacks"] if r["attack"] == "pgd"} == {"linf", "l2"}
    assert report["clean_accuracy"] > 0.5  # trained: the attacks have something to break


@pytest.mark.parametrize(("net", "how"), [("resnet18", "script"), ("mobilenet", "safetensors")])
def test_default_attacks_fast(trained, colour_npz, tmp_path, assess_cli, net, how):
    report = assess_cli(*saved(trained[net], tmp_path, how), "--data", str(colour_npz), *QUICK)
    check_white_box(report)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("net", "how"),
    [("resnet18", "safetensors"), ("resnet18", "trace"), ("mobilenet", "script"), ("mobilenet", "trace")],
)
def test_default_settings(trained, colour_npz, tmp_path, assess_cli, net, how):
    """Nothing but --batch-size: the whole default sweep, budgets and attack list."""
    check_white_box(assess_cli(*saved(trained[net], tmp_path, how), "--data", str(colour_npz)))


def test_report_does_not_depend_on_batch_size(trained, colour_npz, tmp_path, assess_cli):
    """Batches are an implementation detail: one seed, one report, whatever --batch-size."""
    args = [
        *saved(trained["resnet18"], tmp_path, "script"),
        "--data",
        str(colour_npz),
        *QUICK,
        "--attacks",
        "fgsm,pgd,apgd-ce,square,hopskipjump",
        "--seed",
        "3",
    ]

    def numbers(report: dict) -> list[tuple]:
        return [
            (r["attack"], r["norm"], r["eps"], r["robust_accuracy"], r["success_rate"], r["queries"])
            for r in report["attacks"]
        ]

    assert numbers(assess_cli(*args, batch=16)) == numbers(assess_cli(*args, batch=N))


def test_onnx_export(trained, colour_npz, tmp_path, assess_cli):
    report = assess_cli(*saved(trained["mobilenet"], tmp_path, "onnx"), "--data", str(colour_npz), *QUICK)
    assert {r["attack"] for r in report["attacks"]} == BLACK_BOX
    assert all(r["queries"] > 0 for r in report["attacks"])


@pytest.mark.slow
def test_onnx_export_default_settings(trained, colour_npz, tmp_path, assess_cli):
    report = assess_cli(*saved(trained["resnet18"], tmp_path, "onnx"), "--data", str(colour_npz))
    assert {r["attack"] for r in report["attacks"]} == BLACK_BOX


class Batch(BaseModel):
    inputs: list


def served(net: torch.nn.Module) -> FastAPI:
    """An inference service as a team writes one: JSON in, softmax probabilities out."""
    app = FastAPI()

    @app.post("/predict")
    def predict(batch: Batch) -> dict:
        with torch.no_grad():
            x = torch.tensor(np.asarray(batch.inputs, dtype=np.float32))
            return {"probabilities": net(x).softmax(1).tolist()}

    return app


@pytest.fixture
def endpoint(trained, serve_asgi) -> Iterator[str]:
    with serve_asgi(served(trained["resnet18"])) as port:
        yield f"http://127.0.0.1:{port}/predict"


def test_remote_model(endpoint, trained, colour_npz, colour_test, assess_cli):
    report = assess_cli("--model", endpoint, "--data", str(colour_npz), *QUICK)
    assert {r["attack"] for r in report["attacks"]} == BLACK_BOX
    with torch.no_grad():
        pred = trained["resnet18"](torch.from_numpy(colour_test[0])).argmax(1).numpy()
    assert report["clean_accuracy"] == pytest.approx(float((pred == colour_test[1]).mean()))
