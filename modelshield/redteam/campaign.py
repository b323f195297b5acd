"""The red side: each attack against the served model through ``RemoteModel``, under its own API key.

Every attack spends at most ``budget`` samples, keeps a timeline of them (:class:`TracedModel`) and a progress
curve of what it has obtained so far (evasion: share of its targets fooled; extraction: fidelity; membership:
AUC), so the blue side can say what the attacker had when it was first noticed. Refusals end an attack cleanly
and are recorded: a 429 (rate limit or quota), 401/403 (key revoked, policy) or 5xx is a control that stopped it.
Evasion reads a guard's withheld answer as "not fooled" and searches on (:mod:`modelshield.redteam.adaptive`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from modelshield.attacks.evasion import HopSkipJump, Square
from modelshield.attacks.extraction import EvalSet, JacobianAugmentation, KnockoffNets, Oracle, natural_patches
from modelshield.attacks.extraction.base import ExtractionResult, VictimRefusedError, refusal_of
from modelshield.attacks.privacy.metrics import roc_summary
from modelshield.core.adapters import RemoteModel
from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError, RemoteModelError
from modelshield.redteam.adaptive import WithheldAsClean
from modelshield.redteam.traced import TracedModel

#: attack name → what its ``success`` measures
ATTACKS: dict[str, str] = {
    "square": "evasion_rate",
    "hopskipjump": "evasion_rate",
    "jacobian": "fidelity",
    "knockoff": "fidelity",
    "membership": "auc",
}


@dataclass
class Target:
    """The served model as the attacker knows it: its predict URL (``url``), input shape, classes and data like
    its own.

    ``attack_x``/``attack_y`` are the inputs evasion perturbs (true labels); ``members``/``non_members`` are
    records the membership probe tells apart (the red team's ground truth); ``seed_x`` is the few in-distribution
    samples JBDA starts from; ``eval_x``/``eval_labels`` measure fidelity (labels None: asked once, before the
    attack's timeline starts).
    """

    url: str
    input_shape: tuple[int, ...]
    num_classes: int
    attack_x: Tensor
    attack_y: Tensor
    members: Tensor
    members_y: Tensor
    non_members: Tensor
    non_members_y: Tensor
    seed_x: Tensor
    eval_x: Tensor
    eval_y: Tensor
    eval_labels: Tensor | None = None
    bounds: tuple[float, float] = (0.0, 1.0)


@dataclass
class CampaignPlan:
    """Budgets and sizes: ``budget`` samples per attack; evasion splits it over ``evasion_samples`` inputs."""

    budget: int = 300
    evasion_samples: int = 5
    square_eps: float = 0.3
    hsj_eps: float = 2.0
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget < 20:
            raise InputError(f"the budget must be at least 20 queries per attack, not {self.budget}")
        if self.evasion_samples < 1 or self.evasion_samples > self.budget // 10:
            raise InputError(f"evasion samples must be between 1 and budget/10 ({self.budget // 10})")


@dataclass
class AttackRun:
    """One attack's side of the joint report: what it spent, got and why it stopped, with its timeline."""

    attack: str
    subject: str
    success_metric: str
    success: float
    queries: int
    budget: int
    stop_reason: str
    started: float
    finished: float
    progress: list[tuple[int, float]]
    trace: TracedModel
    refusal: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def got_at(self, queries: int) -> float:
        """What the attacker had obtained (its success metric) once ``queries`` samples were sent."""
        got = 0.0 if self.success_metric != "auc" else 0.5
        for q, value in self.progress:
            if q > queries:
                break
            got = value
        return got


def target_from_data(
    url: str,
    test: Dataset,
    train: Dataset | None,
    plan: CampaignPlan,
    eval_labels: Tensor | None,
    num_classes: int,
) -> Target:
    """What the attacker holds: inputs to perturb, membership ground truth, a JBDA seed set, evaluation data.

    The test split is cut into disjoint parts: evasion targets, non-members, JBDA seeds (10 per class), and the
    rest (at least as many as the non-members) for fidelity. Members come from the training split (the demo's
    ground truth); without one the membership probe cannot run.
    """
    x, y = test.x, test.y
    n_attack = plan.evasion_samples
    seeds = torch.cat([torch.nonzero(y == c).flatten()[-10:] for c in range(num_classes)])
    rest = torch.ones(len(x), dtype=torch.bool)
    rest[seeds] = False
    free = torch.nonzero(rest).flatten()
    half = min(plan.budget // 2, (len(free) - n_attack) // 2)  # at least as many left to measure fidelity on
    if half < 1:
        raise InputError(f"the data has {len(x)} samples: too few for {n_attack} evasion targets, seeds and the rest")
    attack_idx, non_idx = free[:n_attack], free[n_attack : n_attack + half]
    eval_idx = free[n_attack + half :]
    members = train.x[:half] if train is not None else x[:0]
    members_y = train.y[:half] if train is not None else y[:0]
    return Target(
        url=url,
        input_shape=tuple(x.shape[1:]),
        num_classes=num_classes,
        attack_x=x[attack_idx],
        attack_y=y[attack_idx],
        members=members,
        members_y=members_y,
        non_members=x[non_idx],
        non_members_y=y[non_idx],
        seed_x=x[seeds],
        eval_x=x[eval_idx],
        eval_y=y[eval_idx],
        eval_labels=None if eval_labels is None else eval_labels[eval_idx],
        bounds=test.bounds,
    )


def _refusal_dict(refusal: VictimRefusedError | None) -> dict[str, Any] | None:
    if refusal is None:
        return None
    return {"kind": refusal.kind, "status": refusal.status, "message": str(refusal)[:200]}


def _evasion(name: str, model: TracedModel, target: Target, plan: CampaignPlan) -> dict[str, Any]:
    """Square (scores) or HopSkipJump (labels) on each input in turn, ``budget / samples`` queries each."""
    n = plan.evasion_samples
    per_sample = plan.budget // n
    fooled = withheld = 0
    progress: list[tuple[int, float]] = []
    refusal: VictimRefusedError | None = None
    for i in range(n):
        if name == "square":
            attack: Square | HopSkipJump = Square(eps=plan.square_eps, n_queries=per_sample - 1, seed=plan.seed)
        else:
            attack = HopSkipJump(
                eps=plan.hsj_eps, max_queries=per_sample - 1, init_evals=10, max_evals=50, seed=plan.seed
            )
        x, y = target.attack_x[i : i + 1], target.attack_y[i : i + 1]
        victim = WithheldAsClean(model, int(y[0]))
        try:
            fooled += int(attack.run(victim, x, y, batch_size=1).success.sum())  # the verifying query is the +1
        except RemoteModelError as exc:
            refusal = refusal_of(exc)
            if refusal is None:
                raise
        withheld += victim.withheld
        progress.append((model.sent, fooled / n))
        if refusal is not None:
            break
    return {
        "success": fooled / n,
        "progress": progress,
        "refusal": refusal,
        "stop_reason": "refused" if refusal is not None else "complete",
        "details": {
            "samples": n,
            "fooled": fooled,
            "withheld_by_guard": withheld,
            "queries_per_sample": per_sample,
        },
    }


def _extraction(name: str, model: TracedModel, target: Target, plan: CampaignPlan) -> dict[str, Any]:
    """JBDA from a seed set like the victim's data, or Knockoff Nets on natural-image patches."""
    labels = target.eval_labels
    evaluation = EvalSet(target.eval_x, target.eval_y, victim_labels=labels)
    attack: JacobianAugmentation | KnockoffNets
    if name == "jacobian":
        attack = JacobianAugmentation(
            target.seed_x, iterations=4, kappa=100, epochs=plan.epochs, batch_size=plan.batch_size, seed=plan.seed
        )
    else:
        pool, regions = natural_patches(plan.budget, target.input_shape, bounds=target.bounds, seed=plan.seed)
        attack = KnockoffNets(
            pool, surrogate_labels=regions, rounds=3, epochs=plan.epochs, batch_size=plan.batch_size, seed=plan.seed
        )
    result: ExtractionResult = attack(model, budget=plan.budget, evaluation=evaluation)
    return {
        "success": float(result.fidelity or 0.0),
        "progress": [(p.queries, p.fidelity) for p in result.curve],
        "refusal": result.refusal,
        "stop_reason": result.stop_reason,
        "details": {
            "accuracy": result.accuracy,
            "answered": result.queries,
            "dropped_by_guard": result.dropped,
            **({"error": result.error} if result.error else {}),
        },
    }


def _membership(model: TracedModel, target: Target, plan: CampaignPlan) -> dict[str, Any]:
    """Loss-threshold membership inference (Yeom et al. 2018) on the probabilities the gateway answers.

    Members and non-members are interleaved so every prefix of the queries holds both: the AUC after each batch
    is what the attacker knew at that point.
    """
    half = plan.budget // 2
    m, nm = min(half, len(target.members)), min(half, len(target.non_members))
    k = min(m, nm)
    x = torch.stack([t for pair in zip(target.members[:k], target.non_members[:k], strict=True) for t in pair])
    y = torch.stack([t for pair in zip(target.members_y[:k], target.non_members_y[:k], strict=True) for t in pair])
    is_member = np.tile([True, False], k)
    oracle = Oracle(model, 2 * k, batch_size=plan.batch_size, use_scores=True)
    scores: list[float] = []
    kept: list[int] = []
    progress: list[tuple[int, float]] = []
    for start in range(0, 2 * k, plan.batch_size):
        answers = oracle.ask(x[start : start + plan.batch_size])
        rows = answers.kept + start
        p = answers.targets.gather(1, y[rows].unsqueeze(1)).squeeze(1).clamp_min(1e-12)
        scores += torch.log(p).tolist()
        kept += rows.tolist()
        if is_member[kept].any() and not is_member[kept].all():
            progress.append((model.sent, roc_summary(np.asarray(scores), is_member[kept]).auc))
        if oracle.exhausted:
            break
    auc = progress[-1][1] if progress else 0.5
    members = is_member[kept]
    return {
        "success": auc,
        "progress": progress,
        "refusal": oracle.refusal,
        "stop_reason": oracle.stop_reason,
        "details": {
            "members": int(members.sum()),
            "non_members": int((~members).sum()),
            "dropped_by_guard": oracle.dropped,
            "advantage": 2 * auc - 1,
        },
    }


def run_attack(
    name: str,
    target: Target,
    plan: CampaignPlan,
    *,
    subject: str,
    model_factory: Callable[[], RemoteModel],
    clock: Callable[[], float] = time.time,
) -> AttackRun:
    """Run one attack through a fresh victim adapter from ``model_factory`` (a ``RemoteModel`` under its key)."""
    if name not in ATTACKS:
        raise InputError(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
    victim = model_factory()
    try:
        if name in ("jacobian", "knockoff") and target.eval_labels is None:
            target.eval_labels = victim.predict(target.eval_x, batch_size=plan.batch_size)  # before the timeline
        model = TracedModel(victim, clock=clock)
        started = clock()
        torch.manual_seed(plan.seed)
        if name in ("square", "hopskipjump"):
            out = _evasion(name, model, target, plan)
        elif name == "membership":
            out = _membership(model, target, plan)
        else:
            out = _extraction(name, model, target, plan)
        finished = clock()
    finally:
        victim.close()
    return AttackRun(
        attack=name,
        subject=subject,
        success_metric=ATTACKS[name],
        success=float(out["success"]),
        queries=model.sent,
        budget=plan.budget,
        stop_reason=str(out["stop_reason"]),
        started=started,
        finished=finished,
        progress=[(int(q), float(v)) for q, v in out["progress"]],
        trace=model,
        refusal=_refusal_dict(out["refusal"]),
        details=out["details"],
    )


def remote_victim(target: Target, key: str, plan: CampaignPlan) -> RemoteModel:
    """The served model through ``RemoteModel`` under one API key, asking for probabilities (no probe query)."""
    return RemoteModel(
        target.url,
        input_shape=target.input_shape,
        num_classes=target.num_classes,
        bounds=target.bounds,
        headers={"Authorization": f"Bearer {key}"},
        batch_size=plan.batch_size,
        output="probabilities",
    )


def run_campaign(
    target: Target,
    plan: CampaignPlan,
    attacks: Sequence[tuple[str, str, str]],
    *,
    settle_s: float = 3.0,
    on_start: Callable[[str, str], None] | None = None,
    on_done: Callable[[AttackRun], None] | None = None,
) -> list[AttackRun]:
    """Run ``(attack, subject, key)`` one after the other, each under its own key, and wait ``settle_s`` after
    each: the gateway's late controls (extraction scoring after the answer, periodic monitor checks) then fall
    in the attack's window and not in the next one's."""
    runs = []
    for name, subject, key in attacks:
        if on_start is not None:
            on_start(name, subject)
        run = run_attack(name, target, plan, subject=subject, model_factory=partial(remote_victim, target, key, plan))
        if on_done is not None:
            on_done(run)
        runs.append(run)
        time.sleep(settle_s)
    return runs
