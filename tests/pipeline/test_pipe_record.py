"""The signed run record verifies with the run's public key and refuses any edit, to itself or to an artefact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelshield.core.errors import IntegrityError
from modelshield.integrity.signing import generate_key_pair
from modelshield.pipeline import verify_record

if TYPE_CHECKING:
    from conftest import RunMain


@pytest.fixture
def stopped_run(stopped_source: Path, tmp_path: Path) -> Path:
    """A private copy of that run folder, free to tamper with."""
    return Path(shutil.copytree(stopped_source, tmp_path / "run"))


def test_record_verifies_and_names_the_stop(stopped_run: Path, run_main: RunMain) -> None:
    pub = stopped_run / "signing.pub.pem"
    record = verify_record(stopped_run, pub)
    assert (record["status"], record["stopped_at"]) == ("failed", "scan")
    assert "scaler.pkl" in record["reason"]
    assert record["artifacts"]["training-data"]["produced"] is True
    code, out, _ = run_main("pipeline", "verify", str(stopped_run), "--public-key", str(pub))
    assert code == 0 and "verified: run" in out and "stopped at scan" in out


def test_an_edited_record_fails(stopped_run: Path, run_main: RunMain) -> None:
    path = stopped_run / "record.json"
    doc = json.loads(path.read_text())
    doc["status"], doc["stopped_at"] = "passed", None  # hide the failed gate
    path.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
    code, _, err = run_main(
        "pipeline", "verify", str(stopped_run), "--public-key", str(stopped_run / "signing.pub.pem")
    )
    assert code == 1 and "edited after the run" in err


def test_a_changed_artefact_or_another_key_fails(stopped_run: Path, tmp_path: Path) -> None:
    pub = stopped_run / "signing.pub.pem"
    _, other = generate_key_pair("ed25519", tmp_path / "other.pem")
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_record(stopped_run, other)
    with (stopped_run / "artifacts/training-data").open("a") as f:
        f.write("0.0,1.0\n")
    with pytest.raises(IntegrityError, match="training-data .* changed after the run"):
        verify_record(stopped_run, pub)


def test_a_forged_signature_over_another_payload_fails(stopped_run: Path) -> None:
    sig = stopped_run / "record.sig.json"
    envelope = json.loads(sig.read_text())
    envelope["payloadType"] = "application/vnd.in-toto+json"
    sig.write_text(json.dumps(envelope))
    with pytest.raises(IntegrityError, match="not a pipeline run record"):
        verify_record(stopped_run, stopped_run / "signing.pub.pem")
