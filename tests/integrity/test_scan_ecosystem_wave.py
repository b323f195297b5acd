"""Files the ecosystem writes with default options, and peers' published attack shapes, not covered by the
corpus: each written by the real library (or by hand where the attack needs it), scanned, never loaded.

- joblib dumps whose first array holds Python objects: plain ``pickle.load`` reads joblib's inner object-array
  pickle with the outer memo, so its names resolve to the dict's keys (``o.dtype``): an import that fails,
  not a payload;
- joblib's pre-0.10 ``ZF`` zfile format, which today's ``joblib.load`` still decompresses and unpickles;
- skops archives: ``schema.json`` names the types and functions ``skops.io.load`` builds once trusted;
- NumPy headers that break numpy's own header tokenizer; object arrays of plain values (``np.save``'s default);
- torch.distributed.checkpoint shards (whole ``torch.save`` zips back to back) and their ``.metadata``;
- a zip member whose CRC is wrong (picklescan's vector), and published gadgets named for what they are;
- the CLI on an empty folder, a pipe, an empty file and headers claiming huge sizes.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from modelshield.integrity import Verdict, scan_file

PAYLOAD = b"\x80\x02cos\nsystem\nX\x2a\x00\x00\x00touch /nonexistent/modelshield-never-run-ok\x85R."


def _verdict(path: Path) -> tuple[Verdict, list[str]]:
    report = scan_file(path)
    return report.verdict, [f.description for f in report.findings]


OBJECTS = np.array(["a", None], dtype=object)


@pytest.mark.parametrize(
    "value",
    [{"o": OBJECTS}, {"k": 1, "o": OBJECTS}, {"a": 1, "b": 2, "o": OBJECTS}, [OBJECTS], ["x", OBJECTS],
     {"m": {"o": OBJECTS}}, {"o": np.array([1, 2], dtype=object), "w": np.ones(3)},
     {"a": 1, "b": 2, "signal": OBJECTS}, {"a": 1, "b": 2, "code": OBJECTS}, {"a": 1, "b": 2, "time": OBJECTS},
     {"a": 1, "b": 2, "json": OBJECTS}],
    ids=["dict", "key_before", "two_keys_before", "list", "str_before", "nested", "ints_then_floats",
         "key_signal", "key_code", "key_time", "key_json"],
)  # fmt: skip
@pytest.mark.parametrize("compress", [0, 3, ("lzma", 3)])
def test_joblib_first_array_of_objects_is_safe(tmp_path: Path, value: Any, compress: Any) -> None:
    path = tmp_path / "data.joblib"
    joblib.dump(value, path, compress=compress)
    verdict, why = _verdict(path)
    assert verdict is Verdict.safe, why


def _zfile(body: bytes, path: Path) -> Path:
    from joblib.numpy_pickle_compat import write_zfile

    with open(path, "wb") as f:
        write_zfile(f, body)
    return path


def test_joblib_legacy_zfile_is_read(tmp_path: Path) -> None:
    benign = _verdict(_zfile(pickle.dumps({"w": [1.0, 2.0]}, 2), tmp_path / "old.pkl"))
    assert benign[0] is Verdict.safe, benign[1]
    verdict, why = _verdict(_zfile(PAYLOAD, tmp_path / "evil.pkl"))
    assert verdict is Verdict.unsafe and any("os.system" in w for w in why), why


def _skops(tmp_path: Path) -> dict[str, bytes]:
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    rng = np.random.default_rng(0)
    model = make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression())
    path = tmp_path / "model.skops"
    skops.io.dump(model.fit(rng.random((30, 3)), np.arange(30) % 2), path)
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write_zip(members: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return path


def test_skops_real_file_is_safe(tmp_path: Path) -> None:
    verdict, why = _verdict(_write_zip(_skops(tmp_path), tmp_path / "real.skops"))
    assert verdict is Verdict.safe, why


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [(b'"numpy"', b'"os"', Verdict.unsafe),  # FunctionNode: np.log1p becomes os.system
     (b'"log1p"', b'"median"', Verdict.unknown),  # a numpy function that is not on the allow-list
     (b'"sklearn.preprocessing._data"', b'"evilpkg.layers"', Verdict.unknown)],  # an object of a foreign class
    ids=["function_os_system", "function_not_allowed", "foreign_class"],
)  # fmt: skip
def test_skops_schema_naming_code_fails(tmp_path: Path, old: bytes, new: bytes, expected: Verdict) -> None:
    members = _skops(tmp_path)
    assert old in members["schema.json"]
    members["schema.json"] = members["schema.json"].replace(old, new)
    verdict, why = _verdict(_write_zip(members, tmp_path / "evil.skops"))
    assert verdict is expected, why


def test_skops_reduce_node_calling_system(tmp_path: Path) -> None:
    """skops' ReduceNode calls ``func(*args)``; here func is a FunctionNode for os.system."""
    members = _skops(tmp_path)
    schema = json.loads(members["schema.json"])
    function = {"__class__": "function", "__module__": "builtins", "__loader__": "TypeNode",
                "__id__": 9001, "content": {"__class__": "system", "__module__": "os"}}  # fmt: skip
    schema["content"]["steps"] = {
        "__class__": "list", "__module__": "builtins", "__loader__": "ReduceNode", "__id__": 9002,
        "__reduce__": {"func": function, "args": {"__class__": "tuple", "__module__": "builtins",
                                                  "__loader__": "TupleNode", "content": [{"__class__": "str",
                                                  "__module__": "builtins", "__loader__": "JSONNode",
                                                  "content": "\"id\"", "is_json": True}]}},
        "content": {"__class__": "dict", "__module__": "builtins", "__loader__": "JSONNode", "content": "{}",
                    "is_json": True},
    }  # fmt: skip
    members["schema.json"] = json.dumps(schema).encode()
    verdict, why = _verdict(_write_zip(members, tmp_path / "reduce.skops"))
    assert verdict is Verdict.unsafe, why


