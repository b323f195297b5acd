"""Tokenization and PII detection: `python bench/tokenize_pii.py [--values 20000] [--sentences 3000] [--markdown]`.

Side by side in one process:

- tokenization throughput (values/s) of HMAC, AES-SIV and FF1 (modelshield), and the FPE peers that install
  from PyPI: ``pyffx`` (an HMAC-SHA1 Feistel, "FFX", not NIST FF1) and ``ff3`` (NIST FF3-1); each peer is first
  run on NIST's FF1 samples 1-9 to say whether it is FF1 at all;
- PII detection on a Faker-labelled corpus (``modelshield.privacy.pii.corpus``): sentences/s and span-level
  precision/recall per entity, for the built-in recognisers and Presidio's pattern recognisers (no spaCy model).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import random
import secrets
import string
import time
from collections.abc import Callable, Sequence

from modelshield.privacy.pii import find_pii
from modelshield.privacy.pii.corpus import Sample, labelled_corpus, score
from modelshield.privacy.tokenize import FF1, Tokenizer

KEY = "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94"
A36 = string.digits + string.ascii_lowercase
NIST = [
    (32, "", 10, "0123456789", "2433477484"),
    (32, "39383736353433323130", 10, "0123456789", "6124200773"),
    (32, "3737373770717273373737", 36, "0123456789abcdefghi", "a9tv40mll9kdu509eum"),
    (48, "", 10, "0123456789", "2830668132"),
    (48, "39383736353433323130", 10, "0123456789", "2496655549"),
    (48, "3737373770717273373737", 36, "0123456789abcdefghi", "xbj3kv35jrawxv32ysr"),
    (64, "", 10, "0123456789", "6657667009"),
    (64, "39383736353433323130", 10, "0123456789", "1001623463"),
    (64, "3737373770717273373737", 36, "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"),
]


def _rate(fn: Callable[[str], str], values: Sequence[str]) -> float:
    t = time.perf_counter()
    for v in values:
        fn(v)
    return len(values) / (time.perf_counter() - t)


def _nist_ours() -> int:
    ok = 0
    for hex_len, tweak, radix, pt, ct in NIST:
        out = FF1(bytes.fromhex(KEY[:hex_len]), radix).encrypt([A36.index(c) for c in pt], bytes.fromhex(tweak))
        ok += "".join(A36[x] for x in out) == ct
    return ok


def _nist_pyffx() -> int:
    import pyffx

    ok = 0
    for hex_len, _tweak, radix, pt, ct in NIST:  # pyffx has no tweak: it cannot even take the input
        codec = pyffx.String(bytes.fromhex(KEY[:hex_len]), alphabet=A36[:radix], length=len(pt))
        ok += codec.encrypt(pt) == ct
    return ok


def tokenization_rows(n: int) -> list[tuple[str, str, float, str]]:
    rng = random.Random(0)
    cards = ["".join(rng.choice(string.digits) for _ in range(16)) for _ in range(n)]
    emails = [f"user{rng.randrange(10**6)}@example.com" for _ in range(n)]
    key = secrets.token_bytes(64)
    rows: list[tuple[str, str, float, str]] = []
    for method in ("hmac", "siv"):
        tok = Tokenizer(key, method)
        rows.append((f"modelshield {method}", "e-mail", _rate(tok.tokenize, emails), "n/a"))
    ff1 = Tokenizer(key, "ff1")
    rows.append(("modelshield FF1 (radix 10)", "16-digit card", _rate(ff1.tokenize, cards), f"{_nist_ours()}/9"))
    if importlib.util.find_spec("pyffx"):
        import pyffx

        codec = pyffx.Integer(secrets.token_bytes(32), length=16)
        rows.append(
            (
                "pyffx 0.3 (FFX, HMAC-SHA1)",
                "16-digit card",
                _rate(lambda v: str(codec.encrypt(int(v))), cards),
                f"{_nist_pyffx()}/9",
            )
        )
    if importlib.util.find_spec("ff3"):
        from ff3 import FF3Cipher

        ff3 = FF3Cipher(secrets.token_hex(32), secrets.token_hex(7))
        rows.append(("ff3 1.0 (NIST FF3-1)", "16-digit card", _rate(ff3.encrypt, cards), "n/a (FF3-1, not FF1)"))
    return rows


def detection_rows(
    samples: list[Sample],
) -> tuple[list[tuple[str, float, float]], dict[str, dict[str, tuple[float, float]]]]:
    engines: dict[str, Callable[[str], Sequence[object]]] = {"modelshield (built-in)": find_pii}
    if importlib.util.find_spec("presidio_analyzer"):
        from modelshield.privacy.pii.presidio import presidio_findings

        presidio_findings("warm up 4111 1111 1111 1111")
        engines["Presidio 2.2 patterns"] = presidio_findings
    speed, quality = [], {}
    mb = sum(len(s.text.encode()) for s in samples) / 1e6
    for name, detect in engines.items():
        t = time.perf_counter()
        for s in samples:
            detect(s.text)
        dt = time.perf_counter() - t
        speed.append((name, len(samples) / dt, mb / dt))
        sc = score(samples, detect)  # type: ignore[arg-type]
        quality[name] = {
            e: (sc.precision(e), sc.recall(e))
            for e in ("CREDIT_CARD", "IBAN", "EMAIL", "NATIONAL_ID", "PHONE", "PERSON")
        }
    return speed, quality


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{100 * x:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=20000)
    parser.add_argument("--sentences", type=int, default=3000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared, loaded)\n")
    print(f"Tokenization, {args.values} values each, one process:\n")
    print("| implementation | values | values/s | NIST FF1 samples 1-9 |")
    print("|---|---|---:|---|")
    for name, kind, rate, nist in tokenization_rows(args.values):
        print(f"| {name} | {kind} | {rate:,.0f} | {nist} |")
    samples = labelled_corpus(args.sentences, seed=1)
    speed, quality = detection_rows(samples)
    print(f"\nPII detection, {len(samples)} generated sentences:\n")
    print("| engine | sentences/s | MB/s |")
    print("|---|---:|---:|")
    for name, rate, mbs in speed:
        print(f"| {name} | {rate:,.0f} | {mbs:.2f} |")
    names = list(quality)
    print("\n| entity | " + " | ".join(f"{n} P / R" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for entity in ("CREDIT_CARD", "IBAN", "EMAIL", "NATIONAL_ID", "PHONE", "PERSON"):
        cells = [f"{_pct(quality[n][entity][0])} / {_pct(quality[n][entity][1])}" for n in names]
        print(f"| {entity} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
