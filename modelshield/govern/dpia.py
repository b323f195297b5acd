"""Data protection impact assessments (GDPR Art. 35) in the ICO's seven steps, filled from what modelshield knows.

The ICO's DPIA template (https://ico.org.uk/for-organisations/uk-gdpr-guidance-and-resources/accountability-and-
governance/data-protection-impact-assessments-dpias/) has seven steps: 1 identify the need for a DPIA, 2 describe
the processing (nature, scope, context, purposes), 3 consultation, 4 necessity and proportionality, 5 identify
and assess risks (likelihood × severity), 6 measures to reduce them, 7 sign off and record outcomes.

What a machine can know comes from the records other commands wrote: the registry entry and its approvals (the
registry's audit log, ``history``), the lineage (training data by digest, record counts, sources, serving), the
evidence (``evidence.gather``: assess robust accuracy, privacy audit membership AUC/advantage, ε spent, threat
model), incidents (``metrics.incidents``), a minimisation report (``minimise``), consent scopes and DPAs
(``consent``, ``dpa``). What only people can say — purposes, context, consultation, lawful basis, sign-off —
comes from an answers YAML, validated. A question nothing answers says so ("not recorded — add …"): a DPIA is
a record of what is known, never a form filled with defaults. Risks are scored on the ICO's matrix: likelihood
(remote, possible, probable) × severity (minimal, significant, severe) → low, medium or high.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from modelshield import __version__
from modelshield.core.errors import InputError
from modelshield.core.files import load_yaml
from modelshield.govern.evidence import Evidence

Likelihood = Literal["remote", "possible", "probable"]
Severity = Literal["minimal", "significant", "severe"]
LIKELIHOOD: dict[str, int] = {"remote": 1, "possible": 2, "probable": 3}
SEVERITY: dict[str, int] = {"minimal": 1, "significant": 2, "severe": 3}
#: a membership attack this much better than chance (max TPR − FPR) makes disclosure probable; half of it, possible
MIA_ADVANTAGE_HIGH = 0.2
MIA_AUC_HIGH, MIA_AUC_SOME = 0.6, 0.55
ROBUST_LOW, ROBUST_SOME = 0.5, 0.8
#: the ICO's screening criteria a model meets by what it is (innovative technology is on the ICO's list)
STEPS = (
    "Step 1: Identify the need for a DPIA",
    "Step 2: Describe the processing",
    "Step 3: Consultation process",
    "Step 4: Assess necessity and proportionality",
    "Step 5: Identify and assess risks",
    "Step 6: Identify measures to reduce risk",
    "Step 7: Sign off and record outcomes",
)


# -- the people's answers -------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Consultation(_Strict):
    who: str
    when: str | None = None
    summary: str


class RiskAnswer(_Strict):
    risk: str
    likelihood: Likelihood
    severity: Severity
    harm: str | None = None


class MeasureAnswer(_Strict):
    risk: str
    measure: str
    effect: Literal["eliminated", "reduced", "accepted"]
    residual: Literal["low", "medium", "high"]
    approved: bool = False


class SignOff(_Strict):
    measures_approved_by: str | None = None
    residual_risks_approved_by: str | None = None
    dpo_advice: str | None = None
    dpo_advice_accepted: bool | None = None
    dpo_advice_overruled_because: str | None = None
    consultation_responses_reviewed_by: str | None = None
    review_by: str | None = None
    date: str | None = None


class Answers(_Strict):
    """What only people can say, from the answers YAML (every key optional; unknown keys are an error)."""

    title: str | None = None
    controller: str | None = None
    dpo: str | None = None
    need: str | None = None
    purposes: list[str] = []
    nature: str | None = None
    scope: str | None = None
    context: str | None = None
    data_subjects: str | None = None
    special_category_data: str | None = None
    retention: str | None = None
    lawful_basis: str | None = None
    necessity: str | None = None
    consultation: list[Consultation] = []
    risks: list[RiskAnswer] = []
    measures: list[MeasureAnswer] = []
    sign_off: SignOff | None = None


def load_answers(path: Path) -> Answers:
    """The answers YAML, validated; a bad file is one ``InputError`` naming the first problem."""
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    doc = load_yaml(path) or {}
    try:
        return Answers.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(f"{path}: {where}: {first['msg']}", hint=f"{exc.error_count()} problem(s) in all") from None


# -- the document -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One line of a step: a label and what is known, where it came from — or what to add when nothing is."""

    label: str
    value: str | None
    source: str | None = None
    missing: str | None = None


