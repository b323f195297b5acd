"""What each assessment finding means in the shared security vocabularies.

MITRE ATLAS technique ids (https://atlas.mitre.org) and OWASP Machine Learning Security Top 10
(2023) ids, with the remediation a team can act on.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelshield.defenses.results import DEFAULT_DETECTORS as DEFAULT_DETECTORS  # re-exported for the CLI
from modelshield.defenses.results import DETECTOR_NAMES as DETECTOR_NAMES

WHITE_BOX_ATTACKS = ("fgsm", "pgd", "pgd-l2", "apgd-ce", "apgd-dlr", "cw", "deepfool")
BLACK_BOX_ATTACKS = ("square", "hopskipjump")
ALL_ATTACKS = WHITE_BOX_ATTACKS + BLACK_BOX_ATTACKS
MASKING_FLAGS = frozenset({"zero-gradients", "black-box-beats-white-box", "randomised-outputs", "label-like-scores"})
"""Sanity flags whose failure means gradient attacks under-report what an attacker achieves: verdict UNTRUSTED."""


@dataclass(frozen=True)
class Rule:
    """A finding type: stable id, title, taxonomy ids and what to do about it."""

    id: str
    title: str
    atlas: tuple[str, ...]
    owasp_ml: tuple[str, ...]
    remediation: str


WHITE_BOX_EVASION = Rule(
    "MS-EVASION-001",
    "Low robust accuracy under white-box L∞ evasion",
    ("AML.T0043.000", "AML.T0015"),
    ("ML01:2023",),
    "Harden the model with PGD adversarial training or TRADES; add adversarial-input detection and a "
    "confidence fallback in front of it; keep gradients and weights away from untrusted parties.",
)
WHITE_BOX_L2_EVASION = Rule(
    "MS-EVASION-002",
    "Low robust accuracy under white-box L2 evasion",
    ("AML.T0043.000", "AML.T0015"),
    ("ML01:2023",),
    "Train against L2 attacks as well (PGD-L2 adversarial training) or certify with randomized smoothing.",
)
MINIMAL_PERTURBATION = Rule(
    "MS-EVASION-003",
    "Small perturbations flip predictions",
    ("AML.T0043.000",),
    ("ML01:2023",),
    "The median minimal L2 perturbation is a small fraction of a typical input's norm: widen the margin "
    "with adversarial training, and monitor for inputs near the decision boundary.",
)
SCORE_BASED_EVASION = Rule(
    "MS-EVASION-004",
    "Score-based black-box evasion succeeds through the prediction API",
    ("AML.T0043.001", "AML.T0040"),
    ("ML01:2023", "ML05:2023"),
    "Return labels instead of scores where possible, round or limit confidence outputs, rate-limit and "
    "monitor query patterns per identity, and harden the model itself.",
)
DECISION_BASED_EVASION = Rule(
    "MS-EVASION-005",
    "Decision-based black-box evasion succeeds from labels alone",
    ("AML.T0043.001", "AML.T0040"),
    ("ML01:2023",),
    "Label-only access is not a defence: enforce query budgets and detect boundary-probing query bursts.",
)
GATE_FAILED = Rule(
    "MS-GATE-001",
    "Robust accuracy below the required threshold",
    ("AML.T0043",),
    ("ML01:2023",),
    "Do not promote this model: robust accuracy at the gating ε is under the policy's --fail-under.",
)
UNTRUSTWORTHY_EVALUATION = Rule(
    "MS-SANITY-001",
    "The robustness evaluation may be unreliable",
    ("AML.T0043",),
    ("ML01:2023",),
    "A sanity check failed (gradient masking, randomness or an attack bug can inflate robust accuracy): "
    "read the check's detail and re-run with stronger or black-box attacks before trusting the numbers.",
)
WHITE_BOX_UNKNOWN = Rule(
    "MS-SANITY-002",
    "White-box robustness unknown: the model's gradients are masked or missing",
    ("AML.T0043.000", "AML.T0015"),
    ("ML01:2023",),
    "Gradient attacks could not measure this model (non-differentiable or quantising forward, zero or missing "
    "input gradients), so its white-box robustness is unknown and the gate cannot pass on it. Trust only the "
    "black-box figures; assess a differentiable surrogate (e.g. the network without its argmax or quantisation "
    "step) or attack it with BPDA/EOT before relying on the model.",
)
TINY_BUDGETS = Rule(
    "MS-SANITY-003",
    "The attack budgets are a tiny fraction of the input range",
    ("AML.T0043",),
    ("ML01:2023",),
    "ε is in the model's input units: with inputs in 0..255 (raw pixels) or raw features, an ε meant for [0, 1] "
    "measures next to nothing. Scale the data to what the model expects, or set --eps in the data's units.",
)
ATTACK_ERROR = Rule(
    "MS-ASSESS-001",
    "An attack did not complete",
    ("AML.T0043",),
    ("ML01:2023",),
    "The model raised inside this attack, so the assessment has no numbers for it: read the error, fix the model "
    "or its endpoint, and re-run with --attacks naming this attack.",
)
GUARD_ABSTAINED = Rule(
    "MS-ASSESS-002",
    "The endpoint abstained on some queries",
    ("AML.T0043",),
    ("ML01:2023",),
    "A guard in front of the model withheld answers: an abstention counts as wrong on a clean input and never as a "
    "successful attack, so the figures are the guarded system's. Compare with the model behind the guard "
    "(--model FILE) to see what the guard adds, and weigh how often it abstains on clean traffic.",
)
LOW_CERTIFIED_ACCURACY = Rule(
    "MS-CERT-001",
    "Low certified accuracy under randomized smoothing",
    ("AML.T0043.000", "AML.T0015"),
    ("ML01:2023",),
    "Few inputs carry an L2 certificate: train the base model with Gaussian noise at the certification σ "
    "(train_with_noise), tune σ to the radius you need, and raise N for tighter bounds.",
)
WEAK_DETECTOR = Rule(
    "MS-DETECT-001",
    "Adversarial-input detector is evaded by an adaptive attacker",
    ("AML.T0043.000", "AML.T0015"),
    ("ML01:2023",),
    "Do not rely on this detector alone: an attacker who knows it evades it (AUC near 0.5). Combine detection "
    "with adversarial training or certified smoothing, keep the detector and its threshold secret, and log "
    "Guard decisions for monitoring.",
)
