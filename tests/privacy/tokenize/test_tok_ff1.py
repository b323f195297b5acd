"""FF1 (NIST SP 800-38G) against NIST's published samples 1-9, byte for byte, and the Rev. 1 domain floor."""

from __future__ import annotations

import random

import pytest

from modelshield.core.errors import InputError
from modelshield.privacy.tokenize import FF1

KEY = "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94"
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
TWEAK_10 = "39383736353433323130"
TWEAK_11 = "3737373770717273373737"

# FF1samples.pdf (NIST CSRC, Cryptographic Standards and Guidelines: examples with intermediate values)
NIST_SAMPLES = [
    (1, 32, "", 10, "0123456789", "2433477484"),
    (2, 32, TWEAK_10, 10, "0123456789", "6124200773"),
    (3, 32, TWEAK_11, 36, "0123456789abcdefghi", "a9tv40mll9kdu509eum"),
    (4, 48, "", 10, "0123456789", "2830668132"),
    (5, 48, TWEAK_10, 10, "0123456789", "2496655549"),
    (6, 48, TWEAK_11, 36, "0123456789abcdefghi", "xbj3kv35jrawxv32ysr"),
    (7, 64, "", 10, "0123456789", "6657667009"),
    (8, 64, TWEAK_10, 10, "0123456789", "1001623463"),
    (9, 64, TWEAK_11, 36, "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"),
]


def _num(text: str) -> list[int]:
    return [ALPHABET.index(c) for c in text]


def _text(numerals: list[int]) -> str:
    return "".join(ALPHABET[x] for x in numerals)


@pytest.mark.parametrize(("sample", "hex_len", "tweak", "radix", "plaintext", "ciphertext"), NIST_SAMPLES)
def test_nist_ff1_samples(sample: int, hex_len: int, tweak: str, radix: int, plaintext: str, ciphertext: str) -> None:
    ff1 = FF1(bytes.fromhex(KEY[:hex_len]), radix)
    out = ff1.encrypt(_num(plaintext), bytes.fromhex(tweak))
    assert _text(out) == ciphertext, f"sample {sample}"
    assert _text(ff1.decrypt(out, bytes.fromhex(tweak))) == plaintext


def test_round_trip_over_lengths_and_radixes_including_multi_block_rounds() -> None:
    rng = random.Random(7)
    for radix, n in [(10, 6), (10, 31), (10, 80), (36, 4), (36, 57), (62, 40), (2, 20), (65536, 2)]:
        ff1 = FF1(rng.randbytes(32), radix)
        x = [rng.randrange(radix) for _ in range(n)]
        tweak = rng.randbytes(rng.randrange(0, 20))
        y = ff1.encrypt(x, tweak)
        assert len(y) == n and all(0 <= v < radix for v in y)
        assert ff1.decrypt(y, tweak) == x
        assert ff1.encrypt(x, tweak + b"!") != y  # the tweak matters


def test_domains_below_one_million_are_refused() -> None:
    ff1 = FF1(bytes(16), 10)
    assert ff1.min_length() == 6
    with pytest.raises(InputError, match="10\\^6"):
        ff1.encrypt([1, 2, 3, 4, 5])
    assert FF1(bytes(16), 36).min_length() == 4
    with pytest.raises(InputError, match="AES key"):
        FF1(bytes(20), 10)
