"""What is known about a model version, gathered from the files other commands wrote.

Sources, each optional: the registry entry (owner, status, signature, datasets, metadata — where a DP model's
budget and a user's ``intended_use`` live), the model folder's ``model.json`` (architecture, training method,
DP budget), the pipeline run folder that produced the version (found beside ``RUN_DIR/artifacts/model`` and
used only when a stage recorded the version's digest as its output), an ``assess`` report.json, a ``privacy
audit --json`` file, a ``threat check --format json`` report, and a YAML file of intended use and
considerations. Every figure keeps the file it came from, so a card says where each claim is evidenced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelshield.core.errors import InputError
from modelshield.core.files import load_yaml
from modelshield.registry.store import ModelVersion

#: keys of the intended-use YAML (and of registry metadata), as Mitchell et al.'s model card sections
CONSIDERATIONS = ("intended_use", "users", "out_of_scope", "limitations", "ethical_considerations", "tradeoffs")


@dataclass(frozen=True)
class Metric:
    """One measured figure: e.g. robust accuracy of PGD at L∞ 0.1, and the file that measured it."""

    name: str
    value: float
    slice: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "slice": self.slice, "source": self.source}


@dataclass
class Evidence:
    """A model version and what the evidence says about it; empty sections were not evidenced."""

    model: ModelVersion
    info: dict[str, Any] = field(default_factory=dict)  # model.json: arch, method, input_shape, num_classes
    considerations: dict[str, Any] = field(default_factory=dict)
    performance: list[Metric] = field(default_factory=list)
    privacy: dict[str, Any] = field(default_factory=dict)
    security: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    @property
    def robust_accuracy(self) -> float | None:
        """The worst robust accuracy any attack left (the figure a gate reads)."""
        robust = [m.value for m in self.performance if m.name == "robust accuracy"]
        return min(robust) if robust else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.to_dict(),
            "info": self.info,
            "considerations": self.considerations,
            "performance": [m.to_dict() for m in self.performance],
            "privacy": self.privacy,
            "security": self.security,
            "training": self.training,
            "sources": self.sources,
        }


def _json(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path} is not JSON: {exc}") from None


def _mapping(doc: Any, path: Path, what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InputError(f"{path} is not {what} (expected a JSON object)")
    return doc


def run_folder(mv: ModelVersion) -> Path | None:
    """The pipeline run folder that wrote this version, if its state records the version's digest as an output."""
    model = Path(mv.path)
    if model.parent.name != "artifacts":
        return None
    state = model.parent.parent / "state.json"
    if not state.is_file():
        return None
    try:
        stages = json.loads(state.read_text(encoding="utf-8")).get("stages", {})
    except ValueError:
        return None
    produced = any(mv.digest in (s.get("outputs") or {}).values() for s in stages.values() if isinstance(s, dict))
    return state.parent if produced else None


def add_run(ev: Evidence, run: Path) -> None:
    """The stages of a pipeline run: assess, privacy, scan, sign, threat, sbom, ingest and a DP train."""
    path = run / "state.json"
    stages = _mapping(_json(path), path, "a pipeline state file").get("stages", {})
    src = str(path)
    for name, stage in stages.items():
        kind, status, details = stage.get("kind"), stage.get("status"), stage.get("details") or {}
        if kind == "assess":
            _assess_figures(ev, details.get("clean_accuracy"), details.get("robust_accuracy") or {}, details, src)
            ev.security["assessment"] = {"verdict": details.get("verdict"), "gate": status, "source": src}
        elif kind == "privacy":
            ev.privacy.update(
                membership_advantage=details.get("advantage"),
                membership_auc=details.get("auc"),
                epsilon_lower_bound=details.get("epsilon_lower_bound"),
                audit_gate=status,
                audit_source=src,
            )
        elif kind == "train" and details.get("method") == "dp":
            ev.privacy.update(epsilon_spent=details.get("epsilon"), delta=details.get("delta"), dp_source=src)
        elif kind == "scan":
            verdicts = [f.get("verdict") for f in (details.get("files") or {}).values()]
            scans = ev.security.setdefault("scans", [])
            scans.append(
                {"stage": name, "status": status, "files": len(verdicts), "unsafe": len(details.get("refused") or [])}
            )
        elif kind == "sign":
            ev.security["signed_in_pipeline"] = status == "passed"
        elif kind == "threat":
            counts = details.get("counts") or {}
            ev.security["threats"] = {
                "counts": counts,
                "open_at_or_above_bar": details.get("open_at_or_above"),
                "source": src,
            }
        elif kind == "sbom":
            ev.security["sbom"] = {"status": status, "reason": stage.get("reason"), "source": src}
        elif kind == "ingest":
            ev.training.update(
                records=details.get("records"),
                accepted=details.get("accepted"),
                quarantined=details.get("quarantined"),
                source=src,
            )
    ev.sources.append(src)


