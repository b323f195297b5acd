"""The quarantine: every record held back, with each reason (which check, which value, what score).

One JSON object per line, in input order::

    {"row": 17, "reasons": [{"check": "schema", "column": "age", "rule": "above max 120", "value": 999},
                            {"check": "isolation-forest", "score": 0.71, "threshold": 0.62}],
     "record": {"age": 999, ...}}

``row`` counts data records from 0 (the header is not a record). Nothing is dropped: a record is either in
the accepted file or here, and the report's counts add up to the records read.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any, BinaryIO

from modelshield.ingest.schema import Violation
from modelshield.ingest.screen import Flag
from modelshield.ingest.tables import json_value

if TYPE_CHECKING:
    import pandas as pd


EXAMPLES = 20


def _score(x: float) -> float:
    return float(f"{x:.6g}")


class Quarantine:
    """Writes held-back records to an open file and counts reasons for the report."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.records = 0
        self.by_check: Counter[str] = Counter()
        self.by_rule: Counter[str] = Counter()
        self.examples: list[dict[str, Any]] = []  # the first EXAMPLES held-back records, for the report

    def add(self, raw: pd.DataFrame, first_row: int, violations: list[Violation], flags: list[Flag]) -> set[int]:
        """Write the records of one chunk that have any reason; return their positions in the chunk."""
        reasons: dict[int, list[dict[str, Any]]] = {}
        for v in violations:
            reasons.setdefault(v.row, []).append(
                {"check": "schema", "column": v.column, "rule": v.rule, "value": json_value(v.value)}
            )
            self.by_rule[f"schema: {v.column}: {v.rule}"] += 1
        for fl in flags:
            reasons.setdefault(fl.row, []).append(
                {"check": fl.detector, "score": _score(fl.score), "threshold": _score(fl.threshold)}
            )
            self.by_rule[f"detector: {fl.detector}"] += 1
        columns = [str(c) for c in raw.columns]
        lines = []
        for row in sorted(reasons):
            for check in {r["check"] for r in reasons[row]}:
                self.by_check[check] += 1
            values = raw.iloc[row].tolist()
            record = {c: json_value(v) for c, v in zip(columns, values, strict=True)}
            doc = {"row": first_row + row, "reasons": reasons[row], "record": record}
            if len(self.examples) < EXAMPLES:
                self.examples.append(doc)
            lines.append(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
        if lines:
            self._f.write(("\n".join(lines) + "\n").encode("utf-8"))
        self.records += len(reasons)
        return set(reasons)
