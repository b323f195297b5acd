"""Evidence: the results of the checks that test a threat's mitigation, read and judged when the model is checked.

A threat model full of ``robustness_assessed: true`` and ``mitigated`` is a set of claims. Evidence ties a claim
to a result: an ``assess`` report for evasion, an ingestion report for poisoning, a privacy audit for leakage, a
scan of a third-party model, a signature verification of a model. Each is judged by a policy (the assessment's
own gate, a quarantine ceiling, an AUC ceiling...), and a claim whose evidence fails is withdrawn: the control
attribute it backs is read as absent, so the threat it was hiding is reported again, and open whatever status
was recorded for it. Evidence that passes backs the claim (the attribute is read as present).

Result files (``assess``, ``ingest``, ``privacy``) are read, not recomputed: they are what the team's pipeline
produced. ``scan`` and ``verify`` are cheap, so they run now, on the files themselves.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelshield.core.errors import InputError, IntegrityError, ModelShieldError

EvidenceKind = Literal["assess", "ingest", "privacy", "scan", "verify"]

#: evidence kind → the element attributes (by element kind) whose claim it backs or withdraws
BACKS: dict[str, dict[str, str]] = {
    "assess": {"inference_endpoint": "robustness_assessed"},
    "ingest": {
        "process": "validates_input",
        "training_job": "validates_input",
        "data_store": "validates_input",
        "feature_store": "validates_input",
    },
    "privacy": {},
    "scan": {"third_party_model": "scanned"},
    "verify": {
        "third_party_model": "verified",
        "model_registry": "signed_models",
        "inference_endpoint": "verifies_model_signature",
    },
}


class EvidenceSpec(BaseModel):
    """One entry of a system's ``evidence:`` list: which check, on which element or flow, where its result is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: EvidenceKind
    element: str = Field(description="the id of the element (or flow) the check tested")
    path: str = Field(description="the result file (assess, ingest, privacy) or the model to check (scan, verify)")
    min_robust_accuracy: float | None = Field(default=None, ge=0, le=1, description="assess: instead of its gate")
    max_quarantined_fraction: float = Field(default=0.10, ge=0, le=1, description="ingest")
    allow_drift: bool = Field(default=False, description="ingest: drifted features do not fail the evidence")
    max_auc: float = Field(default=0.6, ge=0.5, le=1, description="privacy: the strongest attack's ROC AUC")
    max_epsilon: float | None = Field(default=None, gt=0, description="privacy: the empirical ε lower bound")
    public_key: str | None = Field(default=None, description="verify: the signer's public key (PEM)")
    signature: str | None = Field(default=None, description="verify: the signature file, if not the default")


class Evidence(BaseModel):
    """A judged piece of evidence, as it appears under a finding and in the report."""

    kind: EvidenceKind
    element: str
    path: str
    digest: str = Field(description="sha256 of the result file, or of the model checked")
    passed: bool
    summary: str