@dataclass(frozen=True)
class Risk:
    """One risk on the ICO's matrix, scored from the evidence (``source``) or from the answers."""

    risk: str
    harm: str
    likelihood: str
    severity: str
    overall: str
    basis: str
    source: str | None = None


@dataclass(frozen=True)
class Measure:
    risk: str
    measure: str
    effect: str
    residual: str | None
    approved: bool | None
    source: str | None = None


@dataclass
class Dpia:
    """A DPIA as data: seven steps of items, the risk register, the measures and the outcome."""

    model: str
    digest: str
    title: str
    generated: str
    steps: dict[str, list[Item]]
    risks: list[Risk]
    measures: list[Measure]
    outcome: str
    signed_off: bool
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["generated_by"] = f"modelshield {__version__}"
        return doc


def overall(likelihood: str, severity: str) -> str:
    """The ICO matrix: likelihood × severity (1–3 each) → low (≤ 2), medium (3–4), high (≥ 6)."""
    score = LIKELIHOOD[likelihood] * SEVERITY[severity]
    return "low" if score <= 2 else "medium" if score <= 4 else "high"


def _risk(name: str, harm: str, likelihood: str, severity: str, basis: str, source: str | None) -> Risk:
    return Risk(name, harm, likelihood, severity, overall(likelihood, severity), basis, source)


def _membership_risk(ev: Evidence) -> Risk | None:
    p = ev.privacy
    advantage, auc = p.get("membership_advantage"), p.get("membership_auc")
    source = p.get("audit_source")
    name = "Membership disclosure"
    harm = "an attacker with the model learns that a person's record was in the training data"
    if advantage is None and auc is None:
        return None
    if advantage is not None and advantage >= MIA_ADVANTAGE_HIGH or auc is not None and auc >= MIA_AUC_HIGH:
        likelihood = "probable"
    elif advantage is not None and advantage >= MIA_ADVANTAGE_HIGH / 2 or auc is not None and auc >= MIA_AUC_SOME:
        likelihood = "possible"
    else:
        likelihood = "remote"
    figures = ", ".join(
        f"{k} {v:.3f}"
        for k, v in (("advantage (max TPR−FPR)", advantage), ("AUC", auc), ("ε ≥", p.get("epsilon_lower_bound")))
        if isinstance(v, int | float)
    )
    basis = f"membership audit: {figures} (probable at advantage ≥ {MIA_ADVANTAGE_HIGH} or AUC ≥ {MIA_AUC_HIGH})"
    return _risk(name, harm, likelihood, "significant", basis, source)


def _evasion_risk(ev: Evidence) -> Risk | None:
    robust = ev.robust_accuracy
    if robust is None:
        return None
    likelihood = "probable" if robust < ROBUST_LOW else "possible" if robust < ROBUST_SOME else "remote"
    worst = min((m for m in ev.performance if m.name == "robust accuracy"), key=lambda m: m.value)
    basis = (
        f"worst robust accuracy {robust:.3f} ({worst.slice}); probable below {ROBUST_LOW}, possible below {ROBUST_SOME}"
    )
    harm = "manipulated inputs change decisions about people (wrong outcomes, unfair treatment)"
    return _risk("Decisions changed by adversarial inputs", harm, likelihood, "significant", basis, worst.source)


def _minimisation_risk(report: dict[str, Any], source: str) -> Risk:
    flagged = [f for f in report.get("features", []) if f.get("personal_data")]
    needless = [f for f in flagged if f.get("removable")]
    metric = report.get("metric", "accuracy")
    harm = "personal data processed that the purpose does not need (Art. 5(1)(c))"
    if needless:
        named = ", ".join(f"{f['feature']} ({f['personal_data']}, earns {f['drop']:+.4f} {metric})" for f in needless)
        return _risk("Excessive personal data", harm, "probable", "significant", f"dispensable: {named}", source)
    basis = f"{len(flagged)} personal-data column(s), each earning at least the threshold {report.get('threshold')}"
    return _risk("Excessive personal data", harm, "remote", "significant", basis, source)


