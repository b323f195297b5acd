"""Privacy auditing: the ε a membership attack *demonstrates*, next to the ε an accountant *promises*.

An (ε, δ)-DP training algorithm bounds every membership test: for any decision rule, its true- and
false-positive rates obey ``TPR ≤ e^ε·FPR + δ`` and ``1 − FPR ≤ e^ε·(1 − TPR) + δ``. An attack that does
better than that refutes the claimed ε, and the best it does gives a *lower* bound on the ε actually
spent. The accountant's ε is an *upper* bound; a trustworthy DP model sits with its empirical lower
bound below the accountant's figure, a non-private model shows a lower bound well above zero.

The rates are estimated from finite samples, so the bound uses Clopper–Pearson confidence limits
(the TPR's lower limit, the FPR's upper limit), and because the best of many thresholds is kept, the
confidence is split over all of them (Bonferroni): the reported ε holds at the stated confidence for
the threshold chosen after the fact.

The pipeline: :func:`insert_canaries` plants mislabeled records, each trained on by a fair coin;
:func:`audit_model` runs membership attacks (``modelshield.attacks.privacy``) on one model's canaries and
bounds ε from each; :func:`audit_twins` does so for a non-private model and its DP-trained twin, the
accountant's ε beside each bound. ``modelshield assess --demo --privacy`` is this pipeline on digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.stats import beta
from torch import Tensor

from modelshield.attacks.privacy import MembershipAttack, RocSummary, roc_summary
from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import Model

DEFAULT_CONFIDENCE = 0.95
DEFAULT_THRESHOLDS = 64


def clopper_pearson(successes: int, trials: int, alpha: float) -> tuple[float, float]:
    """One-sided Clopper–Pearson limits at level ``alpha`` each: ``P(p < lo) ≤ alpha`` and ``P(p > hi) ≤ alpha``.

    Exact (binomial) rather than a normal approximation, because the rates that matter here sit near 0
    and 1, where the approximation fails worst; at 0 successes the lower limit is 0, at ``trials`` the upper is 1.
    """
    if trials < 1 or not 0 <= successes <= trials:
        raise InputError(f"need 0 ≤ successes ≤ trials and trials ≥ 1, got {successes} of {trials}")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    lo = 0.0 if successes == 0 else float(beta.ppf(alpha, successes, trials - successes + 1))
    hi = 1.0 if successes == trials else float(beta.isf(alpha, successes + 1, trials - successes))
    return lo, hi


def _epsilon_from_limits(tpr_lo: np.ndarray, fpr_hi: np.ndarray, delta: float) -> np.ndarray:
    """The larger of the two DP inequalities solved for ε, at the pessimistic ends of the intervals; ≥ 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = np.log((tpr_lo - delta) / fpr_hi)
        complement = np.log((1.0 - fpr_hi - delta) / (1.0 - tpr_lo))
    both = np.stack([direct, complement, np.zeros_like(direct)])
    return np.nanmax(np.where(np.isfinite(both), both, 0.0), axis=0)


