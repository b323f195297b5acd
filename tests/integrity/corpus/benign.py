"""Benign model files written by the real libraries, the way users write them, across formats and options.

Left out on purpose: Keras's ``weights_format="npz"`` on the torch backend (3.15 writes object arrays of
pickled Variables, with a nested ``torch.load``, that Keras itself then refuses to load).

Each writer is a small real model (BatchNorm, in-place ReLU, pipelines, boosted trees) saved with the
library's own call and its default options, then again across the options users change (legacy torch
format, pickle protocols, joblib compressors, Keras weight formats). A library that is not installed
is left out and named in ``skipped``; nothing here is ever loaded back.
"""

from __future__ import annotations

import argparse
import collections
import decimal
import importlib.util
import os
import pathlib
import pickle
import random
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

Writer = Callable[[Path], dict[str, str]]  # writes files into a folder, returns {file name: library}


def _torch(folder: Path) -> dict[str, str]:
    import torch

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)
            self.bn = torch.nn.BatchNorm2d(4)
            self.fc = torch.nn.Linear(4 * 6 * 6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu_(self.bn(self.conv(x))).flatten(1))

    net = Net().eval()
    seq = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(inplace=True), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.1),
        torch.nn.LSTM(8, 4), torch.nn.Flatten(), torch.nn.LayerNorm(4),
    )  # fmt: skip
    lin = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(lin.parameters())
    lin(torch.randn(3, 4)).sum().backward()
    opt.step()
    checkpoint = {"model": lin.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "loss": 0.25}
    scaler = torch.amp.GradScaler("cpu")
    training_run = {  # a training script's checkpoint: its argparse arguments, output folder, counters, RNG
        **checkpoint, "scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, 10).state_dict(),
        "scaler": scaler.state_dict(), "args": argparse.Namespace(lr=1e-3, run="r1", layers=[4, 2]),
        "out_dir": pathlib.Path("/data/runs/r1"), "label_counts": collections.Counter("aab"),
        "recent_losses": collections.deque([0.3, 0.25], maxlen=5), "rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(), "python_rng": random.getstate(),
    }  # fmt: skip
    scheduler = torch.optim.lr_scheduler.StepLR(opt, 2)
    whole_training = {"model": lin, "optimizer": opt, "scheduler": scheduler}
    quantized = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 4)), dtype=torch.qint8)
    rich = torch.nn.ModuleDict(  # scripted control flow: Optional masks, `is not None`, `in`, loops
        {"encoder": torch.nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), "lstm": torch.nn.LSTM(4, 8, 2)}
    ).eval()
    mixed = {
        "sparse": torch.eye(4).to_sparse(),
        "half": torch.ones(3, dtype=torch.float16),
        "device": torch.device("cpu"),
        "float8": torch.ones(3).to(torch.float8_e4m3fn),  # written by _rebuild_tensor_v3
        "bfloat16_bool_complex_int8": [
            torch.ones(2, dtype=t) for t in (torch.bfloat16, torch.bool, torch.complex64, torch.int8)
        ],
    }
    files = {
        "torch_state_dict.pt": lambda p: torch.save(net.state_dict(), p),
        "torch_whole_module.pt": lambda p: torch.save(seq, p),
        "torch_whole_transformer.pt": lambda p: torch.save(  # keeps F.relu / torch._C._nn.gelu as attributes
            torch.nn.ModuleList(
                [
                    torch.nn.TransformerEncoderLayer(8, 2, 16),
                    torch.nn.TransformerEncoderLayer(8, 2, 16, activation="gelu"),
                ]
            ),
            p,
        ),
        "torch_checkpoint_with_optimizer.pt": lambda p: torch.save(checkpoint, p),
        "torch_training_run_checkpoint.pt": lambda p: torch.save(training_run, p),
        "torch_whole_optimizer_scheduler.pt": lambda p: torch.save(whole_training, p),
        "torch_legacy_state_dict.pt": lambda p: torch.save(net.state_dict(), p, _use_new_zipfile_serialization=False),
        "torch_legacy_whole_module.pt": lambda p: torch.save(seq, p, _use_new_zipfile_serialization=False),
        "torch_protocol4_state_dict.pt": lambda p: torch.save(net.state_dict(), p, pickle_protocol=4),
        "torch_quantized_state_dict.pt": lambda p: torch.save(quantized.state_dict(), p),
        "torch_sparse_half_device.pt": lambda p: torch.save(mixed, p),
        "torchscript_script.pt": lambda p: torch.jit.save(torch.jit.script(net), p),
        "torchscript_trace.pt": lambda p: torch.jit.save(torch.jit.trace(net, torch.zeros(2, 1, 8, 8)), p),
        "torchscript_transformer_lstm.pt": lambda p: torch.jit.save(torch.jit.script(rich), p),
        "torchscript_extra_files.pt": lambda p: torch.jit.save(  # returned to the caller as bytes, never read
            torch.jit.script(net),
            p,
            _extra_files={"notes.txt": b"run 7 \xff\x00 lr=0.1\n", "config.json": b'{"classes": 3}'},
        ),
        "torch_safetensors.safetensors": lambda p: _safetensors(net.state_dict(), p),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, write in files.items():
            write(folder / name)
        torch.onnx.export(net, (torch.zeros(2, 1, 8, 8),), str(folder / "torch_export.onnx"), dynamo=False)
        torch.export.save(torch.export.export(net, (torch.zeros(2, 1, 8, 8),)), folder / "torch_export_program.pt2")
        batch = {"x": {0: torch.export.Dim("batch", min=2, max=64)}}  # symbolic shapes: sympy expressions
        dynamic = torch.export.export(net, (torch.zeros(4, 1, 8, 8),), dynamic_shapes=batch)
        torch.export.save(dynamic, folder / "torch_export_dynamic.pt2")
    exported = ["torch_export.onnx", "torch_export_program.pt2", "torch_export_dynamic.pt2"]
    return {name: "torch" for name in [*files, *exported]}


def _safetensors(state: dict, path: Path) -> None:
    from safetensors.torch import save_file

    save_file(state, path)


def _sklearn(folder: Path) -> dict[str, str]:
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.feature_selection import SelectKBest
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(0)
    x, y = rng.random((120, 4)), np.arange(120) % 3
    models = {
        "pipeline": Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=200))]).fit(x, y),
        "gradient_boosting": GradientBoostingClassifier(n_estimators=5, random_state=0).fit(x, y),
        "random_forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y),
        "hist_gradient_boosting": HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, y),
        "knn": KNeighborsClassifier().fit(x, y),
        "tree": DecisionTreeRegressor(max_depth=4).fit(x, y.astype(float)),
    }
    columns = ColumnTransformer([("onehot", OneHotEncoder(), [0]), ("scale", StandardScaler(), [1, 2])])
    models["column_pipeline"] = Pipeline([("cols", columns), ("clf", LogisticRegression())]).fit(
        np.column_stack([y % 2, x[:, :2]]), y
    )
    docs = ["a cat sat", "the dog ran", "a dog sat", "cats run"] * 30
    models["select_k_best"] = Pipeline(  # score_func=f_classif held by reference
        [("select", SelectKBest(k=2)), ("clf", LogisticRegression())]
    ).fit(x, y)
    models["tfidf_neighbours"] = Pipeline(  # the neighbours keep the sparse TF-IDF matrix (scipy.sparse)
        [("tfidf", TfidfVectorizer()), ("knn", KNeighborsClassifier(3))]
    ).fit(docs, y)
    models["tfidf_pipeline"] = Pipeline([("tfidf", TfidfVectorizer()), ("clf", LogisticRegression())]).fit(docs, y)
    models["grid_search_scoring"] = GridSearchCV(  # the scorers hold sklearn.metrics functions by reference
        LogisticRegression(), {"C": [0.1, 1.0]}, scoring=["accuracy", "roc_auc_ovr", "f1_macro"], refit="accuracy", cv=2
    ).fit(x, y)
    models["grid_search_log1p"] = GridSearchCV(
        Pipeline([("log", FunctionTransformer(np.log1p)), ("clf", LogisticRegression())]), {"clf__C": [0.1, 1.0]}, cv=2
    ).fit(x, y)
    files: dict[str, str] = {}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        for name in ("pipeline", "gradient_boosting"):
            files[f"sklearn_{name}_protocol{protocol}.pkl"] = "scikit-learn"
            (folder / f"sklearn_{name}_protocol{protocol}.pkl").write_bytes(pickle.dumps(models[name], protocol))
    for name, model in models.items():
        joblib.dump(model, folder / f"sklearn_{name}.joblib")
        files[f"sklearn_{name}.joblib"] = "joblib"
    if importlib.util.find_spec("pandas"):  # a frame and its columns saved beside the model, as notebooks do
        import pandas as pd

        frame = pd.DataFrame(
            {"f": x[:5, 0], "cat": pd.Categorical(list("abcab")), "day": pd.date_range("2024-01-01", periods=5)}
        )
        joblib.dump(
            {"model": models["pipeline"], "columns": frame.columns, "sample": frame},
            folder / "joblib_with_pandas.joblib",
        )
        files["joblib_with_pandas.joblib"] = "pandas"
        # string categories fitted from a frame: object arrays, whose inline pickles plain pickle.load reads
        # as the opcodes after the first raw array
        by_name = ColumnTransformer(
            [("num", StandardScaler(), ["f"]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["cat"])]
        )
        wide = pd.DataFrame({"f": x[:, 0], "cat": np.array(list("abc"))[y]})
        frame_pipeline = Pipeline([("cols", by_name), ("clf", LogisticRegression())]).fit(wide, y)
        joblib.dump(frame_pipeline, folder / "sklearn_frame_pipeline.joblib")
        joblib.dump(frame_pipeline, folder / "sklearn_frame_pipeline_compress3.joblib", compress=3)
        files |= dict.fromkeys(["sklearn_frame_pipeline.joblib", "sklearn_frame_pipeline_compress3.joblib"], "joblib")
        from sklearn.compose import make_column_selector

        by_dtype = ColumnTransformer(  # columns picked by dtype (np.number), a lower-case class
            [("num", StandardScaler(), make_column_selector(dtype_include=np.number)),
             ("cat", OneHotEncoder(), make_column_selector(dtype_include=object))]
        )  # fmt: skip
        joblib.dump(by_dtype.fit(wide), folder / "sklearn_column_selector.joblib")
        files["sklearn_column_selector.joblib"] = "joblib"
        nullable = pd.DataFrame(
            {"i": pd.array([1, None], dtype="Int64"), "sparse": pd.arrays.SparseArray([0.0, 1.0])}
        )  # pandas.NA, SparseArray and its IntIndex
        nullable.to_pickle(folder / "pandas_nullable_sparse.pkl")
        files["pandas_nullable_sparse.pkl"] = "pandas"
        zoned = pd.DataFrame(  # a named zone pickles as getattr(ZoneInfo, "_unpickle"); Decimal and UUID objects
            {"t": pd.date_range("2024-03-30", periods=3, freq="D", tz="Europe/Berlin"),
             "price": [decimal.Decimal("1.10"), decimal.Decimal("2.25"), None], "id": [uuid.UUID(int=i) for i in range(3)]}
        )  # fmt: skip
        zoned.to_pickle(folder / "pandas_time_zone_decimal.pkl")
        files["pandas_time_zone_decimal.pkl"] = "pandas"
    for compressor in ("zlib", "gzip", "bz2", "lzma", "xz"):
        joblib.dump(models["random_forest"], folder / f"joblib_{compressor}.joblib", compress=(compressor, 3))
        files[f"joblib_{compressor}.joblib"] = "joblib"
    arrays = {"floats": rng.random((50, 3)), "text": np.array(["a", "bc"]), "objects": np.array([1, "x"], dtype=object),
              "record": np.zeros(3, dtype=[("a", "f4"), ("b", "i8")]), "fortran": np.asfortranarray(rng.random((4, 5)))}  # fmt: skip
    for protocol in (0, pickle.DEFAULT_PROTOCOL):
        joblib.dump(arrays, folder / f"joblib_arrays_protocol{protocol}.joblib", protocol=protocol)
        files[f"joblib_arrays_protocol{protocol}.joblib"] = "joblib"
    if importlib.util.find_spec("skops"):
        import skops.io

        skops.io.dump(models["pipeline"], folder / "sklearn_pipeline.skops")
        files["sklearn_pipeline.skops"] = "skops"
    return files


