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
