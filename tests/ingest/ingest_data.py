"""Small tabular data with planted poison, written the way users hand it over (CSV from pandas, Parquet)."""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURES = [f"f{i}" for i in range(6)]
MIXING = np.random.default_rng(12345).normal(size=(3, 3)) * 0.5  # the same for every table: one distribution


def make_table(n: int, *, poison: float = 0.0, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Six correlated gaussian features, a colour, a label; poison rows get f2 pushed to 7-9 standard deviations.

    Returns the frame and the sorted positions of the poisoned records."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 3))
    x = np.hstack([base, base @ MIXING + rng.normal(scale=0.5, size=(n, 3))])
    frame = pd.DataFrame(np.round(x, 6), columns=FEATURES)
    frame["colour"] = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2])
    frame["y"] = (x[:, 0] + x[:, 1] > 0).astype(int)
    bad = np.sort(rng.choice(n, int(round(n * poison)), replace=False))
    frame.loc[bad, "f2"] = rng.uniform(7, 9, size=len(bad))
    return frame, bad
