"""``modelshield govern erase`` and ``verify-certificate`` as a user runs them: the demo's certificate verifies,
an edited one is refused with exit 1, bad input is exit 2."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from sklearn.linear_model import LogisticRegression

from modelshield.integrity.signing.keys import generate_key_pair

if TYPE_CHECKING:
    from conftest import RunMain


def test_demo_erasure_ends_with_a_certificate_that_verifies_and_refuses_edits(
    run_main: RunMain, tmp_path: Path
) -> None:
    out = tmp_path / "erase"
    code, stdout, err = run_main("govern", "erase", "--demo", "--epochs", "1", "--out", str(out))
    assert code == 0, err
    cert = out / "certificate.json"
    assert "shards [" in stdout and "of 5 retrained" in stdout and "membership AUC" in stdout
    code, stdout, err = run_main(
        "govern", "verify-certificate", str(cert), "--public-key", str(out / "erasure.pub.pem")
    )
    assert code == 0, err
    assert stdout.startswith("OK:")

    record = json.loads(base64.b64decode(json.loads(cert.read_text())["payload"]))
    subjects = set(pd.read_csv(out / "data/digits.csv")["subject"]) | {"subject-0"}
    assert not any(s.encode() in cert.read_bytes() for s in subjects)  # no raw subject id, erased or not
    (model,) = record["models"]
    assert len(model["shards_retrained"]) == 1 and model["sample_epochs"] < model["full_retrain_sample_epochs"]

    data = bytearray(cert.read_bytes())
    data[len(data) // 2] ^= 0x04
    edited = tmp_path / "edited.json"
    edited.write_bytes(bytes(data))
    code, _, err = run_main("govern", "verify-certificate", str(edited), "--public-key", str(out / "erasure.pub.pem"))
    assert code == 1 and "REFUSED" in err
    code, _, err = run_main("govern", "verify-certificate", str(tmp_path / "nope.json"), "--public-key", str(out / "erasure.pub.pem"))  # fmt: skip
    assert code == 2 and "does not exist" in err


def test_erase_a_subject_from_a_table_with_its_own_key(run_main: RunMain, tmp_path: Path) -> None:
    from modelshield.audit.keys import load_private_key
    from modelshield.cli._governance_erasure import demo_table
    from modelshield.govern.erasure import sisa_from_table
    from modelshield.govern.sisa import SklearnLearner

    key, pub = generate_key_pair("ed25519", tmp_path / "dpo.pem")
    frame = demo_table("train").iloc[:600]
    data = tmp_path / "rows.parquet"
    frame.to_parquet(data, index=False)
    features = [c for c in frame.columns if c.startswith("pixel")]
    sisa_from_table(
        tmp_path / "sisa",
        frame,
        SklearnLearner(LogisticRegression(max_iter=200)),
        signing_key=load_private_key(key),
        feature_columns=features,
        input_shape=(64,),
    )
    holdout = tmp_path / "holdout.csv"
    demo_table("test").iloc[:200].to_csv(holdout, index=False)
    who = str(frame["subject"].iloc[7])
    code, stdout, err = run_main(
        "govern", "erase", "--subject", who, "--data", str(data), "--sisa-dir", str(tmp_path / "sisa"),
        "--key", str(key), "--holdout", str(holdout), "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 0, err
    assert who not in set(pd.read_parquet(data)["subject"])
    assert "1 of 5 retrained" in stdout or "retrained" in stdout
    code, stdout, err = run_main("govern", "verify-certificate", str(tmp_path / "out/certificate.json"), "--public-key", str(pub), "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["models"][0]["membership"]["before"]["holdout"] == 200
    code, _, err = run_main("govern", "erase", "--subject", who, "--out", str(tmp_path / "o2"))
    assert code == 2 and "--data" in err
