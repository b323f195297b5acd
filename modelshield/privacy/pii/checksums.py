"""Check digits and issuing rules of structured identifiers: a match that fails them is not reported.

A regex alone flags every 16-digit order id as a card and every 9-digit number as a Dutch BSN; the
check digit cuts false positives by the checksum's modulus (10 for Luhn, 97 for IBAN, 11 for BSN,
23 for the Spanish DNI letter).
"""

from __future__ import annotations

from collections import Counter

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_NIE_PREFIX = {"X": "0", "Y": "1", "Z": "2"}
_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def luhn_valid(text: str) -> bool:
    """Payment card check digit (ISO/IEC 7812); 13-19 digits."""
    digits = [int(c) for c in _digits(text)]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """IBAN check digits (ISO 13616, ISO 7064 mod 97 == 1)."""
    s = text.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s.isalnum():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def nl_bsn_valid(text: str) -> bool:
    """Dutch citizen service number (BSN): 9 digits passing the 11-proof (weights 9..2, -1)."""
    d = _digits(text)
    if len(d) != 9 or d == "000000000":
        return False
    total = sum(int(c) * w for c, w in zip(d, (9, 8, 7, 6, 5, 4, 3, 2, -1), strict=True))
    return total % 11 == 0


def de_tax_id_valid(text: str) -> bool:
    """German tax identification number (Steuer-IdNr): 11 digits, no leading zero, in the first ten one
    digit twice or three times (not three in a row) and the others at most once, ISO 7064 MOD 11,10 check."""
    d = _digits(text)
    if len(d) != 11 or d[0] == "0":
        return False
    counts = Counter(d[:10])
    repeated = [c for c, n in counts.items() if n > 1]
    if len(repeated) != 1 or counts[repeated[0]] > 3 or repeated[0] * 3 in d[:10]:
        return False
    product = 10
    for c in d[:10]:
        total = (int(c) + product) % 10 or 10
        product = (total * 2) % 11
    check = (11 - product) % 10
    return check == int(d[10])


def es_dni_valid(text: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): the letter is number mod 23."""
    s = text.replace("-", "").replace(" ", "").upper()
    if len(s) != 9 or not s[-1].isalpha():
        return False
    body = _NIE_PREFIX.get(s[0], s[0]) + s[1:8]
    return body.isdigit() and _DNI_LETTERS[int(body) % 23] == s[-1]


def us_ssn_valid(text: str) -> bool:
    """US social security number issuing rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    d = _digits(text)
    if len(d) != 9:
        return False
    area, group, serial = d[:3], d[3:5], d[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def uk_nino_valid(text: str) -> bool:
    """UK national insurance number: two prefix letters HMRC issues, six digits, suffix A-D."""
    s = text.replace(" ", "").upper()
    if len(s) != 9 or not s[2:8].isdigit() or s[8] not in "ABCD":
        return False
    first, second = s[0], s[1]
    return first not in "DFIQUV" and second not in "DFIOQUV" and s[:2] not in _NINO_BAD_PREFIXES