def _limits(flagged: np.ndarray, total: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`clopper_pearson` over many counts out of the same total."""
    k = flagged.astype(float)
    with np.errstate(invalid="ignore"):
        lo = np.where(k == 0, 0.0, beta.ppf(alpha, k, total - k + 1))
        hi = np.where(k == total, 1.0, beta.isf(alpha, k + 1, total - k))
    return lo, hi


@dataclass(frozen=True)
class EpsilonLowerBound:
    """An empirical lower bound on ε, with the operating point that produced it.

    ``epsilon`` holds with probability at least ``confidence`` (Clopper–Pearson, Bonferroni over the
    ``thresholds`` tried). ``epsilon_max`` is the largest bound these sample sizes could ever show — a
    perfect attack — so a bound near it says "at least this much, the audit cannot resolve more".
    """

    epsilon: float
    confidence: float
    delta: float
    threshold: float | None
    tpr: float
    fpr: float
    tpr_low: float
    fpr_high: float
    thresholds: int
    members: int
    non_members: int
    epsilon_max: float


def _check_delta_confidence(delta: float, confidence: float) -> None:
    if not 0 <= delta < 1:
        raise InputError(f"delta must be in [0, 1), got {delta}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")


def epsilon_from_counts(
    true_positives: int,
    members: int,
    false_positives: int,
    non_members: int,
    *,
    delta: float = 0.0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> float:
    """The ε lower bound for one fixed decision rule: ``true_positives`` of ``members`` flagged, ``false_positives``
    of ``non_members``. The rule must have been fixed before these counts were taken (else use
    :func:`epsilon_lower_bound`, which pays for choosing it)."""
    _check_delta_confidence(delta, confidence)
    alpha = (1 - confidence) / 2  # two limits must hold together
    tpr_lo, _ = clopper_pearson(true_positives, members, alpha)
    _, fpr_hi = clopper_pearson(false_positives, non_members, alpha)
    return float(_epsilon_from_limits(np.array([tpr_lo]), np.array([fpr_hi]), delta)[0])


def _perfect_limits(members: int, non_members: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The limits of an attack that flags every member and no non-member: the best these sizes can show."""
    return np.array([clopper_pearson(members, members, alpha)[0]]), np.array(
        [clopper_pearson(0, non_members, alpha)[1]]
    )


def _candidate_thresholds(scores: np.ndarray, count: int) -> np.ndarray:
    """Quantiles of the pooled scores: label-blind, so choosing them leaks nothing about membership."""
    return np.unique(np.quantile(scores, np.linspace(0.0, 1.0, count + 2)[1:-1], method="lower"))


def epsilon_lower_bound(
    scores: ArrayLike,
    is_member: ArrayLike,
    *,
    delta: float = 0.0,
    confidence: float = DEFAULT_CONFIDENCE,
    thresholds: int = DEFAULT_THRESHOLDS,
) -> EpsilonLowerBound:
    """Lower-bound ε from a membership attack's per-sample scores (higher = "more likely a member").

    Jagielski, Ullman, Oprea, "Auditing Differentially Private Machine Learning: How Private is Private
    SGD?", NeurIPS 2020, https://arxiv.org/abs/2006.07709; Nasr, Song, Thakurta, Papernot, Carlini,
    "Adversary Instantiation: Lower Bounds for Differentially Private Machine Learning", IEEE S&P 2021,
    https://arxiv.org/abs/2101.04535.

    For each threshold ``t`` the test "member iff score ≥ t" has rates TPR, FPR; the bound is
    ``max_t max(log((TPR_lo − δ)/FPR_hi), log((1 − FPR_hi − δ)/(1 − TPR_lo)))``, floored at 0, with one-sided
    Clopper–Pearson limits at ``(1 − confidence) / (2·thresholds)`` each so that all of them hold at once.

    It treats each audited sample as an independent trial of the membership game, as these papers' many-sample
    audits do; with one training run over many samples that is a heuristic, not a proof (Steinke, Nasr,
    Jagielski 2023 give the one-run analysis), which is why the report says "empirical".
    """
    s = np.asarray(scores, dtype=float).ravel()
    m = np.asarray(is_member).ravel()
    if s.shape != m.shape:
        raise InputError(f"scores and is_member differ in length: {s.size} and {m.size}")
    if not np.isfinite(s).all():
        raise InputError("membership scores contain NaN or infinity")
    if not np.isin(m, (0, 1)).all():
        raise InputError("is_member must hold only 0/1 or booleans")
    if thresholds < 1:
        raise InputError(f"thresholds must be at least 1, got {thresholds}")
    _check_delta_confidence(delta, confidence)
    member = m.astype(bool)
    n_in, n_out = int(member.sum()), int((~member).sum())
    if n_in == 0 or n_out == 0:
        raise InputError(f"an audit needs members and non-members, got {n_in} and {n_out}")
    cuts = _candidate_thresholds(s, thresholds)
    alpha = (1 - confidence) / (2 * len(cuts))
    s_in, s_out = np.sort(s[member]), np.sort(s[~member])
    tpr_lo, _ = _limits(n_in - np.searchsorted(s_in, cuts, side="left"), n_in, alpha)
    _, fpr_hi = _limits(n_out - np.searchsorted(s_out, cuts, side="left"), n_out, alpha)
    eps = _epsilon_from_limits(tpr_lo, fpr_hi, delta)
    i = int(np.argmax(eps))
    cut = float(cuts[i])
    perfect = _epsilon_from_limits(*_perfect_limits(n_in, n_out, alpha), delta)
    return EpsilonLowerBound(
        epsilon=float(eps[i]),
        confidence=confidence,
        delta=delta,
        threshold=cut if eps[i] > 0 else None,
        tpr=float((s_in >= cut).mean()),
        fpr=float((s_out >= cut).mean()),
        tpr_low=float(tpr_lo[i]),
        fpr_high=float(fpr_hi[i]),
        thresholds=len(cuts),
        members=n_in,
        non_members=n_out,
        epsilon_max=float(perfect[0]),
    )


def membership_split(n: int, seed: int = 0) -> np.ndarray:
    """Which of ``n`` candidate records to train on: each one independently, with probability 1/2.

    Independent fair coins are the membership game the lower bound is about; a fixed half/half split
    would make each record's membership depend on the others'.
    """
    if n < 2:
        raise InputError(f"an audit needs at least 2 candidate records, got {n}")
    member = np.random.default_rng(seed).random(n) < 0.5
    if member.all() or not member.any():  # vanishingly rare beyond a handful of records
        member[0] = not member[0]
    return member


@dataclass(frozen=True)
class CanaryAudit:
    """A training set with canaries in it, and the canaries an audit asks about.

    ``train`` holds the clean records plus the canaries whose coin came up "member"; ``canaries`` holds every
    canary with the label it was given; ``is_member[i]`` says whether canary ``i`` is in ``train``.
    """

    train: Dataset
    canaries: Dataset
    is_member: np.ndarray


def insert_canaries(data: Dataset, count: int, num_classes: int, seed: int = 0) -> CanaryAudit:
    """Turn ``count`` random records into mislabeled canaries and put each in the training set with probability 1/2.

    DP bounds the leak of *every* record, so an audit should ask about the records that leak most. A record
    with a wrong label can only be fitted by memorising it: Jagielski et al. 2020 and Nasr et al. 2021 audit
    with such crafted "canaries", and Steinke, Nasr, Jagielski 2023 (https://arxiv.org/abs/2305.08846) use
    mislabeled ones. Each canary's new label is drawn uniformly from the other classes.
    """
    if num_classes < 2:
        raise InputError(f"mislabeled canaries need at least 2 classes, got {num_classes}")
    if not 2 <= count < len(data):
        raise InputError(f"canaries must be at least 2 and fewer than the {len(data)} records, got {count}")
    rng = np.random.default_rng(seed)
    order = torch.from_numpy(rng.permutation(len(data)))
    chosen, clean = order[:count], order[count:]
    shift = torch.from_numpy(rng.integers(1, num_classes, size=count))
    canary_y = (data.y[chosen] + shift) % num_classes
    member = membership_split(count, seed)
    inside = torch.from_numpy(member)
    train = Dataset(
        torch.cat([data.x[clean], data.x[chosen][inside]]),
        torch.cat([data.y[clean], canary_y[inside]]),
        f"{data.name} + {int(member.sum())} canaries",
        data.bounds,
        data.class_names,
    )
    canaries = Dataset(data.x[chosen], canary_y, f"{data.name} canaries", data.bounds, data.class_names)
    return CanaryAudit(train, canaries, member)


@dataclass(frozen=True)
class MembershipAudit:
    """One membership attack against one model: its ROC and the ε it demonstrates, beside the ε claimed.

    ``model`` names the model's role ("baseline" for the non-private one, "dp" for its DP-trained twin);
    ``epsilon`` is the accountant's upper bound, None for a model trained without DP.
    """

    attack: str
    model: str
    epsilon: float | None
    roc: RocSummary
    bound: EpsilonLowerBound

    @property
    def contradicts_accountant(self) -> bool:
        """True when the attack shows more leakage than the accountant allows: a bug in the DP training."""
        return self.epsilon is not None and self.bound.epsilon > self.epsilon


def audit_model(
    model: Model,
    x: Tensor,
    y: Tensor,
    is_member: ArrayLike,
    attacks: Sequence[MembershipAttack],
    *,
    role: str,
    epsilon: float | None = None,
    delta: float = 0.0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> list[MembershipAudit]:
    """Run every attack on the candidates ``x, y`` (``is_member``: trained on or not) and bound ε from each."""
    member = np.asarray(is_member).astype(bool).ravel()
    if member.shape[0] != x.shape[0]:
        raise InputError(f"{x.shape[0]} candidate records but {member.shape[0]} membership labels")
    out = []
    for attack in attacks:
        scores = attack.scores(model, x, y)
        out.append(
            MembershipAudit(
                attack=attack.name,
                model=role,
                epsilon=epsilon,
                roc=roc_summary(scores, member),
                bound=epsilon_lower_bound(scores, member, delta=delta, confidence=confidence),
            )
        )
    return out


def audit_twins(
    baseline: Model,
    private: Model,
    epsilon: float,
    x: Tensor,
    y: Tensor,
    is_member: ArrayLike,
    attacks: Sequence[MembershipAttack],
    *,
    delta: float,
    private_attacks: Sequence[MembershipAttack] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> list[MembershipAudit]:
    """The same attacks against a non-private model and its DP-trained twin (same members, same architecture).

    The pair is what makes the audit readable: the baseline shows the attacks work on this data, so a low
    lower bound on the twin is the defence working, not a weak attack. Attacks built on reference models
    should train them by each target's own recipe: pass those for the twin as ``private_attacks``.
    """
    common = {"delta": delta, "confidence": confidence}
    twin_attacks = attacks if private_attacks is None else private_attacks
    return [
        *audit_model(baseline, x, y, is_member, attacks, role="baseline", **common),
        *audit_model(private, x, y, is_member, twin_attacks, role="dp", epsilon=epsilon, **common),
    ]


__all__ = [
    "CanaryAudit",
    "EpsilonLowerBound",
    "MembershipAudit",
    "audit_model",
    "audit_twins",
    "clopper_pearson",
    "epsilon_from_counts",
    "epsilon_lower_bound",
    "insert_canaries",
    "membership_split",
]