def _assess_figures(ev: Evidence, clean: Any, robust: dict[str, Any], details: dict[str, Any], src: str) -> None:
    eps = details.get("eps")
    if isinstance(clean, int | float):
        ev.performance.append(Metric("accuracy", float(clean), "clean test data", src))
    for attack, value in robust.items():
        if isinstance(value, int | float):
            ev.performance.append(Metric("robust accuracy", float(value), f"{attack} at L∞ ε={eps:g}", src))


def add_assess(ev: Evidence, path: Path) -> None:
    """An ``assess`` report.json: clean accuracy, every attack's robust accuracy at its budget, the verdict."""
    doc = _mapping(_json(path), path, "an assess report.json")
    if "clean_accuracy" not in doc:
        raise InputError(f"{path} is not an assess report.json (no clean_accuracy)")
    src = str(path)
    ev.performance.append(Metric("accuracy", float(doc["clean_accuracy"]), "clean test data", src))
    for a in doc.get("attacks") or []:
        budget = f"{a['norm']} ε={a['eps']:g}" if a.get("eps") is not None else f"{a.get('norm')} minimum-norm"
        ev.performance.append(Metric("robust accuracy", float(a["robust_accuracy"]), f"{a['attack']} at {budget}", src))
    ev.security["assessment"] = {
        "verdict": doc.get("verdict"),
        "gate": "passed" if doc.get("passed") else "failed",
        "source": src,
    }
    ev.sources.append(src)


def add_privacy_audit(ev: Evidence, path: Path) -> None:
    """A ``privacy audit --json`` file: the strongest membership attack's AUC and its ε lower bound."""
    doc = _mapping(_json(path), path, "a privacy audit JSON")
    rows = [r for r in doc.get("attacks") or [] if isinstance(r, dict)]
    if not rows:
        raise InputError(f"{path} is not a privacy audit JSON (no attacks)")
    ev.privacy.update(
        membership_auc=max(float(r.get("auc", 0.0)) for r in rows),
        epsilon_lower_bound=max(float(r.get("epsilon_lower_bound", 0.0)) for r in rows),
        audit_attacks=[r.get("attack") for r in rows],
        audit_source=str(path),
    )
    ev.sources.append(str(path))


def add_threat(ev: Evidence, path: Path) -> None:
    """A ``threat check`` JSON report: findings by status, and the open ones by severity."""
    doc = _mapping(_json(path), path, "a threat report")
    findings = doc.get("findings")
    if not isinstance(findings, list):
        raise InputError(f"{path} is not a threat report (no findings)")
    open_by: dict[str, int] = {}
    for f in findings:
        if isinstance(f, dict) and f.get("status") == "open":
            open_by[str(f.get("severity"))] = open_by.get(str(f.get("severity")), 0) + 1
    ev.security["threats"] = {"counts": doc.get("counts") or {}, "open_by_severity": open_by, "source": str(path)}
    ev.sources.append(str(path))


def add_considerations(ev: Evidence, path: Path) -> None:
    """Intended use and considerations from a YAML file (keys: ``CONSIDERATIONS``)."""
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    doc = load_yaml(path)
    doc = _mapping(doc, path, "a mapping of intended use and considerations")
    unknown = sorted(set(doc) - set(CONSIDERATIONS))
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(unknown)} (use {', '.join(CONSIDERATIONS)})")
    ev.considerations.update(doc)
    ev.sources.append(str(path))


def gather(
    mv: ModelVersion,
    *,
    run: Path | None = None,
    assess: Path | None = None,
    privacy: Path | None = None,
    threat: Path | None = None,
    considerations: Path | None = None,
) -> Evidence:
    """Everything known about ``mv``: the registry entry, its model.json, its pipeline run (given, or found
    by digest), then the files given, each overriding what the run said about the same section."""
    ev = Evidence(mv)
    sidecar = Path(mv.path) / "model.json"
    if sidecar.is_file():
        info = json.loads(sidecar.read_text(encoding="utf-8"))
        if isinstance(info, dict):
            ev.info = {k: info[k] for k in ("arch", "method", "input_shape", "num_classes", "bounds") if k in info}
            budget = info.get("privacy")
            if isinstance(budget, dict) and "epsilon" in budget:
                ev.privacy.update(epsilon_spent=budget["epsilon"], delta=budget.get("delta"), dp_source=str(sidecar))
    budget = mv.metadata.get("privacy")
    if isinstance(budget, dict) and "epsilon" in budget and "epsilon_spent" not in ev.privacy:
        ev.privacy.update(epsilon_spent=budget["epsilon"], delta=budget.get("delta"), dp_source="registry metadata")
    ev.considerations.update({k: mv.metadata[k] for k in CONSIDERATIONS if k in mv.metadata})
    ev.security["signed"] = mv.signature_path is not None
    ev.security["status"] = mv.status
    found = run or run_folder(mv)
    if found is not None:
        add_run(ev, found)
    if assess is not None:
        ev.performance = []
        add_assess(ev, assess)
    if privacy is not None:
        add_privacy_audit(ev, privacy)
    if threat is not None:
        add_threat(ev, threat)
    if considerations is not None:
        add_considerations(ev, considerations)
    return ev
