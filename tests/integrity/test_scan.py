"""Every malicious variant fails the scan; every real benign file passes (no false positives)."""

from __future__ import annotations

from pathlib import Path

import pytest
from integrity_corpus import MARKER, malicious

from modelshield.integrity import Verdict, scan_file, scan_paths

BAD = sorted(malicious(Path("/nonexistent")))
GOOD = ["state_dict.pt", "array.npy", "arrays.npz", "sklearn.pkl", "weights.safetensors", "net.onnx"]


def test_corpus_is_large_enough() -> None:
    assert len(BAD) >= 30


@pytest.mark.parametrize("name", BAD)
def test_malicious_never_safe(corpus_dir: Path, name: str) -> None:
    report = scan_file(corpus_dir / "bad" / name)
    assert report.verdict is not Verdict.safe, report
    assert not report.passed()
    assert not (corpus_dir / MARKER).exists()


@pytest.mark.parametrize("name", GOOD)
def test_benign_is_safe(corpus_dir: Path, name: str) -> None:
    report = scan_file(corpus_dir / "good" / name)
    assert report.verdict is Verdict.safe, [f.description for f in report.findings]


@pytest.mark.parametrize(
    ("name", "verdict"),
    [("os_system_protocol_0", Verdict.unsafe), ("memo_indirected_name", Verdict.unsafe),
     ("pkgutil_resolve_name", Verdict.unsafe), ("build_on_allowlisted_class", Verdict.unsafe),
     ("unknown_global_not_allowlisted", Verdict.unknown), ("truncated_data_only", Verdict.unparsed),
     ("zip_bomb", Verdict.unsafe), ("onnx_external_data_escape", Verdict.unsafe),
     ("zip_in_tar_in_zip", Verdict.unsafe), ("keras_v3_lambda", Verdict.unsafe)],
)  # fmt: skip
def test_verdicts_name_the_reason(corpus_dir: Path, name: str, verdict: Verdict) -> None:
    assert scan_file(corpus_dir / "bad" / name).verdict is verdict


def test_formats_are_read_from_content(corpus_dir: Path) -> None:
    formats = {Path(f.path).name: f.format for f in scan_paths([corpus_dir / "good"]).files}
    assert formats == {"state_dict.pt": "pytorch", "array.npy": "npy", "arrays.npz": "npz", "sklearn.pkl": "pickle",
                       "weights.safetensors": "safetensors", "net.onnx": "onnx"}  # fmt: skip


def test_allow_unknown_relaxes_only_unknown(corpus_dir: Path) -> None:
    assert scan_file(corpus_dir / "bad" / "unknown_global_not_allowlisted").passed(allow_unknown=True)
    assert not scan_file(corpus_dir / "bad" / "os_system_protocol_4").passed(allow_unknown=True)
    assert not scan_file(corpus_dir / "bad" / "truncated_data_only").passed(allow_unknown=True)
