"""Model-extraction signal: sliding windows per caller — and per tenant and client address, so a campaign split
over several keys is seen whole — that score how much the traffic looks like stealing.

Four signals over a window's recent queries, each turned into a score in [0, 1]; the highest wins:

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
4. **Off-distribution share** — Knockoff Nets (Orekondy et al., CVPR 2019, arXiv:1812.02766) asks natural
   images from *another* distribution: each query looks normal and none repeats, so 1–3 stay quiet, but none
   lies near the data the model serves. Given a reference sample of honest inputs for a model
   (``rate_limits.extraction_reference``, else the model's ``monitor.reference_data``), a query is
   off-distribution when its distance to the nearest reference input exceeds the ``reference_quantile``
   (0.99) of the reference's own leave-one-out nearest-neighbour distances: honest traffic shows about 1 %
   whatever the data's scale, a surrogate data set close to 100 %. The score rises from a share of 10 % and
   is full at 60 %, so an attacker who hides each query among one honest one is still caught. It is PRADA's
   minimum distance, measured against the training distribution instead of the caller's own history.

Scopes: every query is counted in its caller's window (``identity``) and, per ``group_by``, in its tenant's
(``tenant``: the keys one customer holds) and its client address's (``address``: many keys from one host).
A group's signal is computed on the pooled queries, so a JBDA campaign split round-robin over five keys
shows its near-duplicates and skewed PRADA distances again; its event lists each member key's own score.
Address grouping is off by default: behind a proxy or NAT every caller shares an address.

Inputs are compressed with a fixed Gaussian random projection (Johnson–Lindenstrauss: L2 distances
are kept within a small factor), so a window of 256 queries costs a few KB per caller and a
nearest-neighbour scan is one small matrix product.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.serve.config import ServeConfig

SCOPES = ("identity", "tenant", "address")


@dataclass(frozen=True)
class ExtractionSignal:
    """A window's current extraction score, whether it is flagged, and the evidence behind it.

    ``scope`` and ``key`` name the window (``identity`` and a subject, ``tenant`` and a tenant, ``address``
    and a client address); ``members`` holds each member key's own score for a group's window.
    """

    score: float
    flagged: bool
    queries: int
    near_duplicate_share: float
    low_margin_share: float
    prada_w: float | None
    off_distribution_share: float = 0.0
    scope: str = "identity"
    key: str = ""
    members: tuple[tuple[str, float], ...] = ()

    @property
    def reason(self) -> str:
        """One line for the audit event."""
        if self.scope == "identity":
            return "queries look like model extraction"
        return f"the queries of {len(self.members)} keys from one {self.scope}, together, look like model extraction"

    def audit_fields(self) -> dict[str, Any]:
        """The signal as fields of a security event."""
        fields: dict[str, Any] = {
            "scope": self.scope,
            "key": self.key,
            "extraction_score": round(self.score, 4),
            "extraction_flagged": self.flagged,
            "queries": self.queries,
            "near_duplicate_share": round(self.near_duplicate_share, 4),
            "low_margin_share": round(self.low_margin_share, 4),
            "off_distribution_share": round(self.off_distribution_share, 4),
            "prada_w": None if self.prada_w is None else round(self.prada_w, 4),
        }
        if self.scope != "identity":
            fields["members"] = {subject: round(score, 4) for subject, score in self.members}
        return fields


@dataclass(frozen=True)
class _Reference:
    """A model's honest inputs, sketched, and the distance beyond which a query counts as off-distribution."""

    sketches: np.ndarray
    radius: float


class _Window:
    """A window's last ``size`` queries in fixed ring buffers (no per-query allocation)."""

    def __init__(self, size: int, dim: int) -> None:
        self.sketches = np.zeros((size, dim))
        self.times = np.full(size, -np.inf)
        self.classes = np.full(size, -1, dtype=np.int64)
        self.min_dist = np.full(size, np.nan)
        self.duplicate = np.zeros(size, dtype=bool)
        self.low_margin = np.zeros(size, dtype=bool)
        self.off = np.zeros(size, dtype=bool)
        self.next = 0
        self.since_prada = 0
        self.prada_w: float | None = None
        self.members: OrderedDict[str, None] = OrderedDict()  # the subjects seen, for a group's window

    def live(self, now: float, max_age: float) -> np.ndarray:
        """Mask of the slots holding queries younger than ``max_age``."""
        return self.times >= now - max_age


def _excess(share: float, baseline: float, full: float = 1.0) -> float:
    """How far a share sits above what normal traffic shows, scaled to [0, 1] (1 from the share ``full`` on)."""
    return float(np.clip((share - baseline) / (full - baseline), 0.0, 1.0))


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L2 distances between the rows of ``a`` and ``b`` as one matrix product."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


