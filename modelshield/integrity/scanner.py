"""``scan_paths``: read every file by content, recurse into archives and compressed streams, judge each layer.

A file is safe only when every layer was identified and passed; an unidentified or unparsable
layer is never reported as "no issues" (modelscan's skipped files, protectai/modelscan#218).
"""

from __future__ import annotations

import json
import mmap
import os
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield.core.errors import MissingFileError
from modelshield.core.file_formats import decompressor, looks_like_safetensors
from modelshield.integrity import formats
from modelshield.integrity.allowlist import Verdict
from modelshield.integrity.archives import Limits, open_zip, tar_members, zip_kind, zip_members
from modelshield.integrity.pickle_analysis import Data, analyse_pickle
from modelshield.integrity.results import FileReport, ScanReport, issue

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding


class _Scan:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.findings: list[Finding] = []

    def layer(self, data: Data, where: str, depth: int = 0) -> str:
        """Identify one layer by its bytes, check it, recurse into what it contains; return its format."""
        if depth > self.limits.max_depth:
            self.findings.append(issue(Verdict.unparsed, "MS-SCAN-ARC-DEPTH", "Nested too deep", where,
                                       f"more than {self.limits.max_depth} layers of archives; not scanned"))  # fmt: skip
            return "nested"
        head = bytes(data[:512])
        try:
            return self._dispatch(data, head, where, depth)
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError, RuntimeError) as exc:
            self.findings.append(issue(Verdict.unparsed, "MS-SCAN-UNPARSED", "File could not be parsed", where,
                                       f"{type(exc).__name__}: {exc}"))  # fmt: skip
            return "unparsed"

    def _dispatch(self, data: Data, head: bytes, where: str, depth: int) -> str:
        if looks_like_safetensors(head):
            self.findings += formats.check_safetensors(data, where)
            return "safetensors"
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            with open_zip(data) as zf:
                for name, body in zip_members(zf, where, self.limits, self.findings.append):
                    self.layer(body, name, depth + 1)
                return zip_kind(zf.namelist())
        if head.startswith(b"\x93NUMPY"):
            self.findings += formats.check_npy(data, where)
            return "npy"
        if head[257:262] == b"ustar":
            for name, body in tar_members(data, where, self.limits, self.findings.append):
                self.layer(body, name, depth + 1)
            return "tar"
        if head.startswith(formats.HDF5_MAGIC):
            self.findings += formats.check_hdf5(data, where)
            return "hdf5"
        stream = decompressor(head)
        if stream is not None:
            inner = stream.decompress(data, self.limits.max_bytes + 1)
            if len(inner) > self.limits.max_bytes:
                raise ValueError(f"decompresses to more than {self.limits.max_bytes} bytes")
            self.layer(inner, f"{where}[decompressed]", depth + 1)
            return "compressed"
        if head[:1] == b"\x80":
            self.findings += analyse_pickle(data, where).findings
            return "pickle"
        return self._loose(data, head, where)

    def _loose(self, data: Data, head: bytes, where: str) -> str:
        """Formats without a magic number: ONNX, JSON, SavedModel, protocol 0/1 pickles."""
        if where.endswith("saved_model.pb"):
            self.findings += formats.check_saved_model(data, where)
            return "savedmodel"
        if head[:1] == b"\x08" and (model := _onnx(data)) is not None:
            self.findings += formats.check_onnx(model, where)
            return "onnx"
        try:
            config = json.loads(bytes(data))
        except (UnicodeDecodeError, ValueError):
            pass
        else:
            self.findings += formats.check_keras_config(config, where)
            return "json"
        analysis = analyse_pickle(data, where)
        if analysis.globals or analysis.opcodes > 2:
            self.findings += analysis.findings
            return "pickle"
        self.findings.append(issue(Verdict.unknown, "MS-SCAN-FORMAT", "Unrecognised format", where,
                                   "the content matches no format modelshield can check, so it cannot be called safe"))  # fmt: skip
        return "unknown"


def _onnx(data: Data) -> object | None:
    try:
        import onnx
    except ImportError:
        return None
    try:
        model = onnx.load_model_from_string(bytes(data))
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends: not a ModelProto
        return None
    return model if model.ir_version > 0 and model.HasField("graph") and len(model.graph.output) else None


def scan_file(path: str | os.PathLike[str], limits: Limits = Limits()) -> FileReport:
    """Scan one file (mapped, never read whole into memory) and everything nested inside it."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}")
    scan = _Scan(limits)
    if path.stat().st_size == 0:
        fmt = "empty"
        scan.findings.append(issue(Verdict.unknown, "MS-SCAN-FORMAT", "Empty file", str(path), "the file is empty"))
    else:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            fmt = scan.layer(data, str(path))
    return FileReport(str(path), fmt, scan.findings)


def scan_paths(paths: Sequence[str | os.PathLike[str]], limits: Limits = Limits()) -> ScanReport:
    """Scan files and directories (recursively, links not followed); a missing path raises."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise MissingFileError(f"no such file or directory: {path}")
        files += sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink()) if path.is_dir() else [path]
    return ScanReport([_link(p) if p.is_symlink() else scan_file(p, limits) for p in files])


def _link(path: Path) -> FileReport:
    """Links are not followed: one inside a model folder can point anywhere."""
    finding = issue(Verdict.unknown, "MS-SCAN-LINK", "Symbolic link not followed", str(path),
                    f"points to {os.readlink(path)}; scan the target itself if it is meant to be there")  # fmt: skip
    return FileReport(str(path), "symlink", [finding])
