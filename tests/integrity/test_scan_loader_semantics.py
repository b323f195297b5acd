"""Cases found by scanning files written with the options users really use: each pins how a loader
treats the bytes (what torch hands back unread, where pickle.load stops), in both directions."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from corpus.malicious import MARKER

from modelshield.integrity import Verdict, scan_file
from modelshield.integrity.allowlist import classify_import


def _scripted(tmp_path: Path, extra: dict[str, bytes]) -> Path:
    torch = pytest.importorskip("torch")
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2)), str(path), _extra_files=extra)
    return path


def test_torchscript_extra_files_are_opaque_data(tmp_path: Path) -> None:
    """``torch.jit.load`` returns ``_extra_files`` as bytes and never interprets them: notes, vocabularies
    and binary blobs are not "unrecognised format"."""
    path = _scripted(
        tmp_path,  # text opening with "c" reads as a GLOBAL of names no unpickler can import: still just text
        {
            "notes.txt": b"lr=0.1 \xff\x00 seed 7\n",
            "vocab/words.txt": b"a\nb\n",
            "log.txt": b"checkpoint from run 7\nlr 0.1\n",
        },
    )
    report = scan_file(path)
    assert report.verdict is Verdict.safe, [f.description for f in report.findings]


def test_a_pickle_payload_in_an_extra_file_is_still_judged(tmp_path: Path) -> None:
    payload = b"\x80\x02cos\nsystem\nX\x05\x00\x00\x00touchq\x00\x85R."
    report = scan_file(_scripted(tmp_path, {"config.pkl": payload}))
    assert report.verdict is Verdict.unsafe
    assert any("extra/config.pkl" in f.description and "os.system" in f.description for f in report.findings)


def test_unrecognised_bytes_outside_extra_are_still_unknown(tmp_path: Path) -> None:
    """Only torch's ``extra/`` folder is opaque: the same bytes elsewhere in the archive are not."""
    path = _scripted(tmp_path, {})
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    folder = next(iter(members)).split("/")[0]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body in {**members, f"{folder}/notes.txt": b"lr=0.1 \xff\x00\n"}.items():
            zf.writestr(name, body)
    (tmp_path / "other.pt").write_bytes(buf.getvalue())
    assert scan_file(tmp_path / "other.pt").verdict is Verdict.unknown


def test_stack_global_on_a_non_string_stops_the_unpickler(tmp_path: Path) -> None:
    """``STACK_GLOBAL`` requires two exact str: on an object an allowed class built, the unpickler raises
    there, so nothing is imported (joblib array bytes read as opcodes by plain pickle.load end this way)."""
    built = b"\x80\x04csklearn.pipeline\nPipeline\n)\x81X\x05\x00\x00\x00dtype\x93)R."
    (tmp_path / "stops.pkl").write_bytes(built)
    report = scan_file(tmp_path / "stops.pkl")
    assert report.verdict is Verdict.unparsed
    assert not any(f.id == "MS-SCAN-PKL-UNRESOLVED" for f in report.findings)


@pytest.mark.parametrize(
    "maker",
    [b"cbuiltins\nstr\nX\x02\x00\x00\x00os\x85R",  # str("os")
     b"ctorch.jit._pickle\nrestore_type_tag\nX\x02\x00\x00\x00osX\x03\x00\x00\x00str\x86R",  # returns its argument
     b"c_codecs\nencode\nX\x02\x00\x00\x00bfX\x05\x00\x00\x00rot13\x86R"],  # "bf" -> "os", still a str
)  # fmt: skip
def test_stack_global_on_a_computed_string_stays_unresolved(tmp_path: Path, maker: bytes) -> None:
    """An allowed helper that can return a str at load time: the name it builds cannot be judged, never safe."""
    computed = b"\x80\x04" + maker + b"X\x06\x00\x00\x00system\x93X\x04\x00\x00\x00true\x85R."
    (tmp_path / "computed.pkl").write_bytes(computed)
    report = scan_file(tmp_path / "computed.pkl")
    assert any(f.id == "MS-SCAN-PKL-UNRESOLVED" for f in report.findings)
    assert not report.passed(allow_unknown=False)
    assert not (tmp_path / MARKER).exists()


def _stack_global(module: str, name: str) -> bytes:
    def short(text: str) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text.encode() + b"\x94"

    return b"\x80\x04" + short(module) + short(name) + b"\x93X\x0b\x00\x00\x00/tmp/evil.so\x85R."


