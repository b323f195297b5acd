"""The larger corpus (``tests/integrity/corpus``): every file written by a real library passes the scan, and
every malicious variant — by published technique, and A1's format-confusion vectors — fails it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from corpus import Corpus, build
from corpus.malicious import MARKER

from modelshield.integrity import Verdict, scan_file


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build(tmp_path_factory.mktemp("scan_corpus"))


def test_corpus_covers_the_libraries_users_save_with(corpus: Corpus) -> None:
    libraries = Counter(e.group for e in corpus.benign)
    for library in ("torch", "scikit-learn", "joblib", "keras", "h5py", "numpy", "onnx", "skops"):
        assert libraries[library] >= 1 or library in corpus.skipped, library
    assert len(corpus.benign) >= 40 and len(corpus.malicious) >= 40


def test_every_benign_file_passes(corpus: Corpus) -> None:
    flagged = {}
    for entry in corpus.benign:
        report = scan_file(entry.path)
        if report.verdict is not Verdict.safe:
            flagged[entry.name] = [f.description for f in report.findings][:2]
    assert flagged == {}


def test_every_malicious_file_fails(corpus: Corpus) -> None:
    missed = [e.name for e in corpus.malicious if scan_file(e.path).passed()]
    assert missed == []
    assert not (corpus.benign[0].path.parent.parent / MARKER).exists()


@pytest.mark.parametrize(
    ("name", "verdict"),
    [("torchscript_from_file", Verdict.unsafe), ("torchscript_custom_op", Verdict.unknown),
     ("torchscript_import_os", Verdict.unsafe), ("joblib_payload_after_array_bytes", Verdict.unsafe),
     ("joblib_object_array_payload", Verdict.unsafe), ("joblib_padding_read_as_opcodes", Verdict.unsafe),
     ("legacy_torch_payload_in_sys_info", Verdict.unsafe),
     ("legacy_torch_payload_after_storages", Verdict.unknown), ("format_user_class_main", Verdict.unknown),
     ("keras_lambda_activation_marshal", Verdict.unsafe), ("keras_get_file_cve_2025_8747", Verdict.unsafe),
     ("keras_custom_registered_object", Verdict.unknown), ("h5_external_link", Verdict.unknown),
     ("ghsa_pip_main_cve_2025_1716", Verdict.unsafe), ("format_randomstate_ctor_exec", Verdict.unsafe)],
)  # fmt: skip
def test_verdict_says_how_bad(corpus: Corpus, name: str, verdict: Verdict) -> None:
    entry = next(e for e in corpus.malicious if e.name == name)
    assert scan_file(entry.path).verdict is verdict


def test_benign_folder_passes_the_cli_gate(corpus: Corpus, run_main: Callable[..., tuple[int, str, str]]) -> None:
    code, out, err = run_main("scan", str(corpus.benign[0].path.parent))
    assert code == 0, out[-2000:] + err


def test_stock_layers_pass_but_a_user_class_does_not(corpus: Corpus) -> None:
    whole = next(e for e in corpus.benign if e.name == "torch_whole_module.pt")
    assert scan_file(whole.path).verdict is Verdict.safe
    user = next(e for e in corpus.malicious if e.name == "format_user_class_main")
    report = scan_file(user.path)
    assert report.passed(allow_unknown=True) and not report.passed()


def test_a_tampered_joblib_array_length_is_not_parsed_as_safe(corpus: Corpus, tmp_path: Path) -> None:
    """joblib's raw array bytes are skipped by the size the wrapper declares: cut them short and the stream
    no longer parses — unparsed, never safe."""
    real = next(e for e in corpus.benign if e.name == "sklearn_random_forest.joblib").path.read_bytes()
    cut = tmp_path / "cut.joblib"
    cut.write_bytes(real[: len(real) // 2])
    assert scan_file(cut).verdict is Verdict.unparsed
