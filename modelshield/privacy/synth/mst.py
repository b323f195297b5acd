"""MST: differentially private synthetic data from 1-way marginals and a maximum spanning tree of 2-way ones.

McKenna, Miklau & Sheldon, "Winning the NIST Contest: A scalable and general approach to differentially
private synthetic data" (2021, https://arxiv.org/abs/2108.04978). The budget ρ (zCDP) is split in three:

1. ρ/3 measures every 1-way marginal with Gaussian noise (d releases, σ₁ = √(d / (2·ρ/3))); categories whose
   noisy count is under 3σ₁ are merged into one "rare" cell (the paper's domain compression).
2. ρ/3 selects d−1 pairs, one exponential-mechanism draw per tree edge (ε = √(8ρ/(3(d−1))) each), among
   pairs joining two different components (Kruskal), scored by how far the pair's true 2-way marginal
   is (L1) from the product of the noisy 1-way ones — the paper's score, sensitivity 1.
3. ρ/3 measures the d−1 chosen 2-way marginals (σ₂ = √((d−1) / (2·ρ/3))).

MST proper then fits a graphical model with Private-PGM. For a tree that fit has a closed form once the
marginals agree, so here each 1-way marginal is the inverse-variance-weighted fusion of its own
measurement and the margins of the measured pairs that contain it, clipped at zero and normalised; each
pair's noisy table is clipped at zero and fitted to those two 1-way marginals by iterative proportional
fitting. Rows are then sampled down the tree: the root from its marginal, each child from its conditional
given the parent. This differs from Private-PGM's joint least-squares fit only in how noise is shared
between overlapping measurements (locally here, globally there); the guarantee is the same, because
everything after the measurements is post-processing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from modelshield.core.errors import InputError
from modelshield.privacy.synth.domain import Domain
from modelshield.privacy.synth.zcdp import ZcdpLedger, exponential_epsilon, gaussian_sigma

if TYPE_CHECKING:
    import pandas as pd

_IPF_ITERATIONS = 100


@dataclass
class _Compression:
    """A column's domain after merging rare categories: kept codes, then one cell for the rest (if any)."""

    kept: np.ndarray
    rare: np.ndarray

    @property
    def size(self) -> int:
        return len(self.kept) + (1 if len(self.rare) else 0)

    def forward(self, codes: np.ndarray, original_size: int) -> np.ndarray:
        table = np.full(original_size, len(self.kept), dtype=np.int64)
        table[self.kept] = np.arange(len(self.kept))
        return table[codes]

    def merge(self, per_value: np.ndarray) -> np.ndarray:
        """Per-value counts (or variances) in the compressed domain: the rare cell holds their sum."""
        kept = per_value[self.kept]
        return np.append(kept, per_value[self.rare].sum()) if len(self.rare) else kept

    def backward(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty_like(codes)
        kept = codes < len(self.kept)
        out[kept] = self.kept[codes[kept]]
        if (~kept).any():
            out[~kept] = rng.choice(self.rare, size=int((~kept).sum()))
        return out


def _counts(cells: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray:
    """The contingency table of ``cells`` (n, k) over ``sizes``."""
    flat = np.ravel_multi_index(tuple(cells.T), sizes) if len(sizes) > 1 else cells[:, 0]
    return np.bincount(flat, minlength=int(np.prod(sizes))).reshape(sizes).astype(float)


def _probabilities(noisy: np.ndarray) -> np.ndarray:
    clipped = np.clip(noisy, 0, None)
    total = clipped.sum()
    return clipped / total if total > 0 else np.full(noisy.shape, 1 / noisy.size)


def _ipf(table: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Scale a non-negative table until its margins are ``rows`` and ``cols`` (which sum to 1)."""
    t = np.clip(table, 0, None) + 1e-9 * max(table.max(), 1.0)  # a floor, so every cell can still move
    for _ in range(_IPF_ITERATIONS):
        t *= np.divide(rows, t.sum(1), out=np.zeros_like(rows), where=t.sum(1) > 0)[:, None]
        t *= np.divide(cols, t.sum(0), out=np.zeros_like(cols), where=t.sum(0) > 0)[None, :]
    return t / t.sum()


@dataclass
class MSTSynthesizer:
    """Fit on a table with :meth:`fit`, draw rows with :meth:`sample`; ``ledger_`` holds the budget spent.

    ``epsilon``/``delta``: the (ε, δ) target, turned into the largest ρ that stays within it."""

    epsilon: float
    delta: float = 1e-9
    seed: int | None = None
    domain_: Domain | None = field(default=None, init=False)
    ledger_: ZcdpLedger | None = field(default=None, init=False)
    edges_: list[tuple[int, int]] = field(default_factory=list, init=False)
    rows_estimate_: float = field(default=0.0, init=False)
    _compressions: list[_Compression] = field(default_factory=list, init=False, repr=False)
    _one_way: list[np.ndarray] = field(default_factory=list, init=False, repr=False)
    _two_way: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def fit(self, frame: pd.DataFrame, domain: Domain) -> MSTSynthesizer:
        """Measure the marginals of ``frame`` over ``domain`` and fit the tree model."""
        if len(frame) == 0:
            raise InputError("the table has no rows")
        rng = np.random.default_rng(self.seed)
        ledger = ZcdpLedger.for_epsilon(self.epsilon, self.delta)
        cells = domain.encode(frame)
        d = cells.shape[1]
        parts = (1 / 3, 1 / 3, 1 / 3) if d > 1 else (1.0, 0.0, 0.0)

        rho1 = ledger.spend("1-way marginals (Gaussian)", ledger.total_rho * parts[0], d)
        sigma1 = gaussian_sigma(rho1 / d)
        noisy1 = [np.bincount(cells[:, j], minlength=s) + rng.normal(0, sigma1, s) for j, s in enumerate(domain.sizes)]
        self._compressions = [
            _Compression(np.flatnonzero(y >= 3 * sigma1), np.flatnonzero(y < 3 * sigma1)) for y in noisy1
        ]
        comp = np.column_stack([c.forward(cells[:, j], domain.sizes[j]) for j, c in enumerate(self._compressions)])
        sizes = [c.size for c in self._compressions]
        # the 1-way measurement in the compressed domain: the rare cell is the sum of its noisy parts
        y1 = [c.merge(y) for y, c in zip(noisy1, self._compressions, strict=True)]
        var1 = [c.merge(np.full(len(y), sigma1**2)) for y, c in zip(noisy1, self._compressions, strict=True)]
        self.rows_estimate_ = float(np.median([y.sum() for y in noisy1]))

        edges: list[tuple[int, int]] = []
        two_way: dict[tuple[int, int], np.ndarray] = {}
        sigma2 = 0.0
        if d > 1:
            rho_sel = ledger.spend("tree selection (exponential mechanism)", ledger.total_rho * parts[1], d - 1)
            edges = self._select(comp, sizes, y1, rho_sel / (d - 1), rng)
            rho2 = ledger.spend("2-way marginals on the tree (Gaussian)", ledger.total_rho * parts[2], d - 1)
            sigma2 = gaussian_sigma(rho2 / (d - 1))
            for i, j in edges:
                table = _counts(comp[:, [i, j]], (sizes[i], sizes[j]))
                two_way[(i, j)] = table + rng.normal(0, sigma2, table.shape)

        self._one_way = [self._fuse(j, y1[j], var1[j], two_way, sizes, sigma2) for j in range(d)]
        self._two_way = {(i, j): _ipf(t, self._one_way[i], self._one_way[j]) for (i, j), t in two_way.items()}
        self.domain_, self.ledger_, self.edges_ = domain, ledger, edges
        return self

    def _select(
        self, comp: np.ndarray, sizes: list[int], y1: list[np.ndarray], rho_round: float, rng: np.random.Generator
    ) -> list[tuple[int, int]]:
        """d−1 exponential-mechanism draws, Kruskal-style, scored by L1(true pair − product of noisy 1-ways)."""
        d = len(sizes)
        n_est = self.rows_estimate_
        probs = [_probabilities(y) for y in y1]
        pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
        score = np.array(
            [
                np.abs(_counts(comp[:, [i, j]], (sizes[i], sizes[j])) - n_est * np.outer(probs[i], probs[j])).sum()
                for i, j in pairs
            ]
        )
        eps = exponential_epsilon(rho_round)
        component = list(range(d))

        def root(k: int) -> int:
            while component[k] != k:
                k = component[k]
            return k

        chosen: list[tuple[int, int]] = []
        for _ in range(d - 1):
            open_ = np.array([root(i) != root(j) for i, j in pairs])
            logits = np.where(open_, eps * score / 2, -np.inf)  # sensitivity of the L1 score is 1
            k = int(np.argmax(logits + rng.gumbel(size=len(pairs))))
            i, j = pairs[k]
            component[root(i)] = root(j)
            chosen.append((i, j))
        return chosen

    @staticmethod
    def _fuse(
        j: int,
        y: np.ndarray,
        var: np.ndarray,
        two_way: dict[tuple[int, int], np.ndarray],
        sizes: list[int],
        sigma2: float,
    ) -> np.ndarray:
        """Column ``j``'s marginal from its own measurement and the margins of measured pairs, by inverse variance."""
        weighted, weights = y / var, 1 / var
        for (a, b), table in two_way.items():
            if j in (a, b):
                margin = table.sum(1) if j == a else table.sum(0)
                v = sizes[b if j == a else a] * sigma2**2
                weighted, weights = weighted + margin / v, weights + 1 / v
        return _probabilities(weighted / weights)

    def sample(self, rows: int | None = None) -> pd.DataFrame:
        """``rows`` synthetic rows (default: the noisy row count measured in :meth:`fit`)."""
        if self.domain_ is None:
            raise InputError("fit the synthesizer before sampling")
        n = round(self.rows_estimate_) if rows is None else rows
        if n < 1:
            raise InputError(f"the number of rows must be at least 1, got {n}")
        rng = np.random.default_rng(None if self.seed is None else self.seed + 1)
        d = len(self._one_way)
        out = np.empty((n, d), dtype=np.int64)
        neighbours: dict[int, list[int]] = {k: [] for k in range(d)}
        for i, j in self.edges_:
            neighbours[i].append(j)
            neighbours[j].append(i)
        out[:, 0] = rng.choice(len(self._one_way[0]), size=n, p=self._one_way[0])
        done, frontier = {0}, [0]
        while frontier:
            parent = frontier.pop()
            for child in neighbours[parent]:
                if child in done:
                    continue
                joint = (
                    self._two_way[(parent, child)]
                    if (parent, child) in self._two_way
                    else self._two_way[(child, parent)].T
                )
                for value in np.unique(out[:, parent]):
                    rows_at = np.flatnonzero(out[:, parent] == value)
                    cond = joint[value]
                    cond = cond / cond.sum() if cond.sum() > 0 else self._one_way[child]
                    out[rows_at, child] = rng.choice(len(cond), size=len(rows_at), p=cond)
                done.add(child)
                frontier.append(child)
        original = np.column_stack([c.backward(out[:, k], rng) for k, c in enumerate(self._compressions)])
        return self.domain_.decode(original, rng)
