"""Turn an assessment's numbers into findings with severity, taxonomy ids and remediation."""

from __future__ import annotations

from torch import Tensor

from modelshield.assess import catalog
from modelshield.assess.catalog import MASKING_FLAGS, Rule
from modelshield.assess.results import AssessmentResult, AttackRecord, gradients_masked, white_box_skipped
from modelshield.core.findings import Finding, Severity


def _finding(
    rule: Rule,
    description: str,
    metric: str,
    value: float | None,
    severity: Severity,
    threshold: float | None = None,
    **evidence: object,
) -> Finding:
    return Finding(
        id=rule.id,
        title=rule.title,
        description=description,
        metric=metric,
        value=value,
        threshold=threshold,
        severity=severity,
        atlas=list(rule.atlas),
        owasp_ml=list(rule.owasp_ml),
        remediation=rule.remediation,
        evidence=evidence,
    )


def robustness_severity(robust: float, clean: float) -> Severity:
    """How much of the clean accuracy survives the attack decides how bad it is."""
    kept = robust / clean if clean > 0 else 1.0
    if kept < 0.1:
        return Severity.critical
    if kept < 0.5:
        return Severity.high
    if kept < 0.8:
        return Severity.medium
    if kept < 0.95:
        return Severity.low
    return Severity.info


def success_severity(rate: float) -> Severity:
    """Black-box attacks: the share of samples an outsider can flip through the API."""
    if rate >= 0.5:
        return Severity.high
    if rate >= 0.2:
        return Severity.medium
    if rate > 0:
        return Severity.low
    return Severity.info


def _worst(records: list[AttackRecord]) -> AttackRecord | None:
    return min(records, key=lambda r: r.robust_accuracy) if records else None


