"""Provenance lock files on real files: pin, verify, and refuse every kind of tampering with a clear message."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelshield.cli.provenance import provenance_app
from modelshield.core.errors import FormatError, InputError, MissingFileError
from modelshield.integrity.provenance import add_artifact, hash_tree, load_lock, verify

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with one model file and one dataset folder (nested, one file above a 1 MiB chunk)."""
    (tmp_path / "model.safetensors").write_bytes(os.urandom(5000))
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "train" / "a.parquet").write_bytes(os.urandom((1 << 20) + 123))
    (data / "train" / "b.parquet").write_bytes(os.urandom(777))
    (data / "README.md").write_text("a dataset\n")
    return tmp_path


@pytest.fixture
def lock(project: Path) -> Path:
    path = project / "modelshield.lock.json"
    add_artifact(
        path,
        "tiny-model",
        project / "model.safetensors",
        kind="model",
        source="https://example.org/m",
        licence="Apache-2.0",
    )
    add_artifact(path, "corpus", project / "data", kind="dataset", source="internal crawl 2026-05", licence="CC-BY-4.0")
    return path


def edit_entry(lock: Path, name: str, **fields: object) -> None:
    doc = json.loads(lock.read_text())
    doc["artifacts"][name].update(fields)
    lock.write_text(json.dumps(doc))


def only(lock: Path, name: str):  # noqa: ANN201 - the one result for that artifact
    [result] = verify(lock, [name]).results
    return result


def test_add_writes_a_stable_lock_and_verify_passes(project: Path, lock: Path) -> None:
    doc = json.loads(lock.read_text())
    assert list(doc) == ["artifacts", "version"] and list(doc["artifacts"]) == ["corpus", "tiny-model"]
    model = doc["artifacts"]["tiny-model"]
    assert model["digest"] == "sha256:" + hashlib.sha256((project / "model.safetensors").read_bytes()).hexdigest()
    assert model["path"] == "model.safetensors" and "files" not in model and model["size"] == 5000
    corpus = doc["artifacts"]["corpus"]
    assert corpus["path"] == "data" and sorted(corpus["files"]) == ["README.md", "train/a.parquet", "train/b.parquet"]
    before = lock.read_bytes()
    add_artifact(
        lock,
        "corpus",
        project / "data",
        kind="dataset",
        source="internal crawl 2026-05",
        licence="CC-BY-4.0",
        replace=True,
    )
    assert lock.read_bytes() == before
    report = verify(lock)
    assert report.ok and [r.status for r in report.results] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("tamper", "field", "expected"),
    [
        (
            lambda d: d.joinpath("train/a.parquet").write_bytes(b"x" + d.joinpath("train/a.parquet").read_bytes()[1:]),
            "changed",
            ["train/a.parquet"],
        ),
        (lambda d: d.joinpath("train/b.parquet").unlink(), "missing", ["train/b.parquet"]),
        (lambda d: d.joinpath("train/c.parquet").write_bytes(b"poison"), "extra", ["train/c.parquet"]),
    ],
    ids=["flipped-byte", "deleted", "added"],
)
def test_folder_tampering_names_the_file(project: Path, lock: Path, tamper, field: str, expected: list[str]) -> None:  # noqa: ANN001
    tamper(project / "data")
    result = only(lock, "corpus")
    assert result.status == "mismatch" and getattr(result, field) == expected


def test_renamed_file_is_missing_under_the_old_name_and_extra_under_the_new(project: Path, lock: Path) -> None:
    (project / "data/README.md").rename(project / "data/train/README.md")
    result = only(lock, "corpus")
    assert (result.status, result.missing, result.extra, result.changed) == (
        "mismatch",
        ["README.md"],
        ["train/README.md"],
        [],
    )


def test_flipped_byte_in_a_model_file_and_a_deleted_artifact(project: Path, lock: Path) -> None:
    blob = bytearray((project / "model.safetensors").read_bytes())
    blob[2500] ^= 1
    (project / "model.safetensors").write_bytes(bytes(blob))
    assert only(lock, "tiny-model").changed == ["model.safetensors"]
    (project / "model.safetensors").unlink()
    assert only(lock, "tiny-model").status == "missing"
    assert not verify(lock).ok


@pytest.mark.parametrize("name", ["tiny-model", "corpus"])
def test_lock_entry_with_a_wrong_digest_is_a_mismatch(lock: Path, name: str) -> None:
    edit_entry(lock, name, digest="sha256:" + "0" * 64)
    result = only(lock, name)
    assert result.status == "mismatch" and (result.problems or result.changed == ["model.safetensors"])


def test_lock_entry_whose_file_list_was_edited_is_a_mismatch(lock: Path) -> None:
    files = load_lock(lock)["corpus"].files
    assert files is not None
    edit_entry(lock, "corpus", files={**files, "train/b.parquet": "sha256:" + "1" * 64})
    result = only(lock, "corpus")
    assert (
        result.status == "mismatch" and result.changed == ["train/b.parquet"] and "entry edited" in result.problems[0]
    )


