"""scikit-learn models as users ship them — fitted on their data, saved with skops — assessed with the
default attack list through the CLI on a CSV written by pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from realworld_settings import QUICK, N
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from modelshield.core.datasets import sklearn_dataset

TREE = "sklearn.tree._tree.Tree"  # what skops does not trust by default in tree ensembles
ESTIMATORS = {
    "svc": lambda: SVC(probability=True, random_state=0),
    "gradient-boosting": lambda: GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0),
    "random-forest": lambda: RandomForestClassifier(n_estimators=30, random_state=0),
    "pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
}
TRUST = {"gradient-boosting": ["--trust-type", TREE], "random-forest": ["--trust-type", TREE]}


@pytest.fixture(scope="module")
def digits_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """64 test digits as a CSV the way pandas writes one: pixel0..pixel63, then a 'label' column."""
    test = sklearn_dataset("digits", "test")
    x, y = test.x.flatten(1).numpy()[:N], test.y.numpy()[:N]
    path = tmp_path_factory.mktemp("csv") / "digits_test.csv"
    pd.DataFrame(x, columns=[f"pixel{i}" for i in range(x.shape[1])]).assign(label=y).to_csv(path, index=False)
    return path, x, y


@pytest.fixture(scope="module")
def fitted() -> dict[str, object]:
    train = sklearn_dataset("digits", "train")
    x, y = train.x.flatten(1).numpy(), train.y.numpy()
    with threadpool_limits(1):
        return {name: make().fit(x, y) for name, make in ESTIMATORS.items()}


def skops_file(estimator: object, folder: Path, name: str) -> Path:
    path = folder / f"{name}.skops"
    sio.dump(estimator, path)
    return path


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_default_attacks(fitted, digits_csv, tmp_path, assess_cli, name):
    csv, x, y = digits_csv
    model = skops_file(fitted[name], tmp_path, name)
    report = assess_cli("--model", str(model), "--data", str(csv), *TRUST.get(name, []), *QUICK)
    assert {r["attack"] for r in report["attacks"]} == {"square", "hopskipjump"}
    # Labels mean what the estimator means: clean accuracy is the estimator's own predict, not argmax(proba).
    assert report["clean_accuracy"] == pytest.approx(float((fitted[name].predict(x) == y).mean()))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_default_settings(fitted, digits_csv, tmp_path, assess_cli, name):
    csv, _, _ = digits_csv
    model = skops_file(fitted[name], tmp_path, name)
    report = assess_cli("--model", str(model), "--data", str(csv), *TRUST.get(name, []))
    assert {r["attack"] for r in report["attacks"]} == {"square", "hopskipjump"}


def test_untrusted_tree_types_name_the_flag(fitted, digits_csv, tmp_path, run_main):
    """A tree ensemble is refused until its types are trusted, and the refusal names the CLI flag."""
    model = skops_file(fitted["random-forest"], tmp_path, "forest")
    code, _, err = run_main("assess", "--model", str(model), "--data", str(digits_csv[0]), "--out", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--trust-type" in err and TREE in err


def test_csv_with_text_columns_is_one_line(fitted, digits_csv, tmp_path, run_main):
    """A CSV straight from a spreadsheet (a text id and a text source column) is refused naming both."""
    csv, x, y = digits_csv
    table = pd.read_csv(csv).assign(image_id=[f"img-{i:04d}" for i in range(len(x))], source="scanner-2")
    table.to_csv(tmp_path / "export.csv", index=False)
    model = skops_file(fitted["pipeline"], tmp_path, "pipeline")
    code, _, err = run_main(
        "assess", "--model", str(model), "--data", str(tmp_path / "export.csv"), "--out", str(tmp_path / "o")
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "image_id, source hold text" in err
