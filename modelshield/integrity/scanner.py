"""``scan_paths``: every reading a loader could make of a file, each judged; the file's verdict is the worst.

A format is never picked by first match: one file can be a tar and a protocol-0 pickle, a safetensors
header and a pickle, or two zips. Each reader in ``READERS`` asks whether its format's loader would
accept the bytes — ``pickle.load`` at offset 0, a zip end record where ``zipfile`` and torch look for
it, a tar header whose checksum holds, the safetensors length and brace, HDF5's signature at 0, 512,
1024, ..., a file that parses as protobuf — and judges what that loader would read, recursing into
archives and compressed streams. A file is safe only when every reading was judged and passed; one
no reader takes is never reported as "no issues" (modelscan's skipped files, protectai/modelscan#218).
"""

from __future__ import annotations

import json
import lzma
import mmap
import os
import tarfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield.core.errors import InputError, MissingFileError
from modelshield.core.file_formats import decompressor, looks_like_safetensors
from modelshield.integrity import formats, keras_hdf5, skops_schema, torch_export, torchscript, tree_models, zipread
from modelshield.integrity.allowlist import Verdict
from modelshield.integrity.archives import Limits, tar_members, zip_kind, zip_members, zipfile_opens
from modelshield.integrity.onnx_check import check_onnx, external_files, looks_like_onnx
from modelshield.integrity.pickle_analysis import Data, analyse_pickle
from modelshield.integrity.results import FileReport, ScanReport, issue

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding

# What parsers raise on hostile bytes (h5py raises KeyError, and at times SystemError, on a corrupt file).
_PARSE_ERRORS = (
    zipread.ZipFormatError, tarfile.TarError, OSError, EOFError, ValueError, RuntimeError, zlib.error, KeyError,
    SystemError, lzma.LZMAError,
)  # fmt: skip
_INERT_PICKLE = {"MS-SCAN-PKL-MALFORMED", "MS-SCAN-PKL-TRAILING"}  # what a pickle that imports nothing can show
_MAX_JSON = 64 << 20
_MAX_PROTOBUF = 2 << 30


@dataclass
class Layer:
    """One file or archive member being read, and what its readings found so far."""

    data: Data
    where: str
    depth: int
    head: bytes
    formats: list[str] = field(default_factory=list)
    covered: list[tuple[int, int]] = field(default_factory=list)  # bytes read as data: members, tensors, arrays
    zip_end: int | None = None


class _Scan:
    def __init__(self, limits: Limits, folder: Path | None) -> None:
        self.limits, self.folder = limits, folder
        self.findings: list[Finding] = []
        self.external: set[Path] = set()  # files an ONNX model here reads as raw tensor bytes

    def emit(self, finding: Finding) -> None:
        self.findings.append(finding)

    def layer(self, data: Data, where: str, depth: int = 0, opaque: bool = False) -> str:
        """Read the bytes as every format that would take them, judge each reading; return the formats read.

        ``opaque`` bytes are ones their loader hands back uninterpreted or reads as raw tensors (TorchScript's
        extra files, a ``.pt2``'s weights): a
        format found in them is still judged, but matching none is no finding."""
        if depth > self.limits.max_depth:
            self.emit(issue(Verdict.unparsed, "MS-SCAN-ARC-DEPTH", "Nested too deep", where,
                            f"more than {self.limits.max_depth} layers of archives; not scanned"))  # fmt: skip
            return "nested"
        layer = Layer(data, where, depth, bytes(data[:512]))
        for name, reader in READERS:
            try:
                fmt = reader(self, layer)
            except _PARSE_ERRORS as exc:
                self.emit(issue(Verdict.unparsed, "MS-SCAN-UNPARSED", "File could not be parsed", where,
                                f"read as {name}: {type(exc).__name__}: {exc}"))  # fmt: skip
                fmt = name
            if fmt:
                layer.formats.append(fmt)
        self._stray_end_records(layer)
        if not layer.formats and opaque:
            return "data"
        if not layer.formats:
            self.emit(issue(Verdict.unknown, "MS-SCAN-FORMAT", "Unrecognised format", where,
                            "the content matches no format modelshield can check, so it cannot be called safe"))  # fmt: skip
            return "unknown"
        return "+".join(layer.formats)

    def _stray_end_records(self, layer: Layer) -> None:
        """A zip end record (with its central directory) that is not the archive's own, outside the bytes a
        reading accounts for as data (members, scanned as layers of their own; tensor and array bytes): some
        tool searching the file would open it. Skipping data keeps a multi-GB checkpoint at milliseconds."""
        for pos in zipread.end_records(layer.data, layer.covered):
            if pos != layer.zip_end:
                self.emit(ambiguous(layer.where, f"a second zip end record and central directory at offset {pos}"))


