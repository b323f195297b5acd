"""The larger scanner corpus: benign files written by real libraries, malicious variants by published
technique, and helper A1's format-confusion vectors (``confusion_vectors``) when they are present.

``build(root)`` writes everything under ``root`` once and returns one ``Entry`` per file; the tests and
``bench/scan.py`` share it. Nothing is ever loaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from corpus.benign import write_benign
from corpus.malicious import write_malicious


@dataclass(frozen=True)
class Entry:
    """One corpus file; ``group`` is the library that wrote a benign file or the source of a technique."""

    name: str
    path: Path
    malicious: bool
    technique: str
    group: str


@dataclass(frozen=True)
class Corpus:
    entries: list[Entry]
    skipped: list[str]  # libraries not installed, whose benign files are missing

    @property
    def benign(self) -> list[Entry]:
        return [e for e in self.entries if not e.malicious]

    @property
    def malicious(self) -> list[Entry]:
        return [e for e in self.entries if e.malicious]


def build(root: Path) -> Corpus:
    """Write the corpus under ``root`` (``benign/``, ``malicious/``, ``confusion/``)."""
    files, skipped = write_benign(root / "benign")
    entries = [Entry(n, root / "benign" / n, False, "benign", library) for n, library in sorted(files.items())]
    variants = write_malicious(root / "malicious", root)
    entries += [Entry(n, root / "malicious" / n, True, v.technique, v.source) for n, v in sorted(variants.items())]
    if importlib.util.find_spec("confusion_vectors") is not None:
        from confusion_vectors import write_all

        for vector in write_all(root / "confusion"):
            entries.append(
                Entry(vector.name, vector.path, True, f"format confusion: fools {vector.fools}", "confusion")
            )
    return Corpus(entries, skipped)
