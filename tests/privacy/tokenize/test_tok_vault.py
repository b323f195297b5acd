"""The vault: keys wrapped by a KEK at rest, versions and retirement, wrong KEK or moved keys fail to open."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from modelshield.core.errors import InputError, IntegrityError
from modelshield.privacy.tokenize import Vault


def test_keys_are_versioned_retired_and_never_stored_in_the_clear(tmp_path: Path) -> None:
    kek = secrets.token_bytes(32)
    v = Vault.create(tmp_path / "v.json", "kek-1", kek)
    first = v.add_key()
    second = v.add_key("q3-2026")
    assert [(k.key_id, k.version, k.default, k.retired is None) for k in v.keys()] == [
        ("tok-1", 1, False, False),
        ("q3-2026", 2, True, True),
    ]
    m1, m2 = v.material(first), v.material(second)
    assert len(m1) == 64 and m1 != m2
    raw = (tmp_path / "v.json").read_bytes()
    assert m1.hex().encode() not in raw and m1 not in raw
    assert (tmp_path / "v.json").stat().st_mode & 0o077 == 0
    again = Vault.open(tmp_path / "v.json", {"kek-1": kek}.__getitem__)
    assert again.material(first) == m1 and again.default_id == second
    with pytest.raises(InputError, match="never reused"):
        again.add_key("tok-1")
    with pytest.raises(InputError, match="exists"):
        Vault.create(tmp_path / "v.json", "kek-1", kek)


def test_a_wrong_kek_or_a_wrapped_key_moved_under_another_id_fails(tmp_path: Path) -> None:
    kek = secrets.token_bytes(32)
    v = Vault.create(tmp_path / "v.json", "kek-1", kek)
    v.add_key()
    v.add_key()
    with pytest.raises(IntegrityError, match="does not unwrap"):
        Vault.open(tmp_path / "v.json", lambda _id: secrets.token_bytes(32)).material("tok-1")
    doc = json.loads((tmp_path / "v.json").read_text())
    doc["keys"]["tok-2"]["wrapped"], doc["keys"]["tok-2"]["nonce"] = (
        doc["keys"]["tok-1"]["wrapped"],
        doc["keys"]["tok-1"]["nonce"],
    )
    (tmp_path / "v.json").write_text(json.dumps(doc))
    with pytest.raises(IntegrityError):
        Vault.open(tmp_path / "v.json", lambda _id: kek).material("tok-2")
