"""Model-extraction signal: per-caller sliding windows that score how much the traffic looks like stealing.

Three signals over a caller's recent queries, each turned into a score in [0, 1]; the highest wins:

1. **Near-duplicates** — the share of queries that lie very close to an earlier one. Jacobian-based
   dataset augmentation (Papernot et al. 2017) and perturbation probing send bursts of small
   variations of a few seeds; natural traffic rarely repeats itself that closely.
2. **Boundary probing** — the share of queries the model answers with a small top-1 margin
   (p₁ − p₂). Decision-boundary searches (line searches between classes, HopSkipJump-style walks)
   live where the model hesitates; natural inputs mostly do not.
3. **PRADA** (Juuti et al., "PRADA: Protecting against DNN Model Stealing Attacks", EuroS&P 2019,
   arXiv:1805.02628) — the distribution of each query's minimum distance to the caller's earlier
   queries of the same predicted class. For natural inputs it is close to normal; synthetic queries
   skew it, and the Shapiro–Wilk statistic W drops below δ.

Inputs are compressed with a fixed Gaussian random projection (Johnson–Lindenstrauss: L2 distances
are kept within a small factor), so a window of 256 queries costs a few KB per caller and a
nearest-neighbour scan is one small matrix product.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from modelshield.core.errors import InputError


@dataclass(frozen=True)
class ExtractionSignal:
    """A caller's current extraction score, whether it is flagged, and the evidence behind it."""

    score: float
    flagged: bool
    queries: int
    near_duplicate_share: float
    low_margin_share: float
    prada_w: float | None

    def audit_fields(self) -> dict[str, float | bool | int | None]:
        """The signal as fields of a security event."""
        return {
            "extraction_score": round(self.score, 4),
            "extraction_flagged": self.flagged,
            "queries": self.queries,
            "near_duplicate_share": round(self.near_duplicate_share, 4),
            "low_margin_share": round(self.low_margin_share, 4),
            "prada_w": None if self.prada_w is None else round(self.prada_w, 4),
        }


class _Window:
    """A caller's last ``size`` queries in fixed ring buffers (no per-query allocation)."""

    def __init__(self, size: int, dim: int) -> None:
        self.sketches = np.zeros((size, dim))
        self.times = np.full(size, -np.inf)
        self.classes = np.full(size, -1, dtype=np.int64)
        self.min_dist = np.full(size, np.nan)
        self.duplicate = np.zeros(size, dtype=bool)
        self.low_margin = np.zeros(size, dtype=bool)
        self.next = 0
        self.since_prada = 0
        self.prada_w: float | None = None

    def live(self, now: float, max_age: float) -> np.ndarray:
        """Mask of the slots holding queries younger than ``max_age``."""
        return self.times >= now - max_age


def _excess(share: float, baseline: float) -> float:
    """How far a share sits above what normal traffic shows, scaled to [0, 1]."""
    return float(np.clip((share - baseline) / (1.0 - baseline), 0.0, 1.0))