class ExtractionMonitor:
    """Score recent queries — per caller, tenant and client address — for extraction behaviour; thread-safe."""

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
        reference_quantile: float = 0.99,
        reference_samples: int = 1000,
        baseline_off_distribution: float = 0.1,
        full_off_distribution: float = 0.6,
        group_by: Sequence[str] = ("tenant",),
        max_members: int = 64,
        min_queries: int = 30,
        threshold: float = 0.5,
        max_subjects: int = 10_000,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window < min_queries or min_queries < 3:
            raise InputError("the window must hold at least min_queries (>= 3) queries")
        if not 0.5 <= reference_quantile < 1.0:
            raise InputError(f"reference_quantile must be in [0.5, 1) (got {reference_quantile})")
        if not 0.0 <= baseline_off_distribution < full_off_distribution <= 1.0:
            raise InputError("off-distribution shares need 0 <= baseline < full <= 1")
        unknown = sorted(set(group_by) - set(SCOPES[1:]))
        if unknown:
            raise InputError(f"extraction signals group by 'tenant' and/or 'address', not {unknown}")
        self.window = window
        self.window_seconds = window_seconds
        self.sketch_dim = sketch_dim
        self.duplicate_distance = duplicate_distance
        self.margin = margin
        self.baseline_duplicates = baseline_duplicates
        self.baseline_low_margin = baseline_low_margin
        self.prada_delta = prada_delta
        self.prada_every = prada_every
        self.reference_quantile = reference_quantile
        self.reference_samples = reference_samples
        self.baseline_off_distribution = baseline_off_distribution
        self.full_off_distribution = full_off_distribution
        self.group_by = tuple(group_by)
        self.max_members = max_members
        self.min_queries = min_queries
        self.threshold = threshold
        self.max_subjects = max_subjects
        self._seed = seed
        self._clock = clock
        self._projections: dict[int, np.ndarray] = {}
        self._references: dict[str, _Reference] = {}
        self._lock = threading.Lock()
        self._windows: OrderedDict[tuple[str, str], _Window] = OrderedDict()
        self._flagged: set[tuple[str, str]] = set()

    @classmethod
    def from_config(cls, config: ServeConfig) -> ExtractionMonitor:
        """The gateway's monitor: grouping from ``rate_limits``, and each model's reference inputs from
        ``rate_limits.extraction_reference`` or its ``monitor.reference_data`` (loaded here, at start-up)."""
        from modelshield.core.datasets import load_dataset

        rl = config.rate_limits
        monitor = cls(group_by=rl.extraction_group_by)
        monitors = config.monitors()
        for name, route in config.models.items():
            spec = rl.extraction_reference.get(name) or getattr(monitors.get(name), "reference_data", None)
            if spec is None:
                continue
            shape = tuple(route.input_shape) if route.input_shape is not None else None
            try:
                data = load_dataset(spec, input_shape=shape)
            except (OSError, ValueError) as exc:
                raise InputError(f"model {name}: extraction reference {spec!r}: {exc}") from exc
            monitor.set_reference(name, data.x.numpy())
        return monitor

    def _sketch(self, x: np.ndarray) -> np.ndarray:
        """Project flattened inputs to ``sketch_dim`` dimensions, scaled so L2 distances are preserved."""
        flat = x.reshape(len(x), -1).astype(np.float64)
        projection = self._projections.get(flat.shape[1])
        if projection is None:  # one fixed projection per input width: models of different shapes keep theirs
            rng = np.random.default_rng(self._seed)
            projection = rng.standard_normal((flat.shape[1], self.sketch_dim)) / np.sqrt(self.sketch_dim)
            self._projections[flat.shape[1]] = projection
        return flat @ projection

    def set_reference(self, model: str, x: np.ndarray) -> None:
        """Honest inputs of ``model`` (training or monitoring data): a query far from all of them is off-distribution."""
        x = np.asarray(x)
        if len(x) < 20:
            raise InputError(f"an extraction reference needs at least 20 inputs (got {len(x)})")
        if len(x) > self.reference_samples:
            x = x[np.random.default_rng(self._seed).permutation(len(x))[: self.reference_samples]]
        sketches = self._sketch(x)
        dists = _pairwise(sketches, sketches)
        np.fill_diagonal(dists, np.inf)
        radius = float(np.quantile(dists.min(axis=1), self.reference_quantile))
        with self._lock:
            self._references[model] = _Reference(sketches, radius)

    def observe(
        self,
        subject: str,
        x: np.ndarray,
        probs: np.ndarray,
        *,
        model: str | None = None,
        tenant: str | None = None,
        address: str | None = None,
    ) -> float:
        """Record a batch of queries (inputs and the model's probabilities) and return the caller's score."""
        with self._lock:
            self._record(subject, x, probs, model, tenant, address)
            return self._signal(("identity", subject), self._clock()).score

    def watch(
        self,
        subject: str,
        x: np.ndarray,
        probs: np.ndarray,
        *,
        model: str | None = None,
        tenant: str | None = None,
        address: str | None = None,
    ) -> list[ExtractionSignal]:
        """Record a batch and return the signals of every window it fell in that *newly* crossed the threshold:
        each window is reported once, until its score falls back below the threshold."""
        with self._lock:
            keys = self._record(subject, x, probs, model, tenant, address)
            now = self._clock()
            raised = []
            for key in keys:
                signal = self._signal(key, now)
                if signal.score < self.threshold:
                    self._flagged.discard(key)
                elif signal.flagged and key not in self._flagged:
                    self._flagged.add(key)
                    raised.append(self._with_members(signal, now))
            return raised

    def forget_flag(self, signal: ExtractionSignal) -> None:
        """Report ``signal``'s window again on its next query (its event could not be written)."""
        with self._lock:
            self._flagged.discard((signal.scope, signal.key))

    def _record(
        self,
        subject: str,
        x: np.ndarray,
        probs: np.ndarray,
        model: str | None,
        tenant: str | None,
        address: str | None,
    ) -> list[tuple[str, str]]:
        x = np.asarray(x)
        probs = np.asarray(probs, dtype=np.float64)
        if x.ndim == 0 or probs.ndim != 2 or len(x) != len(probs) or probs.shape[1] < 2:
            raise InputError("observe needs a batch of inputs and an (n, classes) probability array of the same length")
        sketches = self._sketch(x)
        top2 = np.sort(probs, axis=1)[:, -2:]
        margins = top2[:, 1] - top2[:, 0]
        classes = probs.argmax(axis=1)
        reference = self._references.get(model) if model is not None else None
        if reference is None:
            off = np.zeros(len(x), dtype=bool)
        else:
            off = _pairwise(sketches, reference.sketches).min(axis=1) > reference.radius
        groups = {"tenant": tenant, "address": address}
        keys = [("identity", subject)] + [(s, groups[s] or "") for s in self.group_by if groups[s]]
        now = self._clock()
        for key in keys:
            win = self._windows.pop(key, None) or _Window(self.window, self.sketch_dim)
            self._windows[key] = win
            if key[0] != "identity":
                win.members[subject] = None
                win.members.move_to_end(subject)
                while len(win.members) > self.max_members:
                    win.members.popitem(last=False)
            for sketch, margin, cls, far in zip(sketches, margins, classes, off, strict=True):
                self._add(win, sketch, float(margin), int(cls), bool(far), now)
        while len(self._windows) > self.max_subjects:
            self._windows.popitem(last=False)
        return keys

    def _add(self, win: _Window, sketch: np.ndarray, margin: float, cls: int, far: bool, now: float) -> None:
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
        win.off[i] = far
        win.since_prada += 1

    def _signal(self, key: tuple[str, str], now: float) -> ExtractionSignal:
        win = self._windows.get(key)
        if win is None:
            return ExtractionSignal(0.0, False, 0, 0.0, 0.0, None, scope=key[0], key=key[1])
        live = win.live(now, self.window_seconds)
        n = int(live.sum())
        duplicates = float(win.duplicate[live].mean()) if n else 0.0
        low_margin = float(win.low_margin[live].mean()) if n else 0.0
        off = float(win.off[live].mean()) if n else 0.0
        if win.since_prada >= self.prada_every or win.prada_w is None:
            dists = win.min_dist[live & ~np.isnan(win.min_dist)]
            ok = len(dists) >= self.min_queries and np.ptp(dists) > 0
            win.prada_w = float(stats.shapiro(dists).statistic) if ok else None
            win.since_prada = 0
        w = win.prada_w
        prada = 0.0 if w is None else float(np.clip((self.prada_delta - w) / (self.prada_delta - 0.5), 0.0, 1.0))
        score = max(
            _excess(duplicates, self.baseline_duplicates),
            _excess(low_margin, self.baseline_low_margin),
            _excess(off, self.baseline_off_distribution, self.full_off_distribution),
            prada,
        )
        if n < self.min_queries:
            score *= n / self.min_queries
        flagged = n >= self.min_queries and score >= self.threshold
        return ExtractionSignal(score, flagged, n, duplicates, low_margin, w, off, key[0], key[1])

    def _with_members(self, signal: ExtractionSignal, now: float) -> ExtractionSignal:
        """A group's signal with each member key's own current score (an identity's as it is)."""
        win = self._windows.get((signal.scope, signal.key))
        if signal.scope == "identity" or win is None:
            return signal
        members = tuple((s, self._signal(("identity", s), now).score) for s in win.members)
        return dataclasses.replace(signal, members=members)

    def signal(self, key: str, scope: str = "identity") -> ExtractionSignal:
        """The current signal of a caller (or of a ``tenant`` or ``address``); zero for one not seen in the window."""
        with self._lock:
            now = self._clock()
            return self._with_members(self._signal((scope, key), now), now)

    def flagged(self, key: str, scope: str = "identity") -> bool:
        """True when the window's score is at or above the threshold with enough queries seen."""
        return self.signal(key, scope).flagged