def _threat_risk(ev: Evidence) -> Risk | None:
    threats = ev.security.get("threats")
    if not threats:
        return None
    by = threats.get("open_by_severity") or {}
    open_n = sum(by.values()) if by else int((threats.get("counts") or {}).get("open", 0))
    serious = sum(n for s, n in by.items() if s in ("critical", "high"))
    likelihood = "probable" if serious else "possible" if open_n else "remote"
    detail = ", ".join(f"{n} {s}" for s, n in sorted(by.items())) or f"{open_n} open"
    harm = "a known, unmitigated attack path on the model or its data is used against the people in it"
    return _risk("Open threats in the threat model", harm, likelihood, "significant", detail, threats.get("source"))


def _incident_risk(incidents: tuple[int, str | None] | None) -> Risk | None:
    if incidents is None:
        return None
    count, last = incidents
    likelihood = "probable" if count >= 3 else "possible" if count else "remote"
    basis = f"{count} security incident record(s) in the audit log" + (f", last {last}" if last else "")
    harm = "a repeat of a recorded incident (extraction, integrity failure, drift) affects people"
    return _risk("Security incidents recur", harm, likelihood, "significant", basis, "audit log")


def _tamper_risk(ev: Evidence) -> Risk:
    signed = bool(ev.security.get("signed"))
    basis = "the registered version is signed" if signed else "the registered version carries no signature"
    harm = "a substituted or tampered model makes decisions about people"
    return _risk("Model tampering", harm, "remote" if signed else "possible", "significant", basis, "registry")


def _lawfulness_risk(consent: list[dict[str, Any]] | None, uncovered: list[str], dpa_flags: list[str]) -> Risk | None:
    if consent is None and not dpa_flags:
        return None
    harm = "personal data used without a lawful basis, or beyond what a data processing agreement allows"
    problems = [f"no active consent scope covers {d}" for d in uncovered] + dpa_flags
    if problems:
        return _risk("Processing without a lawful basis", harm, "probable", "severe", "; ".join(problems), "govern")
    basis = "every source data set is covered by an active consent scope; no DPA flags"
    return _risk("Processing without a lawful basis", harm, "remote", "severe", basis, "govern")


def _item(label: str, value: Any, source: str | None = None, missing: str | None = None) -> Item:
    if value is None or value == [] or value == "":
        return Item(label, None, None, missing or "not recorded")
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    return Item(label, str(value), source)