class ExtractionMonitor:
    """Score each caller's recent queries for extraction behaviour; thread-safe."""

    def __init__(
        self,
        *,
        window: int = 256,
        window_seconds: float = 3600.0,
        sketch_dim: int = 32,
        duplicate_distance: float = 0.15,
        margin: float = 0.2,
        baseline_duplicates: float = 0.1,
        baseline_low_margin: float = 0.15,
        prada_delta: float = 0.85,
        prada_every: int = 8,
        min_queries: int = 30,
        threshold: float = 0.5,
        max_subjects: int = 10_000,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window < min_queries or min_queries < 3:
            raise InputError("the window must hold at least min_queries (>= 3) queries")
        self.window = window
        self.window_seconds = window_seconds
        self.sketch_dim = sketch_dim
        self.duplicate_distance = duplicate_distance
        self.margin = margin
        self.baseline_duplicates = baseline_duplicates
        self.baseline_low_margin = baseline_low_margin
        self.prada_delta = prada_delta
        self.prada_every = prada_every
        self.min_queries = min_queries
        self.threshold = threshold
        self.max_subjects = max_subjects
        self._seed = seed
        self._clock = clock
        self._projection: np.ndarray | None = None
        self._lock = threading.Lock()
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def _sketch(self, x: np.ndarray) -> np.ndarray:
        """Project flattened inputs to ``sketch_dim`` dimensions, scaled so L2 distances are preserved."""
        flat = x.reshape(len(x), -1).astype(np.float64)
        if self._projection is None or self._projection.shape[0] != flat.shape[1]:
            rng = np.random.default_rng(self._seed)
            self._projection = rng.standard_normal((flat.shape[1], self.sketch_dim)) / np.sqrt(self.sketch_dim)
        return flat @ self._projection

    def observe(self, subject: str, x: np.ndarray, probs: np.ndarray) -> float:
        """Record a batch of queries (inputs and the model's probabilities) and return the caller's score."""
        x = np.asarray(x)
        probs = np.asarray(probs, dtype=np.float64)
        if x.ndim == 0 or probs.ndim != 2 or len(x) != len(probs) or probs.shape[1] < 2:
            raise InputError("observe needs a batch of inputs and an (n, classes) probability array of the same length")
        sketches = self._sketch(x)
        top2 = np.sort(probs, axis=1)[:, -2:]
        margins = top2[:, 1] - top2[:, 0]
        classes = probs.argmax(axis=1)
        with self._lock:
            win = self._windows.pop(subject, None) or _Window(self.window, self.sketch_dim)
            self._windows[subject] = win
            while len(self._windows) > self.max_subjects:
                self._windows.popitem(last=False)
            now = self._clock()
            for sketch, margin, cls in zip(sketches, margins, classes, strict=True):
                self._add(win, sketch, float(margin), int(cls), now)
            return self._signal(win, now).score

    def _add(self, win: _Window, sketch: np.ndarray, margin: float, cls: int, now: float) -> None:
        live = win.live(now, self.window_seconds)
        norm = float(np.linalg.norm(sketch)) or 1.0
        nearest = min_same = float("nan")
        if live.any():
            dists = np.where(live, np.linalg.norm(win.sketches - sketch, axis=1), np.inf)
            nearest = float(dists.min())
            same = dists[live & (win.classes == cls)]
            min_same = float(same.min()) if len(same) else float("nan")
        i = win.next
        win.next = (i + 1) % self.window
        win.sketches[i], win.times[i], win.classes[i] = sketch, now, cls
        win.min_dist[i] = min_same
        win.duplicate[i] = nearest <= self.duplicate_distance * norm
        win.low_margin[i] = margin < self.margin
        win.since_prada += 1

    def _signal(self, win: _Window, now: float) -> ExtractionSignal:
        live = win.live(now, self.window_seconds)
        n = int(live.sum())
        duplicates = float(win.duplicate[live].mean()) if n else 0.0
        low_margin = float(win.low_margin[live].mean()) if n else 0.0
        if win.since_prada >= self.prada_every or win.prada_w is None:
            dists = win.min_dist[live & ~np.isnan(win.min_dist)]
            ok = len(dists) >= self.min_queries and np.ptp(dists) > 0
            win.prada_w = float(stats.shapiro(dists).statistic) if ok else None
            win.since_prada = 0
        w = win.prada_w
        prada = 0.0 if w is None else float(np.clip((self.prada_delta - w) / (self.prada_delta - 0.5), 0.0, 1.0))
        score = max(_excess(duplicates, self.baseline_duplicates), _excess(low_margin, self.baseline_low_margin), prada)
        if n < self.min_queries:
            score *= n / self.min_queries
        return ExtractionSignal(score, n >= self.min_queries and score >= self.threshold, n, duplicates, low_margin, w)

    def signal(self, subject: str) -> ExtractionSignal:
        """The caller's current signal (zero for a caller not seen in the window)."""
        with self._lock:
            win = self._windows.get(subject)
            return (
                self._signal(win, self._clock()) if win is not None else ExtractionSignal(0.0, False, 0, 0.0, 0.0, None)
            )

    def flagged(self, subject: str) -> bool:
        """True when the caller's score is at or above the threshold with enough queries seen."""
        return self.signal(subject).flagged
