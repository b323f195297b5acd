"""Pseudonymisation that keeps joins: deterministic tokens (HMAC, AES-SIV, FF1), a key vault, rotation and
audited reveal. See docs/pseudonymization.md."""

from modelshield.privacy.tokenize.ff1 import FF1
from modelshield.privacy.tokenize.table import RevealEvent, TableSummary, reveal_csv, rotate_csv, tokenize_csv
from modelshield.privacy.tokenize.tokens import Method, Tokenizer
from modelshield.privacy.tokenize.vault import KeyInfo, Vault

__all__ = [
    "FF1",
    "KeyInfo",
    "Method",
    "RevealEvent",
    "TableSummary",
    "Tokenizer",
    "Vault",
    "reveal_csv",
    "rotate_csv",
    "tokenize_csv",
]
