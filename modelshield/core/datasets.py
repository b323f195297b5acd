"""Evaluation data as tensors: scikit-learn's bundled sets, arrays, tables and image folders.

Every loader returns a ``Dataset`` whose inputs are float32 in a known box (``bounds``) and whose
labels are int64 class indices, so an attack's ε means the same thing whatever the source. Files
are told apart by content, and bad data (NaN, fractional labels, values outside the bounds) is
refused with the reason rather than silently fixed.

Two conversions are made because their result is unambiguous, and both are stated here:

* Text labels in a table become class indices in sorted order (``class_names`` keeps the text);
  scikit-learn orders ``classes_`` the same way, so index i is the estimator's ``classes_[i]``.
* Images are read as torchvision's ``ImageFolder`` reads them: every mode (P, RGBA, LA, CMYK,
  16-bit grey ...) becomes RGB, alpha dropped; only a folder of nothing but grey images stays one
  channel. Images of different sizes are refused unless ``image_size`` is given, then each is
  resized (bilinear, antialiased) to it.

Text feature columns are not converted (one-hot or ordinal codes are the model's business, and a
guess would attack features the model never saw): they are refused with the columns named.
"""

from __future__ import annotations

import codecs
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from modelshield.core.errors import DependencyError, FormatError, InputError
from modelshield.core.file_formats import detect_format, refuse_pickled_npy


@dataclass
class Dataset:
    """Inputs ``x`` (N, ...) float32 inside ``bounds`` and labels ``y`` (N,) int64."""

    x: Tensor
    y: Tensor
    name: str
    bounds: tuple[float, float] = (0.0, 1.0)
    class_names: list[str] | None = None

    @property
    def is_image(self) -> bool:
        """True for (N, C, H, W) data with 1 or 3 channels, where example grids make sense."""
        return self.x.ndim == 4 and self.x.shape[1] in (1, 3)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, n: int, seed: int = 0) -> Dataset:
        """A reproducible random subset of at most ``n`` samples."""
        if n >= len(self):
            return self
        idx = torch.from_numpy(np.random.default_rng(seed).permutation(len(self))[:n])
        return Dataset(self.x[idx], self.y[idx], self.name, self.bounds, self.class_names)


SKLEARN_SETS = ("digits", "breast_cancer", "wine", "iris")


