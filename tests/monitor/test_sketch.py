"""Reference sketches: exact bin counts, chunking-invariant, stored with a digest that catches edits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_wine

from modelshield.core.errors import FormatError, InputError, IntegrityError
from modelshield.monitor.sketch import NumericFeature, build_sketch, load_sketch, save_sketch
from modelshield.monitor.tables import chunk_source


def _wine() -> dict[str, np.ndarray]:
    bunch = load_wine()
    cols = {name: bunch.data[:, j] for j, name in enumerate(bunch.feature_names)}
    cols["cultivar"] = np.array(["barolo", "grignolino", "barbera"])[bunch.target]
    return cols


def test_sketch_counts_every_row_in_its_bin() -> None:
    data = _wine()
    sketch = build_sketch(chunk_source(data), bins=20, sample=100, reservoir=50)
    alcohol = sketch.feature("alcohol")
    assert isinstance(alcohol, NumericFeature)
    assert alcohol.counts.sum() == len(data["alcohol"]) == sketch.rows
    # bins are (e_{i-1}, e_i]: recount by brute force
    x = data["alcohol"]
    lower = np.concatenate([[-np.inf], alcohol.edges])
    upper = np.concatenate([alcohol.edges, [np.inf]])
    brute = [int(np.sum((x > lo) & (x <= hi))) for lo, hi in zip(lower, upper, strict=True)]
    assert alcohol.counts.tolist() == brute
    assert alcohol.mean == pytest.approx(x.mean()) and alcohol.std == pytest.approx(x.std())
    cultivar = sketch.feature("cultivar")
    assert cultivar.type == "categorical" and sum(cultivar.categories.values()) == 178  # type: ignore[union-attr]
    assert sketch.reservoir.shape == (50, 13)


def test_chunking_does_not_change_the_sketch() -> None:
    data = _wine()
    one = build_sketch(chunk_source(data), bins=20, sample=100, reservoir=50)
    many = build_sketch(chunk_source(data, chunk_rows=7), bins=20, sample=100, reservoir=50)
    a, b = one.to_dict(), many.to_dict()
    for fa, fb in zip(a["features"], b["features"], strict=True):
        for key in ("mean", "std"):  # merged chunk by chunk: equal up to rounding
            if key in fa:
                assert fb.pop(key) == pytest.approx(fa.pop(key), rel=1e-12)
        assert fa == fb  # edges, counts, ranges, categories: exactly
    assert a["reservoir"] == b["reservoir"]  # the same rows, in the same order


def test_csv_and_parquet_give_the_same_sketch(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(_wine())
    frame.to_csv(tmp_path / "wine.csv", index=False)
    frame.to_parquet(tmp_path / "wine.parquet")
    a = build_sketch(chunk_source(tmp_path / "wine.csv"), bins=20, sample=100, reservoir=50)
    b = build_sketch(chunk_source(tmp_path / "wine.parquet"), bins=20, sample=100, reservoir=50)
    b.created = a.created
    assert a.to_dict()["features"] == b.to_dict()["features"]


def test_round_trip_and_digest(tmp_path: Path) -> None:
    sketch = build_sketch(chunk_source(_wine()), bins=20, sample=100, reservoir=50)
    path = tmp_path / "ref.sketch.json"
    digest = save_sketch(sketch, path)
    again = load_sketch(path)
    assert again.digest == digest == sketch.digest
    assert again.to_dict() == sketch.to_dict()
    np.testing.assert_array_equal(again.reservoir, sketch.reservoir)

    data = json.loads(path.read_text())
    data["features"][0]["counts"][3] += 1  # one count edited by hand
    path.write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="digest"):
        load_sketch(path)

    data = sketch.to_dict()
    data["version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match="version 99"):
        load_sketch(path)


def test_missing_values_are_counted_not_binned() -> None:
    x = np.array([1.0, np.nan, 2.0, 3.0, np.nan, 4.0] * 50)
    sketch = build_sketch(chunk_source({"x": x, "c": np.array(["a", None, "b", "", "a", "b"] * 50, dtype=object)}),
                          bins=4, sample=10, reservoir=5)  # fmt: skip
    f = sketch.feature("x")
    assert isinstance(f, NumericFeature) and f.missing == 100 and f.counts.sum() == 200
    c = sketch.feature("c")
    assert c.missing == 100 and c.categories == {"a": 100, "b": 100}  # type: ignore[union-attr]


def test_high_cardinality_is_capped() -> None:
    ids = np.array([f"user{i}" for i in range(5000)] + ["common"] * 5000)
    sketch = build_sketch(chunk_source({"id": ids}, chunk_rows=500), bins=2, sample=10, reservoir=5, max_categories=10)
    f = sketch.feature("id")
    assert len(f.categories) == 10 and f.categories["common"] == 5000  # type: ignore[union-attr]
    assert sum(f.categories.values()) + f.other == 10_000  # type: ignore[union-attr]


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="no rows"):
        build_sketch(chunk_source({"x": np.empty(0)}))
    with pytest.raises(InputError, match="different lengths"):
        build_sketch(chunk_source({"x": np.ones(3), "y": np.ones(4)}))
    with pytest.raises(InputError, match="bins"):
        build_sketch(chunk_source({"x": np.ones(3)}), bins=1)