def _numpy(folder: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    np.save(folder / "numpy_array.npy", rng.random((20, 3)))
    np.savez(folder / "numpy_arrays.npz", weights=rng.random((4, 4)), labels=np.arange(4))
    np.savez_compressed(folder / "numpy_compressed.npz", weights=rng.random((4, 4)))
    return {"numpy_array.npy": "numpy", "numpy_arrays.npz": "numpy", "numpy_compressed.npz": "numpy"}


def _h5py(folder: Path) -> dict[str, str]:
    import h5py

    with h5py.File(folder / "h5py_data.h5", "w") as f:
        f["images"] = np.zeros((8, 4, 4), dtype="uint8")
        f.create_dataset("labels", data=np.arange(8), compression="gzip")
        f.create_group("meta").attrs["description"] = "plain HDF5 data"
        f.attrs["config"] = '{"source": "sensor", "version": 2}'
    return {"h5py_data.h5": "h5py"}


def _keras(folder: Path) -> dict[str, str]:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    keras.utils.set_random_seed(0)
    seq = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.BatchNormalization(),
         keras.layers.Dropout(0.1), keras.layers.Dense(3, activation="softmax")]
    )  # fmt: skip
    seq.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    seq.fit(np.random.default_rng(0).random((32, 4)), np.arange(32) % 3, epochs=1, verbose=0)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(4, activation="gelu")(inputs)
    functional = keras.Model(inputs, keras.layers.Add()([hidden, keras.layers.Dense(4)(inputs)]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seq.save(folder / "keras_sequential.keras")
        functional.save(folder / "keras_functional.keras")
        seq.save(folder / "keras_legacy.h5")
        seq.save_weights(folder / "keras_weights.weights.h5")
    names = ["keras_sequential.keras", "keras_functional.keras", "keras_legacy.h5",
             "keras_weights.weights.h5"]  # fmt: skip
    return dict.fromkeys(names, "keras")


def _onnx(folder: Path) -> dict[str, str]:
    from onnx import TensorProto, helper, save_model

    weight = helper.make_tensor("w", TensorProto.FLOAT, [2, 2], [1.0, 0.0, 0.0, 1.0])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [weight],
    )  # fmt: skip
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "onnx_helper.onnx")
    return {"onnx_helper.onnx": "onnx"}