def build_findings(result: AssessmentResult, x: Tensor) -> list[Finding]:
    """Every finding the result supports, most severe first."""
    out: list[Finding] = []
    clean = result.clean_accuracy
    gate = result.gating.get("eps")
    white = [r for r in result.attacks if r.queries is None and r.eps is not None]

    worst = _worst([r for r in white if r.norm == "linf" and r.eps == gate])
    masked = gradients_masked(result)
    if worst is not None:
        text = f"{worst.attack} at L∞ ε={gate:g} leaves {worst.robust_accuracy:.1%} accuracy (clean {clean:.1%})."
        severity = robustness_severity(worst.robust_accuracy, clean)
        black = _worst([r for r in result.attacks if r.queries is not None and r.norm == "linf" and r.eps == gate])
        if masked:
            # Masked gradients inflate the white-box figure: it must not read better than what a black box reaches.
            text += " Gradients look masked, so this overstates robustness"
            if black is not None:
                text += f"; {black.attack} (black-box) leaves {black.robust_accuracy:.1%}"
                severity = max(severity, robustness_severity(black.robust_accuracy, clean), key=lambda s: s.rank)
            text += "."
        out.append(
            _finding(
                catalog.WHITE_BOX_EVASION,
                text,
                "robust_accuracy",
                worst.robust_accuracy,
                severity,
                attack=worst.attack,
                eps=gate,
                clean_accuracy=clean,
                gradients_masked=masked,
            )
        )
    l2 = sorted({r.eps for r in white if r.norm == "l2" and r.eps is not None})
    if l2:
        mid = l2[len(l2) // 2]
        worst = _worst([r for r in white if r.norm == "l2" and r.eps == mid])
        assert worst is not None
        out.append(
            _finding(
                catalog.WHITE_BOX_L2_EVASION,
                f"{worst.attack} at L2 ε={mid:g} leaves {worst.robust_accuracy:.1%} accuracy (clean {clean:.1%}).",
                "robust_accuracy",
                worst.robust_accuracy,
                robustness_severity(worst.robust_accuracy, clean),
                attack=worst.attack,
                eps=mid,
                clean_accuracy=clean,
            )
        )
    minimal = [r for r in result.attacks if r.eps is None and r.median_l2 is not None and r.queries is None]
    if minimal:
        best = min(minimal, key=lambda r: r.median_l2 or float("inf"))
        typical = float(x.flatten(1).norm(dim=1).median()) if len(x) else 1.0
        rel = (best.median_l2 or 0.0) / typical if typical > 0 else 0.0
        sev = Severity.high if rel < 0.05 else Severity.medium if rel < 0.15 else Severity.low
        out.append(
            _finding(
                catalog.MINIMAL_PERTURBATION,
                f"{best.attack}: the median successful L2 perturbation is {best.median_l2:.3g}, "
                f"{rel:.1%} of a typical input's L2 norm ({typical:.3g}).",
                "median_l2",
                best.median_l2,
                sev,
                attack=best.attack,
                relative_to_input=rel,
            )
        )
    for curve in result.query_curves:
        rule = catalog.SCORE_BASED_EVASION if curve.attack == "square" else catalog.DECISION_BASED_EVASION
        rate = curve.success_rate[-1] if curve.success_rate else 0.0
        out.append(
            _finding(
                rule,
                f"{curve.attack} fooled {rate:.1%} of correctly classified samples within {curve.budgets[-1]} queries "
                f"per sample at {curve.norm.upper()} ε={curve.eps:g}.",
                "success_rate",
                rate,
                success_severity(rate),
                attack=curve.attack,
                queries=curve.budgets[-1],
                eps=curve.eps,
            )
        )
    fail_under = result.gating.get("fail_under")
    robust = result.gating.get("robust_accuracy")
    if fail_under is not None and robust is not None and robust < fail_under:
        out.append(
            _finding(
                catalog.GATE_FAILED,
                f"Robust accuracy {robust:.1%} at L∞ ε={gate:g} is below the required {fail_under:.1%}.",
                "robust_accuracy",
                robust,
                Severity.high,
                threshold=fail_under,
                attack=result.gating.get("attack"),
            )
        )
    out += _defence_findings(result)
    out += _error_findings(result)
    out += _units_finding(result)
    for flag in result.sanity:
        if not flag.passed:
            severity = Severity.high if flag.name in MASKING_FLAGS else Severity.medium
            out.append(
                _finding(
                    catalog.UNTRUSTWORTHY_EVALUATION,
                    f"{flag.name}: {flag.detail}",
                    flag.name,
                    None,
                    severity,
                    check=flag.name,
                )
            )
    return sorted(out, key=lambda f: -f.severity.rank)


def _tiny_eps(result: AssessmentResult) -> tuple[float, float, float] | None:
    """(largest L∞ ε, lo, hi) when even that ε is under 1 % of the input range [lo, hi], else None."""
    eps = [r.eps for r in result.attacks if r.norm == "linf" and r.eps is not None]
    lo, hi = result.data.get("bounds") or (0.0, 1.0)
    if not eps or max(eps) >= 0.01 * (hi - lo):
        return None
    return max(eps), float(lo), float(hi)


def units_note(result: AssessmentResult) -> str | None:
    """ε is in input units: an ε under 1 % of the input range (0..255 pixels, raw features) measures next to nothing."""
    tiny = _tiny_eps(result)
    if tiny is None:
        return None
    eps, lo, hi = tiny
    return (
        f"inputs range over [{lo:g}, {hi:g}] and ε is in input units, so L∞ ε ≤ {eps:g} is "
        f"{eps / (hi - lo):.2%} of that range; scale the data to what the model expects or set --eps in these units"
    )


def _units_finding(result: AssessmentResult) -> list[Finding]:
    """The units note as a finding, so every report format carries it, not only the terminal summary."""
    tiny, note = _tiny_eps(result), units_note(result)
    if tiny is None or note is None:
        return []
    eps, lo, hi = tiny
    return [_finding(catalog.TINY_BUDGETS, f"The {note}.", "eps_share_of_range", eps / (hi - lo), Severity.medium)]


def _error_findings(result: AssessmentResult) -> list[Finding]:
    """White-box attacks that could not apply (one HIGH finding) and attacks the model raised inside (one each);
    Square not applying to a labels-only model is in the errors table, not a finding."""
    out: list[Finding] = []
    skipped = [e for e in result.errors if e.kind == "not-applicable" and e.attack not in catalog.BLACK_BOX_ATTACKS]
    if skipped:
        names = ", ".join(white_box_skipped(result.errors))
        out.append(
            _finding(
                catalog.WHITE_BOX_UNKNOWN,
                f"White-box robustness unknown: {skipped[0].message}. Not run: {names}; black-box attacks still ran.",
                "white_box_attacks_not_applicable",
                float(len(skipped)),
                Severity.high,
                attacks=names,
            )
        )
    for e in result.errors:
        if e.kind == "error":
            budget = "minimal" if e.eps is None else f"{e.norm.upper()} ε={e.eps:g}"
            out.append(
                _finding(
                    catalog.ATTACK_ERROR,
                    f"{e.attack} ({budget}) stopped with {e.error}: {e.message}",
                    "attack_error",
                    None,
                    Severity.medium,
                    attack=e.attack,
                    eps=e.eps,
                    error=e.error,
                )
            )
    return out


def _defence_findings(result: AssessmentResult) -> list[Finding]:
    """Low certified accuracy at radius σ, and detectors an adaptive attacker evades."""
    out: list[Finding] = []
    abstained = result.model.get("abstained")
    if abstained:
        out.append(
            _finding(
                catalog.GUARD_ABSTAINED,
                f"The endpoint abstained on {abstained} queries (no answer: label -1); clean accuracy counts them as "
                "wrong and the attacks as failed.",
                "abstained_queries",
                float(abstained),
                Severity.info,
                abstained=abstained,
            )
        )
    if result.certified:
        sigma = result.certified[0].sigma
        point = min(result.certified, key=lambda p: abs(p.radius - sigma))
        clean = result.clean_accuracy
        out.append(
            _finding(
                catalog.LOW_CERTIFIED_ACCURACY,
                f"Randomized smoothing (σ={sigma:g}) certifies {point.certified_accuracy:.1%} of inputs at L2 radius "
                f"{point.radius:g} (clean {clean:.1%}); it abstains on {point.abstain_rate:.1%}.",
                "certified_accuracy",
                point.certified_accuracy,
                robustness_severity(point.certified_accuracy, clean),
                radius=point.radius,
                sigma=sigma,
                abstain_rate=point.abstain_rate,
            )
        )
    for rec in result.detectors:
        if not rec.adaptive or rec.auc is None:
            continue
        tpr = rec.tpr_at_fpr_005 or 0.0
        weak = rec.auc < 0.7 or tpr < 0.2
        out.append(
            _finding(
                catalog.WEAK_DETECTOR,
                f"{rec.name}: an adaptive attacker ({rec.attack}) reaches AUC {rec.auc:.2f} and is flagged "
                f"{tpr:.1%} of the time at 5% false positives.",
                "auc",
                rec.auc,
                Severity.high if rec.auc < 0.6 else Severity.medium if weak else Severity.info,
                threshold=0.7,
                detector=rec.name,
                attack=rec.attack,
            )
        )
    return out


__all__ = ["build_findings", "robustness_severity", "success_severity", "units_note"]
