"""``modelshield incident bundle --demo`` then ``incident verify``: 0 intact, 1 refused with the reason, 2 bad input."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import RunMain


def test_demo_bundle_verifies_and_an_edit_is_refused(run_main: RunMain, tmp_path: Path) -> None:
    out = tmp_path / "incident.tar"
    code, stdout, stderr = run_main("incident", "bundle", "--demo", "--out", str(out), "--from", "200", "--to", "330")
    assert code == 0, stderr
    assert "records 200..330 and 2 alerts proven against the signed checkpoint at seq 400" in stdout
    pub = tmp_path / "incident-demo" / "audit.pub"
    code, stdout, _ = run_main("incident", "verify", str(out), "--public-key", str(pub))
    assert code == 0 and stdout.startswith("verified: records 200..330 (131)")
    data = out.read_bytes()
    at = data.index(b'"seq":250')  # the extraction alert in the slice
    out.write_bytes(data[:at] + b'"seq":251' + data[at + 9 :])
    code, stdout, _ = run_main("incident", "verify", str(out), "--public-key", str(pub))
    assert code == 1 and stdout.startswith("REFUSED [members]: member audit/records.jsonl does not match")


def test_bad_input_exits_2(run_main: RunMain, tmp_path: Path) -> None:
    code, _, stderr = run_main("incident", "verify", str(tmp_path / "none.tar"), "--public-key", str(tmp_path / "k"))
    assert code == 2 and "does not exist" in stderr
    code, _, stderr = run_main("incident", "bundle", "--audit-db", f"sqlite:///{tmp_path}/x.db", "--out", "b.tar")
    assert code == 2 and "--key is required" in stderr


def test_records_after_the_latest_checkpoint_need_sign_checkpoint(run_main: RunMain, tmp_path: Path) -> None:
    from modelshield.audit import AuditLog, generate_keypair, load_private_key

    generate_keypair(tmp_path / "k", tmp_path / "k.pub")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog.open(url, signing_key=load_private_key(tmp_path / "k"), checkpoint_every=10) as log:
        for i in range(15):
            log.append({"action": "predict", "n": i})
    # closing signed a last checkpoint at 15; five more records come from a writer without the key
    with AuditLog.open(url) as log:
        for i in range(5):
            log.append({"action": "predict", "n": 15 + i})
    out = tmp_path / "b.tar"
    args = ["incident", "bundle", "--audit-db", url, "--key", str(tmp_path / "k"), "--from", "12", "--to", "20"]
    code, _, stderr = run_main(*args, "--out", str(out))
    assert code == 2 and "latest checkpoint covers 1..15" in stderr
    code, stdout, stderr = run_main(*args, "--out", str(out), "--sign-checkpoint")
    assert code == 0 and "records 12..20" in stdout and "checkpoint at seq 20, consistent with checkpoint 10" in stdout
    code, _, _ = run_main("incident", "verify", str(out), "--public-key", str(tmp_path / "k.pub"))
    assert code == 0
