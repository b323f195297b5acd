"""Sequential change detectors over many streams at once: each update takes one value per stream.

Both watch a stream of z-scores (mean 0 and variance 1 while nothing has changed) for a shift of its mean, up
or down, and after an alarm start again from zero on that stream.

* CUSUM (Page, "Continuous inspection schemes", Biometrika 1954, https://doi.org/10.1093/biomet/41.1-2.100):
  S⁺ ← max(0, S⁺ + z − k), S⁻ ← max(0, S⁻ − z − k), alarm when either exceeds h. ``k`` is half the shift it is
  tuned for (0.5: a one-σ shift); with h = 15 Siegmund's approximation puts the in-control average run length
  near 2·10⁷ values per side for Gaussian z, and a shift of d σ is found after about (h + 1.166)/(d − k) values.
  The last time S was 0 estimates when the change began.
* Page–Hinkley (Page 1954; Hinkley, Biometrika 1971, https://doi.org/10.1093/biomet/58.3.509; in the drift-
  detection form of Gama et al., ACM Computing Surveys 2014, https://doi.org/10.1145/2523813): the cumulative
  deviation from the running mean, m ← m + z − z̄ − δ, alarms when m − min(m) > λ (and the mirror image for a
  drop). It needs no reference mean — it compares the stream with its own past — so it still works when the
  reference statistics are stale, at the price of slower detection as the running mean follows the change.
"""

from __future__ import annotations

import numpy as np

from modelshield.core.errors import InputError


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise InputError(f"{name} must be positive, not {value}")


class Cusum:
    """Two-sided tabular CUSUM over ``streams`` parallel z-score streams."""

    name = "cusum"

    def __init__(self, streams: int, k: float = 0.5, h: float = 15.0) -> None:
        _positive("CUSUM h", h)
        if k < 0:
            raise InputError(f"CUSUM k must be ≥ 0, not {k}")
        self.k, self.h = k, h
        self.up = np.zeros(streams)
        self.down = np.zeros(streams)
        self.up_start = np.zeros(streams, dtype=np.int64)
        self.down_start = np.zeros(streams, dtype=np.int64)

    def update(self, z: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Fold in value ``t`` of every stream; returns (rose, fell) masks of streams that alarm now."""
        self.up = np.maximum(0.0, self.up + z - self.k)
        self.down = np.maximum(0.0, self.down - z - self.k)
        self.up_start[self.up == 0] = t + 1
        self.down_start[self.down == 0] = t + 1
        rose, fell = self.up > self.h, self.down > self.h
        return rose, fell

    def statistic(self, rose: bool, stream: int) -> float:
        return float(self.up[stream] if rose else self.down[stream])

    def change_start(self, rose: bool, stream: int) -> int:
        """The first value of the run that raised the alarm: an estimate of when the change began."""
        return int(self.up_start[stream] if rose else self.down_start[stream])

    def reset(self, streams: np.ndarray, t: int) -> None:
        self.up[streams] = 0.0
        self.down[streams] = 0.0
        self.up_start[streams] = t + 1
        self.down_start[streams] = t + 1


class PageHinkley:
    """Two-sided Page–Hinkley test over ``streams`` parallel streams, against each stream's running mean."""

    name = "page-hinkley"

    def __init__(self, streams: int, delta: float = 0.5, threshold: float = 15.0) -> None:
        _positive("Page-Hinkley threshold", threshold)
        if delta < 0:
            raise InputError(f"Page-Hinkley delta must be ≥ 0, not {delta}")
        self.delta, self.h = delta, threshold
        self.n = np.zeros(streams)
        self.mean = np.zeros(streams)
        self.m_up = np.zeros(streams)
        self.min_up = np.zeros(streams)
        self.m_down = np.zeros(streams)
        self.max_down = np.zeros(streams)
        self.up_start = np.zeros(streams, dtype=np.int64)
        self.down_start = np.zeros(streams, dtype=np.int64)

    def update(self, z: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        self.n += 1
        self.mean += (z - self.mean) / self.n
        self.m_up += z - self.mean - self.delta
        self.m_down += z - self.mean + self.delta
        new_min, new_max = self.m_up < self.min_up, self.m_down > self.max_down
        self.min_up = np.where(new_min, self.m_up, self.min_up)
        self.max_down = np.where(new_max, self.m_down, self.max_down)
        self.up_start[new_min] = t + 1
        self.down_start[new_max] = t + 1
        return self.m_up - self.min_up > self.h, self.max_down - self.m_down > self.h

    def statistic(self, rose: bool, stream: int) -> float:
        return float(self.m_up[stream] - self.min_up[stream] if rose else self.max_down[stream] - self.m_down[stream])

    def change_start(self, rose: bool, stream: int) -> int:
        return int(self.up_start[stream] if rose else self.down_start[stream])

    def reset(self, streams: np.ndarray, t: int) -> None:
        for arr in (self.n, self.mean, self.m_up, self.min_up, self.m_down, self.max_down):
            arr[streams] = 0.0
        self.up_start[streams] = t + 1
        self.down_start[streams] = t + 1


Detector = Cusum | PageHinkley

__all__ = ["Cusum", "Detector", "PageHinkley"]
