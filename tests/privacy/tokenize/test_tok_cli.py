"""``modelshield tokenize`` end to end: keyring → vault → tokenize → rotate → audited reveal, and the refusals."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelshield.audit import AuditLog, schema

if TYPE_CHECKING:
    from conftest import RunMain


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_tokenize_rotate_and_an_audited_reveal(
    tmp_path: Path, run_main: RunMain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELSHIELD_KEYRING", str(tmp_path / "ring.json"))
    src = tmp_path / "people.csv"
    src.write_text(
        "id,email,card\n1,ann@example.com,4111 1111 1111 1111\n2,bob@example.org,5500-0000-0000-0004\n3,ann@example.com,\n"
    )
    vault, db = str(tmp_path / "vault.json"), f"sqlite:///{tmp_path / 'audit.db'}"
    assert run_main("crypto", "keygen", "--keyring", str(tmp_path / "ring.json"), "--id", "kek-1")[0] == 0
    code, out, _ = run_main("tokenize", "vault", "init", "--vault", vault)
    assert code == 0 and "tok-1" in out
    ff1 = ["--method", "ff1", "--vault", vault, "--out", str(tmp_path / "f.csv")]
    code, _, err = run_main("tokenize", str(src), "--columns", "email", *ff1)
    assert code == 2 and "column 'email'" in err  # FF1 over digits: an e-mail has none
    code, _, _ = run_main("tokenize", str(src), "--columns", "card", *ff1)
    f = _rows(tmp_path / "f.csv")
    assert code == 0 and len(f[0]["card"]) == 19 and f[0]["card"][4] == " " and f[1]["card"][4] == "-"
    code, out, _ = run_main(
        "tokenize", str(src), "--columns", "email,card", "--vault", vault, "--out", str(tmp_path / "t1.csv")
    )
    assert code == 0 and "5 values in 3 rows (siv, key tok-1)" in out
    t1 = _rows(tmp_path / "t1.csv")
    assert t1[0]["email"] == t1[2]["email"] != "ann@example.com" and t1[2]["card"] == ""

    assert run_main("tokenize", "vault", "add-key", "--vault", vault)[0] == 0
    code, out, _ = run_main(
        "tokenize",
        "rotate",
        str(tmp_path / "t1.csv"),
        "--columns",
        "email,card",
        "--vault",
        vault,
        "--from-key",
        "tok-1",
        "--out",
        str(tmp_path / "t2.csv"),
    )
    assert code == 0 and "tok-1 -> tok-2" in out
    t2 = _rows(tmp_path / "t2.csv")
    assert t2[0]["email"] == t2[2]["email"] and all(a["email"] != b["email"] for a, b in zip(t1, t2, strict=True))

    reveal = [
        "tokenize",
        "reveal",
        str(tmp_path / "t2.csv"),
        "--columns",
        "email,card",
        "--vault",
        vault,
        "--key-id",
        "tok-2",
        "--out",
        str(tmp_path / "plain.csv"),
        "--audit-db",
        db,
    ]
    code, _, err = run_main(*reveal)
    assert code == 2 and "--reason" in err and not (tmp_path / "plain.csv").exists()
    code, out, _ = run_main(*reveal, "--reason", "INC-1234 chargeback dispute", "--actor", "alice")
    assert code == 0 and "audited: alice" in out
    assert _rows(tmp_path / "plain.csv") == _rows(src)

    key = Ed25519PrivateKey.generate()
    with AuditLog.open(db, signing_key=key) as log:
        log.checkpoint()
        assert log.verify(key.public_key()).ok
        with log.engine.connect() as conn:
            events = list(conn.execute(sa.select(schema.records.c.event)).scalars())
    assert len(events) == 1
    text = events[0]
    assert '"action":"privacy.detokenize"' in text and '"actor":"alice"' in text and "INC-1234" in text
    assert "ann@example.com" not in text and t2[0]["email"] not in text


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, run_main: RunMain) -> None:
    code, _, err = run_main(
        "tokenize",
        str(tmp_path / "none.csv"),
        "--columns",
        "a",
        "--vault",
        str(tmp_path / "v.json"),
        "--out",
        str(tmp_path / "o.csv"),
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
