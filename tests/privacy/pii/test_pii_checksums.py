"""Check digits on identifiers Faker generates (not us): valid ones pass, one changed digit fails."""

from __future__ import annotations

import random

import pytest
from faker import Faker

from modelshield.privacy.pii import (
    de_tax_id_valid,
    es_dni_valid,
    iban_valid,
    luhn_valid,
    nl_bsn_valid,
    uk_nino_valid,
    us_ssn_valid,
)


def _fakers() -> dict[str, Faker]:
    out = {}
    for i, loc in enumerate(["en_US", "nl_NL", "es_ES", "de_DE", "en_GB", "fr_FR"]):
        f = Faker(loc)
        f.seed_instance(100 + i)
        out[loc] = f
    return out


def _bump(text: str, pos: int) -> str:
    """Change the digit at ``pos`` (of the digits) by one: every checksum here catches a single-digit error."""
    idx = [i for i, c in enumerate(text) if c.isdigit()][pos]
    return text[:idx] + str((int(text[idx]) + 1) % 10) + text[idx + 1 :]


def test_cards_and_ibans_from_faker_pass_and_single_digit_errors_fail() -> None:
    fakers = _fakers()
    for f in fakers.values():
        for card_type in ("visa16", "visa13", "mastercard", "amex", "discover", "jcb16", "diners") * 4:
            card, iban = f.credit_card_number(card_type=card_type), f.iban()
            assert luhn_valid(card) and iban_valid(iban)
            assert not luhn_valid(_bump(card, 3)) and not iban_valid(_bump(iban, 5))


def test_the_validators_agree_with_python_stdnum_on_random_strings() -> None:
    """python-stdnum (the field's reference implementation of these checks) as the oracle, on 3000 random
    strings each; the one documented difference: a German tax id whose repeated digit stands three in a
    row (BZSt rule since 2016) is refused here and accepted by stdnum."""
    from stdnum import luhn
    from stdnum.de import idnr
    from stdnum.es import dni, nie
    from stdnum.nl import bsn
    from stdnum.us import ssn

    rng = random.Random(18)

    def digits(n: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(n))

    letters = "TRWAGMYFPDXBNJZSQVHLCKE"
    for _ in range(3000):
        tin = digits(11)
        if not any(c * 3 in tin[:10] for c in "0123456789"):
            assert de_tax_id_valid(tin) == idnr.is_valid(tin), tin
        n9 = digits(9)
        assert nl_bsn_valid(n9) == bsn.is_valid(n9), n9
        d = digits(8) + rng.choice(letters)
        assert es_dni_valid(d) == dni.is_valid(d), d
        e = rng.choice("XYZ") + digits(7) + rng.choice(letters)
        assert es_dni_valid(e) == nie.is_valid(e), e
        s = f"{digits(3)}-{digits(2)}-{digits(4)}"
        assert us_ssn_valid(s) == ssn.is_valid(s), s
        c = digits(rng.choice((13, 15, 16, 19)))
        assert luhn_valid(c) == luhn.is_valid(c), c
    assert not de_tax_id_valid("15273099940") and idnr.is_valid("15273099940")


def test_national_ids_with_check_digits() -> None:
    fakers = _fakers()
    for _ in range(30):
        bsn = fakers["nl_NL"].ssn()
        assert nl_bsn_valid(bsn) and not nl_bsn_valid(_bump(bsn, 4))
        nif, nie = fakers["es_ES"].nif(), fakers["es_ES"].nie()
        assert es_dni_valid(nif) and es_dni_valid(nie) and not es_dni_valid(_bump(nif, 2))
        ssn = fakers["en_US"].ssn()
        assert us_ssn_valid(ssn)
    # python-stdnum's documented example, two more it accepts, and each with one digit changed
    for tin in ("36574261809", "86095742719", "47036892816"):
        assert de_tax_id_valid(tin) and not de_tax_id_valid(_bump(tin, 10)) and not de_tax_id_valid(_bump(tin, 4))
    assert not de_tax_id_valid("01234567890") and not de_tax_id_valid("11111111111")


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("000-12-3456", False),
        ("666-12-3456", False),
        ("912-12-3456", False),
        ("123-00-4567", False),
        ("123-45-0000", False),
    ],
)
def test_us_ssn_issuing_rules(value: str, valid: bool) -> None:
    assert us_ssn_valid(value) is valid


def test_uk_nino_prefix_and_suffix_rules() -> None:
    assert uk_nino_valid("AB 12 34 56 C") and uk_nino_valid("JG103759A")
    # Faker's en_GB ssn() is not HMRC-valid (prefixes such as ZZ, any suffix letter): refused
    gb = _fakers()["en_GB"]
    fake = [gb.ssn() for _ in range(50)]
    assert sum(uk_nino_valid(x) for x in fake) < len(fake)
    for bad in ("ZZ 12 34 56 A", "GB123456A", "DA123456A", "AO123456A", "AB123456E"):
        assert not uk_nino_valid(bad)