def build(
    ev: Evidence,
    *,
    answers: Answers | None = None,
    lineage: dict[str, Any] | None = None,
    approvals: Sequence[dict[str, Any]] = (),
    incidents: tuple[int, str | None] | None = None,
    minimisation: tuple[dict[str, Any], str] | None = None,
    consent: list[dict[str, Any]] | None = None,
    uncovered: Sequence[str] = (),
    dpas: Sequence[dict[str, Any]] = (),
    now: datetime | None = None,
) -> Dpia:
    """The DPIA of the model version ``ev`` describes.

    ``lineage``: ``{"training_data": [...], "sources": [...], "served": [...]}`` (dataset dicts, SERVE runs);
    ``approvals``: the registry audit records that configured its serving; ``incidents``: (count, last);
    ``minimisation``: a ``minimise`` JSON report and its path; ``consent``: the active consent scopes covering
    the source data (None when no consent store was read) and ``uncovered`` the data sets none covers;
    ``dpas``: ``{"dpa": Dpa.to_dict(), "use": ModelUse.to_dict()}`` for each DPA whose data made this version."""
    a = answers or Answers()
    mv = ev.model
    when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    training = (lineage or {}).get("training_data") or []
    sources = (lineage or {}).get("sources") or []
    served = (lineage or {}).get("served") or []
    records = sum(int(d.get("records") or 0) for d in training) or None
    report, report_path = minimisation if minimisation else (None, None)
    flagged = [f for f in (report or {}).get("features", []) if f.get("personal_data")]
    add = "add it to the answers file (--answers)"
    steps: dict[str, list[Item]] = {s: [] for s in STEPS}

    # step 1 -----------------------------------------------------------------------------------------------------
    screening = [
        "innovative technology: a machine-learning model (on the ICO's list of processing likely to be high risk)"
    ]
    if flagged:
        screening.append(f"personal data in the training table: {', '.join(f['feature'] for f in flagged)}")
    if served:
        screening.append("automated decisions: the model serves predictions through the gateway")
    steps[STEPS[0]] += [
        _item("Why a DPIA is needed", a.need, "answers", f"not recorded — {add} as need:"),
        _item("Screening criteria met (from the records)", screening, "registry, lineage, minimisation"),
    ]

    # step 2 -----------------------------------------------------------------------------------------------------
    data_lines = [
        f"{d.get('name')} {d.get('digest') or '(no digest)'}"
        + (f", {d['records']} records" if d.get("records") is not None else "")
        for d in training
    ] or [*mv.datasets]
    purposes = list(a.purposes) + sorted({s["purpose"] for s in consent or []} - set(a.purposes))
    served_lines = [f"{r.get('job')} at {r.get('event_time')}" for r in served]
    approval_lines = [
        f"{x.get('action')} v{x.get('version')} by {x.get('actor')} at {x.get('time')}" for x in approvals
    ]
    steps[STEPS[1]] += [
        _item("Model", f"{mv.ref}, owner {mv.owner}, status {mv.status}, registered {mv.created_at}", "registry"),
        _item("Model digest", mv.digest, "registry"),
        _item("Approvals (registry audit log)", approval_lines, "registry audit log", "none recorded"),
        _item(
            "Nature: training data (by digest)",
            data_lines,
            "lineage" if training else "registry",
            "no training data recorded — load the run's lineage (modelshield govern load RUN_DIR)",
        ),
        _item(
            "Nature: source records",
            [f"{d.get('name')} {d.get('digest') or ''}" for d in sources],
            "lineage",
            "not recorded — load the run's lineage (modelshield govern load RUN_DIR)",
        ),
        _item(
            "Nature: how the data is collected, used, stored", a.nature, "answers", f"not recorded — {add} as nature:"
        ),
        _item("Nature: served", served_lines, "lineage", "no serving recorded"),
        _item("Scope: records processed", records, "lineage", "not recorded — lineage events carry no record counts"),
        _item(
            "Scope: personal data columns",
            [f"{f['feature']} ({f['personal_data']})" for f in flagged],
            report_path,
            "none flagged by the minimisation report"
            if report is not None
            else "not measured — run modelshield govern minimise DATA --target COL --format json, pass --minimisation",
        ),
        _item("Scope: ingest screening", _ingest(ev), ev.training.get("source")),
        _item("Scope (answers)", a.scope, "answers", f"not recorded — {add} as scope:"),
        _item("Data subjects", a.data_subjects, "answers", f"not recorded — {add} as data_subjects:"),
        _item(
            "Special category data",
            a.special_category_data,
            "answers",
            f"not recorded — {add} as special_category_data:",
        ),
        _item("Retention", a.retention, "answers", f"not recorded — {add} as retention:"),
        _item("Context", a.context, "answers", f"not recorded — {add} as context:"),
        _item("Purposes", purposes, "answers, consent scopes", f"not recorded — {add} as purposes:"),
        _item("Intended use (model card)", ev.considerations.get("intended_use"), "registry metadata / considerations"),
        _item(
            "Data processing agreements",
            [_dpa_line(d) for d in dpas],
            "govern dpa",
            "none recorded for this model's data (modelshield govern dpa add ...)",
        ),
    ]

    # step 3 -----------------------------------------------------------------------------------------------------
    steps[STEPS[2]] += [
        _item(f"Consulted: {c.who}" + (f" ({c.when})" if c.when else ""), c.summary, "answers") for c in a.consultation
    ] or [_item("Consultation", None, missing=f"not recorded — {add} as consultation: [{{who, when, summary}}]")]

    # step 4 -----------------------------------------------------------------------------------------------------
    bases = sorted({f"{s['legal_basis']} ({s['purpose']}, {s['dataset']})" for s in consent or []})
    steps[STEPS[3]] += [
        _item("Lawful basis (answers)", a.lawful_basis, "answers", f"not recorded — {add} as lawful_basis:"),
        _item(
            "Lawful basis (consent scopes)",
            bases,
            "govern consent",
            "no consent store read" if consent is None else "no active consent scope covers the source data",
        ),
        _item(
            "Source data without an active consent scope",
            list(uncovered) or None,
            "govern consent",
            "none" if consent is not None else "not checked",
        ),
        _item(
            "Minimisation",
            _minimisation_line(report),
            report_path,
            "not measured — run modelshield govern minimise DATA --target COL --format json, pass --minimisation",
        ),
        _item("Necessity and proportionality (answers)", a.necessity, "answers", f"not recorded — {add} as necessity:"),
        _item("Data quality (ingest)", _ingest(ev), ev.training.get("source")),
    ]

    # step 5 -----------------------------------------------------------------------------------------------------
    dpa_flags = [f"DPA {d['dpa']['vendor']}: {flag}" for d in dpas for flag in d["use"].get("flags", [])]
    membership = _membership_risk(ev)
    found = [
        membership,
        _evasion_risk(ev),
        _minimisation_risk(*minimisation) if minimisation else None,
        _threat_risk(ev),
        _incident_risk(incidents),
        _tamper_risk(ev),
        _lawfulness_risk(consent, list(uncovered), dpa_flags),
    ]
    risks = [r for r in found if r is not None]
    risks += [_risk(r.risk, r.harm or "", r.likelihood, r.severity, "answers", "answers") for r in a.risks]
    unassessed = []
    if membership is None:
        unassessed.append("membership disclosure — run modelshield privacy audit --json F, pass --privacy F")
    if ev.robust_accuracy is None:
        unassessed.append("adversarial inputs — run modelshield assess, pass --assess report.json")
    if minimisation is None:
        unassessed.append("excessive personal data — run modelshield govern minimise, pass --minimisation")
    steps[STEPS[4]].append(
        _item("Not assessed (no evidence)", unassessed or None, None, "none: every risk has evidence")
    )

    # step 6 -----------------------------------------------------------------------------------------------------
    measures = _evidence_measures(ev, report)
    measures += [Measure(m.risk, m.measure, m.effect, m.residual, m.approved, "answers") for m in a.measures]
    if not measures:
        steps[STEPS[5]].append(_item("Measures", None, missing=f"not recorded — {add} as measures: [...]"))

    # step 7 -----------------------------------------------------------------------------------------------------
    s = a.sign_off or SignOff()
    steps[STEPS[6]] += [
        _item(
            "Measures approved by",
            s.measures_approved_by,
            "answers",
            f"not recorded — {add} as sign_off.measures_approved_by",
        ),
        _item(
            "Residual risks approved by",
            s.residual_risks_approved_by,
            "answers",
            f"not recorded — {add} as sign_off.residual_risks_approved_by",
        ),
        _item("DPO advice", s.dpo_advice, "answers", f"not recorded — {add} as sign_off.dpo_advice"),
        _item(
            "DPO advice accepted",
            None
            if s.dpo_advice_accepted is None
            else (
                "yes" if s.dpo_advice_accepted else f"no — {s.dpo_advice_overruled_because or 'reason not recorded'}"
            ),
            "answers",
            "not recorded",
        ),
        _item("Consultation responses reviewed by", s.consultation_responses_reviewed_by, "answers", "not recorded"),
        _item("Kept under review by", s.review_by, "answers", "not recorded"),
        _item("Date", s.date, "answers", "not recorded"),
    ]
    high = [r for r in risks if r.overall == "high"]
    unmitigated = [
        r.risk for r in high if not any(m.risk == r.risk and m.residual in ("low", "medium") for m in measures)
    ]
    signed = bool(s.measures_approved_by and s.residual_risks_approved_by and s.dpo_advice)
    if unmitigated:
        outcome = (
            f"high residual risk: {', '.join(unmitigated)} — consult the ICO before processing (Art. 36)"
            if signed
            else f"open: high risk without a measure bringing it down ({', '.join(unmitigated)})"
        )
    else:
        outcome = "signed off" if signed else "open: awaiting sign-off (sign_off in the answers file)"
    return Dpia(
        model=mv.ref,
        digest=mv.digest,
        title=a.title or f"DPIA: {mv.ref}",
        generated=when,
        steps=steps,
        risks=risks,
        measures=measures,
        outcome=outcome,
        signed_off=signed and not unmitigated,
        sources=[*ev.sources, *([report_path] if report_path else [])],
    )


