"""Anonymise tables (k-anonymity, l-diversity, t-closeness) and measure re-identification risk.

- ``anonymize_file`` / ``anonymize_frame``: Mondrian multidimensional partitioning (local recoding,
  scales to millions of rows) or an optimal lattice search (global recoding with suppression, for small
  tables), with generalisation hierarchies from a YAML file (``load_hierarchies``), reporting what was
  achieved, the information lost (NCP, discernibility) and the risk before and after.
- ``risk_from_classes``: prosecutor, journalist and marketer risk and sample uniqueness.
- ``link``: a linkage attack joining a released table with an auxiliary one on the quasi-identifiers.
- ``midpoints`` / ``recalibrated_threshold``: feed released ranges to a model and move its threshold.
"""

from __future__ import annotations

from modelshield.core.errors import DependencyError

try:
    import pandas  # noqa: F401  (every module here reads or writes tables)
except ImportError as e:  # pragma: no cover - the data extra is installed in the test environment
    raise DependencyError("anonymising tables needs pandas", hint="pip install 'modelshield[data]'") from e

from modelshield.privacy.anonymize.criteria import Criteria
from modelshield.privacy.anonymize.hierarchy import IntervalHierarchy, TreeHierarchy, load_hierarchies
from modelshield.privacy.anonymize.linkage import LinkageResult, link
from modelshield.privacy.anonymize.recalibrate import label_bounds, midpoints, recalibrated_threshold
from modelshield.privacy.anonymize.release import (
    ALGORITHMS,
    Anonymization,
    anonymize_encoded,
    anonymize_file,
    anonymize_frame,
    file_risk,
    report_path,
)
from modelshield.privacy.anonymize.risk import RiskReport, risk_from_classes
from modelshield.privacy.anonymize.tables import encode, encode_frame, read_chunks

__all__ = [
    "ALGORITHMS",
    "Anonymization",
    "Criteria",
    "IntervalHierarchy",
    "LinkageResult",
    "RiskReport",
    "TreeHierarchy",
    "anonymize_encoded",
    "anonymize_file",
    "anonymize_frame",
    "encode",
    "encode_frame",
    "file_risk",
    "label_bounds",
    "link",
    "load_hierarchies",
    "midpoints",
    "read_chunks",
    "recalibrated_threshold",
    "report_path",
    "risk_from_classes",
]
