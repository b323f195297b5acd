"""Tabletop exercises generated from a threat model or a MITRE ATLAS case study.

An exercise is a timed list of *injects* — what the facilitator tells the players at each point — each with the
responses a prepared team should give (which control detects it, what contains it, who is told and how fast)
and questions for discussion. From a threat model, the worst open findings become injects; from a case study,
each step of the real incident does, and a step no rule covers says so: those are the ones worth the most
discussion, because nothing in place would have noticed them.

Roles, the escalation matrix (severity → who, within how long) and the questions per ATLAS tactic are data
(``data/tabletop.yaml``), checked against the ATLAS release when loaded, so a team can replace them with its own.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelshield.core.errors import InputError, validation_line
from modelshield.core.files import load_yaml
from modelshield.core.severity import Severity
from modelshield.threat.atlas import load_atlas, release
from modelshield.threat.case_studies import CaseStudy
from modelshield.threat.findings import Status, ThreatReport
from modelshield.threat.rules import RuleLibrary

TABLETOP_RESOURCE = ("modelshield.threat", "data/tabletop.yaml")


class Role(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    duty: str


class Escalation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    within_minutes: int = Field(gt=0)
    notify: list[str] = Field(min_length=1)


class Playbook(BaseModel):
    """The exercise settings: the roles, the escalation matrix and the questions per ATLAS tactic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: list[Role] = Field(min_length=1)
    escalation: dict[Severity, Escalation]
    questions: dict[str, list[str]]


@dataclass(frozen=True)
class Inject:
    """One moment of the exercise."""

    at_minutes: int
    title: str
    situation: str
    techniques: tuple[str, ...]
    severity: Severity | None
    detect: tuple[str, ...]
    contain: tuple[str, ...]
    notify: tuple[str, ...]
    within_minutes: int | None
    questions: tuple[str, ...]

    @property
    def covered(self) -> bool:
        """Whether some modelshield control is expected to detect or stop this inject."""
        return bool(self.detect)


@dataclass(frozen=True)
class Exercise:
    """A whole tabletop exercise."""

    title: str
    source: str
    objective: str
    roles: tuple[Role, ...]
    injects: tuple[Inject, ...] = field(default_factory=tuple)


def parse_playbook(data: Any, source: str) -> Playbook:
    """Checked exercise settings: escalation roles exist, tactic ids are in the ATLAS release."""
    try:
        book = Playbook.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{source}: {validation_line(exc)}") from None
    roles = {r.id for r in book.roles}
    for severity, esc in book.escalation.items():
        unknown = [r for r in esc.notify if r not in roles]
        if unknown:
            raise InputError(f"{source}: escalation.{severity.value} notifies unknown roles {unknown}")
    tactics = load_atlas().tactics
    for tactic in book.questions:
        if tactic not in tactics:
            raise InputError(f"{source}: questions: {tactic!r} is not a tactic in ATLAS {load_atlas().version}")
    return book


@functools.cache
def builtin_playbook() -> Playbook:
    package, name = TABLETOP_RESOURCE
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    return parse_playbook(yaml.safe_load(text), "built-in tabletop settings")


def load_playbook(path: Path) -> Playbook:
    """A team's own roles, escalation matrix and questions (same format as the built-in file)."""
    if not path.is_file():
        raise InputError(f"no tabletop settings file at {path}")
    return parse_playbook(load_yaml(path), str(path))


@functools.cache
def _tactics_of() -> dict[str, tuple[str, ...]]:
    """Technique id → the ATLAS tactics it serves (sub-techniques inherit their base technique's)."""
    out: dict[str, tuple[str, ...]] = {}
    for matrix in release()["matrices"]:
        for t in matrix.get("techniques", []):
            out[t["id"]] = tuple(t.get("tactics") or ())
    return {tid: tactics or out.get(".".join(tid.split(".")[:2]), ()) for tid, tactics in out.items()}


def _questions(book: Playbook, tactics: list[str], covered: bool) -> tuple[str, ...]:
    asked = [q for t in dict.fromkeys(tactics) for q in book.questions.get(t, [])]
    if not covered:
        asked.insert(
            0, "No modelshield rule covers this step: which signal would tell us it happened, and who sees it?"
        )
    return tuple(dict.fromkeys(asked))


def _escalate(book: Playbook, severity: Severity | None) -> tuple[tuple[str, ...], int | None]:
    if severity is None or severity not in book.escalation:
        return (), None
    esc = book.escalation[severity]
    names = {r.id: r.name for r in book.roles}
    return tuple(names[r] for r in esc.notify), esc.within_minutes


