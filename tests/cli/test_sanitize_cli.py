"""`modelshield sanitize`: splits a set into kept and flagged rows, says why, scores itself against a poison sidecar."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from modelshield.core.files import hash_file

if TYPE_CHECKING:
    from conftest import RunMain


@pytest.fixture(autouse=True)
def one_blas_thread() -> Iterator[None]:
    with threadpool_limits(1):
        yield


@pytest.fixture
def flipped(run_main: RunMain, tmp_path: Path) -> Path:
    """digits' training split with 20 % of its labels flipped by `modelshield poison`, sidecar beside it."""
    path = tmp_path / "flipped.npz"
    code, _, err = run_main(
        "poison", "sklearn:digits:train", "-a", "random-flip", "--rate", "0.2", "--out", str(path), "--seed", "1"
    )
    assert code == 0, err
    return path


def test_confident_learning_finds_flipped_labels_and_nothing_is_dropped_unseen(
    run_main: RunMain, flipped: Path, tmp_path: Path
) -> None:
    out = tmp_path / "clean.npz"
    code, stdout, err = run_main("sanitize", str(flipped), "--detector", "confident-learning", "--out", str(out))
    assert code == 0, err
    assert "confident-learning" in stdout and "F1" in stdout
    side = json.loads((tmp_path / "clean.npz.json").read_text())
    assert side["evaluation"]["confident-learning"]["f1"] >= 0.8
    poisoned = set(json.loads(flipped.with_name("flipped.npz.json").read_text())["poisoned_indices"])
    source = np.load(flipped)
    with np.load(out) as kept, np.load(tmp_path / "clean.flagged.npz") as bad:
        # every row is in exactly one file, unchanged, and the sidecar names each flagged row and why
        assert sorted([*kept["index"], *bad["index"]]) == list(range(len(source["y"])))
        assert np.array_equal(bad["x"], source["x"][bad["index"]]) and np.array_equal(
            kept["y"], source["y"][kept["index"]]
        )
        listed = side["flagged"]
        assert [r["row"] for r in listed] == bad["index"].tolist()
    assert all(r["flagged_by"] == ["confident-learning"] and "confident-learning" in r["scores"] for r in listed)
    hits = sum(r["row"] in poisoned for r in listed)
    assert side["evaluation"]["confident-learning"]["true_positives"] == hits
    assert side["kept"]["sha256"] == hash_file(out)[0]


def test_mad_flags_planted_outliers_in_a_csv(run_main: RunMain, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    planted = [7, 42, 150, 151, 299]
    for i, row in enumerate(planted):
        x[row, i % 5] = 40.0  # one feature far outside the rest: what a bad join or a unit slip leaves
    y = rng.integers(0, 2, size=300)
    csv = tmp_path / "table.csv"
    lines = ["a,b,c,d,e,label", *(",".join([*(f"{v:.5f}" for v in r), str(t)]) for r, t in zip(x, y, strict=True))]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "kept.npz"
    code, stdout, err = run_main("sanitize", str(csv), "--detector", "mad", "--out", str(out))
    assert code == 0, err
    assert "not scored" in stdout  # a plain CSV has no poison sidecar to score against
    side = json.loads((tmp_path / "kept.npz.json").read_text())
    flagged = [r["row"] for r in side["flagged"]]
    assert set(planted) <= set(flagged) and len(flagged) <= len(planted) + 3
    assert all(side["flagged"][flagged.index(p)]["scores"]["mad"] > 20 for p in planted)
    assert side["evaluation"] is None and np.load(out)["x"].shape == (300 - len(flagged), 5)


def test_bad_detector_and_stale_sidecar_are_one_line_errors(run_main: RunMain, flipped: Path, tmp_path: Path) -> None:
    out = tmp_path / "clean.npz"
    code, _, err = run_main("sanitize", str(flipped), "-d", "mad", "-d", "spectrall", "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "'spectrall'" in err and "spectral" in err
    assert not out.exists()
    flat = tmp_path / "flat.npz"  # rows of 64 numbers, not 1×8×8 images: the built-in CNN cannot read them
    with np.load(flipped) as f:
        np.savez(flat, x=f["x"].reshape(len(f["y"]), -1), y=f["y"])
    code, _, err = run_main("sanitize", str(flat), "-d", "spectral", "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--input-shape 1,8,8" in err
    with np.load(flipped) as f:  # the data changed after poisoning: its sidecar's truth no longer holds
        x, y = f["x"], f["y"]
    np.savez(flipped, x=x[:-1], y=y[:-1])
    code, _, err = run_main("sanitize", str(flipped), "-d", "mad", "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "does not describe" in err
    assert not out.exists()


def test_existing_output_is_replaced_only_with_force(run_main: RunMain, tmp_path: Path) -> None:
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.default_rng(1).normal(size=(120, 3)), y=np.zeros(120, dtype=np.int64))
    out = tmp_path / "kept.npz"
    out.write_bytes(b"precious")
    code, _, err = run_main("sanitize", str(data), "-d", "isolation-forest", "--out", str(out))
    assert code == 2 and "already exist" in err and "--force" in err
    assert out.read_bytes() == b"precious" and not (tmp_path / "kept.npz.json").exists()
    code, _, err = run_main("sanitize", str(data), "-d", "isolation-forest", "--out", str(out), "--force")
    assert code == 0, err
    with np.load(out) as kept, np.load(tmp_path / "kept.flagged.npz") as bad:
        assert len(kept["y"]) + len(bad["y"]) == 120 and 0 < len(bad["y"]) < 30  # --rate 0.1 by default
