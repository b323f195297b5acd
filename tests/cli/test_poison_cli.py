"""`modelshield poison`: writes the poisoned set and its sidecar, evaluates, and refuses bad options in one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from modelshield.core.datasets import load_dataset, sklearn_dataset
from modelshield.core.files import hash_file

if TYPE_CHECKING:
    from conftest import RunMain


@pytest.fixture(autouse=True)
def one_blas_thread() -> Iterator[None]:
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def cancer_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """breast_cancer's training split as a CSV with a label column, as a user would bring it."""
    ds = sklearn_dataset("breast_cancer", "train")
    path = tmp_path_factory.mktemp("data") / "cancer.csv"
    x, y = ds.x.numpy(), ds.y.numpy()
    header = ",".join([f"f{i}" for i in range(x.shape[1])] + ["label"])
    rows = [",".join([*(f"{v:.6f}" for v in row), str(int(label))]) for row, label in zip(x, y, strict=True)]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_label_flip_writes_the_set_and_a_sidecar_that_names_the_flipped_rows(run_main: RunMain, tmp_path: Path) -> None:
    out = tmp_path / "flipped.npz"
    code, stdout, err = run_main(
        "poison", "sklearn:digits:train", "--attack", "random-flip", "--rate", "0.2", "--out", str(out), "--seed", "4"
    )
    assert code == 0, err
    assert "poisoned 269 of 1347 rows" in stdout
    clean, poisoned = sklearn_dataset("digits", "train"), load_dataset(str(out))
    side = json.loads((tmp_path / "flipped.npz.json").read_text())
    flipped = np.flatnonzero(poisoned.y.numpy() != clean.y.numpy())
    assert side["poisoned_indices"] == flipped.tolist() and side["n_poisoned"] == 269
    assert side["attack"] == "random-flip" and side["params"]["seed"] == 4 and side["source"] == "sklearn:digits:train"
    assert side["sha256"] == hash_file(out)[0]
    assert np.array_equal(poisoned.x.numpy(), clean.x.numpy())
    # the same seed gives the same file; an existing output is not replaced without --force
    code, _, err = run_main(
        "poison", "sklearn:digits:train", "--attack", "random-flip", "--rate", "0.2", "--out", str(out), "--seed", "4"
    )
    assert code == 2 and "already exists" in err and "--force" in err
    code, _, _ = run_main(
        "poison",
        "sklearn:digits:train",
        "--attack",
        "random-flip",
        "--rate",
        "0.2",
        "--out",
        str(out),
        "--seed",
        "4",
        "--force",
    )
    assert code == 0 and json.loads((tmp_path / "flipped.npz.json").read_text())["sha256"] == side["sha256"]


def test_tabular_trigger_on_a_csv_with_evaluation(run_main: RunMain, cancer_csv: Path, tmp_path: Path) -> None:
    test_csv = tmp_path / "test.npz"
    te = sklearn_dataset("breast_cancer", "test")
    np.savez(test_csv, x=te.x.numpy(), y=te.y.numpy())
    out = tmp_path / "trig.npz"
    code, stdout, err = run_main(
        "poison", str(cancer_csv), "--attack", "tabular-trigger", "--target", "1", "--columns", "0,5,9",
        "--rate", "0.1", "--out", str(out), "--evaluate", "--test-data", str(test_csv), "--trainer", "logistic",
    )  # fmt: skip
    assert code == 0, err
    side = json.loads((tmp_path / "trig.npz.json").read_text())
    ev = side["evaluation"]
    assert ev["poisoned"]["attack_success_rate"] >= 0.8 > ev["clean"]["attack_success_rate"]
    assert ev["poisoned"]["clean_accuracy"] >= ev["clean"]["clean_accuracy"] - 0.05
    assert "attack success rate" in stdout and "poisoned set" in stdout