def from_report(report: ThreatReport, book: Playbook, *, injects: int = 6, interval: int = 10) -> Exercise:
    """An exercise from the worst open findings of a threat model, one inject each."""
    if injects < 1:
        raise InputError("--injects must be at least 1")
    chosen = [f for f in report.findings if f.status is Status.open][:injects]  # findings come worst first
    if not chosen:
        raise InputError(f"{report.system} has no open finding to exercise")
    steps = []
    for i, f in enumerate(chosen):
        notify, within = _escalate(book, f.severity)
        tactics = [t for tid in f.atlas for t in _tactics_of().get(tid, ())]
        steps.append(
            Inject(
                at_minutes=i * interval,
                title=f"{f.title} ({f.element})",
                situation=f"{f.description} This is now happening on {f.element!r}.",
                techniques=tuple(f.atlas),
                severity=f.severity,
                detect=tuple(m.control for m in f.mitigations if m.control),
                contain=tuple(m.action for m in f.mitigations),
                notify=notify,
                within_minutes=within,
                questions=_questions(book, tactics, covered=any(m.control for m in f.mitigations)),
            )
        )
    return Exercise(
        title=f"Tabletop: {report.system}",
        source=f"threat model {report.system!r}: the {len(chosen)} worst open findings",
        objective="Check that each threat the model calls open would be detected, contained and escalated in time.",
        roles=tuple(book.roles),
        injects=tuple(steps),
    )


def from_case_study(
    study: CaseStudy, book: Playbook, libraries: tuple[RuleLibrary, ...], *, interval: int = 10
) -> Exercise:
    """An exercise that replays a real incident, one inject per step of its procedure."""
    atlas = load_atlas()
    rules = {r.id: r for lib in libraries for r in lib.rules}
    steps = []
    for i, s in enumerate(study.steps):
        covering = [rules[r] for r in s.rules if r in rules]
        severity = max((r.severity for r in covering), key=lambda v: v.rank, default=None)
        notify, within = _escalate(book, severity)
        steps.append(
            Inject(
                at_minutes=i * interval,
                title=f"{atlas.tactics.get(s.tactic, s.tactic)}: {atlas.techniques.get(s.technique, s.technique)}",
                situation=s.description,
                techniques=(s.technique,),
                severity=severity,
                detect=tuple(
                    dict.fromkeys(f"{r.id}: {c}" for r in covering for m in r.mitigations if (c := m.control))
                ),
                contain=tuple(f"{m} {atlas.name(m)}" for m in s.mitigations),
                notify=notify,
                within_minutes=within,
                questions=_questions(book, [s.tactic], covered=bool(covering)),
            )
        )
    return Exercise(
        title=f"Tabletop: {study.name}",
        source=f"MITRE ATLAS {study.id} ({study.kind}, {study.date}), ATLAS {atlas.version}",
        objective=f"Replay {study.target}'s incident against our own system: {study.summary}",
        roles=tuple(book.roles),
        injects=tuple(steps),
    )


def exercise_json(ex: Exercise) -> dict[str, Any]:
    return {
        "title": ex.title,
        "source": ex.source,
        "objective": ex.objective,
        "roles": [r.model_dump() for r in ex.roles],
        "injects": [
            {
                "at_minutes": i.at_minutes,
                "title": i.title,
                "situation": i.situation,
                "techniques": list(i.techniques),
                "severity": i.severity.value if i.severity else None,
                "covered": i.covered,
                "expected": {
                    "detect": list(i.detect),
                    "contain": list(i.contain),
                    "notify": list(i.notify),
                    "within_minutes": i.within_minutes,
                },
                "questions": list(i.questions),
            }
            for i in ex.injects
        ],
    }


def render_exercise_markdown(ex: Exercise) -> str:
    """The facilitator's script: roles, then each inject with the expected responses and a scoring line."""
    out = [f"# {ex.title}", "", f"Source: {ex.source}", "", f"**Objective.** {ex.objective}", "", "## Roles", ""]
    out += [f"- **{r.name}** — {r.duty}" for r in ex.roles]
    covered = sum(i.covered for i in ex.injects)
    out += ["", f"## Injects ({len(ex.injects)}; {covered} with a modelshield control expected to respond)", ""]
    for n, i in enumerate(ex.injects, 1):
        out += [f"### {n}. T+{i.at_minutes} min — {i.title}", "", i.situation, ""]
        if i.severity is not None:
            out.append(f"- Severity: **{i.severity.value}**")
        out.append(f"- Expected detection: {'; '.join(f'`{d}`' for d in i.detect) or '**none in place** — discuss'}")
        out += [f"- Expected containment: {c}" for c in i.contain]
        if i.notify:
            out.append(f"- Escalate within {i.within_minutes} min to: {', '.join(i.notify)}")
        out += [f"- Ask: {q}" for q in i.questions]
        out += ["- Score: detected? (by what, at T+?) · contained? (how) · escalated in time? (to whom)", ""]
    return "\n".join(out)


__all__ = [
    "Exercise",
    "Inject",
    "Playbook",
    "builtin_playbook",
    "exercise_json",
    "from_case_study",
    "from_report",
    "load_playbook",
    "parse_playbook",
    "render_exercise_markdown",
]