def sklearn_dataset(name: str, split: str = "test", test_size: float = 0.25, seed: int = 0) -> Dataset:
    """One of scikit-learn's bundled datasets, split reproducibly and scaled into [0, 1].

    Digits come as (N, 1, 8, 8) images (pixel values / 16); tabular sets are min-max scaled
    with the training split's range so test data is treated as unseen.
    """
    from sklearn import datasets as skd
    from sklearn.model_selection import train_test_split

    if name not in SKLEARN_SETS:
        raise InputError(f"unknown scikit-learn dataset {name!r}; choose one of {', '.join(SKLEARN_SETS)}")
    if split not in ("train", "test", "all"):
        raise InputError(f"split must be train, test or all, not {split!r}")
    bunch = getattr(skd, f"load_{name}")()
    x = np.asarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    if name == "digits":
        lo, hi = np.zeros(x.shape[1], np.float32), np.full(x.shape[1], 16.0, np.float32)
    else:
        lo, hi = x_tr.min(axis=0), x_tr.max(axis=0)
    xs, ys = {"train": (x_tr, y_tr), "test": (x_te, y_te), "all": (x, y)}[split]
    xs = np.clip((xs - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0).astype(np.float32)
    if name == "digits":
        xs = xs.reshape(-1, 1, 8, 8)
    names = [str(n) for n in getattr(bunch, "target_names", range(int(y.max()) + 1))]
    return Dataset(torch.from_numpy(xs), torch.from_numpy(ys), f"sklearn:{name}:{split}", (0.0, 1.0), names)


SUPPORTED_DATA = "sklearn:<name>[:train|test], .npz with x and y, 'x.npy,y.npy', CSV, Parquet, an image folder"
LABEL_COLUMNS = ("label", "target", "y")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def load_dataset(
    spec: str,
    *,
    label_column: str | None = None,
    bounds: tuple[float, float] | None = None,
    input_shape: Sequence[int] | None = None,
    image_size: tuple[int, int] | None = None,
) -> Dataset:
    """Load evaluation data from a spec: ``sklearn:digits[:train]``, a file, two .npy files or a folder.

    Images (a folder of ``<class>/*.png|jpg|...``) are scaled into [0, 1] as (N, C, H, W) and default
    to bounds (0, 1); ``image_size`` (height, width) resizes them all, which a folder of mixed sizes
    needs. Other data keeps its values and, unless ``bounds`` is given, the box they span.
    ``input_shape`` reshapes flat rows (e.g. ``(1, 8, 8)``). Tables take their labels from
    ``label_column`` or a column named label, target or y.
    """
    checks: dict[str, Any] = {"bounds": bounds, "input_shape": input_shape}
    if spec.startswith("sklearn:"):
        name, _, split = spec.removeprefix("sklearn:").partition(":")
        ds = sklearn_dataset(name, split or "test")
        return _checked(
            ds.x.numpy(), ds.y.numpy(), ds.name, default_bounds=ds.bounds, class_names=ds.class_names, **checks
        )
    path = Path(spec)
    if not path.exists() and spec.count(",") == 1:
        x, y = (_read_npy(Path(p)) for p in spec.split(","))
        return _checked(x, y, spec, **checks)
    if image_size is not None and not path.is_dir():
        raise InputError(f"--image-size applies to image folders, and {spec} is not a folder")
    if path.is_dir():
        x, y, classes = _image_folder(path, image_size)
        return _checked(x, y, spec, default_bounds=(0.0, 1.0), class_names=classes, **checks)
    fmt = detect_format(path)
    if fmt == "npz":
        return _checked(*_read_npz(path), spec, **checks)
    if fmt == "npy":
        raise InputError(f"{path} holds one array; pass 'x.npy,y.npy' or an .npz with arrays x and y")
    if fmt == "parquet" or (fmt == "unknown" and _is_text(path)):
        x, y, text_labels = _table(path, "parquet" if fmt == "parquet" else "csv", label_column)
        return _checked(x, y, spec, class_names=text_labels, **checks)
    raise FormatError(f"{path} is not a dataset modelshield reads ({fmt}); supported: {SUPPORTED_DATA}")


def _checked(
    x: np.ndarray,
    y: np.ndarray,
    name: str,
    *,
    bounds: tuple[float, float] | None,
    input_shape: Sequence[int] | None,
    default_bounds: tuple[float, float] | None = None,
    class_names: list[str] | None = None,
) -> Dataset:
    """Validate and convert arrays into a Dataset, refusing what an attack would silently mangle."""
    if len(x) == 0:
        raise InputError(f"{name} has no samples")
    if len(x) != len(y):
        raise InputError(f"{name} has {len(x)} inputs but {len(y)} labels")
    if x.dtype.kind not in "biuf":
        raise InputError(f"{name}: inputs are not numeric ({x.dtype})")
    if y.ndim != 1 or y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.array_equal(y, np.round(y))):
        raise InputError(f"{name}: labels must be one integer class index per sample", hint="encode classes as 0..C-1")
    if y.min() < 0:
        raise InputError(f"{name}: labels must be class indices 0..C-1, found {int(y.min())}")
    x = x.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise InputError(f"{name}: {bad} input values are NaN or Inf")
    if input_shape is not None:
        if int(np.prod(input_shape)) != int(np.prod(x.shape[1:])):
            raise InputError(f"{name}: samples of shape {x.shape[1:]} cannot be reshaped to {tuple(input_shape)}")
        x = x.reshape(len(x), *input_shape)
    lo, hi = bounds or default_bounds or (float(x.min()), float(x.max()))
    if lo >= hi:
        raise InputError(f"{name}: bounds ({lo}, {hi}) are empty", hint="pass bounds=(low, high)")
    tol = 1e-5 * max(1.0, hi - lo)
    if float(x.min()) < lo - tol or float(x.max()) > hi + tol:
        raise InputError(f"{name}: inputs range over [{x.min():.4g}, {x.max():.4g}], outside the bounds [{lo}, {hi}]")
    return Dataset(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)), name, (float(lo), float(hi)), class_names)


def _read_npy(path: Path) -> np.ndarray:
    if detect_format(path) != "npy":
        raise FormatError(f"{path} is not a .npy array")
    return np.load(path, allow_pickle=False)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays x and y of an .npz; headers are checked first so object arrays are never read."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        if not {"x.npy", "y.npy"} <= set(names):
            raise InputError(f"{path} has arrays {sorted(n.removesuffix('.npy') for n in names)}; it needs x and y")
        for name in ("x.npy", "y.npy"):
            with zf.open(name) as f:
                refuse_pickled_npy(f, f"{path}:{name}")
    with np.load(path, allow_pickle=False) as arrays:
        return arrays["x"], arrays["y"]


