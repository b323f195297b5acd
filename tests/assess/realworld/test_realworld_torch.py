"""PyTorch networks as users ship them — TorchScript (scripted or traced), safetensors + --arch, an ONNX
export and a model behind HTTP — assessed with the default attack list through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi import FastAPI
from PIL import Image
from pydantic import BaseModel
from realworld_settings import FAST_WHITE_BOX, QUICK, N
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


FAST = set(FAST_WHITE_BOX[1].split(","))


def check_white_box(report: dict, attacks: set[str] = WHITE_BOX) -> None:
    assert {r["attack"] for r in report["attacks"]} == attacks
    if attacks == WHITE_BOX:  # the default list runs PGD in both norms (pgd, pgd-l2)
        assert {r["norm"] for r in report["attacks"] if r["attack"] == "pgd"} == {"linf", "l2"}
    assert report["clean_accuracy"] > 0.4  # trained: the attacks have something to break


@pytest.mark.parametrize(("net", "how"), [("resnet18", "script"), ("mobilenet", "safetensors")])
def test_fast(trained, colour_npz, tmp_path, assess_cli, net, how):
    report = assess_cli(*saved(trained[net], tmp_path, how), "--data", str(colour_npz), *QUICK, *FAST_WHITE_BOX)
    check_white_box(report, FAST)


@pytest.mark.slow
@pytest.mark.parametrize(("net", "how"), [("resnet18", "script"), ("mobilenet", "safetensors")])
def test_default_attacks_small_budgets(trained, colour_npz, tmp_path, assess_cli, net, how):
    check_white_box(assess_cli(*saved(trained[net], tmp_path, how), "--data", str(colour_npz), *QUICK))


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
        "pgd,square,hopskipjump",
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


def image_folder(root: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """The test images as a folder a user collected: PNG and JPEG, palette, alpha and grey, three sizes."""
    for i, (pixels, label) in enumerate(zip(x, y, strict=True)):
        im = Image.fromarray((pixels.transpose(1, 2, 0) * 255).round().astype(np.uint8), "RGB")
        im = im.resize({0: (32, 32), 1: (48, 48), 2: (40, 36)}[i % 3], Image.Resampling.BILINEAR)
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        kind = i % 4
        if kind == 0:
            im.save(root / str(label) / f"{i}.png")
        elif kind == 1:
            im.convert("RGBA").save(root / str(label) / f"{i}.png")
        elif kind == 2:
            im.convert("P", palette=Image.Palette.ADAPTIVE).save(root / str(label) / f"{i}.png")
        else:
            im.save(root / str(label) / f"{i}.jpg", quality=90)
    return root


def test_image_folder_of_mixed_sizes_and_modes(trained, colour_test, tmp_path, assess_cli, run_main):
    """A folder of mixed sizes is one clear line until --image-size says what size to read it at."""
    folder = image_folder(tmp_path / "images", *colour_test)
    model = saved(trained["mobilenet"], tmp_path, "safetensors")
    code, _, err = run_main("assess", *model, "--data", str(folder), "--out", str(tmp_path / "refused"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--image-size" in err, err
    report = assess_cli(*model, "--data", str(folder), "--image-size", "32,32", *QUICK, *FAST_WHITE_BOX)
    check_white_box(report, FAST)


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


@pytest.mark.parametrize(
    "attacks",
    [
        ["--attacks", "square"],  # HopSkipJump's ~37,000 queries of 3×32×32 JSON take minutes over HTTP
        pytest.param([], marks=pytest.mark.slow),
    ],
)
def test_remote_model(endpoint, trained, colour_npz, colour_test, assess_cli, attacks):
    report = assess_cli("--model", endpoint, "--data", str(colour_npz), *QUICK, *attacks)
    assert {r["attack"] for r in report["attacks"]} == (set(attacks[1:]) or BLACK_BOX)
    assert all(r["queries"] > 0 for r in report["attacks"])
    with torch.no_grad():
        pred = trained["resnet18"](torch.from_numpy(colour_test[0])).argmax(1).numpy()
    assert report["clean_accuracy"] == pytest.approx(float((pred == colour_test[1]).mean()))