def _ingest(ev: Evidence) -> str | None:
    t = ev.training
    if t.get("records") is None:
        return None
    return f"{t.get('records')} records screened, {t.get('accepted')} accepted, {t.get('quarantined')} quarantined"


def _dpa_line(d: dict[str, Any]) -> str:
    dpa, use = d["dpa"], d["use"]
    flags = f" — FLAGGED: {'; '.join(use['flags'])}" if use.get("flags") else ""
    return f"{dpa['vendor']} (DPA #{dpa['id']}): purposes {', '.join(dpa['purposes'])}, until {dpa.get('expires_at') or 'open-ended'}{flags}"


def _minimisation_line(report: dict[str, Any] | None) -> str | None:
    if report is None:
        return None
    metric = report.get("metric", "accuracy")
    line = (
        f"{len(report.get('recommended', []))} of {len(report.get('features', []))} features cost less than "
        f"{report.get('threshold')} {metric} ({report.get('method')}, {report.get('model')})"
    )
    if report.get("recommended"):
        line += f": {', '.join(report['recommended'])}; removed together they cost {report.get('joint_drop')}"
    return line


def _evidence_measures(ev: Evidence, report: dict[str, Any] | None) -> list[Measure]:
    """Controls the records show in place, each against the risk it reduces (residual left to people)."""
    out = []
    eps = ev.privacy.get("epsilon_spent")
    if isinstance(eps, int | float):
        delta = ev.privacy.get("delta")
        out.append(
            Measure(
                "Membership disclosure",
                f"differentially private training, ε = {eps:g}"
                + (f", δ = {delta:g}" if isinstance(delta, int | float) else ""),
                "reduced",
                None,
                None,
                ev.privacy.get("dp_source"),
            )
        )
    method = ev.info.get("method")
    if method and method not in ("standard", "dp"):
        out.append(
            Measure(
                "Decisions changed by adversarial inputs", f"trained with {method}", "reduced", None, None, "model.json"
            )
        )
    if ev.security.get("signed"):
        out.append(
            Measure(
                "Model tampering",
                "model signed (OpenSSF model signing), verified by the gateway",
                "reduced",
                None,
                None,
                "registry",
            )
        )
    scans = ev.security.get("scans") or []
    if scans and all(x.get("status") == "passed" for x in scans):
        out.append(
            Measure("Model tampering", f"{len(scans)} model-file scan(s) passed", "reduced", None, None, "pipeline")
        )
    if report and report.get("recommended"):
        out.append(
            Measure(
                "Excessive personal data",
                f"stop collecting {', '.join(report['recommended'])} (measured as dispensable)",
                "reduced",
                None,
                None,
                "minimisation report",
            )
        )
    return out


