"""Erasure requests end to end on a digits table: rows gone, tombstones without data, the SISA shard retrained,
derived model versions found through lineage and retired, and a signed certificate that refuses any edit."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from modelshield.audit import AuditLog
from modelshield.core.errors import IntegrityError
from modelshield.govern.certificate import certificate_bytes, verify_certificate, verify_certificate_bytes
from modelshield.govern.erasure import ErasureRequest, ModelTarget, erase, file_digest, sisa_from_table
from modelshield.govern.sisa import SisaEnsemble, SklearnLearner

if TYPE_CHECKING:
    from conftest import RunMain

SUBJECT = "alice.example@mail.test"
FEATURES = [f"p{i}" for i in range(64)]


def _table(n: int, offset: int = 0) -> pd.DataFrame:
    x, y = load_digits(return_X_y=True)
    frame = pd.DataFrame(np.round(x[offset : offset + n] / 16.0, 4), columns=FEATURES)
    frame["label"] = y[offset : offset + n]
    frame["record_id"] = [f"r{offset + i:05d}" for i in range(n)]
    frame["subject"] = [SUBJECT if i % 97 == 5 else f"person-{i % 61}" for i in range(n)]
    return frame


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    data = tmp_path / "data.csv"
    frame = _table(900)
    frame.to_csv(data, index=False)
    sisa_from_table(
        tmp_path / "sisa",
        frame,
        SklearnLearner(LogisticRegression(max_iter=300)),
        signing_key=key,
        feature_columns=FEATURES,
        input_shape=(64,),
        shards=5,
    )
    return data, tmp_path / "sisa", key


def test_erasure_removes_rows_unlearns_one_shard_and_certifies(
    setup: tuple[Path, Path, Ed25519PrivateKey], tmp_path: Path
) -> None:
    from modelshield.cli._governance_erasure import membership_probe

    data, sisa, key = setup
    before = pd.read_csv(data)
    mine = before[before["subject"] == SUBJECT]
    old_digest = file_digest(data)
    ens_before = json.loads((sisa / "sisa.json").read_text())
    holdout = _table(300, offset=1400)
    probe = membership_probe(holdout[FEATURES].to_numpy(np.float32), holdout["label"].to_numpy())
    audit_db = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog.open(audit_db) as audit:
        result = erase(
            ErasureRequest(SUBJECT, [data], [ModelTarget("digits-sisa", "sisa", sisa_dir=sisa)], requested_by="dpo"),
            signing_key=key,
            out=tmp_path / "out",
            audit=audit,
            membership=probe,
            now=datetime(2026, 12, 6, 10, 0, tzinfo=UTC),
        )
        events = [json.loads(e) for e in _audit_events(audit)]

    after = pd.read_csv(data)
    assert len(mine) == 10 and len(after) == len(before) - 10 and SUBJECT not in set(after["subject"])
    pd.testing.assert_frame_equal(after, before[before["subject"] != SUBJECT].reset_index(drop=True))
    # tombstones: one per row, id and digest, none of the row's values
    stones = [json.loads(line) for line in (tmp_path / "out/tombstones.jsonl").read_text().splitlines()]
    assert [s["record_id"] for s in stones] == list(mine["record_id"])
    assert all(set(s) == {"record_id", "row_digest", "reason", "subject", "time"} for s in stones)
    assert all(s["row_digest"].startswith("hmac-sha256:") for s in stones)  # keyed: a guessed row cannot be confirmed

    record = verify_certificate(result.certificate, key.public_key())
    assert record["records_removed"] == 10 and record["datasets"][0]["old_digest"] == old_digest
    assert record["datasets"][0]["new_digest"] == file_digest(data)
    (model,) = record["models"]
    # one subject → one shard (SISA places by subject): only that shard retrained, a fifth of the work
    assert model["shards_retrained"] == [int(s) for s in model["checkpoints"]] and len(model["shards_retrained"]) == 1
    # shards are placed by subject under the (fresh) signing key, so the shard's size varies run to run; the work
    # is that one shard's records, whatever its size, and well under a full retrain
    assert model["sample_epochs"] == len(
        SisaEnsemble.open(sisa, SklearnLearner(LogisticRegression())).shard_records(model["shards_retrained"][0])
    )
    assert model["work_saved"] == pytest.approx(
        1 - model["sample_epochs"] / model["full_retrain_sample_epochs"], abs=1e-4
    )
    assert model["work_saved"] > 0.5
    assert {"auc", "erased_mean_loss"} <= set(model["membership"]["before"]) and model["membership"]["after"][
        "erased"
    ] == 10
    shard = str(model["shards_retrained"][0])
    ens = SisaEnsemble.open(sisa, SklearnLearner(LogisticRegression(max_iter=300)))
    assert not set(mine["record_id"]) & set(ens.shard_records(int(shard)))
    assert ens.manifest["checkpoints"][shard] != ens_before["checkpoints"][shard]
    assert all(
        ens.manifest["checkpoints"][s] == ens_before["checkpoints"][s] for s in ens_before["checkpoints"] if s != shard
    )

    # the subject's id appears nowhere: not in the certificate, its payload, the tombstones or the audit record
    payload = base64.b64decode(json.loads(result.certificate.read_text())["payload"])
    for blob in (result.certificate.read_bytes(), payload, (tmp_path / "out/tombstones.jsonl").read_bytes()):
        assert SUBJECT.encode() not in blob and b"alice" not in blob
    (event,) = [e for e in events if e.get("type") == "govern.erasure"]
    assert event["subject"] == record["subject"] and event["certificate_digest"] == file_digest(result.certificate)


def _audit_events(audit: AuditLog) -> list[str]:
    import sqlalchemy as sa

    from modelshield.audit import schema

    with audit.engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.select(schema.records.c.event))]


def test_every_single_byte_edit_of_a_certificate_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    body = {"subject": "hmac-sha256:00", "records_removed": 3, "datasets": [{"rows_removed": 3}], "x": 0.25}
    data = certificate_bytes(body, key)
    assert verify_certificate_bytes(data, key.public_key())["records_removed"] == 3
    for i in range(len(data)):
        for new in {data[i] ^ 0x01, ord(" "), ord("A")} - {data[i]}:
            edited = data[:i] + bytes([new]) + data[i + 1 :]
            with pytest.raises(IntegrityError):
                verify_certificate_bytes(edited, key.public_key())
    for edited in (data + b" ", data[:-1], b" " + data):
        with pytest.raises(IntegrityError):
            verify_certificate_bytes(edited, key.public_key())
    with pytest.raises(IntegrityError, match="another key"):
        verify_certificate_bytes(data, Ed25519PrivateKey.generate().public_key())


def test_lineage_finds_the_registered_version_trained_on_the_data_and_erasure_retires_it(
    setup: tuple[Path, Path, Ed25519PrivateKey], tmp_path: Path, run_main: RunMain
) -> None:
    from modelshield.cli.audit import existing_log
    from modelshield.govern.lineage import LineageStore, registry_events
    from modelshield.ingest.lineage import DatasetRef, run_event, run_id
    from modelshield.integrity.signing.keys import write_key_pair
    from modelshield.registry import Registry

    data, sisa, key = setup
    write_key_pair(key, tmp_path / "dpo.pem", tmp_path / "dpo.pub.pem")
    model_file = sisa / "shard000" / "slice000.skops"
    db = f"sqlite:///{tmp_path / 'gov.db'}"
    with Registry.open(db) as reg:
        mv = reg.register("digits", model_file, owner="ml-team")
    engine = existing_log(db)
    train = run_event(
        run_id([file_digest(data)], {"job": "train"}),
        "pipeline.train",
        "2026-12-01T00:00:00Z",
        [DatasetRef(data, file_digest(data))],
        [DatasetRef(model_file, mv.digest)],
        job_type="TRAIN",
    )
    with LineageStore.open(db) as store:
        store.ingest_events([train, *registry_events(engine, {(mv.name, mv.version): mv.path})])
    engine.dispose()
    out = tmp_path / "out"
    code, stdout, err = run_main(
        "govern", "erase", "--subject", SUBJECT, "--data", str(data), "--lineage", "--db", db,
        "--key", str(tmp_path / "dpo.pem"), "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert "model digits: retire (retired)" in stdout
    with Registry.open(db) as reg:
        assert reg.get("digits", mv.version).status == "retired"
    record = verify_certificate(out / "certificate.json", key.public_key())
    names = {d["name"] for d in record["derived"]}
    assert "digits:1" in names and str(model_file.absolute()) in names
    (action,) = record["models"]
    assert action == {"model": "digits", "version": 1, "action": "retire", "status": "retired"}


def test_a_model_without_sisa_is_retrained_by_its_owner_function_and_a_second_request_finds_nothing(
    setup: tuple[Path, Path, Ed25519PrivateKey], tmp_path: Path
) -> None:
    data, _, key = setup
    seen: list[int] = []

    def retrain(rows: pd.DataFrame) -> dict[str, int]:
        assert SUBJECT not in set(rows["subject"])
        with threadpool_limits(1):  # BLAS threads only spin against each other on a busy machine
            model = LogisticRegression(max_iter=50).fit(rows[FEATURES].to_numpy(), rows["label"].to_numpy())
        seen.append(len(rows))
        return {"rows": len(rows), "classes": len(model.classes_)}

    request = ErasureRequest(SUBJECT, [data], [ModelTarget("digits-lr", "retrain", retrain=retrain)])
    first = erase(request, signing_key=key, out=tmp_path / "one")
    assert first.record["models"][0]["retrain"] == {"rows": 890, "classes": 10} and seen == [890]
    again = erase(request, signing_key=key, out=tmp_path / "two")
    assert again.record["records_removed"] == 0 and again.record["datasets"][0]["rows_removed"] == 0
    assert again.record["datasets"][0]["old_digest"] == again.record["datasets"][0]["new_digest"]
    assert again.record["subject"] == first.record["subject"]  # one key, one pseudonym: requests can be matched