@pytest.mark.parametrize(
    "header",
    [b"{'descr': '|O', 'fortran_order': False, \n", b"{'descr': '<f8', 'shape': (2,\n", b"\xff\xfe{\n"],
    ids=["unclosed_dict", "unclosed_tuple", "not_text"],
)
def test_npy_broken_header_is_one_unparsed_finding(tmp_path: Path, header: bytes) -> None:
    path = tmp_path / "broken.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + PAYLOAD)
    verdict, why = _verdict(path)
    assert verdict in (Verdict.unparsed, Verdict.unsafe), why


def _cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from entrypoint import invoke_main

    return invoke_main(["scan", *args], monkeypatch, capsys)


def test_cli_scan_of_nothing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder with no files must not read as a clean scan (modelscan's "No issues found" on skipped files)."""
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    code, _, err = _cli([str(tmp_path / "empty")], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and "nothing to scan" in err


def test_cli_pipe_is_not_read_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    os.mkfifo(tmp_path / "weights.bin")  # reading it would block the scan forever
    code, out, _ = _cli([str(tmp_path), "-f", "json"], monkeypatch, capsys)
    assert code == 1 and json.loads(out)["files"][0]["verdict"] == "unknown"
    code, _, err = _cli([str(tmp_path / "weights.bin"), "-f", "json"], monkeypatch, capsys)
    assert code == 1, err


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [("empty.pt", b"", 0),  # nothing to load, nothing to run
     ("huge_header.safetensors", (1 << 60).to_bytes(8, "little") + b'{"a": 1}', 1),
     ("huge_header.npy", b"\x93NUMPY\x02\x00" + (0xFFFFFFF0).to_bytes(4, "little") + b"{'descr': '<f8'", 1),
     ("broken_header.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': '|O',\n" + PAYLOAD, 1)],
)  # fmt: skip
def test_cli_exit_codes_on_odd_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, body: bytes,
    code: int,
) -> None:  # fmt: skip
    (tmp_path / name).write_bytes(body)
    got, out, err = _cli([str(tmp_path / name), "-f", "json"], monkeypatch, capsys)
    assert (got, err) == (code, ""), err
    verdict = json.loads(out)["files"][0]["verdict"]
    assert (verdict == "safe") == (code == 0), verdict


def _distributed_checkpoint(folder: Path) -> Path:
    """``torch.distributed.checkpoint.save`` in one process: a pickled ``.metadata`` and ``__0_0.distcp``,
    which holds one whole ``torch.save`` zip per tensor, back to back, each read by its offset and length."""
    import torch
    import torch.distributed.checkpoint as dcp

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    dcp.save({"model": net.state_dict(), "step": 7}, checkpoint_id=str(folder))
    return folder / "__0_0.distcp"


