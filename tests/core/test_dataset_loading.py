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


def test_text_feature_columns_are_named_in_one_line(tmp_path):
    """Text features are not guessed into numbers: every text column is named, with what to do instead."""
    path = tmp_path / "t.csv"
    frame().assign(colour=["red", "green", "blue"] * 10, city="Oslo").to_csv(path, index=False)
    with pytest.raises(InputError, match="columns colour, city hold text") as info:
        load_dataset(str(path))
    assert "get_dummies" in info.value.diagnostics() and "\n" not in info.value.diagnostics()
    frame().assign(**{f"t{i}": "a" for i in range(12)}).to_csv(path, index=False)
    with pytest.raises(InputError, match="t9 and 2 more hold text"):
        load_dataset(str(path))


def test_text_labels_become_sorted_class_indices(tmp_path):
    """As scikit-learn's classes_ orders them, so index i is the estimator's classes_[i]."""
    path = tmp_path / "iris.csv"
    names = np.array(["virginica", "setosa", "versicolor"])
    frame().drop(columns="target").assign(species=names[Y]).to_csv(path, index=False)
    ds = load_dataset(str(path), label_column="species")
    assert ds.class_names == ["setosa", "versicolor", "virginica"]
    assert [ds.class_names[i] for i in ds.y.tolist()] == names[Y].tolist()


def test_empty_cells_are_named(tmp_path):
    path = tmp_path / "t.csv"
    table = frame()
    table.loc[4, "f2"] = np.nan
    table.to_csv(path, index=False)
    with pytest.raises(InputError, match="columns f2 have empty cells"):
        load_dataset(str(path))
    table.loc[4, "f2"] = 0.0
    table.loc[7, "target"] = np.nan
    table.to_csv(path, index=False)
    with pytest.raises(InputError, match="1 rows have no 'target'"):
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


MIXED_MODES = {
    "L": Image.new("L", (6, 5), 51),
    "LA": Image.new("LA", (6, 5), (102, 0)),
    "I;16": Image.fromarray(np.full((5, 6), 13107, np.uint16)),  # 16-bit grey PNG: 0.2 of full scale
    "1": Image.new("1", (6, 5), 1),
    "RGB": Image.new("RGB", (6, 5), (255, 0, 51)),
    "RGBA": Image.new("RGBA", (6, 5), (0, 255, 0, 0)),  # fully transparent: the colour is kept, alpha dropped
    "P": Image.new("RGB", (6, 5), (0, 0, 255)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4),
}
GREY_VALUE = {"L": 0.2, "LA": 0.4, "I;16": 0.2, "1": 1.0}
RGB_VALUE = {"RGB": (1.0, 0.0, 0.2), "RGBA": (0.0, 1.0, 0.0), "P": (0.0, 0.0, 1.0)}


def save_modes(root, modes: list[str]) -> list[str]:
    """One image per mode under root/<mode>/ (class folders sort as the returned list)."""
    for mode in modes:
        (root / mode).mkdir(parents=True)
        MIXED_MODES[mode].save(root / mode / "0.png")
    return sorted(modes)


def test_image_folder_of_mixed_modes_reads_as_rgb(tmp_path):
    """Palette, alpha, 16-bit and 1-bit images next to RGB ones: all RGB, as torchvision's ImageFolder reads."""
    classes = save_modes(tmp_path, list(MIXED_MODES))
    ds = load_dataset(str(tmp_path))
    assert ds.x.shape == (len(classes), 3, 5, 6) and ds.class_names == classes
    for i, mode in enumerate(classes):
        expected = RGB_VALUE.get(mode) or (GREY_VALUE[mode],) * 3
        np.testing.assert_allclose(ds.x[i].mean(dim=(1, 2)).numpy(), expected, atol=1e-3, err_msg=mode)


def test_image_folder_of_grey_modes_stays_one_channel(tmp_path):
    classes = save_modes(tmp_path, list(GREY_VALUE))
    ds = load_dataset(str(tmp_path))
    assert ds.x.shape == (len(classes), 1, 5, 6)
    np.testing.assert_allclose(ds.x.mean(dim=(1, 2, 3)).numpy(), [GREY_VALUE[m] for m in classes], atol=1e-3)


def test_image_size_resizes_mixed_sizes(tmp_path):
    write_images(tmp_path, {"a": [(40, 30), (12, 12)], "b": [(7, 9)]}, "RGB")
    Image.new("RGB", (33, 17), (255, 128, 0)).save(tmp_path / "b" / "flat.png")
    with pytest.raises(InputError, match="is 12×12 but .* is 40×30") as info:
        load_dataset(str(tmp_path))
    assert "pass --image-size H,W" in info.value.diagnostics()
    ds = load_dataset(str(tmp_path), image_size=(16, 20))
    assert ds.x.shape == (4, 3, 16, 20) and 0.0 <= float(ds.x.min()) and float(ds.x.max()) <= 1.0
    np.testing.assert_allclose(ds.x[3].mean(dim=(1, 2)).numpy(), (1.0, 128 / 255, 0.0), atol=1e-3)  # flat stays flat
    np.savez(tmp_path / "d.npz", x=X, y=Y)
    with pytest.raises(InputError, match="applies to image folders"):
        load_dataset(str(tmp_path / "d.npz"), image_size=(8, 8))


def test_32_bit_images_are_refused_with_the_file_named(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.full((4, 4), 70000, np.int32)).save(tmp_path / "a" / "deep.tif")
    with pytest.raises(InputError, match="deep.tif is a 32-bit I-mode image"):
        load_dataset(str(tmp_path))


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
