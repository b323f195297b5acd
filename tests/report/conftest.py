"""Hand-built assessment results shaped like what ``modelshield assess`` produces.

Session-scoped because a full HTML render draws three plots; tests copy, never mutate, them.
"""

from __future__ import annotations

import numpy as np
import pytest

from modelshield.assess.results import AssessmentResult, AttackError, AttackRecord, QueryCurve, SanityFlag
from modelshield.core.findings import Finding, Severity
from modelshield.report import ExampleGrid

LINF_EPS = (2 / 255, 4 / 255, 8 / 255)
L2_EPS = (0.25, 0.5, 1.0)
GATE = {"attack": "pgd", "norm": "linf", "eps": 8 / 255, "robust_accuracy": 0.12, "fail_under": 0.5}


def _finding(id: str, severity: Severity, value: float | None, **extra: object) -> Finding:
    return Finding(
        id=id,
        title=f"Finding {id} | {severity.value}",
        description="Robust accuracy drops sharply under small perturbations.",
        metric="robust_accuracy",
        value=value,
        threshold=0.5,
        severity=severity,
        atlas=["AML.T0043.000", "AML.T0015"],
        owasp_ml=["ML01:2023"],
        remediation="Adversarially train with PGD; add input detection.",
        evidence={"eps": 8 / 255, "attack": "pgd"},
        **extra,
    )


def _record(attack: str, norm: str, eps: float | None, robust: float, **extra: object) -> AttackRecord:
    return AttackRecord(
        attack=attack, norm=norm, eps=eps, robust_accuracy=robust, success_rate=1 - robust / 0.97, seconds=1.5, **extra
    )


@pytest.fixture(scope="session")
def image_result() -> AssessmentResult:
    """The digits CNN after a full sweep: white-box, minimum-norm and black-box attacks."""
    rng = np.random.default_rng(0)
    attacks = [_record("fgsm", "linf", e, r) for e, r in zip(LINF_EPS, (0.80, 0.55, 0.30), strict=True)]
    attacks += [_record("pgd", "linf", e, r) for e, r in zip(LINF_EPS, (0.70, 0.40, 0.12), strict=True)]
    attacks += [_record("pgd", "l2", e, r) for e, r in zip(L2_EPS, (0.85, 0.60, 0.25), strict=True)]
    attacks += [
        _record("square", "linf", 8 / 255, 0.35, queries=450_000),
        _record("cw-l2", "l2", None, 0.0, median_l2=0.61),
        _record("deepfool", "l2", None, 0.02, median_l2=0.74, params={"overshoot": 0.02}),
    ]
    return AssessmentResult(
        version="0.1.0",
        created="2025-11-25T12:00:00+00:00",
        command="modelshield assess models/digits_cnn.safetensors --data digits --fail-under 0.5",
        model={"name": "digits-cnn", "path": "models/digits_cnn.safetensors", "format": "safetensors"},
        data={"name": "digits", "n": 450, "shape": [1, 8, 8]},
        clean_accuracy=0.97,
        gating=GATE,
        attacks=attacks,
        query_curves=[
            QueryCurve(
                attack="square",
                norm="linf",
                eps=8 / 255,
                budgets=[10, 100, 300, 1000],
                success_rate=[0.05, 0.3, 0.5, 0.64],
            )
        ],
        perturbation_l2={
            "cw-l2": rng.gamma(4.0, 0.15, size=60).tolist(),
            "deepfool": rng.gamma(4.0, 0.19, size=58).tolist(),
        },
        sanity=[
            SanityFlag(name="attack beats random noise", passed=True, detail="PGD 0.12 < noise 0.95"),
            SanityFlag(name="accuracy falls as ε grows", passed=False, detail="fgsm at 4/255 above 2/255"),
        ],
        findings=[
            _finding("MS-EVASION-001", Severity.high, 0.40),
            _finding("MS-GATE-001", Severity.critical, 0.12),
            _finding("MS-EVASION-001", Severity.critical, 0.12),
            _finding("MS-EVASION-004", Severity.medium, 0.64),
            _finding("MS-EVASION-003", Severity.low, 0.61),
            _finding("MS-SANITY-001", Severity.info, None),
        ],
        verdict="FAILED",
        passed=False,
    )


@pytest.fixture(scope="session")
def untrusted_result(image_result: AssessmentResult) -> AssessmentResult:
    """A model without usable gradients: white-box attacks not applicable, zero-gradients failed, Square decides."""
    reason = "TorchModel's scores carry no gradient: the forward pass is not differentiable"
    return image_result.model_copy(
        update={
            "attacks": [a for a in image_result.attacks if a.queries is not None],
            "errors": [
                AttackError(
                    attack=name,
                    norm="linf",
                    eps=8 / 255,
                    kind="not-applicable",
                    error="GradientUnavailableError",
                    message=reason,
                )
                for name in ("fgsm", "pgd")
            ]
            + [
                AttackError(
                    attack="hopskipjump",
                    norm="l2",
                    eps=None,
                    kind="error",
                    error="TimeoutError",
                    message="the endpoint did not answer in 30 s",
                )
            ],
            "sanity": [SanityFlag(name="zero-gradients", passed=False, detail="100.0% of samples have no gradient")],
            "gating": {**GATE, "attack": "square", "robust_accuracy": 0.35, "fail_under": 0.3},
            "findings": [
                _finding("MS-SANITY-002", Severity.high, 2.0),
                _finding("MS-EVASION-004", Severity.medium, 0.64),
            ],
            "verdict": "UNTRUSTED",
            "passed": False,
        }
    )


@pytest.fixture(scope="session")
def tabular_result(image_result: AssessmentResult) -> AssessmentResult:
    """A tabular model: L∞ attacks only, no minimum-norm or black-box runs."""
    return image_result.model_copy(
        update={
            "attacks": [a for a in image_result.attacks if a.norm == "linf" and a.queries is None],
            "query_curves": [],
            "perturbation_l2": {},
            "model": {"name": "credit-gbm", "path": "/tmp/elsewhere/credit.onnx"},
        }
    )


@pytest.fixture(scope="session")
def examples() -> ExampleGrid:
    """Six random 1×8×8 digits and their PGD counterparts, three of them fooled."""
    rng = np.random.default_rng(1)
    clean = rng.random((6, 1, 8, 8))
    adversarial = np.clip(clean + rng.uniform(-8 / 255, 8 / 255, clean.shape), 0, 1)
    return ExampleGrid(
        clean=clean,
        adversarial=adversarial,
        true_labels=np.array([0, 1, 2, 3, 4, 5]),
        clean_pred=np.array([0, 1, 2, 3, 4, 9]),
        adv_pred=np.array([8, 7, 2, 9, 4, 9]),
        attack="pgd",
        eps=8 / 255,
        bounds=(0.0, 1.0),
    )
