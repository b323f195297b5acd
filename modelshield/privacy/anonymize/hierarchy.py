"""Generalisation hierarchies: how far a quasi-identifier's value may be coarsened, level by level.

A categorical attribute generalises along a tree (``Masters → Graduate → Higher → *``); a numeric one along
intervals of growing width (``37 → [35-39] → [30-39] → [20-39] → *``). Both come from a YAML file::

    age: {type: interval, widths: [5, 10, 20]}      # optional: origin (default 0)
    education:                                       # one root; inner nodes are mappings, leaves lists
      "*":
        Higher: {Graduate: [Masters, Doctorate], Undergraduate: [Bachelors]}
        School: [HS-grad, 11th, 10th]

A quasi-identifier without an entry gets a flat tree (each value, then ``*``) when it is categorical and
intervals of ``nice`` widths when it is numeric. Mondrian (local recoding) uses a tree's leaf order to keep
subtrees together when it cuts and releases the lowest common ancestor; the lattice search (global
recoding) uses the levels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelshield.core.errors import InputError, MissingFileError
from modelshield.core.files import load_yaml

ROOT = "*"


@dataclass(frozen=True)
class TreeHierarchy:
    """A categorical tree: ``parent`` maps each label to the one above it; ``leaves`` in depth-first order."""

    column: str
    leaves: tuple[str, ...]
    parent: Mapping[str, str]
    root: str = ROOT
    _paths: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)
    _leaf_counts: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for leaf in self.leaves:
            path = [leaf]
            while path[-1] != self.root:
                path.append(self.parent[path[-1]])
            self._paths[leaf] = tuple(path)
            for label in path:
                self._leaf_counts[label] = self._leaf_counts.get(label, 0) + 1

    @classmethod
    def flat(cls, column: str, values: Sequence[str]) -> TreeHierarchy:
        """Each value directly under ``*``: the hierarchy of an attribute nobody described."""
        leaves = tuple(sorted(set(values)))
        return cls(column, leaves, dict.fromkeys(leaves, ROOT))

    @property
    def height(self) -> int:
        """Levels above the leaves (a flat tree has 1)."""
        return max((len(p) - 1 for p in self._paths.values()), default=1)

    def path(self, leaf: str) -> tuple[str, ...]:
        """``leaf`` and its ancestors up to the root."""
        try:
            return self._paths[leaf]
        except KeyError:
            raise InputError(f"the hierarchy of {self.column!r} has no value {leaf!r}") from None

    def level(self, leaf: str, height: int) -> str:
        """The label ``height`` levels above ``leaf`` (the root once the path ends)."""
        path = self.path(leaf)
        return path[min(height, len(path) - 1)]

    def lca(self, first: str, last: str) -> str:
        """Lowest common ancestor of two leaves; of a set of leaves, that of its first and last in leaf order."""
        above = set(self.path(first))
        return next(label for label in self.path(last) if label in above)

    def leaf_count(self, label: str) -> int:
        """How many leaves lie under ``label`` (1 for a leaf): the basis of the certainty penalty."""
        return self._leaf_counts.get(label, 1)

    def with_values(self, values: Sequence[str]) -> TreeHierarchy:
        """Check that every value in the data is a leaf; name the first that is not."""
        missing = sorted(set(values) - set(self._paths))
        if missing:
            raise InputError(
                f"the hierarchy of {self.column!r} has no leaf {missing[0]!r} ({len(missing)} value(s) missing)",
                hint="add every value of the column as a leaf of the tree",
            )
        return self


@dataclass(frozen=True)
class IntervalHierarchy:
    """Intervals of growing width on a numeric attribute; level 0 is the value, the last level ``*``."""

    column: str
    widths: tuple[float, ...]
    origin: float = 0.0

    @property
    def height(self) -> int:
        return len(self.widths) + 1

    def bounds(self, values: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
        """The interval each value falls in at ``height`` (1 … len(widths)), as inclusive (low, high)."""
        width = self.widths[height - 1]
        low = np.floor((values - self.origin) / width) * width + self.origin
        integral = float(width).is_integer() and float(self.origin).is_integer()
        return low, low + width - (1 if integral else 0)

    @staticmethod
    def nice(column: str, low: float, high: float) -> IntervalHierarchy:
        """Nested widths 1-5 × 10ⁿ from about 1/50 of the range up to the range: when no file describes it."""
        span = max(high - low, 1e-12)
        decade = 10.0 ** math.floor(math.log10(span / 50))
        widths: list[float] = []
        while not widths or widths[-1] < span:
            widths += [w for w in (float(f"{m * decade:.12g}") for m in (1, 5)) if span / 50 <= w]
            decade *= 10
        while len(widths) > 1 and widths[-2] >= span:
            widths.pop()
        origin = math.floor(low / widths[-1]) * widths[-1] if low < 0 else 0.0
        return IntervalHierarchy(column, tuple(widths), float(origin))


Hierarchy = TreeHierarchy | IntervalHierarchy


def _tree(column: str, node: Any, parent: str, out: dict[str, str], leaves: list[str], where: str) -> None:
    items: list[tuple[str, Any]]
    if isinstance(node, Mapping):
        items = [(str(k), v) for k, v in node.items()]
    elif isinstance(node, list):
        items = [(str(v), None) for v in node]
    else:
        raise InputError(f"{where}: {column!r}: under {parent!r} give a mapping or a list, not {node!r}")
    for label, below in items:
        if label in out or label == ROOT:
            raise InputError(f"{where}: {column!r}: the label {label!r} appears twice")
        out[label] = parent
        if below is None:
            leaves.append(label)
        else:
            _tree(column, below, label, out, leaves, where)


def parse_hierarchy(column: str, spec: Any, where: str) -> Hierarchy:
    """One entry of a hierarchies file; every mistake is one line naming the file and the column."""
    if isinstance(spec, Mapping) and spec.get("type") == "interval":
        widths = spec.get("widths")
        if not isinstance(widths, list) or not widths or not all(isinstance(w, int | float) for w in widths):
            raise InputError(f"{where}: {column!r}: an interval hierarchy needs widths: [w1, w2, ...] (numbers)")
        if any(w <= 0 for w in widths) or any(
            b <= a or not math.isclose(b / a, round(b / a)) for a, b in zip(widths, widths[1:], strict=False)
        ):
            raise InputError(
                f"{where}: {column!r}: interval widths must be positive and each a multiple of the one before "
                f"(nested intervals), got {widths}"
            )
        origin = spec.get("origin", 0)
        if not isinstance(origin, int | float):
            raise InputError(f"{where}: {column!r}: origin must be a number, got {origin!r}")
        return IntervalHierarchy(column, tuple(float(w) for w in widths), float(origin))
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise InputError(
            f"{where}: {column!r}: give one root mapping (e.g. '\"*\": {{group: [a, b]}}') or {{type: interval, ...}}"
        )
    ((root, below),) = spec.items()
    parent: dict[str, str] = {}
    leaves: list[str] = []
    _tree(column, below, str(root), parent, leaves, where)
    if not leaves:
        raise InputError(f"{where}: {column!r}: the tree has no leaves")
    return TreeHierarchy(column, tuple(leaves), parent, str(root))


def load_hierarchies(path: str | Path) -> dict[str, Hierarchy]:
    """Read a hierarchies YAML file (see the module docstring)."""
    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"hierarchies file {file} does not exist")
    data = load_yaml(file)
    if not isinstance(data, Mapping) or not data:
        raise InputError(f"{file}: expected a mapping of column → hierarchy")
    return {str(col): parse_hierarchy(str(col), spec, str(file)) for col, spec in data.items()}