def _xgboost(folder: Path) -> dict[str, str]:
    import xgboost

    rng = np.random.default_rng(0)
    model = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(rng.random((40, 3)), np.arange(40) % 2)
    model.save_model(folder / "xgboost_model.json")
    model.save_model(folder / "xgboost_model.ubj")
    (folder / "xgboost_classifier.pkl").write_bytes(pickle.dumps(model))
    names = ["xgboost_model.json", "xgboost_model.ubj", "xgboost_classifier.pkl"]
    return dict.fromkeys(names, "xgboost")


def _lightgbm(folder: Path) -> dict[str, str]:
    import lightgbm

    rng = np.random.default_rng(0)
    model = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(rng.random((60, 3)), np.arange(60) % 2)
    (folder / "lightgbm_classifier.pkl").write_bytes(pickle.dumps(model))
    model.booster_.save_model(folder / "lightgbm_model.txt")
    return {"lightgbm_classifier.pkl": "lightgbm", "lightgbm_model.txt": "lightgbm"}


WRITERS: dict[str, tuple[str, Writer]] = {
    "torch": ("torch", _torch),
    "scikit-learn": ("sklearn", _sklearn),
    "numpy": ("numpy", _numpy),
    "h5py": ("h5py", _h5py),
    "keras": ("keras", _keras),
    "onnx": ("onnx", _onnx),
    "xgboost": ("xgboost", _xgboost),
    "lightgbm": ("lightgbm", _lightgbm),
}


def write_benign(folder: Path) -> tuple[dict[str, str], list[str]]:
    """Write every benign file whose library is installed; return ({file: library}, [libraries skipped])."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    skipped = []
    for library, (module, writer) in WRITERS.items():
        if importlib.util.find_spec(module) is None:
            skipped.append(library)
            continue
        files |= writer(folder)
    return files, skipped
