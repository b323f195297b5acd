"""Referential integrity: joins on tokenized columns equal joins on the values, before and after key rotation."""

from __future__ import annotations

import secrets
from pathlib import Path

import pandas as pd
import pytest
from faker import Faker

from modelshield.core.errors import InputError
from modelshield.privacy.tokenize import RevealEvent, Tokenizer, Vault, reveal_csv, rotate_csv, tokenize_csv


def _tables(tmp_path: Path) -> tuple[Path, Path]:
    """A customers table and an orders table (written by pandas) sharing e-mails and card numbers."""
    fake = Faker()
    fake.seed_instance(18)
    people = [(fake.unique.email(), fake.credit_card_number(card_type="visa16")) for _ in range(60)]
    customers = pd.DataFrame(
        {"email": [p[0] for p in people], "card": [p[1] for p in people], "name": [fake.name() for _ in people]}
    )
    picks = [people[fake.random_int(0, 59)] for _ in range(300)]
    orders = pd.DataFrame(
        {
            "order": range(300),
            "email": [p[0] for p in picks],
            "card": [p[1] for p in picks],
            "amount": [fake.random_int(1, 500) for _ in picks],
        }
    )
    customers.to_csv(tmp_path / "customers.csv", index=False)
    orders.to_csv(tmp_path / "orders.csv", index=False)
    return tmp_path / "customers.csv", tmp_path / "orders.csv"


def _tokenize(src: Path, dst: Path, material: bytes, method: str) -> None:
    """E-mails and cards; FF1 encrypts the e-mails' letters and digits (alnum) and the cards' digits."""
    if method != "ff1":
        tokenize_csv(src, dst, ["email", "card"], Tokenizer(material, method))
        return
    tokenize_csv(src, dst.with_suffix(".half"), ["email"], Tokenizer(material, method, alphabet="alnum"))
    tokenize_csv(dst.with_suffix(".half"), dst, ["card"], Tokenizer(material, method))


def _rotate(src: Path, dst: Path, old: bytes, new: bytes, method: str) -> None:
    if method != "ff1":
        rotate_csv(src, dst, ["email", "card"], Tokenizer(old, method), Tokenizer(new, method))
        return
    alnum = {"alphabet": "alnum"}
    rotate_csv(
        src, dst.with_suffix(".half"), ["email"], Tokenizer(old, method, **alnum), Tokenizer(new, method, **alnum)
    )
    rotate_csv(dst.with_suffix(".half"), dst, ["card"], Tokenizer(old, method), Tokenizer(new, method))


def _join(customers: Path, orders: Path) -> pd.DataFrame:
    c = pd.read_csv(customers, dtype=str)
    o = pd.read_csv(orders, dtype=str)
    return o.merge(c, on=["email", "card"])[["order", "name", "amount"]].sort_values("order").reset_index(drop=True)


@pytest.mark.parametrize("method", ["hmac", "siv", "ff1"])
def test_joins_are_the_same_before_and_after_tokenizing(tmp_path: Path, method: str) -> None:
    customers, orders = _tables(tmp_path)
    material = secrets.token_bytes(64)
    _tokenize(customers, tmp_path / "c.tok.csv", material, method)
    _tokenize(orders, tmp_path / "o.tok.csv", material, method)
    before, after = _join(customers, orders), _join(tmp_path / "c.tok.csv", tmp_path / "o.tok.csv")
    assert len(before) == 300
    pd.testing.assert_frame_equal(before, after)
    tokenized = pd.read_csv(tmp_path / "o.tok.csv", dtype=str)
    assert len(tokenized) == 300
    assert not set(tokenized["email"]) & set(pd.read_csv(orders, dtype=str)["email"])


@pytest.mark.parametrize("method", ["siv", "ff1"])
def test_rotation_changes_every_token_and_keeps_the_joins(tmp_path: Path, method: str) -> None:
    customers, orders = _tables(tmp_path)
    vault = Vault.create(tmp_path / "v.json", "kek-1", secrets.token_bytes(32))
    old_id, new_id = vault.add_key(), vault.add_key()
    old, new = vault.material(old_id), vault.material(new_id)
    for name, src in (("c", customers), ("o", orders)):
        _tokenize(src, tmp_path / f"{name}.old.csv", old, method)
        _rotate(tmp_path / f"{name}.old.csv", tmp_path / f"{name}.new.csv", old, new, method)
        _tokenize(src, tmp_path / f"{name}.fresh.csv", new, method)
        before = pd.read_csv(tmp_path / f"{name}.old.csv", dtype=str)
        after = pd.read_csv(tmp_path / f"{name}.new.csv", dtype=str)
        assert (before["email"] != after["email"]).all() and (before["card"] != after["card"]).all()
        # a value gets the same new token as a fresh tokenization under the new key gives
        pd.testing.assert_frame_equal(after, pd.read_csv(tmp_path / f"{name}.fresh.csv", dtype=str))
    pd.testing.assert_frame_equal(_join(customers, orders), _join(tmp_path / "c.new.csv", tmp_path / "o.new.csv"))


def test_hmac_tokens_cannot_be_rotated_and_bad_tables_are_refused(tmp_path: Path) -> None:
    customers, _ = _tables(tmp_path)
    h = Tokenizer(secrets.token_bytes(64), "hmac")
    with pytest.raises(InputError, match="one-way"):
        rotate_csv(customers, tmp_path / "x.csv", ["email"], h, h)
    with pytest.raises(InputError, match="no column 'mail'"):
        tokenize_csv(customers, tmp_path / "x.csv", ["mail"], h)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    with pytest.raises(InputError, match="ragged.csv:3"):
        tokenize_csv(ragged, tmp_path / "x.csv", ["a"], h)


def test_reveal_writes_nothing_when_the_audit_record_fails(tmp_path: Path) -> None:
    customers, _ = _tables(tmp_path)
    tok = Tokenizer(secrets.token_bytes(64), "siv")
    tokenize_csv(customers, tmp_path / "t.csv", ["email"], tok)
    seen: list[RevealEvent] = []

    def failing(event: RevealEvent) -> None:
        seen.append(event)
        raise AuditDown("audit log unreachable")

    with pytest.raises(AuditDown):
        reveal_csv(
            tmp_path / "t.csv", tmp_path / "p.csv", ["email"], tok, key_id="k", actor="bob", reason="x", record=failing
        )
    assert not (tmp_path / "p.csv").exists() and seen[0].rows == 60 and seen[0].reason == "x"
    with pytest.raises(InputError, match="reason"):
        reveal_csv(
            tmp_path / "t.csv",
            tmp_path / "p.csv",
            ["email"],
            tok,
            key_id="k",
            actor="bob",
            reason=" ",
            record=seen.append,
        )
    summary, event = reveal_csv(
        tmp_path / "t.csv",
        tmp_path / "p.csv",
        ["email"],
        tok,
        key_id="k",
        actor="bob",
        reason="audit",
        record=seen.append,
    )
    assert summary.values == 60 and event.to_event()["action"] == "privacy.detokenize"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "p.csv", dtype=str), pd.read_csv(customers, dtype=str))


class AuditDown(Exception):
    """Stands for the audit append failing."""
