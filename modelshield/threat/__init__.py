"""Threat modeling as code: a system described in YAML, a rule library as data, findings keyed to MITRE ATLAS.

``load_system`` reads the description, ``analyse`` applies the rules (``builtin_rules`` plus any of the
user's), and the renderers turn the report into Markdown, HTML, JSON, SARIF or a data-flow diagram.
"""

from __future__ import annotations

from importlib import resources

import yaml

from modelshield.threat.findings import Status, ThreatFinding, ThreatReport, analyse, finding_id
from modelshield.threat.rules import RuleLibrary, builtin_rules, load_rules
from modelshield.threat.system import System, load_system, parse_system

DEMO_RESOURCE = ("modelshield.threat", "data/demo.yaml")


def demo_text() -> str:
    """The demo system's YAML, as shipped (a starting point for a team's own)."""
    package, name = DEMO_RESOURCE
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def demo_system() -> System:
    """The shipped credit-risk scoring system."""
    return parse_system(yaml.safe_load(demo_text()), "demo system")


__all__ = [
    "RuleLibrary",
    "Status",
    "System",
    "ThreatFinding",
    "ThreatReport",
    "analyse",
    "builtin_rules",
    "demo_system",
    "demo_text",
    "finding_id",
    "load_rules",
    "load_system",
    "parse_system",
]
