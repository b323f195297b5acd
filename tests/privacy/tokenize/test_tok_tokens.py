"""Tokens: deterministic (joins survive), reversible where they should be, tamper-evident (SIV), format-keeping (FF1)."""

from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from modelshield.core.errors import InputError, IntegrityError
from modelshield.privacy.tokenize import Tokenizer
from modelshield.privacy.tokenize.tokens import _subkey, _unb64

KEY = bytes(range(64))


def test_siv_is_deterministic_reversible_and_is_rfc5297_aes_siv() -> None:
    tok = Tokenizer(KEY, "siv")
    a = tok.tokenize("ann@example.com")
    assert a == tok.tokenize("ann@example.com") != tok.tokenize("bob@example.com")
    assert tok.detokenize(a) == "ann@example.com"
    # the token is exactly AES-SIV (cryptography's, RFC 5297) of the value under the derived subkey
    assert AESSIV(_subkey(KEY, "siv", 64)).decrypt(_unb64(a), [b""]) == b"ann@example.com"
    assert Tokenizer(secrets.token_bytes(64), "siv").tokenize("ann@example.com") != a


def test_siv_tokens_that_were_altered_or_made_elsewhere_fail_to_reveal() -> None:
    tok = Tokenizer(KEY, "siv")
    token = tok.tokenize("4111111111111111")
    flipped = ("A" if token[5] != "A" else "B").join([token[:5], token[6:]])
    with pytest.raises(IntegrityError):
        tok.detokenize(flipped)
    with pytest.raises(IntegrityError):
        Tokenizer(KEY, "siv", context="billing").detokenize(token)


def test_context_separates_domains_for_every_method() -> None:
    for method in ("hmac", "siv", "ff1"):
        plain, other = Tokenizer(KEY, method), Tokenizer(KEY, method, context="crm")
        assert plain.tokenize("4111 1111 1111 1111") != other.tokenize("4111 1111 1111 1111")


def test_hmac_tokens_are_short_one_way_and_stable() -> None:
    tok = Tokenizer(KEY, "hmac")
    t = tok.tokenize("ann@example.com")
    assert len(t) == 22 and t == Tokenizer(KEY, "hmac").tokenize("ann@example.com")
    assert not tok.reversible
    with pytest.raises(InputError, match="one-way"):
        tok.detokenize(t)


def test_ff1_keeps_the_format_of_cards_and_alphanumerics() -> None:
    tok = Tokenizer(KEY, "ff1")
    card = "4111-1111-1111-1111"
    t = tok.tokenize(card)
    assert t != card and len(t) == len(card)
    assert [i for i, c in enumerate(t) if c == "-"] == [4, 9, 14] and t.replace("-", "").isdigit()
    assert tok.detokenize(t) == card
    alnum = Tokenizer(KEY, "ff1", alphabet="alnum")
    ref = "AB-12cd-99XY"
    t2 = alnum.tokenize(ref)
    assert t2[2] == "-" and t2[7] == "-" and t2.replace("-", "").isalnum() and alnum.detokenize(t2) == ref
    with pytest.raises(InputError, match="10\\^6"):
        tok.tokenize("12-34")  # 4 digits: below SP 800-38G Rev. 1's domain floor