@pytest.mark.parametrize(
    ("module", "name"),
    [("sklearn.utils.validation", "np.ctypeslib.ctypes.CDLL"),  # resolves to ctypes.CDLL: loads native code
     ("torch.nn.modules.module", "torch.package.PackageImporter"), ("sklearn.base", "BaseEstimator.Evil")],
)  # fmt: skip
def test_a_protocol4_attribute_path_is_not_vouched_for_by_a_family(tmp_path: Path, module: str, name: str) -> None:
    """From protocol 4 ``find_class`` walks a dotted name from the module: a family's module prefix then
    reaches whatever that module imported."""
    (tmp_path / "path.pkl").write_bytes(_stack_global(module, name))
    report = scan_file(tmp_path / "path.pkl")
    assert not report.passed(), report
    assert classify_import(module, name)[1] is not Verdict.safe


def test_a_family_module_that_is_not_installed_code_is_not_vouched_for(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    (tmp_path / "evil.pkl").write_bytes(b"\x80\x02csklearn.evil\nPwn\n)\x81.")
    assert scan_file(tmp_path / "evil.pkl").verdict is Verdict.unknown
    (tmp_path / "real.pkl").write_bytes(b"\x80\x02csklearn.pipeline\nPipeline\n)\x81.")
    assert scan_file(tmp_path / "real.pkl").verdict is Verdict.safe


def test_pt2_records_outside_the_raw_tensor_folders_stay_unknown(tmp_path: Path) -> None:
    """Only a ``.pt2``'s weights, constants and small text records are opaque: bytes matching no format under
    ``models/`` (where torch reads JSON) are still unrecognised."""
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.export.save(torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),)), buf)
    with zipfile.ZipFile(buf) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    assert scan_file(_write_zip(tmp_path / "ok.pt2", members)).verdict is Verdict.safe
    folder = next(iter(members)).split("/")[0]
    odd = _write_zip(tmp_path / "odd.pt2", {**members, f"{folder}/models/extra.bin": b"\xff\x00\x01 not json"})
    assert scan_file(odd).verdict is Verdict.unknown


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return path


def test_a_metric_function_passes_only_where_its_module_defines_it() -> None:
    """Scorers hold sklearn.metrics functions by reference; a name the module merely imports is not one."""
    pytest.importorskip("sklearn")
    assert classify_import("sklearn.metrics._classification", "accuracy_score")[1] is Verdict.safe
    for name in ("validate_params", "warn", "_check_targets", "np.ctypeslib"):
        assert classify_import("sklearn.metrics._classification", name)[1] is not Verdict.safe, name


_GETATTR = b"\x8c\x08builtins\x94\x8c\x07getattr\x94\x93\x94"  # memo 0, 1; getattr is memo 2


def _fetch(module: str, cls: str, attr: str) -> bytes:
    def short(text: str) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text.encode()

    return short(module) + short(cls) + b"\x93" + short(attr) + b"\x86R"


def test_getattr_passes_only_as_the_fetch_a_classmethod_pickles_to(tmp_path: Path) -> None:
    """pandas frames with a named time zone pickle ``getattr(ZoneInfo, "_unpickle")(key, 1)``; the same
    getattr fetching anything else, or kept as a value, can reach any attribute."""
    call = b"\x8c\x10America/New_York\x94K\x01\x86R"
    cases = {
        "zone": (b"\x80\x04" + _GETATTR + _fetch("zoneinfo", "ZoneInfo", "_unpickle") + call + b".", Verdict.safe),
        "zone_twice_from_memo": (
            b"\x80\x04(" + _GETATTR + _fetch("zoneinfo", "ZoneInfo", "_unpickle") + call
            + b"h\x02" + _fetch("zoneinfo", "ZoneInfo", "_unpickle") + call + b"l.", Verdict.safe),
        "other_attribute": (b"\x80\x04" + _GETATTR + _fetch("sklearn.pipeline", "Pipeline", "__init__") + b".",
                            Verdict.unsafe),
        "kept_as_a_value": (b"\x80\x04" + _GETATTR + b"\x85.", Verdict.unsafe),
    }  # fmt: skip
    for name, (body, verdict) in cases.items():
        (tmp_path / name).write_bytes(body)
        assert scan_file(tmp_path / name).verdict is verdict, name
