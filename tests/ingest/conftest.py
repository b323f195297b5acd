"""Fixtures: a trusted reference and an incoming table with planted poison (helpers in ingest_data.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ingest_data import make_table  # noqa: E402


@pytest.fixture
def tables(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    """(reference.csv, incoming.csv with 3% poison, poisoned positions)."""
    reference, _ = make_table(2000, seed=1)
    incoming, bad = make_table(3000, poison=0.03, seed=2)
    ref, new = tmp_path / "reference.csv", tmp_path / "incoming.csv"
    reference.to_csv(ref, index=False)
    incoming.to_csv(new, index=False)
    return ref, new, bad
