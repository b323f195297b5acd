"""Tables with known structure for the synth tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

COLORS = ["red", "green", "blue", "grey"]


def dependent_table(rows: int = 4000, seed: int = 0) -> pd.DataFrame:
    """``colour`` and ``shade`` agree on 90 % of rows (a strongly dependent pair), ``size`` is independent
    of both, and ``weight`` is a normal number whose mean depends on ``size``."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(COLORS, rows, p=[0.4, 0.3, 0.2, 0.1])
    shade = np.where(rng.random(rows) < 0.9, colour, rng.choice(COLORS, rows))
    size = rng.choice(["S", "M", "L"], rows)
    weight = rng.normal(np.select([size == "S", size == "M"], [40.0, 60.0], 80.0), 5.0)
    return pd.DataFrame({"colour": colour, "shade": shade, "size": size, "weight": weight})


DOMAIN_YAML = """\
columns:
  colour: {type: categorical, values: [red, green, blue, grey]}
  shade: {type: categorical, values: [red, green, blue, grey]}
  size: {type: categorical, values: [S, M, L]}
  weight: {type: numeric, lower: 20, upper: 100, bins: 16}
"""
