"""`modelshield privacy audit`: a scikit-learn model from a skops file and its data files, the demo, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.tree import DecisionTreeClassifier

if TYPE_CHECKING:
    from conftest import RunMain


@pytest.fixture(scope="module")
def tree_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An unpruned decision tree (it memorises its training set) on 150 digits, 150 others as non-members."""
    skops_io = pytest.importorskip("skops.io")
    folder = tmp_path_factory.mktemp("privacy")
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x = (x / 16).astype(np.float32)
    members, others = order[:150], order[150:300]
    clf = DecisionTreeClassifier(random_state=0).fit(x[members], y[members])
    skops_io.dump(clf, folder / "tree.skops")
    np.savez(folder / "members.npz", x=x[members], y=y[members])
    np.savez(folder / "non_members.npz", x=x[others], y=y[others])
    return {k: folder / f"{k}{ext}" for k, ext in (("tree", ".skops"), ("members", ".npz"), ("non_members", ".npz"))}


def test_audit_of_a_skops_tree_writes_json_and_plot(
    run_main: RunMain, tree_files: dict[str, Path], tmp_path: Path
) -> None:
    out, png = tmp_path / "mia.json", tmp_path / "roc.png"
    code, stdout, stderr = run_main(
        "privacy", "audit",
        "--model", str(tree_files["tree"]),
        "--members", str(tree_files["members"]),
        "--non-members", str(tree_files["non_members"]),
        "--attacks", "loss,lira,rmia",
        "--trust-type", "sklearn.tree._tree.Tree",
        "--reference-models", "4",
        "--json", str(out),
        "--plot", str(png),
    )  # fmt: skip
    assert code == 0, stderr
    doc = json.loads(out.read_text())
    rows = {r["attack"]: r for r in doc["attacks"]}
    assert set(rows) == {"loss", "lira-online", "rmia-online"} and doc["reference_models"] == 4
    # a memorising tree is confident on every member: the loss attack sees it, LiRA sees more at low FPR
    assert rows["loss"]["auc"] > 0.7
    assert rows["lira-online"]["tpr_at_fpr_0.01"] >= rows["loss"]["tpr_at_fpr_0.01"]
    assert rows["loss"]["unresolved_fprs"] == [0.001] and "below that resolution" in stdout
    assert rows["loss"]["epsilon_lower_bound"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "lira-online" in stdout and "TPR@0.1%FPR" in stdout


def test_demo_retrains_the_torch_recipe_for_reference_models(run_main: RunMain) -> None:
    code, stdout, stderr = run_main(
        "privacy", "audit", "--demo", "--attacks", "loss,label-only,lira-offline", "--threads", "1",
        "--reference-models", "2", "--ref-epochs", "30",
    )  # fmt: skip
    assert code == 0, stderr
    assert "100 members, 100 non-members" in stdout and "label-only" in stdout and "lira-offline" in stdout
    assert "2 reference models trained" in stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--attacks", "loss,magic"], "unknown attack 'magic'"),
        (["--reference-models", "3"], "even number"),
        ([], "give --model, --members and --non-members"),
        (["--model", "missing.skops", "--members", "nope.npz", "--non-members", "nope.npz"], "nope.npz"),
    ],
)
def test_bad_input_is_one_line_exit_2(run_main: RunMain, args: list[str], words: str) -> None:
    code, stdout, stderr = run_main("privacy", "audit", *args)
    assert code == 2 and stdout == ""
    assert words in stderr and len(stderr.strip().splitlines()) == 1


def test_labels_the_model_does_not_know_are_refused(
    run_main: RunMain, tree_files: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.random.default_rng(0).random((4, 64), np.float32), y=np.full(4, 12))
    code, _, stderr = run_main(
        "privacy", "audit", "--model", str(tree_files["tree"]), "--members", str(bad),
        "--non-members", str(tree_files["non_members"]), "--attacks", "loss",
        "--trust-type", "sklearn.tree._tree.Tree",
    )  # fmt: skip
    assert code == 2 and "labels range over [0, 12], the model has 10 classes" in stderr