@pytest.fixture(scope="module")
def raw_cancer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """breast_cancer unscaled, as pandas writes it: a shuffled 300-row reference CSV and the other 269 rows."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.sample(frac=1, random_state=1)
    folder = tmp_path_factory.mktemp("raw")
    ref, cur = folder / "ref.csv", folder / "cur.csv"
    frame.iloc[:300].to_csv(ref, index=False)
    frame.iloc[300:].to_csv(cur, index=False)
    return ref, cur


def test_an_unscaled_test_table_beyond_the_training_range_is_evaluated_by_a_standardised_mlp(
    run_main: RunMain, raw_cancer: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, cur = raw_cancer  # cur's mean area reaches 4254, ref's only 3432
    args = ["poison", str(ref), "-a", "random-flip", "--rate", "0.2", "-o", str(tmp_path / "p.npz")]
    code, _, err = run_main(*args, "--evaluate", "--test-data", str(cur))
    assert code == 0, err
    clean = json.loads((tmp_path / "p.npz.json").read_text())["evaluation"]["clean"]
    assert clean["trainer"] == "mlp" and clean["clean_accuracy"] >= 0.95  # unstandardised: ~0.90
    assert "Warning" not in err  # no ConvergenceWarning leaks out
    # bounds the user states still hold both files to them
    code, _, err = run_main(*args, "--force", "--evaluate", "--test-data", str(cur), "--bounds", "0,3432")
    assert code == 2 and "cur.csv" in err and "outside the bounds" in err


def test_the_default_tabular_trigger_is_not_a_natural_class_signal(
    run_main: RunMain, raw_cancer: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, cur = raw_cancer
    x = np.loadtxt(ref, delimiter=",", skiprows=1)
    out = tmp_path / "t.npz"
    common = ["-a", "tabular-trigger", "--target", "0", "--rate", "0.1", "--evaluate", "--test-data", str(cur)]
    # mean radius and mean area grow together with malignancy (class 0): both at their maximum reads as malignant
    code, _, err = run_main("poison", str(ref), *common, "--columns", "0,3", "-o", str(out), "--trainer", "logistic")
    assert code == 0, err
    side = json.loads((tmp_path / "t.npz.json").read_text())
    values = side["params"]["values"]
    corners = ([x[:, 0].max(), x[:, 3].min()], [x[:, 0].min(), x[:, 3].max()])  # one high, the other low
    assert any(values == pytest.approx(c, rel=1e-6) for c in corners)
    ev = side["evaluation"]
    assert ev["clean"]["attack_success_rate"] < 0.2 and ev["poisoned"]["attack_success_rate"] >= 0.8
    assert "warning" not in err
    # a trigger the clean model already obeys is called out
    worst = ",".join(f"{v:g}" for v in x[:, [20, 22, 23]].max(axis=0))  # worst radius, perimeter, area
    code, _, err = run_main(
        "poison", str(ref), *common, "--columns", "20,22,23", "--values", worst, "-o", str(out), "--force",
        "--trainer", "logistic",
    )  # fmt: skip
    assert code == 0, err
    assert err.startswith("warning: ") and "not a backdoor signal" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attack", "badnets", "--rate", "0.1"], "needs --target"),
        (["--attack", "badnets", "--rate", "1.5", "--target", "0"], "fraction in (0, 1]"),
        (["--attack", "badnets", "--rate", "0.1", "--target", "12"], "not a class"),
        (["--attack", "badnets", "--rate", "0.1", "--target", "0", "--patch-size", "9"], "does not fit"),
        (["--attack", "poison-everything", "--rate", "0.1"], "unknown --attack"),
        (["--attack", "random-flip", "--rate", "0.1", "--target", "0"], "does not take it"),
        (["--attack", "targeted-flip", "--rate", "0.1"], "--pairs"),
        (["--attack", "targeted-flip", "--rate", "0.1", "--pairs", "1-7"], "source:destination"),
        (["--attack", "targeted-flip", "--rate", "0.5", "--pairs", "1:7"], "only"),
        (["--attack", "blend", "--rate", "0.1", "--target", "0", "--alpha", "0"], "alpha"),
        (["--attack", "random-flip", "--rate", "0.1", "--evaluate"], "--test-data"),
        (["--attack", "random-flip", "--rate", "0.1", "--trainer", "xgboost"], "unknown --trainer"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(run_main: RunMain, tmp_path: Path, args: list[str], message: str) -> None:
    code, stdout, err = run_main("poison", "sklearn:digits:train", "--out", str(tmp_path / "p.npz"), *args)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err and not (tmp_path / "p.npz").exists()


def test_badnets_on_flat_rows_asks_for_images(run_main: RunMain, tmp_path: Path) -> None:
    flat = tmp_path / "flat.npz"
    ds = sklearn_dataset("digits", "train")
    np.savez(flat, x=ds.x.numpy().reshape(len(ds), -1), y=ds.y.numpy())
    args = [
        "poison",
        str(flat),
        "--attack",
        "badnets",
        "--target",
        "0",
        "--rate",
        "0.1",
        "--out",
        str(tmp_path / "o.npz"),
    ]
    code, _, err = run_main(*args)
    assert code == 2 and "images" in err
    code, _, err = run_main(*args, "--input-shape", "1,8,8")
    assert code == 0, err
    assert load_dataset(str(tmp_path / "o.npz")).x.shape[1:] == (1, 8, 8)