# -- rendering -----------------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(d: Dpia) -> str:
    """The DPIA as Markdown: the seven steps, the risk register (step 5) and the measures (step 6)."""
    out = [
        f"# {d.title}",
        "",
        f"Model {d.model} `{d.digest}` — generated {d.generated} by modelshield {__version__}.",
        "",
    ]
    out += [f"**Outcome: {d.outcome}**", ""]
    for step in STEPS:
        out += [f"## {step}", ""]
        for it in d.steps[step]:
            if it.value is None:
                out.append(f"- **{it.label}**: *{it.missing}*")
            else:
                out.append(f"- **{it.label}**: {it.value}" + (f" _(source: {it.source})_" if it.source else ""))
        if step == STEPS[4]:
            out += ["", "| risk | harm | likelihood | severity | overall | basis |", "|---|---|---|---|---|---|"]
            out += [
                "| "
                + " | ".join(_cell(c) for c in (r.risk, r.harm, r.likelihood, r.severity, f"**{r.overall}**", r.basis))
                + " |"
                for r in d.risks
            ]
        if step == STEPS[5] and d.measures:
            out += ["| risk | measure | effect | residual risk | approved |", "|---|---|---|---|---|"]
            out += [
                "| "
                + " | ".join(
                    _cell(c)
                    for c in (
                        m.risk,
                        m.measure,
                        m.effect,
                        m.residual or "not recorded",
                        "not recorded" if m.approved is None else ("yes" if m.approved else "no"),
                    )
                )
                + " |"
                for m in d.measures
            ]
        out.append("")
    if d.sources:
        out += ["## Evidence", ""] + [f"- {s}" for s in d.sources] + [""]
    return "\n".join(out)