def test_torch_distributed_checkpoint_is_safe(tmp_path: Path) -> None:
    from modelshield.integrity.scanner import scan_paths

    _distributed_checkpoint(tmp_path / "ckpt")
    report = scan_paths([tmp_path / "ckpt"])
    assert {Path(f.path).name for f in report.files} == {".metadata", "__0_0.distcp"}
    assert all(f.verdict is Verdict.safe for f in report.files), [
        x.description for f in report.files for x in f.findings
    ]


def test_torch_distributed_checkpoint_payload_in_one_archive(tmp_path: Path) -> None:
    """The payload replaces the data.pkl of one archive in the middle of the sequence."""
    shard = _distributed_checkpoint(tmp_path / "ckpt").read_bytes()
    starts = [i for i in range(len(shard)) if shard.startswith(b"PK\x03\x04", i)]
    ends = [shard.index(b"PK\x05\x06", s) + 22 for s in starts]
    archives = sorted({(s, next(e for e in ends if e > s)) for s in starts if s in [0, *ends]})
    assert len(archives) >= 3 and archives[-1][1] == len(shard)
    start, end = archives[1]
    with zipfile.ZipFile(io.BytesIO(shard[start:end])) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    name = next(n for n in members if n.endswith("/data.pkl"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for member, body in members.items():
            zf.writestr(member, PAYLOAD if member == name else body)
    (tmp_path / "evil.distcp").write_bytes(shard[:start] + buf.getvalue() + shard[end:])
    verdict, why = _verdict(tmp_path / "evil.distcp")
    assert verdict is Verdict.unsafe and any("os.system" in w for w in why), why


def test_zip_member_with_a_bad_crc_is_still_judged(tmp_path: Path) -> None:
    """picklescan's CRC vector (CVE-2025-10156): zipfile checks the CRC at the end of the stream, after
    ``pickle.load(zf.open(name))`` has run the payload; the mismatch is refused and the bytes judged."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", PAYLOAD)
    (tmp_path / "crc.pt").write_bytes(buf.getvalue().replace(b"never-run-ok", b"never-run-no", 1))
    verdict, why = _verdict(tmp_path / "crc.pt")
    assert verdict is Verdict.unsafe and any("os.system" in w for w in why) and any("CRC" in w for w in why), why


@pytest.mark.parametrize(
    "dotted",
    ["pydoc locate", "lib2to3.pgen2.grammar Grammar.loads", "linecache getline", "torch.utils.bottleneck.__main__ "
     "run_cprofile", "torch.utils._config_module ConfigModule.load_config", "_posixsubprocess fork_exec",
     "_interpreters run_string", "logging.config listen", "uuid _get_command_stdout", "pandas read_pickle",
     "torch.utils.data.datapipes.utils.decoder basichandlers", "mlflow.projects.backend.local _run_entry_point"],
)  # fmt: skip
def test_published_gadgets_are_named_unsafe(tmp_path: Path, dotted: str) -> None:
    module, name = dotted.split(" ")
    path = tmp_path / "gadget.pkl"
    path.write_bytes(
        b"\x80\x04" + b"".join(b"\x8c" + bytes([len(t)]) + t.encode() for t in (module, name)) + b"\x93)R."
    )
    verdict, why = _verdict(path)
    assert verdict is Verdict.unsafe, why


def test_numpy_object_arrays_of_plain_values_are_safe(tmp_path: Path) -> None:
    """``np.save``/``np.savez`` pickle object arrays by default; one of strings, numbers and tuples imports
    nothing (picklescan's object_array.npy). One holding a payload still fails."""
    tuples = np.empty((2, 2), dtype=object)
    tuples[:] = [(1, 2), (3, 4)]
    np.save(tmp_path / "tuples.npy", tuples)
    np.savez(tmp_path / "labels.npz", labels=np.array(["cat", None, 3.5], dtype=object), w=np.ones(2))
    np.savez_compressed(tmp_path / "nested.npz", o=np.array([{"k": [1, 2]}, "x"], dtype=object))
    for name in ("tuples.npy", "labels.npz", "nested.npz"):
        verdict, why = _verdict(tmp_path / name)
        assert verdict is Verdict.safe, (name, why)
    body = (tmp_path / "tuples.npy").read_bytes()
    header = body.index(b"\n") + 1
    (tmp_path / "evil.npy").write_bytes(body[:header] + PAYLOAD)
    verdict, why = _verdict(tmp_path / "evil.npy")
    assert verdict is Verdict.unsafe and any("os.system" in w for w in why), why
