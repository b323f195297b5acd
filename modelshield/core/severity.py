"""Ordered string enums (severities, scan verdicts), apart from ``Finding`` so that code which only ranks
things — the model-file scanner on a clean file — does not import pydantic."""

from __future__ import annotations

from enum import Enum


class RankedEnum(str, Enum):
    """A string enum whose members are declared from least to most serious."""

    @property
    def rank(self) -> int:
        return list(type(self)).index(self)


class Severity(RankedEnum):
    """How urgently a finding needs attention; ordered from least to most."""

    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"