def _is_text(path: Path) -> bool:
    """True when the file starts with UTF-8 text and no NUL bytes (a CSV candidate)."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def _table(path: Path, fmt: str, label_column: str | None) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Features, labels and (for text labels) class names of a CSV with a header row, or a Parquet table."""
    try:
        import pandas as pd
    except ImportError as e:
        raise DependencyError("reading tables needs pandas", hint="pip install 'modelshield[data]'") from e
    try:
        frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    except (ValueError, ImportError) as e:  # pandas' parser errors are ValueErrors; ImportError: no pyarrow
        raise FormatError(f"cannot read {path} as {fmt}: {' '.join(str(e).split())[:200]}") from e
    columns = [str(c) for c in frame.columns]
    label = label_column or next((c for c in LABEL_COLUMNS if c in columns), None)
    if label is None or label not in columns:
        wanted = label_column or " / ".join(LABEL_COLUMNS)
        raise InputError(
            f"{path} has no label column {wanted!r}; columns: {_names(columns)}",
            hint="name it label, target or y, or pass --label-column",
        )
    features = frame.drop(columns=[label])
    if features.shape[1] == 0:
        raise InputError(f"{path} has a label column {label!r} but no feature columns")
    text = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text:
        raise InputError(
            f"{path}: feature columns {_names(text)} hold text, and attacks perturb numbers",
            hint="encode them as the model was trained (e.g. pandas.get_dummies for one-hot) or drop them",
        )
    missing = [str(c) for c in features.columns if features[c].isna().any()]
    if missing:
        raise InputError(f"{path}: feature columns {_names(missing)} have empty cells", hint="fill or drop those rows")
    labels = frame[label]
    if labels.isna().any():
        raise InputError(f"{path}: {int(labels.isna().sum())} rows have no {label!r}")
    if pd.api.types.is_numeric_dtype(labels):
        return features.to_numpy(), labels.to_numpy(), None
    classes, codes = np.unique(labels.astype(str).to_numpy(), return_inverse=True)  # sorted, as scikit-learn does
    return features.to_numpy(), codes.astype(np.int64), [str(c) for c in classes]


def _names(columns: Sequence[str], limit: int = 10) -> str:
    """Column names for a message: the first ``limit``, then how many more."""
    shown = ", ".join(columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


def _image_folder(root: Path, size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images under root/<class>/ as (N, C, H, W) in [0, 1]: one channel if every image is grey, else RGB."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as e:
        raise DependencyError("reading images needs Pillow", hint="pip install 'modelshield[data]'") from e
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise InputError(f"{root} has no class folders; expected {root}/<class>/*.png")
    files = [
        (i, f)
        for i, c in enumerate(classes)
        for f in sorted((root / c).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
    ]
    empty = sorted(set(classes) - {classes[i] for i, _ in files})
    if empty:
        raise InputError(f"class folders {', '.join(empty)} under {root} have no {'/'.join(IMAGE_SUFFIXES)} images")
    images = []
    for _, file in files:
        try:
            with Image.open(file) as im:
                images.append(_pixels(im, size, file))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise InputError(f"cannot read image {file}: {e}") from e
        if images[-1].shape[:2] != images[0].shape[:2]:
            (h, w), (h0, w0) = images[-1].shape[:2], images[0].shape[:2]
            raise InputError(
                f"{file} is {w}×{h} but {files[0][1]} is {w0}×{h0}", hint="pass --image-size H,W to resize them all"
            )
    if all(p.ndim == 2 for p in images):
        x = np.stack(images)[:, None]
    else:
        x = np.stack([np.repeat(p[..., None], 3, axis=2) if p.ndim == 2 else p for p in images]).transpose(0, 3, 1, 2)
    return x, np.asarray([i for i, _ in files], dtype=np.int64), classes


def _pixels(im: Any, size: tuple[int, int] | None, file: Path) -> np.ndarray:
    """One image as float32 in [0, 1]: (H, W) for grey modes, (H, W, 3) for every other mode."""
    from PIL import Image

    if im.mode in GREY_MODES:
        if im.mode.startswith("I;16"):
            grey, scale = im.convert("I"), 65535.0
        elif im.mode in ("I", "F"):
            raise InputError(f"{file} is a 32-bit {im.mode}-mode image with no fixed range; save it as 8- or 16-bit")
        else:
            grey, scale = im.convert("L"), 255.0
        out = grey.convert("F")
    else:
        out, scale = im.convert("RGB"), 255.0  # P, RGBA, CMYK, YCbCr ...: as torchvision's loader does
    if size is not None:
        out = out.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.float32) / scale
