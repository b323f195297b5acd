"""Optimal global recoding by a search of the generalisation lattice, with record suppression.

A node of the lattice is one generalisation level per quasi-identifier (Samarati 2001; LeFevre et al.,
"Incognito", SIGMOD 2005; Kohlmayer et al., "Flash", PASSAT 2012 — the search ARX runs). Every row of
a column is recoded to the same level (global recoding), classes smaller than k — or failing l or t —
are suppressed when they total at most ``max_suppression`` of the rows, and among the nodes that
satisfy the criteria the one losing the least information (NCP, suppressed rows counting 1) is chosen.

Pruning uses monotonicity (Incognito's generalisation property): if a node fails, every node below it
fails, so nodes are visited from the top down and the ones under a failed node are never evaluated.
Loss is not monotone once suppression counts, so every satisfying node is scored. Meant for the small
tables and lattices ARX is used for (a few thousand nodes); Mondrian scales further.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from modelshield.core.errors import InputError
from modelshield.privacy.anonymize.criteria import Criteria, histograms
from modelshield.privacy.anonymize.generalise import Levels
from modelshield.privacy.anonymize.mondrian import sensitive_check
from modelshield.privacy.anonymize.tables import Encoded

MAX_NODES = 20_000


@dataclass(frozen=True)
class LatticeResult:
    """The chosen node, the class of each row (-1 = suppressed), labels per class, and the search's size."""

    node: tuple[int, ...]
    klass: np.ndarray
    labels: list[list[str]]
    penalty: np.ndarray  # per class: mean NCP over the columns
    evaluated: int
    nodes: int


def _classes(levels: Levels, node: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class index per row, class sizes, and the first row of each class, for the rows recoded to ``node``."""
    key = np.zeros(levels.enc.rows, dtype=np.int64)
    room = 1
    for j, h in enumerate(node):
        radix = levels.radix[j][h]
        if room * radix >= 2**62:
            uniq, key = np.unique(key, return_inverse=True)
            room = len(uniq)
        key = key * radix + levels.codes[j][h]
        room *= radix
    _, first, inverse, sizes = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    return inverse, sizes, first


def lattice_search(
    enc: Encoded, criteria: Criteria, max_suppression: float = 0.0, max_nodes: int = MAX_NODES
) -> LatticeResult:
    """Search every node (pruned below failures) and return the best satisfying one."""
    if not 0 <= max_suppression < 1:
        raise InputError(f"the suppression limit must lie in [0, 1), got {max_suppression}")
    levels = Levels(enc)
    heights = [h.height for h in enc.hierarchies]
    nodes = int(np.prod([h + 1 for h in heights]))
    if nodes > max_nodes:
        raise InputError(
            f"the generalisation lattice has {nodes} nodes (more than {max_nodes})",
            hint="use fewer hierarchy levels or quasi-identifiers, or --algorithm mondrian",
        )
    check = sensitive_check(enc, criteria)
    n, q = enc.rows, len(heights)
    allowed = int(np.floor(max_suppression * n))
    failed = np.zeros((0, q), dtype=np.int64)
    best: tuple[float, int, tuple[int, ...]] | None = None
    evaluated = 0
    order = sorted(itertools.product(*(range(h + 1) for h in heights)), key=lambda node: -sum(node))
    for node in order:
        if len(failed) and bool(np.all(failed >= np.array(node), axis=1).any()):
            continue
        evaluated += 1
        klass, sizes, _ = _classes(levels, node)
        bad = sizes < criteria.k
        if check is not None and enc.sensitive is not None:
            bad |= ~check.ok(histograms(klass, enc.sensitive, len(sizes), len(enc.sensitive_values)))
        suppressed = int(sizes[bad].sum())
        if suppressed > allowed:
            failed = np.vstack([failed, node])
            continue
        kept = ~bad[klass]
        loss = sum(levels.penalty[j][h][levels.codes[j][h][kept]].sum() for j, h in enumerate(node))
        score = (float(loss) + suppressed * q) / (n * q)
        if best is None or (score, sum(node)) < (best[0], best[1]):
            best = (score, sum(node), node)
    if best is None:
        raise InputError(
            f"no generalisation satisfies the criteria with at most {max_suppression:.1%} of rows suppressed",
            hint="allow more suppression (--max-suppression) or lower k/l/t",
        )
    node = best[2]
    klass, sizes, first = _classes(levels, node)
    bad = sizes < criteria.k
    if check is not None and enc.sensitive is not None:
        bad |= ~check.ok(histograms(klass, enc.sensitive, len(sizes), len(enc.sensitive_values)))
    labels = [[levels.label(j, h, int(row)) for row in first] for j, h in enumerate(node)]
    penalty = np.zeros(len(sizes))
    for j, h in enumerate(node):
        penalty += levels.penalty[j][h][levels.codes[j][h][first]]
    klass = np.where(bad[klass], -1, klass)
    return LatticeResult(node, klass, labels, penalty / q, evaluated, nodes)