def html(d: Dpia) -> str:
    """The DPIA as a self-contained HTML page; every value is escaped (they come from files and people)."""
    e = html_lib.escape
    parts = [
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(d.title)}</title><style>body{{font-family:system-ui,sans-serif;max-width:64rem;margin:2rem auto;"
        "padding:0 1rem}table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
        "vertical-align:top}.missing{color:#a33;font-style:italic}.high{background:#f8d7d7}.medium{background:#fdf3e1}"
        ".low{background:#e6f4e6}.src{color:#666;font-size:.85em}</style></head><body>",
        f"<h1>{e(d.title)}</h1><p>Model {e(d.model)} <code>{e(d.digest)}</code> — generated {e(d.generated)} by "
        f"modelshield {e(__version__)}.</p><p><strong>Outcome: {e(d.outcome)}</strong></p>",
    ]
    for step in STEPS:
        parts.append(f"<h2>{e(step)}</h2><ul>")
        for it in d.steps[step]:
            if it.value is None:
                parts.append(
                    f"<li><strong>{e(it.label)}</strong>: <span class='missing'>{e(it.missing or '')}</span></li>"
                )
            else:
                src = f" <span class='src'>(source: {e(it.source)})</span>" if it.source else ""
                parts.append(f"<li><strong>{e(it.label)}</strong>: {e(it.value)}{src}</li>")
        parts.append("</ul>")
        if step == STEPS[4]:
            parts.append(
                "<table><tr><th>risk</th><th>harm</th><th>likelihood</th><th>severity</th><th>overall</th><th>basis</th></tr>"
            )
            parts += [
                f"<tr class='{e(r.overall)}'><td>{e(r.risk)}</td><td>{e(r.harm)}</td><td>{e(r.likelihood)}</td>"
                f"<td>{e(r.severity)}</td><td><strong>{e(r.overall)}</strong></td><td>{e(r.basis)}</td></tr>"
                for r in d.risks
            ]
            parts.append("</table>")
        if step == STEPS[5] and d.measures:
            parts.append(
                "<table><tr><th>risk</th><th>measure</th><th>effect</th><th>residual risk</th><th>approved</th></tr>"
            )
            parts += [
                f"<tr><td>{e(m.risk)}</td><td>{e(m.measure)}</td><td>{e(m.effect)}</td><td>{e(m.residual or 'not recorded')}</td>"
                f"<td>{'not recorded' if m.approved is None else ('yes' if m.approved else 'no')}</td></tr>"
                for m in d.measures
            ]
            parts.append("</table>")
    if d.sources:
        parts.append("<h2>Evidence</h2><ul>" + "".join(f"<li>{e(s)}</li>" for s in d.sources) + "</ul>")
    parts.append("</body></html>\n")
    return "".join(parts)


# -- what the stores hold ---------------------------------------------------------------------------------------


def audit_advantage(path: Path) -> float | None:
    """The largest TPR − FPR any attack in a ``privacy audit --json`` file reached (its ROC curves)."""
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    best = None
    for row in doc.get("attacks") or [] if isinstance(doc, dict) else []:
        roc = row.get("roc") if isinstance(row, dict) else None
        if isinstance(roc, dict) and roc.get("tpr") and roc.get("fpr"):
            gap = max(t - f for t, f in zip(roc["tpr"], roc["fpr"], strict=False))
            best = gap if best is None else max(best, gap)
    return best


def load_minimisation(path: Path) -> tuple[dict[str, Any], str]:
    """A ``govern minimise --format json`` report and its path."""
    import json

    if not path.is_file():
        raise InputError(f"{path} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or "features" not in doc or "recommended" not in doc:
        raise InputError(f"{path} is not a minimisation report (modelshield govern minimise --format json)")
    return doc, str(path)


def records(ev: Evidence, db: str | None, audit_db: str | None = None) -> dict[str, Any]:
    """The keyword arguments of ``build`` that the shared store holds for ``ev``'s version: lineage, serving
    approvals, incidents (in ``audit_db``, default ``db``), consent scopes covering the training data and DPAs."""
    from modelshield.core.storage import open_engine
    from modelshield.govern.consent import ConsentStore, covering
    from modelshield.govern.dpa import DpaStore, dpa_models
    from modelshield.govern.history import timeline
    from modelshield.govern.lineage import LineageStore
    from modelshield.govern.metrics import incidents
    from modelshield.govern.scopes import DataTarget, lineage_digests

    mv = ev.model
    out: dict[str, Any] = {}
    with LineageStore.open(db) as store:
        node, used = store.upstream(mv.digest), store.downstream(mv.digest)
        trained_on = [n.dataset for r in node.produced_by for n in r.inputs]
        if node.produced_by or used:
            out["lineage"] = {
                "training_data": [d.to_dict() for d in trained_on],
                "sources": [d.to_dict() for d in node.sources()] if node.produced_by else [],
                "served": [r.to_dict() for r in used if r.job_type == "SERVE"],
            }
        with DpaStore.open(db) as dpa_store:
            out["dpas"] = [
                {"dpa": dpa.to_dict(), "use": use.to_dict()}
                for dpa in dpa_store.dpas()
                for use in dpa_models(dpa, store)
                if (use.model, use.version) == (mv.name, mv.version)
            ]
    audit = open_engine(db)
    try:
        try:
            out["approvals"] = [s.approval.to_dict() for s in timeline(audit, mv.name)]
        except InputError:  # registered in another database
            out["approvals"] = []
        if audit_db is None:
            out["incidents"] = incidents(audit, mv.name)
    finally:
        audit.dispose()
    if audit_db is not None:
        gateway = open_engine(audit_db)
        try:
            out["incidents"] = incidents(gateway, mv.name)
        finally:
            gateway.dispose()
    with ConsentStore.open(db) as consent:
        scopes = consent.scopes(active_at=datetime.now(UTC))
        if scopes:
            # consent is given for the records people supplied: the lineage's sources, else what the registry names
            leaves = node.sources() if node.produced_by else []
            targets = [DataTarget(d.name, d.digest) for d in leaves] or [DataTarget(d) for d in mv.datasets]
            known = lineage_digests(consent.engine, [s.dataset for s in scopes])
            covered = {t.name: covering(scopes, t, known) for t in targets}
            out["consent"] = [s.to_dict() for found in covered.values() for s in found]
            out["uncovered"] = [name for name, found in covered.items() if not found]
    return out


def record_sign_off(d: Dpia, text: str, db: str | None) -> int:
    """A signed-off DPIA as an audit event (``govern.dpia``: model, digest, outcome, approvers, SHA-256 of the
    document); returns its sequence number. Refuses a DPIA that is not signed off."""
    import hashlib

    from modelshield.audit.log import AuditLog

    if not d.signed_off:
        raise InputError(f"the DPIA is not signed off ({d.outcome}); nothing recorded")
    step7 = {it.label: it.value for it in d.steps[STEPS[6]]}
    with AuditLog.open(db) as log:
        return log.append(
            {
                "action": "govern.dpia",
                "model": d.model.split(":")[0],
                "version": int(d.model.split(":")[1]),
                "model_digest": d.digest,
                "outcome": d.outcome,
                "measures_approved_by": step7.get("Measures approved by"),
                "residual_risks_approved_by": step7.get("Residual risks approved by"),
                "document_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "risks": {r.risk: r.overall for r in d.risks},
            }
        )
