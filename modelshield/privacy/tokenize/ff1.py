"""FF1 format-preserving encryption (NIST SP 800-38G, Rev. 1), on AES from ``cryptography``.

Dworkin, "Recommendation for Block Cipher Modes of Operation: Methods for Format-Preserving Encryption",
NIST SP 800-38G (2016) and Rev. 1 (2019), https://doi.org/10.6028/NIST.SP.800-38Gr1. FF1 is a 10-round
Feistel network over numeral strings in base ``radix``; each round function is AES-CBC-MAC (the PRF of
Algorithm 6) over a fixed block P and a block Q carrying the tweak, the round number and one half.

Rev. 1 requires a domain of at least one million values (``radix ** len >= 10**6``): on smaller domains
the Feistel rounds leak too much (Durak and Vaudenay, CRYPTO 2017; Hoang, Tessaro and Trieu, CCS 2018),
so shorter inputs are refused here rather than encrypted weakly. Checked against NIST's FF1 samples 1-9
(tests/privacy/tokenize/test_tok_ff1.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from modelshield.core.errors import InputError

ROUNDS = 10
MIN_DOMAIN = 10**6  # SP 800-38G Rev. 1, section 5.2
MAX_RADIX = 1 << 16


class FF1:
    """FF1 over numerals ``0 .. radix-1`` with an AES key of 16, 24 or 32 bytes.

    ``encrypt(numerals, tweak)`` returns a list of the same length and radix; ``decrypt`` inverts it.
    Deterministic: the same key, tweak and input always give the same output (that is the point).
    """

    def __init__(self, key: bytes, radix: int) -> None:
        if len(key) not in (16, 24, 32):
            raise InputError(f"FF1 needs an AES key of 16, 24 or 32 bytes, got {len(key)}")
        if not 2 <= radix <= MAX_RADIX:
            raise InputError(f"FF1 radix must be in [2, {MAX_RADIX}], got {radix}")
        self.radix = radix
        self._aes = Cipher(algorithms.AES(key), modes.ECB())

    def min_length(self) -> int:
        """The shortest input whose domain (radix ** n) reaches Rev. 1's one million."""
        n = 1
        while self.radix**n < MIN_DOMAIN:
            n += 1
        return n

    def _check(self, numerals: Sequence[int]) -> None:
        n = len(numerals)
        if self.radix**n < MIN_DOMAIN:
            raise InputError(
                f"FF1 input of {n} numerals in radix {self.radix} is below the 10^6 domain of SP 800-38G Rev. 1 "
                f"(needs at least {self.min_length()})"
            )
        if any(not 0 <= x < self.radix for x in numerals):
            raise InputError(f"FF1 numerals must be in [0, {self.radix})")

    def _num(self, numerals: Sequence[int]) -> int:
        value = 0
        for x in numerals:
            value = value * self.radix + x
        return value

    def _str(self, value: int, m: int) -> list[int]:
        out = [0] * m
        for i in range(m - 1, -1, -1):
            value, out[i] = divmod(value, self.radix)
        return out

    def _round_keys(self, n: int, tweak: bytes) -> tuple[int, int, int, int, bytes, bytes]:
        """u, v, b, d, P and the fixed prefix of every round's Q (steps 1-5)."""
        u = n // 2
        v = n - u
        b = ((self.radix**v - 1).bit_length() + 7) // 8  # ceil(ceil(v * log2(radix)) / 8), exactly
        d = 4 * ((b + 3) // 4) + 4
        t = len(tweak)
        p = bytes([1, 2, 1]) + self.radix.to_bytes(3, "big") + bytes([10, u % 256]) + n.to_bytes(4, "big")
        p += t.to_bytes(4, "big")
        q_prefix = tweak + bytes((-t - b - 1) % 16)
        return u, v, b, d, p, q_prefix

    @staticmethod
    def _round(ecb: CipherContext, chain: bytes, q_prefix: bytes, i: int, half: int, b: int, d: int) -> int:
        """y = NUM(S) for round i. R = PRF(P || Q) is AES-CBC-MAC; ``chain`` = CIPH(P) is the same in every round,
        so only Q's blocks are chained here. S is the first d bytes of R || CIPH(R ^ [1]) || CIPH(R ^ [2]) ..."""
        q = q_prefix + bytes([i]) + half.to_bytes(b, "big")
        r = int.from_bytes(chain, "big")
        for k in range(0, len(q), 16):
            r = int.from_bytes(ecb.update((r ^ int.from_bytes(q[k : k + 16], "big")).to_bytes(16, "big")), "big")
        s = r.to_bytes(16, "big")
        if d > 16:
            s += ecb.update(b"".join((r ^ j).to_bytes(16, "big") for j in range(1, (d + 15) // 16)))
        return int.from_bytes(s[:d], "big")

    def encrypt(self, numerals: Sequence[int], tweak: bytes = b"") -> list[int]:
        """Algorithm 7 of SP 800-38G."""
        self._check(numerals)
        n = len(numerals)
        u, v, b, d, p, q_prefix = self._round_keys(n, tweak)
        a, bb = self._num(numerals[:u]), self._num(numerals[u:])
        mod_u, mod_v = self.radix**u, self.radix**v
        ecb = (
            self._aes.encryptor()
        )  # one context per call: contexts are not thread-safe, creating one per round is slow
        chain = ecb.update(p)
        for i in range(ROUNDS):
            y = self._round(ecb, chain, q_prefix, i, bb, b, d)
            c = (a + y) % (mod_u if i % 2 == 0 else mod_v)
            a, bb = bb, c
        return self._str(a, u) + self._str(bb, v)

    def decrypt(self, numerals: Sequence[int], tweak: bytes = b"") -> list[int]:
        """Algorithm 8 of SP 800-38G."""
        self._check(numerals)
        n = len(numerals)
        u, v, b, d, p, q_prefix = self._round_keys(n, tweak)
        a, bb = self._num(numerals[:u]), self._num(numerals[u:])
        mod_u, mod_v = self.radix**u, self.radix**v
        ecb = self._aes.encryptor()
        chain = ecb.update(p)
        for i in range(ROUNDS - 1, -1, -1):
            y = self._round(ecb, chain, q_prefix, i, a, b, d)
            c = (bb - y) % (mod_u if i % 2 == 0 else mod_v)
            bb, a = a, c
        return self._str(a, u) + self._str(bb, v)
