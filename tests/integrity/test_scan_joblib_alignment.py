"""joblib pads each NumPy array to a 16-byte boundary of the file: one byte holding the padding length
(1..16 as written, any 0..255 as read), that many bytes, then the array. Where the array lands depends on
everything pickled before it — a path, a feature name — so every offset is swept here: real files written by
joblib with its default options stay safe, and a payload in the padding or after the array is found at each
one. Files are written and scanned, never loaded."""

from __future__ import annotations

import pickletools
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelshield.integrity import Verdict, scan_file

OFFSETS = range(16)  # a name of 0..15 characters before the array shifts it through every offset mod 16
# GLOBAL os.system, MARK, STRING, TUPLE, REDUCE (protocol 0): the command is never run
PAYLOAD = b"cos\nsystem\n(S'touch /nonexistent/modelshield-never-run'\ntR"
_CALLS = {"REDUCE", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4"}  # opcodes that call or import by code
MARKER_ARRAY = np.arange(1.0, 17.0)  # 128 bytes that appear once in the file, found to locate the padding


def _padding(body: bytes) -> tuple[int, int]:
    """Where ``MARKER_ARRAY``'s padding-length byte is, and the padding length it holds."""
    start = body.index(MARKER_ARRAY.tobytes())
    length = start - len(body[:start].rstrip(b"\xff"))
    assert body[start - length - 1] == length and start % 16 == 0
    return start - length - 1, length


def _marked(tmp: Path, offset: int) -> bytes:
    """A real joblib file whose array lands ``offset`` bytes later than with an empty name."""
    path = tmp / f"marked{offset}.joblib"
    joblib.dump({"name": "x" * offset, "w": MARKER_ARRAY}, path)
    return path.read_bytes()


def _verdict(tmp: Path, name: str, body: bytes) -> Verdict:
    path = tmp / name
    path.write_bytes(body)
    return scan_file(path).verdict


def test_the_sweep_reaches_every_padding_length_joblib_writes(tmp_path: Path) -> None:
    assert sorted(_padding(_marked(tmp_path, k))[1] for k in OFFSETS) == list(range(1, 17))


def _models() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 5)), np.arange(40) % 2
    return {
        "logistic": LogisticRegression().fit(x, y),
        "scaler_pca": make_pipeline(StandardScaler(), PCA(n_components=3)).fit(x),
        "forest": RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, y),
    }


ARRAYS: dict[str, np.ndarray] = {
    "float64": np.arange(5.0), "float32": np.arange(7, dtype=np.float32), "float16": np.arange(3, dtype=np.float16),
    "int8": np.arange(3, dtype=np.int8), "uint8": np.arange(1, 18, dtype=np.uint8), "bool": np.array([True, False]),
    "complex128": np.arange(3) * 1j, "big_endian": np.arange(3, dtype=">i4"), "longdouble": np.ones(2, np.longdouble),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "zero_d": np.array(3.5), "empty": np.zeros((0, 3)),
    "unicode": np.array(["ab", "cde"]), "bytes": np.array([b"ab", b"c"]), "void": np.zeros(2, "V5"),
    "datetime": np.array(["2020-01-01"], "datetime64[D]"), "timedelta": np.array([1, 2], "timedelta64[s]"),
    "structured": np.zeros(3, [("a", "<i4"), ("b", "<f8")]),
}  # fmt: skip


def test_real_joblib_files_pass_at_every_offset(tmp_path: Path) -> None:
    values = {**_models(), **ARRAYS, "all_arrays": ARRAYS, "compress3": _models()["forest"]}
    flagged = []
    for k in OFFSETS:
        for name, value in values.items():
            path = tmp_path / f"{name}_{k}.joblib"
            joblib.dump({"name": "x" * k, "value": value}, path, compress=3 if name == "compress3" else 0)
            report = scan_file(path)
            if report.verdict is not Verdict.safe:
                flagged.append((name, k, [f.description for f in report.findings][:2]))
    assert flagged == []


def test_any_padding_length_joblib_reads_passes_unless_pickle_load_calls_with_it(tmp_path: Path) -> None:
    """joblib.load skips as many bytes as the length byte says, 0..255, not only the 1..16 it writes; the
    padding (0xff, where plain pickle.load stops) carries nothing. But pickle.load runs the length byte itself
    as an opcode: one that calls what is on the stack or imports by registry code is never safe."""
    body = _marked(tmp_path, 0)
    at, length = _padding(body)
    verdicts = {}
    for pad in range(256):
        rewritten = body[:at] + bytes([pad]) + b"\xff" * pad + body[at + 1 + length :]
        verdicts[pad] = _verdict(tmp_path, f"pad{pad}", rewritten)
    calls = {op.code.encode("latin-1")[0] for op in pickletools.opcodes if op.name in _CALLS}
    assert {pad for pad, verdict in verdicts.items() if verdict is not Verdict.safe} == calls


@pytest.mark.parametrize("offset", OFFSETS)
def test_a_payload_in_the_padding_is_found_at_every_offset(tmp_path: Path, offset: int) -> None:
    """A length byte that is the opcode ``c`` (99): joblib.load skips 99 bytes and the array, plain pickle.load
    runs the GLOBAL and REDUCE written there. Found whether the file still reads whole under joblib (the
    opcodes fit in the padding and array) or not (they run past them, so joblib's reading fails)."""
    body = _marked(tmp_path, offset)
    at, length = _padding(body)
    array_end = at + 1 + length + MARKER_ARRAY.nbytes
    opcodes = b"c" + PAYLOAD[1:] + b"."
    whole = body[:at] + opcodes.ljust(1 + ord("c") + MARKER_ARRAY.nbytes, b"\xff") + body[array_end:]
    overrun = body[:at] + opcodes + b"\x00" * (ord("c") + MARKER_ARRAY.nbytes) + body[array_end:]
    assert _verdict(tmp_path, "whole", whole) is Verdict.unsafe
    assert _verdict(tmp_path, "overrun", overrun) is Verdict.unsafe


@pytest.mark.parametrize("offset", OFFSETS)
def test_a_payload_after_the_array_is_found_at_every_offset(tmp_path: Path, offset: int) -> None:
    """Only joblib.load reaches bytes after the array (plain pickle.load stops at the length byte), so this
    is found only if the padding and array were skipped exactly."""
    body = _marked(tmp_path, offset)
    assert body.endswith(b"u.")  # the array is the dict's last value: SETITEMS and STOP follow it
    report = scan_file(tmp_path / f"marked{offset}.joblib")
    assert report.verdict is Verdict.safe
    path = tmp_path / "after.joblib"
    path.write_bytes(body[:-2] + PAYLOAD + b"0u.")  # the call's result popped: the dict is still on top
    findings = scan_file(path).findings
    assert [f.evidence["verdict"] for f in findings] == ["unsafe"]
    assert "as pickle.load reads it" not in findings[0].description