@pytest.mark.parametrize("path", ["../outside", "data/../../outside", "/etc/passwd", "C:\\Windows", "..\\x", "."])
def test_lock_paths_that_leave_the_project_are_refused(project: Path, lock: Path, path: str) -> None:
    (project.parent / "outside").write_bytes(b"secret")
    edit_entry(lock, "corpus", path=path)
    with pytest.raises(FormatError, match="path"):
        verify(lock)


def test_symlinks_that_leave_the_folder_are_refused(project: Path, lock: Path) -> None:
    (project / "secret.txt").write_text("outside the artifact folder")
    (project / "data/train/link.parquet").symlink_to(project / "secret.txt")
    with pytest.raises(InputError, match="outside the artifact folder"):
        verify(lock)
    (project / "data/train/link.parquet").unlink()
    (project / "data/train/inner.parquet").symlink_to(project / "data/README.md")
    assert only(lock, "corpus").extra == ["train/inner.parquet"]


def test_an_artifact_path_symlinked_outside_the_project_is_refused(
    project: Path, lock: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (project / "data").rename(elsewhere / "data")
    (project / "data").symlink_to(elsewhere / "data")
    with pytest.raises(InputError, match="outside the project folder"):
        verify(lock)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"version": 1, "artifacts": {}, "extra": 1}', "exactly 'version' and 'artifacts'"),
        ('{"version": 2, "artifacts": {}}', "unsupported version"),
        ('{"version": 1, "artifacts": {}, "version": 1}', "repeated keys 'version'"),
    ],
)
def test_unparseable_lock_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    lock = tmp_path / "modelshield.lock.json"
    lock.write_text(text)
    with pytest.raises(FormatError, match=message):
        load_lock(lock)


def test_unknown_or_missing_entry_fields_are_refused(lock: Path) -> None:
    edit_entry(lock, "corpus", signature="trust me")
    with pytest.raises(FormatError, match="unknown fields signature"):
        verify(lock)
    edit_entry(lock, "corpus", signature=None)
    doc = json.loads(lock.read_text())
    del doc["artifacts"]["corpus"]["signature"], doc["artifacts"]["corpus"]["size"]
    lock.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="'size' is missing"):
        verify(lock)


def test_add_refuses_bad_input(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    lock = project / "modelshield.lock.json"
    outside = tmp_path_factory.mktemp("other") / "w.bin"
    outside.write_bytes(b"w")
    with pytest.raises(InputError, match="outside"):
        add_artifact(lock, "w", outside, kind="model", source="s", licence="MIT")
    with pytest.raises(InputError, match="kind"):
        add_artifact(lock, "w", project / "model.safetensors", kind="weights", source="s", licence="MIT")
    with pytest.raises(MissingFileError):
        add_artifact(lock, "w", project / "nope.bin", kind="model", source="s", licence="MIT")
    add_artifact(lock, "w", project / "model.safetensors", kind="model", source="s", licence="MIT")
    with pytest.raises(InputError, match="already has an artifact 'w'") as refused:
        add_artifact(lock, "w", project / "model.safetensors", kind="model", source="s", licence="MIT")
    assert "--replace" in refused.value.diagnostics()


def test_parallel_hashing_matches_serial(project: Path) -> None:
    for i in range(20):
        (project / "data" / f"shard-{i:02}.bin").write_bytes(os.urandom(50_000 + i))
    serial, parallel = hash_tree(project / "data", workers=1), hash_tree(project / "data", workers=8)
    assert serial == parallel and len(serial.files or {}) == 23


def test_cli_exit_codes_and_output(project: Path) -> None:
    lock = str(project / "modelshield.lock.json")
    added = runner.invoke(
        provenance_app,
        [
            "add",
            "corpus",
            str(project / "data"),
            "--kind",
            "dataset",
            "--source",
            "https://example.org/d",
            "--licence",
            "MIT",
            "--lock",
            lock,
        ],
    )
    assert added.exit_code == 0 and "pinned corpus" in added.output and "3 files" in added.output
    ok = runner.invoke(provenance_app, ["verify", "--lock", lock])
    assert ok.exit_code == 0 and "1 of 1 artifacts match" in ok.output
    assert "corpus" in runner.invoke(provenance_app, ["list", "--lock", lock]).output
    (project / "data/train/b.parquet").write_bytes(b"tampered")
    bad = runner.invoke(provenance_app, ["verify", "corpus", "--lock", lock])
    assert bad.exit_code == 1 and "changed  train/b.parquet" in bad.output
    as_json = runner.invoke(provenance_app, ["verify", "--lock", lock, "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.output)["artifacts"][0]["changed"] == ["train/b.parquet"]
    missing = runner.invoke(provenance_app, ["verify", "nope", "--lock", lock])
    assert isinstance(missing.exception, InputError)
