from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modelshield.core.datasets import load_dataset
from modelshield.core.errors import FormatError, InputError, MissingFileError, UnsafeFormatError

RNG = np.random.default_rng(0)
X = RNG.uniform(-2.0, 3.0, size=(30, 4)).astype(np.float32)
Y = np.arange(30) % 3


def test_sklearn_specs():
    iris = load_dataset("sklearn:iris")
    digits = load_dataset("sklearn:digits:train", bounds=(0.0, 1.0))
    assert iris.name == "sklearn:iris:test" and iris.x.shape[1:] == (4,) and iris.class_names[0] == "setosa"
    assert digits.is_image and digits.x.shape[1:] == (1, 8, 8) and len(digits) > len(iris)
    with pytest.raises(InputError, match="unknown scikit-learn dataset"):
        load_dataset("sklearn:mnist")


def test_npz_infers_bounds_from_the_data(tmp_path):
    with open(tmp_path / "data.bin", "wb") as f:  # np.savez would add .npz to a path; the name is irrelevant
        np.savez(f, x=X, y=Y)
    ds = load_dataset(str(tmp_path / "data.bin"))
    assert ds.x.dtype.is_floating_point and ds.y.tolist() == Y.tolist()
    assert ds.bounds == (float(X.min()), float(X.max()))
    assert load_dataset(str(tmp_path / "data.bin"), bounds=(-5, 5), input_shape=(2, 2)).x.shape == (30, 2, 2)


def test_npy_pair(tmp_path):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    ds = load_dataset(f"{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}")
    assert len(ds) == 30
    with pytest.raises(InputError, match="holds one array"):
        load_dataset(str(tmp_path / "x.npy"))


def test_object_arrays_and_pickles_are_refused(tmp_path):
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}] * 2, dtype=object), y=np.zeros(2))
    with pytest.raises(UnsafeFormatError, match="Python objects"):
        load_dataset(str(tmp_path / "objects.npz"))
    (tmp_path / "data.csv").write_bytes(pickle.dumps({"x": X.tolist(), "y": Y.tolist()}))
    with pytest.raises(UnsafeFormatError, match="arbitrary code"):
        load_dataset(str(tmp_path / "data.csv"))


def frame() -> pd.DataFrame:
    return pd.DataFrame({**{f"f{i}": X[:, i] for i in range(4)}, "target": Y})


@pytest.mark.parametrize("writer", ["csv", "parquet"])
def test_tables_by_content_not_extension(tmp_path, writer):
    path = tmp_path / ("table.parquet" if writer == "csv" else "table.csv")  # names that lie
    frame().to_csv(path, index=False) if writer == "csv" else frame().to_parquet(path)
    ds = load_dataset(str(path))
    np.testing.assert_allclose(ds.x.numpy(), X, rtol=1e-6)
    assert ds.y.tolist() == Y.tolist()


def test_table_label_column_rules(tmp_path):
    path = tmp_path / "t.csv"
    frame().rename(columns={"target": "species"}).to_csv(path, index=False)
    with pytest.raises(InputError, match="no label column"):
        load_dataset(str(path))
    assert load_dataset(str(path), label_column="species").y.tolist() == Y.tolist()
    frame().assign(colour="red").to_csv(path, index=False)
    with pytest.raises(InputError, match="must be numeric, not colour"):
        load_dataset(str(path))


def write_images(root, sizes: dict[str, list[tuple[int, int]]], mode: str = "L") -> None:
    for cls, shapes in sizes.items():
        (root / cls).mkdir(parents=True)
        for i, (w, h) in enumerate(shapes):
            pixels = RNG.integers(0, 256, size=(h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
            Image.fromarray(pixels, mode).save(root / cls / f"{i}.png")


@pytest.mark.parametrize(("mode", "channels"), [("L", 1), ("RGB", 3)])
def test_image_folder(tmp_path, mode, channels):
    write_images(tmp_path, {"dog": [(6, 5)] * 2, "cat": [(6, 5)] * 3}, mode)
    ds = load_dataset(str(tmp_path))
    assert ds.x.shape == (5, channels, 5, 6) and ds.class_names == ["cat", "dog"]
    assert ds.y.tolist() == [0, 0, 0, 1, 1] and ds.bounds == (0.0, 1.0)
    assert 0.0 <= float(ds.x.min()) and float(ds.x.max()) <= 1.0


@pytest.mark.parametrize(
    ("sizes", "message"),
    [({"a": [(4, 4)], "b": [(4, 5)]}, "is 4×5 but"), ({"a": [(4, 4)], "b": []}, "have no .png")],
)
def test_bad_image_folders(tmp_path, sizes, message):
    write_images(tmp_path, sizes)
    with pytest.raises(InputError, match=message):
        load_dataset(str(tmp_path))


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "message"),
    [
        (np.where(np.eye(30, 4) > 0, np.nan, X), Y, {}, "NaN or Inf"),
        (np.where(np.eye(30, 4) > 0, np.inf, X), Y, {}, "NaN or Inf"),
        (X, Y - 1, {}, "found -1"),
        (X, Y + 0.5, {}, "integer class index"),
        (X[:0], Y[:0], {}, "no samples"),
        (X, Y[:29], {}, "30 inputs but 29 labels"),
        (X, Y, {"bounds": (0.0, 1.0)}, "outside the bounds"),
        (X, Y, {"input_shape": (3, 3)}, "cannot be reshaped"),
    ],
)
def test_validation_errors(tmp_path, x, y, kwargs, message):
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(InputError, match=message):
        load_dataset(str(tmp_path / "d.npz"), **kwargs)


def test_missing_and_unknown(tmp_path):
    with pytest.raises(MissingFileError):
        load_dataset(str(tmp_path / "nothing.csv"))
    (tmp_path / "blob").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(FormatError, match="supported: sklearn"):
        load_dataset(str(tmp_path / "blob"))
