"""MITRE ATLAS case studies as threat-model examples: each real incident's procedure, step by step, with the
modelshield rules that would have raised the threat and the controls that would have stood in the way.

A team reads a case study to learn what attackers did; read against the rule library it also shows where
modelshield is blind (steps no rule covers: reconnaissance, resource development, most of what happens off the
ML system). Coverage is by technique: a rule citing a technique or one of its sub-techniques covers a step that
uses that technique (``AML.T0024`` and ``AML.T0024.000`` share the base ``AML.T0024``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from modelshield.core.errors import InputError
from modelshield.threat.atlas import TECHNIQUE_URI, load_atlas, release
from modelshield.threat.rules import RuleLibrary


@dataclass(frozen=True)
class Step:
    """One step of an incident's procedure and what modelshield has against it."""

    tactic: str
    technique: str
    description: str
    rules: tuple[str, ...]
    controls: tuple[str, ...]
    mitigations: tuple[str, ...]  # ATLAS mitigation ids for the technique (or its base technique)


@dataclass(frozen=True)
class CaseStudy:
    """One ATLAS case study with its procedure mapped onto the rule library."""

    id: str
    name: str
    summary: str
    date: str
    target: str
    actor: str
    kind: str
    references: tuple[tuple[str, str], ...]
    steps: tuple[Step, ...]

    @property
    def covered(self) -> int:
        """Steps that at least one rule raises a threat for."""
        return sum(bool(s.rules) for s in self.steps)


def _base(technique: str) -> str:
    return ".".join(technique.split(".")[:2])


@functools.cache
def _mitigations_by_base() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for matrix in release()["matrices"]:
        for m in matrix.get("mitigations", []):
            for t in m.get("techniques", []):
                out.setdefault(_base(t["id"]), []).append(m["id"])
    return {k: tuple(dict.fromkeys(v)) for k, v in out.items()}


def _index(libraries: tuple[RuleLibrary, ...]) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Base technique → (rule id, its modelshield controls) for every rule citing it."""
    out: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for lib in libraries:
        for rule in lib.rules:
            controls = tuple(m.control for m in rule.mitigations if m.control)
            for base in dict.fromkeys(_base(t) for t in rule.atlas):
                out.setdefault(base, []).append((rule.id, controls))
    return out


def _study(raw: dict[str, Any], index: dict[str, list[tuple[str, tuple[str, ...]]]]) -> CaseStudy:
    steps = []
    for s in raw.get("procedure", []):
        hits = index.get(_base(s["technique"]), [])
        steps.append(
            Step(
                tactic=s["tactic"],
                technique=s["technique"],
                description=" ".join(str(s.get("description", "")).split()),
                rules=tuple(dict.fromkeys(r for r, _ in hits)),
                controls=tuple(dict.fromkeys(c for _, cs in hits for c in cs)),
                mitigations=_mitigations_by_base().get(_base(s["technique"]), ()),
            )
        )
    refs = tuple((str(r.get("title", "")), str(r.get("url") or "")) for r in raw.get("references") or [])
    return CaseStudy(
        id=raw["id"],
        name=raw["name"],
        summary=" ".join(str(raw.get("summary", "")).split()),
        date=str(raw.get("incident-date", "")),
        target=str(raw.get("target", "")),
        actor=str(raw.get("actor", "")),
        kind=str(raw.get("case-study-type", "")),
        references=refs,
        steps=tuple(steps),
    )


def case_studies(*libraries: RuleLibrary) -> list[CaseStudy]:
    """Every case study in the vendored ATLAS release, mapped onto ``libraries`` (the built-in rules if none)."""
    from modelshield.threat.rules import builtin_rules

    index = _index(libraries or (builtin_rules(),))
    return [_study(raw, index) for raw in release().get("case-studies", [])]


def case_study(study_id: str, *libraries: RuleLibrary) -> CaseStudy:
    """One case study by id (``AML.CS0000``); an unknown id is a one-line error listing how to find them."""
    for study in case_studies(*libraries):
        if study.id == study_id:
            return study
    raise InputError(
        f"no case study {study_id!r} in ATLAS {load_atlas().version} (list them: modelshield threat case-study)"
    )


def study_json(study: CaseStudy) -> dict[str, Any]:
    """A case study as plain data, with ATLAS names resolved."""
    atlas = load_atlas()
    return {
        "id": study.id,
        "name": study.name,
        "date": study.date,
        "kind": study.kind,
        "target": study.target,
        "actor": study.actor,
        "summary": study.summary,
        "references": [{"title": t, "url": u} for t, u in study.references],
        "steps": [
            {
                "tactic": s.tactic,
                "tactic_name": atlas.tactics.get(s.tactic, s.tactic),
                "technique": s.technique,
                "technique_name": atlas.techniques.get(s.technique, s.technique),
                "description": s.description,
                "rules": list(s.rules),
                "controls": list(s.controls),
                "mitigations": {m: atlas.name(m) for m in s.mitigations},
            }
            for s in study.steps
        ],
        "covered_steps": study.covered,
        "atlas_version": atlas.version,
    }


def render_study_markdown(study: CaseStudy) -> str:
    """The incident as a threat-model example: what happened, step by step, and what would have caught it."""
    atlas = load_atlas()
    out = [
        f"# {study.id}: {study.name}",
        "",
        f"{study.kind} · {study.date} · target: {study.target} · actor: {study.actor}",
    ]
    out += ["", study.summary, "", "| # | tactic | technique | modelshield rules | controls |", "|---|---|---|---|---|"]
    for i, s in enumerate(study.steps, 1):
        technique = f"[{s.technique}]({TECHNIQUE_URI.format(s.technique)}) {atlas.techniques.get(s.technique, '')}"
        rules = ", ".join(f"`{r}`" for r in s.rules) or "— (no rule)"
        out.append(
            f"| {i} | {atlas.tactics.get(s.tactic, s.tactic)} | {technique} | {rules} | {'; '.join(s.controls)} |"
        )
    out += ["", f"{study.covered} of {len(study.steps)} steps raise a threat in the rule library.", ""]
    for i, s in enumerate(study.steps, 1):
        out.append(f"{i}. {s.description}")
        if s.mitigations:
            out.append(f"   ATLAS mitigations: {', '.join(f'{m} {atlas.name(m)}' for m in s.mitigations)}")
    if study.references:
        out += ["", "References:", ""] + [f"- [{t}]({u})" if u else f"- {t}" for t, u in study.references]
    return "\n".join(out) + "\n"


__all__ = ["CaseStudy", "Step", "case_studies", "case_study", "render_study_markdown", "study_json"]