def _digest(path: Path) -> str:
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
        return "sha256:" + h.hexdigest()
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _json(path: Path, kind: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: {kind} evidence is not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: {kind} evidence is a JSON object")
    return data


def _need(data: dict[str, Any], keys: tuple[str, ...], path: Path, what: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise InputError(f"{path}: not {what} (no {', '.join(missing)})")


def _assess(spec: EvidenceSpec, path: Path) -> tuple[bool, str]:
    data = _json(path, "assess")
    _need(data, ("verdict", "gating", "clean_accuracy"), path, "an assess report.json")
    verdict, gating = data["verdict"], data["gating"] or {}
    robust = gating.get("robust_accuracy")
    at = f"robust accuracy {robust:.1%} at ε={gating.get('eps')}" if robust is not None else "no robust accuracy"
    if spec.min_robust_accuracy is not None:
        if verdict == "UNTRUSTED":
            return False, f"verdict UNTRUSTED (gradients masked): {at} cannot be trusted"
        ok = robust is not None and robust >= spec.min_robust_accuracy
        return ok, f"{at} ({'≥' if ok else '<'} {spec.min_robust_accuracy:.1%} required)"
    if verdict == "PASSED":
        return True, f"gate PASSED: {at}"
    if verdict == "NO GATE":
        return False, f"no gate was set ({at}): run assess with --fail-under, or set min_robust_accuracy here"
    return False, f"verdict {verdict}: {at}"


def _ingest(spec: EvidenceSpec, path: Path) -> tuple[bool, str]:
    data = _json(path, "ingest")
    _need(data, ("records", "quarantined", "drift"), path, "an ingest report.json")
    records, quarantined = int(data["records"]), int(data["quarantined"])
    share = quarantined / records if records else 0.0
    drifted = list((data.get("drift") or {}).get("drifted") or [])
    problems = []
    if share > spec.max_quarantined_fraction:
        problems.append(f"{share:.1%} of records quarantined (> {spec.max_quarantined_fraction:.1%})")
    if drifted and not spec.allow_drift:
        problems.append(f"drift in {', '.join(map(str, drifted[:5]))}{' ...' if len(drifted) > 5 else ''}")
    if problems:
        return False, "; ".join(problems)
    return True, f"{records} records screened, {quarantined} quarantined ({share:.1%}), no drift"


def _privacy(spec: EvidenceSpec, path: Path) -> tuple[bool, str]:
    data = _json(path, "privacy")
    _need(data, ("attacks",), path, "a privacy audit JSON (`modelshield privacy audit --json`)")
    rows = [r for r in data["attacks"] if isinstance(r, dict) and "auc" in r]
    if not rows:
        raise InputError(f"{path}: the privacy audit lists no attack with an AUC")
    worst = max(rows, key=lambda r: float(r["auc"]))
    eps = max(float(r.get("epsilon_lower_bound", 0.0)) for r in rows)
    ok = float(worst["auc"]) <= spec.max_auc and (spec.max_epsilon is None or eps <= spec.max_epsilon)
    limit = f"AUC ≤ {spec.max_auc}" + (f", ε ≤ {spec.max_epsilon}" if spec.max_epsilon is not None else "")
    return ok, f"strongest attack {worst.get('attack', '?')}: AUC {float(worst['auc']):.3f}, ε ≥ {eps:.2f} ({limit})"


def _scan(spec: EvidenceSpec, path: Path) -> tuple[bool, str]:
    from modelshield.integrity.scanner import scan_paths

    report = scan_paths([path])
    bad = [f for f in report.files if not f.passed()]
    if bad:
        return False, "scan failed: " + ", ".join(f"{Path(f.path).name} ({f.verdict.value})" for f in bad[:3])
    return True, f"scan passed: {len(report.files)} file(s)"


def _verify(spec: EvidenceSpec, path: Path, base: Path) -> tuple[bool, str]:
    from modelshield.integrity.signing import verify_model

    if spec.public_key is None:
        raise InputError(f"evidence verify on {spec.element!r}: give public_key (the signer's PEM)")
    signature = (base / spec.signature) if spec.signature else None
    try:
        result = verify_model(path, base / spec.public_key, signature, [])
    except IntegrityError as exc:
        return False, f"signature refused: {exc}"
    return True, f"signature verified ({result.key_type} key {result.key_hint[:16]}, {len(result.files)} files)"


def judge(spec: EvidenceSpec, base: Path) -> Evidence:
    """Read (or run) one check and judge it by its policy; a missing result is failing evidence, not an error:
    a claim whose proof is absent is not a mitigation."""
    path = base / spec.path
    if not path.exists():
        return Evidence(
            kind=spec.kind, element=spec.element, path=spec.path, digest="", passed=False, summary="result missing"
        )
    try:
        if spec.kind == "verify":
            passed, summary = _verify(spec, path, base)
        else:
            passed, summary = {"assess": _assess, "ingest": _ingest, "privacy": _privacy, "scan": _scan}[spec.kind](
                spec, path
            )
    except InputError:
        raise
    except ModelShieldError as exc:  # a file the check itself refuses (unreadable model, bad key): failing evidence
        passed, summary = False, f"check failed: {exc}"
    return Evidence(
        kind=spec.kind, element=spec.element, path=spec.path, digest=_digest(path), passed=passed, summary=summary
    )


__all__ = ["BACKS", "Evidence", "EvidenceKind", "EvidenceSpec", "judge"]