Reader = Callable[[_Scan, Layer], "str | None"]


def ambiguous(where: str, why: str) -> Finding:
    return issue(Verdict.unsafe, "MS-SCAN-ARC-AMBIGUOUS", "Ambiguous archive: loaders would read different files",
                 where, why)  # fmt: skip


def _safetensors(scan: _Scan, layer: Layer) -> str | None:
    if not looks_like_safetensors(layer.head):
        return None
    found = formats.check_safetensors(layer.data, layer.where)
    if not found:  # the tensors tile the data exactly: raw numbers, which no loader reads as anything else
        layer.covered.append((8 + int.from_bytes(layer.head[:8], "little"), len(layer.data)))
    scan.findings += found
    return "safetensors"


def _zip(scan: _Scan, layer: Layer) -> str | None:
    """Each loader's reading of the archive whose end record closes the file (torch's and zipfile's differ
    when data is prepended), every member of each scanned, and any disagreement between them refused."""
    claims_zip = layer.head.startswith((zipread.LOCAL, zipread.END))
    try:
        layout = zipread.read_layout(layer.data)
    except zipread.ZipFormatError:
        if claims_zip or zipfile_opens(layer.data):
            raise
        return None  # an end-record signature in other data, which no zip loader can open
    if layout is None:
        return None
    readings = [r for r in layout.readings if not r.error]
    if not readings:
        if claims_zip or zipfile_opens(layer.data):  # a loader reads what this reader refuses: never pass it
            raise zipread.ZipFormatError(layout.readings[-1].error)
        return None
    layer.zip_end = layout.end_record
    sequence = _archive_sequence(layer.data, readings) if layout.start else None
    if sequence:
        for index, (start, end) in enumerate(sequence, 1):
            layer.covered.append((start, end))
            where = f"{layer.where}[archive {index} of {len(sequence)}, bytes {start}-{end}]"
            scan.layer(bytes(layer.data[start:end]), where, layer.depth + 1)
        return "zip-sequence"
    inside = any(start <= layout.start and layout.end <= end for start, end in layer.covered)
    if inside and len(readings) == 1:
        return None  # zipfile's reading is exactly a tar member's, scanned as a layer of its own
    for why in layout.ambiguities[:10]:
        scan.emit(ambiguous(layer.where, why))
    for reading in readings:
        where = layer.where if len(readings) == 1 else f"{layer.where}[as {reading.loader} reads it]"
        layer.covered += [(e.start, e.end) for e in reading.entries]
        names = [e.name for e in reading.entries]
        own, exported = torchscript.is_torchscript(names), torch_export.is_pt2(names)
        for name, body, _ in zip_members(layer.data, reading.entries, where, scan.limits, scan.emit):
            judged = torchscript.check_member(body, name) if own else None  # code/ and pickles torch.jit reads
            judged = torch_export.check_member(body, name) if exported and judged is None else judged
            if judged is None:  # bytes the loader hands back or reads as raw tensors: no format is no finding
                opaque = (own and torchscript.is_extra(name)) or (exported and torch_export.is_opaque(name))
                scan.layer(body, name, layer.depth + 1, opaque=opaque)
            else:
                scan.findings += judged
    return zip_kind([e.name for e in readings[-1].entries])


def _archive_sequence(data: Data, readings: list[zipread.Reading]) -> list[tuple[int, int]] | None:
    """Whole archives back to back (a ``.distcp`` shard), when every loader's reading of the file is exactly
    one of them — zipfile reads the last, torch (offsets taken as absolute) may read the first — so that
    scanning each archive on its own judges all of them; else None, and the disagreement is refused."""
    spans = zipread.archive_sequence(data)
    if spans is None:
        return None
    own = []
    for start, end in spans:
        layout = zipread.read_layout(bytes(data[start:end]))
        if layout is None or layout.start or layout.ambiguities:
            return None
        own.append({(start + e.header, start + e.end, e.name) for e in layout.readings[-1].entries})
    seen = [{(e.header, e.end, e.name) for e in reading.entries} for reading in readings]
    return spans if all(entries in own for entries in seen) else None


def _npy(scan: _Scan, layer: Layer) -> str | None:
    if not layer.head.startswith(b"\x93NUMPY"):
        return None
    found, numbers = formats.check_npy(layer.data, layer.where)
    if numbers is not None:  # a plain array: raw numbers after the header
        layer.covered.append((numbers, len(layer.data)))
    scan.findings += found
    return "npy"


