"""The test corpus: malicious and benign model files, written into tmp_path. Malicious ones are built by dumping
(which never runs ``__reduce__``'s callable) or by writing opcodes by hand; none is ever loaded."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MARKER = "modelshield_pwned_marker"


class Payload:
    """Pickles to ``func(*args)``; dumping records the call, loading would make it."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


def touch_cmd(tmp: Path) -> str:
    return f"touch {tmp / MARKER}"


def _sg(module: str, name: str) -> bytes:
    def s(text: str) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text.encode()

    return s(module) + s(name) + b"\x93"


def _zip(entries: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, body in entries.items():
            zf.writestr(name, body)
    return buf.getvalue()


def _tar(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, body in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def _safetensors(header: dict[str, Any], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _onnx_model(location: str | None = None, domain: str = "") -> bytes:
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    if location is not None:
        weight.ClearField("float_data")
        weight.data_location = TensorProto.EXTERNAL
        entry = weight.external_data.add()
        entry.key, entry.value = "location", location
    node = helper.make_node("Add" if not domain else "Evil", ["x", "w"], ["y"], domain=domain)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [weight],
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def malicious(tmp: Path) -> dict[str, bytes]:
    """≥30 variants, each a file body that must never scan as safe."""
    cmd = touch_cmd(tmp)
    system = Payload(os.system, cmd)
    p2 = pickle.dumps(system, protocol=2)
    import builtins
    import importlib
    import pkgutil
    import runpy

    import torch

    memo_body = _sg("os", "system") + b"\x94" + b"\x94" + b"0"  # MEMOIZE twice, POP
    corpus = {f"os_system_protocol_{p}": pickle.dumps(system, protocol=p) for p in range(6)}
    corpus |= {
        "global_opcode_hand_written": f"cos\nsystem\n(S'{cmd}'\ntR.".encode(),
        "stack_global": b"\x80\x04" + _sg("os", "system") + b"\x8c\x04echo\x85R.",
        "memo_indirected_name": b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x8c\x01x\x85R.",
        "memo_stored_global": b"\x80\x04" + memo_body + b"h\x00\x8c\x01x\x85R.",
        "builtins_eval": pickle.dumps(Payload(builtins.eval, "1"), protocol=4),
        "builtins_exec": pickle.dumps(Payload(builtins.exec, "pass"), protocol=4),
        "builtins_getattr": pickle.dumps(Payload(builtins.getattr, Payload(importlib.import_module, "os"), "sys"), 4),
        "py2_builtin_name": b"c__builtin__\neval\n(S'1'\ntR.",
        "pkgutil_resolve_name": pickle.dumps(Payload(pkgutil.resolve_name, "os:system"), protocol=4),
        "importlib_import_module": pickle.dumps(Payload(importlib.import_module, "os"), protocol=4),
        "runpy_run_path": pickle.dumps(Payload(runpy.run_path, "/tmp/x.py"), protocol=4),
        "operator_attrgetter_chain": b"\x80\x04"
        + _sg("operator", "attrgetter")
        + b"\x8c\x06system\x85R"
        + _sg("builtins", "__import__")
        + b"\x8c\x02os\x85R\x85R.",
        "torch_load_nested": pickle.dumps(Payload(torch.load, "/tmp/evil.pt"), protocol=4),
        "pickle_loads_embedded": pickle.dumps(Payload(pickle.loads, p2), protocol=4),
        "unknown_global_not_allowlisted": b"\x80\x04" + _sg("evilpkg.tools", "run") + b"\x8c\x01x\x85R.",
        "ext1_opcode": b"\x80\x02\x82\x01)R.",
        "inst_opcode": f"(S'{cmd}'\nios\nsystem\n.".encode(),
        "obj_opcode": b"\x80\x02(cos\nsystem\nX\x01\x00\x00\x00xo.",
        "truncated_after_reduce": p2[:-1],
        "truncated_data_only": pickle.dumps({"a": [1, 2]}, protocol=4)[:-3],
        "build_on_allowlisted_class": b"\x80\x04" + _sg("collections", "OrderedDict") + b"}\x8c\x01a\x8c\x02os\x73b.",
        "stacked_second_pickle": pickle.dumps({"a": 1}, protocol=2) + p2,
        "torch_zip_extra_pkl": _zip(
            {"m/data.pkl": pickle.dumps({}, protocol=2), "m/extra.pkl": p2, "m/version": b"3\n"}
        ),
        "torch_zip_malicious_data_pkl": _zip({"archive/data.pkl": p2, "archive/version": b"3\n"}),
        "zip_pickle_innocent_name": _zip({"weights/readme.txt": p2}),
        "joblib_zlib": zlib.compress(p2),
        "joblib_gzip": gzip.compress(p2),
        "zip_in_tar_in_zip": _zip({"outer.tar": _tar({"inner.zip": _zip({"model.bin": p2})})}),
        "zip_bomb": _zip({"bomb.bin": b"\0" * (32 << 20)}, zipfile.ZIP_DEFLATED),
        "zip_path_traversal": _zip({"../../evil.npy": _npy(np.zeros(2))}),
        "tar_path_traversal": _tar({"/etc/cron.d/evil": b"{}"}),
        "npy_object_dtype": _npy(np.array([system, 1], dtype=object)),
        "npz_object_array": _zip({"a.npy": _npy(np.array([system], dtype=object))}),
        "keras_v3_lambda": _zip({"config.json": json.dumps(_keras("Lambda")).encode(), "metadata.json": b"{}"}),
        "keras_v3_custom_object": _zip(
            {"config.json": json.dumps(_keras("Evil", "evilpkg.layers")).encode(), "metadata.json": b"{}"}
        ),  # fmt: skip
        "h5_lambda_model_config": b"\x89HDF\r\n\x1a\n"
        + b"\0" * 64
        + json.dumps(_keras("Lambda")).encode()
        + b"\0" * 64,
        "h5_unparsed": b"\x89HDF\r\n\x1a\n" + b"\0" * 256,
        "onnx_external_data_escape": _onnx_model(location="../../etc/passwd"),
        "onnx_custom_domain": _onnx_model(domain="com.evil"),
        "safetensors_overlapping": _safetensors(
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
        ),  # fmt: skip
        "savedmodel_py_func": b"\x08\x01\x12\x20" + b"\x12\x06PyFunc" + b"\0" * 24,
        "unknown_format": os.urandom(64).replace(b"\x80", b"\x81"),
    }
    return corpus


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)  # writing pickles nothing is run
    return buf.getvalue()


def _keras(class_name: str, module: str = "keras.layers") -> dict[str, Any]:
    layer = {"class_name": class_name, "module": module, "config": {"name": "l", "function": "4wEAAAA="}}
    return {"class_name": "Sequential", "module": "keras", "config": {"layers": [layer]}}


def write_corpus(root: Path) -> Path:
    """bad/<variant> and good/<file> under ``root``."""
    for name, body in malicious(root).items():
        (root / "bad" / name).parent.mkdir(exist_ok=True)
        (root / "bad" / name).write_bytes(body)
    _benign(root / "good")
    return root


def _benign(folder: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from sklearn.linear_model import LogisticRegression

    folder.mkdir()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    torch.save(net.state_dict(), folder / "state_dict.pt")
    np.save(folder / "array.npy", np.arange(6.0))
    np.savez(folder / "arrays.npz", a=np.ones(3), b=np.arange(4))
    rng = np.random.default_rng(0)
    model = LogisticRegression().fit(rng.random((20, 4)), np.arange(20) % 2)
    (folder / "sklearn.pkl").write_bytes(pickle.dumps(model))
    save_file(net.state_dict(), folder / "weights.safetensors")
    torch.onnx.export(net.eval(), (torch.zeros(2, 4),), str(folder / "net.onnx"), dynamo=False)
