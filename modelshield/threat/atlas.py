"""MITRE ATLAS ids and names, read from the vendored ATLAS release (``data/atlas/ATLAS.yaml``, Apache-2.0).

Rules carry only ids; every name shown to a user comes from the release, so a renamed technique is renamed
here by replacing the file, and an id that is not in the release fails the rule library's load.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

ATLAS_RESOURCE = ("modelshield.threat", "data/atlas/ATLAS.yaml")
TECHNIQUE_URI = "https://atlas.mitre.org/techniques/{}"
MITIGATION_URI = "https://atlas.mitre.org/mitigations/{}"


@dataclass(frozen=True)
class Atlas:
    """One ATLAS release: its version and the id → name tables a threat model cites."""

    version: str
    techniques: dict[str, str]
    mitigations: dict[str, str]
    case_studies: dict[str, str]
    tactics: dict[str, str]

    def name(self, atlas_id: str) -> str:
        """The technique's or mitigation's name; ``KeyError`` for an id the release does not have."""
        return self.techniques.get(atlas_id) or self.mitigations[atlas_id]


@functools.cache
def release() -> dict[str, Any]:
    """The vendored release as parsed YAML, once per process (libyaml's loader where installed: ~0.3 s)."""
    package, name = ATLAS_RESOURCE
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data: dict[str, Any] = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader, picked by availability
    return data


@functools.cache
def load_atlas() -> Atlas:
    """The id → name tables of the vendored release."""
    data = release()
    techniques: dict[str, str] = {}
    mitigations: dict[str, str] = {}
    tactics: dict[str, str] = {}
    for matrix in data["matrices"]:
        techniques.update({t["id"]: t["name"] for t in matrix.get("techniques", [])})
        mitigations.update({m["id"]: m["name"] for m in matrix.get("mitigations", [])})
        tactics.update({t["id"]: t["name"] for t in matrix.get("tactics", [])})
    studies = {c["id"]: c["name"] for c in data.get("case-studies", [])}
    return Atlas(str(data.get("version", "")), techniques, mitigations, studies, tactics)


__all__ = ["MITIGATION_URI", "TECHNIQUE_URI", "Atlas", "load_atlas", "release"]