def _tar(scan: _Scan, layer: Layer) -> str | None:
    """tarfile takes a file whose first 512-byte header has a valid checksum (legacy torch.save is a tar)."""
    try:
        tarfile.TarInfo.frombuf(layer.head, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return None
    for name, body, span in tar_members(layer.data, layer.where, scan.limits, scan.emit):
        layer.covered.append(span)
        scan.layer(body, name, layer.depth + 1)
    return "tar"


def _hdf5(scan: _Scan, layer: Layer) -> str | None:
    """The HDF5 library looks for its signature at 0 and at every power of two from 512 (after a user block)."""
    offsets = [0] + [512 << i for i in range(max(0, len(layer.data).bit_length() - 9))]
    if not any(layer.data[o : o + 8] == formats.HDF5_MAGIC for o in offsets):
        return None
    scan.findings += keras_hdf5.check_hdf5(layer.data, layer.where)
    return "hdf5"


def _compressed(scan: _Scan, layer: Layer) -> str | None:
    """joblib picks its decompressor by the stream's magic bytes, and (like ``gzip``, ``bz2`` and ``lzma``)
    reads on into a next stream that follows the first: all of them are one layer."""
    start, stream = _zfile_start(layer.head), decompressor(layer.head)
    if start:
        stream = zlib.decompressobj()
    elif stream is None:
        return None
    parts: list[bytes] = []
    rest: Data = layer.data[start:] if start else layer.data
    while stream is not None:
        parts.append(stream.decompress(rest, scan.limits.max_bytes + 1 - sum(map(len, parts))))
        if sum(map(len, parts)) > scan.limits.max_bytes:
            raise ValueError(f"decompresses to more than {scan.limits.max_bytes} bytes")
        rest = stream.unused_data if stream.eof else b""
        stream = decompressor(rest[:512]) if rest.strip(b"\0") else None
        if stream is None and rest.strip(b"\0"):
            scan.emit(issue(Verdict.unknown, "MS-SCAN-TRAILING", "Data after the compressed stream", layer.where,
                            "bytes follow the compressed data that are not another compressed stream"))  # fmt: skip
    scan.layer(b"".join(parts), f"{layer.where}[decompressed]", layer.depth + 1)
    return "compressed"


def _zfile_start(head: bytes) -> int:
    """Where the zlib stream of joblib's pre-0.10 zfile starts ("ZF", then the length in hex padded to 19
    characters; ``joblib.load`` still reads the format), else 0."""
    if not head.startswith(b"ZF"):
        return 0
    try:
        int(head[2:21].decode("ascii"), 16)
    except ValueError:
        return 0
    return 21 if decompressor(head[21:23]) is not None else 0


def _onnx(scan: _Scan, layer: Layer) -> str | None:
    """``onnx.load`` parses any protobuf; a model with a graph, functions or training graphs is judged in full."""
    if len(layer.data) > _MAX_PROTOBUF or not looks_like_onnx(layer.data):
        return None
    try:
        import onnx
    except ImportError:
        scan.emit(issue(Verdict.unknown, "MS-SCAN-ONNX-MISSING", "ONNX reading not judged", layer.where,
                        "the file parses as protobuf, which onnx.load reads; install modelshield[onnx] to judge it"))  # fmt: skip
        return "onnx?"
    try:
        model = onnx.load_model_from_string(bytes(layer.data))
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends: not a ModelProto
        return None
    if not (model.HasField("graph") or len(model.functions) or len(model.training_info)):
        return None
    folder = scan.folder if layer.depth == 0 else None
    found = check_onnx(model, layer.where, folder)
    scan.findings += found
    if folder is not None and not found:
        scan.external |= {(folder / location).resolve() for location in external_files(model)}
    return "onnx"


def _saved_model(scan: _Scan, layer: Layer) -> str | None:
    if not layer.where.endswith("saved_model.pb"):
        return None
    scan.findings += formats.check_saved_model(layer.data, layer.where)
    return "savedmodel"


def _tree_model(scan: _Scan, layer: Layer) -> str | None:
    """XGBoost's UBJSON and LightGBM's text model: data for a C++ parser, nothing to judge once identified."""
    return tree_models.identify(layer.data)


def _json(scan: _Scan, layer: Layer) -> str | None:
    """Keras configs and skops schemas, read as their loaders read them: ``json.loads`` on bytes, which also
    takes UTF-16 and UTF-32."""
    start = bytes(layer.data[: 1 << 16]).lstrip(b" \t\r\n\0\xef\xbb\xbf\xfe\xff")
    if len(layer.data) > _MAX_JSON or start[:1] not in (b"{", b"["):
        return None
    try:
        config = json.loads(bytes(layer.data))
    except (UnicodeDecodeError, ValueError):
        return None
    scan.findings += keras_hdf5.check_keras_config(config, layer.where)
    if skops_schema.is_skops_schema(config):
        scan.findings += skops_schema.check_skops_schema(config, layer.where)
        return "skops-schema"
    return "json"


def _pickle(scan: _Scan, layer: Layer) -> str | None:
    """``pickle.load`` (and torch's legacy loader, and ``np.load(allow_pickle=True)``) read from offset 0 of any file.

    A reading that imports or calls something is judged whatever else the file is. One that imports
    nothing runs nothing; it names the file only when no other loader takes it."""
    if isinstance(layer.data, mmap.mmap):
        layer.data.seek(0)
    analysis = analyse_pickle(layer.data, layer.where)
    if analysis.globals or any(f.id not in _INERT_PICKLE for f in analysis.findings):
        scan.findings += analysis.findings
        return "pickle"
    opens_as_pickle = len(layer.head) > 1 and layer.head[0] == 0x80 and 2 <= layer.head[1] <= 5
    if layer.formats or not analysis.opcodes or not (opens_as_pickle or not analysis.findings):
        return None
    scan.findings += analysis.findings
    return "pickle"


# Every format a loader might take the bytes as. The pickle reader runs last: it needs to know the others.
READERS: tuple[tuple[str, Reader], ...] = (
    ("safetensors", _safetensors),
    ("npy", _npy),
    ("tar", _tar),
    ("zip", _zip),
    ("hdf5", _hdf5),
    ("compressed", _compressed),
    ("onnx", _onnx),
    ("savedmodel", _saved_model),
    ("tree model", _tree_model),
    ("json", _json),
    ("pickle", _pickle),
)


def scan_file(path: str | os.PathLike[str], limits: Limits = Limits()) -> FileReport:
    """Scan one file (mapped, never read whole into memory) and everything nested inside it."""
    return _scan_file(Path(path), limits)[0]


def _scan_file(path: Path, limits: Limits) -> tuple[FileReport, set[Path]]:
    """The report, and the files the scanned model reads as raw external data."""
    if not path.is_file():
        raise MissingFileError(f"not a regular file: {path}" if path.exists() else f"no such file: {path}")
    scan = _Scan(limits, path.parent)
    if path.stat().st_size == 0:
        fmt = "empty"  # nothing to load and nothing to run (torch's exporter writes an empty model.onnx.data)
    else:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            fmt = scan.layer(data, str(path))
    return FileReport(str(path), fmt, scan.findings), scan.external


def scan_paths(paths: Sequence[str | os.PathLike[str]], limits: Limits = Limits()) -> ScanReport:
    """Scan files and directories (recursively, links not followed); a missing path raises.

    A file no reader takes is still safe when a clean ONNX model in the same scan reads it as its
    external data: its loader reads those bytes as tensors and nothing else (torch's ``model.onnx.data``)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise MissingFileError(f"no such file or directory: {path}")
        found = sorted(p for p in path.rglob("*") if p.is_symlink() or not p.is_dir()) if path.is_dir() else [path]
        if not found:  # a scan that looked at nothing must not read as a clean one (protectai/modelscan#218)
            raise InputError(f"nothing to scan: {path} holds no files")
        files += found
    reports, external = [], set()
    for p in files:
        report, reads = (
            (_link(p), set()) if p.is_symlink() else (_special(p), set()) if not p.is_file() else _scan_file(p, limits)
        )
        reports.append(report)
        external |= reads
    return ScanReport([_as_external(r) if Path(r.path).resolve() in external else r for r in reports])


def _as_external(report: FileReport) -> FileReport:
    if report.format != "unknown" or any(f.id != "MS-SCAN-FORMAT" for f in report.findings):
        return report
    return FileReport(report.path, "onnx-external-data", [])


def _special(path: Path) -> FileReport:
    """A pipe, socket or device: reading it could block or never end, and it is no model file."""
    finding = issue(Verdict.unknown, "MS-SCAN-SPECIAL", "Not a regular file", str(path),
                    "a pipe, socket or device is not read; a model folder should hold only regular files")  # fmt: skip
    return FileReport(str(path), "special", [finding])


def _link(path: Path) -> FileReport:
    """Links are not followed: one inside a model folder can point anywhere."""
    finding = issue(Verdict.unknown, "MS-SCAN-LINK", "Symbolic link not followed", str(path),
                    f"points to {os.readlink(path)}; scan the target itself if it is meant to be there")  # fmt: skip
    return FileReport(str(path), "symlink", [finding])
