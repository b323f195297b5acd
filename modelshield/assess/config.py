"""What an assessment runs: the attacks, their budgets and settings, and how the verdict is taken.

Its own module so that the runner and the defence half of an assessment (``defences``) both read it
without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from modelshield.assess.catalog import ALL_ATTACKS, DETECTOR_NAMES
from modelshield.core.errors import InputError


@dataclass
class AssessConfig:
    """What to run. ε values are in the model's input units (e.g. 8/255 for pixels in [0, 1]).

    PGD's step is ``pgd_step`` in input units, or ``pgd_step`` × ε when ``pgd_step_relative``; by default
    2.5·ε/steps (Madry et al.). ``cert_alpha`` is the certificate's failure probability (``--certify``),
    unrelated to any attack's step size. ``privacy`` and ``poisoning`` add the built-in audits (an overfit
    model and its DP twin; BadNets and label flips), which train their own models on digits: ``demo`` only.
    """

    eps_linf: Sequence[float] = (0.01, 0.03, 0.05, 0.1, 0.2, 0.3)
    eps_l2: Sequence[float] = (0.25, 0.5, 1.0, 2.0)
    gating_eps: float | None = None
    fail_under: float | None = None
    allow_untrusted: bool = False
    attacks: Sequence[str] = ALL_ATTACKS
    pgd_steps: int = 20
    pgd_step: float | None = None
    pgd_step_relative: bool = False
    random_start: bool = True
    restarts: int = 1
    apgd_steps: int = 50
    cw_steps: int = 100
    cw_lr: float = 0.1
    square_queries: int = 1000
    hsj_budgets: Sequence[int] = (100, 300, 1000)
    hsj_samples: int = 40
    batch_size: int = 512
    seed: int = 0
    examples: int = 8
    command: str = ""
    model_info: dict[str, object] = field(default_factory=dict)
    certify: bool = False
    sigma: float = 0.25
    n0: int = 100
    n: int = 1000
    cert_alpha: float = 0.001
    certify_samples: int = 100
    detectors: Sequence[str] = ()
    demo: bool = False
    privacy: bool = False
    poisoning: bool = False

    def validate(self) -> None:
        """Refuse nonsense before any work starts, with every problem named (as the CLI flag)."""
        problems = []
        for name, values in (("--eps", self.eps_linf), ("--eps-l2", self.eps_l2)):
            if any(not (v > 0) for v in values):
                problems.append(f"{name} values must be positive, got {list(values)}")
        if self.gating_eps is not None and not self.gating_eps > 0:
            problems.append(f"--gating-eps must be positive, got {self.gating_eps}")
        if self.fail_under is not None and not 0.0 <= self.fail_under <= 1.0:
            problems.append(f"--fail-under is a fraction in [0, 1], got {self.fail_under}")
        if self.pgd_step is not None and not self.pgd_step > 0:
            problems.append(f"--pgd-step must be positive, got {self.pgd_step}")
        unknown = sorted(set(self.attacks) - set(ALL_ATTACKS))
        if unknown:
            problems.append(f"unknown attacks {unknown}; choose from {', '.join(ALL_ATTACKS)}")
        if self.certify and not self.sigma > 0:
            problems.append(f"--sigma must be positive, got {self.sigma}")
        if self.certify and not 0 < self.cert_alpha < 1:
            problems.append(f"--cert-alpha must be in (0, 1), got {self.cert_alpha}")
        for flag, wanted in (("--privacy", self.privacy), ("--poisoning", self.poisoning)):
            if wanted and not self.demo:
                problems.append(
                    f"{flag} trains models on their training data, which a model file does not carry; "
                    "run it with --demo (the built-in audit on digits)"
                )
        unknown_detectors = sorted(set(self.detectors) - set(DETECTOR_NAMES))
        if unknown_detectors:
            problems.append(f"unknown detectors {unknown_detectors}; choose from {', '.join(DETECTOR_NAMES)}")
        counts = {
            "--steps": self.pgd_steps,
            "--restarts": self.restarts,
            "--apgd-steps": self.apgd_steps,
            "--cw-steps": self.cw_steps,
            "--hsj-queries": min(self.hsj_budgets, default=1),
            "--queries": self.square_queries,
            "--batch-size": self.batch_size,
            "hsj_samples": self.hsj_samples,
            "--n0": self.n0,
            "--n": self.n,
            "--certify-samples": self.certify_samples,
        }
        problems += [f"{name} must be at least 1, got {value}" for name, value in counts.items() if value < 1]
        if problems:
            raise InputError("; ".join(problems))

    @property
    def gate(self) -> float:
        """The L∞ ε the pass/fail decision is taken at: given, or the middle of the sweep."""
        if self.gating_eps is not None:
            return float(self.gating_eps)
        sweep = sorted(self.eps_linf)
        return float(sweep[len(sweep) // 2]) if sweep else 0.1

    def pgd_alpha(self, eps: float) -> float | None:
        """PGD's step size at ``eps``; None leaves PGD's own default (2.5·ε/steps)."""
        if self.pgd_step is None:
            return None
        return self.pgd_step * eps if self.pgd_step_relative else self.pgd_step


__all__ = ["AssessConfig"]
