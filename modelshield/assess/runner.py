"""Run an evasion assessment: clean accuracy, ε sweeps, minimal perturbations, black-box budgets.

``assess(model, data, AssessConfig(...))`` is what ``modelshield assess`` calls; it returns an
``AssessmentResult`` (plus example images for the report) whose findings say what broke.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal, Protocol

import torch
from torch import Tensor

import modelshield
from modelshield.assess.config import AssessConfig
from modelshield.assess.defences import certify_model, evaluate_model_detectors
from modelshield.assess.examples import ExampleGrid
from modelshield.assess.findings import build_findings
from modelshield.assess.results import (
    AssessmentResult,
    AttackError,
    AttackRecord,
    QueryCurve,
    Verdict,
    gate_incomplete,
    gradients_masked,
    white_box_skipped,
)
from modelshield.assess.sanity import SanityContext, run_sanity_checks
from modelshield.attacks.base import Attack, AttackResult, Norm
from modelshield.attacks.errors import GradientUnavailableError
from modelshield.attacks.evasion import APGD, FGSM, PGD, CarliniWagnerL2, DeepFool, HopSkipJump, Square
from modelshield.core.datasets import Dataset
from modelshield.core.errors import CapabilityError, InputError, RemoteModelError
from modelshield.core.model import Model, ModelCallError

if TYPE_CHECKING:
    from modelshield.defenses.training.loop import DataObserver

Progress = Callable[[str, int], None]
"""Called with a description and a step count to advance; the CLI draws a progress bar from it."""


def _l2(delta: Tensor) -> Tensor:
    return delta.flatten(1).norm(dim=1)


@dataclass
class _Run:
    """One attack's outcome on the evaluation set (or the subset ``idx``), before it becomes a record."""

    attack: Attack
    idx: Tensor | None
    x_adv: Tensor
    fooled: Tensor
    seconds: float
    queries: Tensor | None = None
    total_queries: int | None = None
    claimed: int = 0
    verified: int = 0


class AttackRunner(Protocol):
    """Runs one attack over ``(x, y)``, the first rows of the evaluation set, and gives back its per-sample outcome
    or why it has none. The single-process runner is :func:`run_attack` on the driver's model; ``assess.sharded``
    runs it on Ray workers, each over a contiguous range of the rows, and puts the ranges back together."""

    def __call__(self, attack: Attack, x: Tensor, y: Tensor) -> AttackResult | AttackError: ...


def run_attack(
    model: Model, attack: Attack, x: Tensor, y: Tensor, *, batch_size: int, seed: int, first_index: int = 0
) -> AttackResult | AttackError:
    """Attack ``(x, y)`` batch by batch, ``x[0]`` being sample ``first_index`` of the evaluation set.

    The code every assessment runs an attack with, in one process or on a shard: the global RNG is re-seeded
    first (seedless attacks draw their seed from it), and a failure the model raised, or a white-box attack on
    a model without usable input gradients (``GradientUnavailableError``, raised before any work), comes back
    as an ``AttackError`` instead of stopping the assessment.
    """
    torch.manual_seed(seed)
    model.reset_queries()
    try:
        return attack.run(model, x, y, batch_size=batch_size, first_index=first_index)
    except GradientUnavailableError as exc:
        return attack_error(attack, "not-applicable", exc)
    except (ModelCallError, RemoteModelError) as exc:  # the model's own failure, not a bug of the attack
        return attack_error(attack, "error", exc)


def attack_error(attack: Attack, kind: Literal["error", "not-applicable"], exc: Exception) -> AttackError:
    """Why ``attack`` has no numbers; a model failure is named by what the model itself raised."""
    cause = exc.__cause__ if isinstance(exc, ModelCallError) and exc.__cause__ is not None else exc
    text = " ".join(str(exc).split()) or type(exc).__name__
    return AttackError(
        attack=attack.name, norm=attack.norm, eps=attack.eps, kind=kind, error=type(cause).__name__, message=text[:300]
    )


class _Assessment:
    """The state of one assessment while its attacks run."""

    def __init__(
        self, model: Model, data: Dataset, cfg: AssessConfig, progress: Progress | None, runner: AttackRunner | None
    ) -> None:
        self.model, self.data, self.cfg = model, data, cfg
        self.progress = progress or (lambda _desc, _n: None)
        self.runner = runner or partial(run_attack, model, batch_size=cfg.batch_size, seed=cfg.seed)
        self.x, self.y = data.x.to(model.device), data.y.to(model.device)
        self.clean_pred = model.predict(self.x, cfg.batch_size)
        self.correct = self.clean_pred == self.y
        self.records: list[AttackRecord] = []
        self.errors: list[AttackError] = []
        self.curves: list[QueryCurve] = []
        self.l2: dict[str, list[float]] = {}
        self.runs: list[_Run] = []

    def attempt(self, attack: Attack, desc: str, first: int | None = None) -> _Run | None:
        """Run and record ``attack`` on all samples (or the ``first`` ones); an attack that has no numbers
        (the model raised inside it, or it does not apply) is recorded as an error and the others go on."""
        self.progress(desc, 0)
        run = self.run(attack, first)
        if run is not None:
            self.record(attack, run, run.idx)
        self.progress(desc, 1)
        return run

    def run(self, attack: Attack, first: int | None = None) -> _Run | None:
        """Attack all samples (or the ``first`` ones), timing it; successes are re-verified."""
        idx = None if first is None else torch.arange(first, device=self.x.device)
        x, y = (self.x, self.y) if first is None else (self.x[:first], self.y[:first])
        start = time.perf_counter()
        res = self.runner(attack, x, y)
        seconds = time.perf_counter() - start
        if isinstance(res, AttackError):
            self.errors.append(res)
            return None
        result = _Run(
            attack,
            idx,
            res.x_adv.to(self.x.device),
            res.success.to(self.x.device),
            seconds,
            res.queries,
            res.total_queries,
            res.n_claimed,
            res.n_verified,
        )
        self.runs.append(result)
        return result

    def record(self, attack: Attack, run: _Run, idx: Tensor | None = None) -> AttackRecord:
        """Score a run on the samples ``idx`` (default all); minimum-norm runs also get L2 sizes."""
        x, y, correct = (self.x, self.y, self.correct) if idx is None else (self.x[idx], self.y[idx], self.correct[idx])
        robust = float(((~run.fooled) & correct).float().mean())
        n_correct = int(correct.sum())
        success = float((run.fooled & correct).sum()) / n_correct if n_correct else 0.0
        median_l2 = None
        if attack.eps is None:
            sizes = _l2(run.x_adv - x)[run.fooled & correct]
            self.l2[attack.name] = [round(float(v), 6) for v in sizes.cpu()]
            median_l2 = float(sizes.median()) if sizes.numel() else None
        rec = AttackRecord(
            attack=attack.name,
            norm=attack.norm,
            eps=attack.eps,
            robust_accuracy=robust,
            success_rate=success,
            queries=run.total_queries,
            seconds=round(run.seconds, 4),
            targeted=attack.targeted,
            median_l2=median_l2,
            samples=len(y),
            claimed=run.claimed,
            verified=run.verified,
            params=_params(attack),
        )
        self.records.append(rec)
        return rec


def _params(attack: Attack) -> dict[str, object]:
    """The attack's scalar settings, for the report's reproducibility section."""
    keep = (int, float, str, bool)
    return {k: v for k, v in vars(attack).items() if isinstance(v, keep) and not k.startswith("_")}


def planned_steps(cfg: AssessConfig, white_box: bool) -> int:
    """How many progress steps ``assess`` will report, so a progress bar can show a total."""
    chosen = set(cfg.attacks)
    n = 1
    if white_box:
        n += len({float(e) for e in cfg.eps_linf} | {cfg.gate}) * (("fgsm" in chosen) + ("pgd" in chosen))
        n += len(cfg.eps_l2) * ("pgd-l2" in chosen)
        n += ("apgd-ce" in chosen) + ("apgd-dlr" in chosen) + ("cw" in chosen) + ("deepfool" in chosen)
    n += ("square" in chosen) + len(cfg.hsj_budgets) * ("hopskipjump" in chosen)
    n += cfg.certify + (len(cfg.detectors) * 2 + 3 if cfg.detectors and white_box else 0)
    n += 2 * cfg.privacy  # the baseline with its reference models, then the DP twin with its own
    n += cfg.poisoning  # the CLI's poisoning audit (assess.poisoning) reports one step
    return n


def _white_box_attacks(cfg: AssessConfig, num_classes: int) -> list[tuple[Attack, str]]:
    """Every white-box attack the configuration asks for, with its progress description, in running order."""
    chosen, gate = set(cfg.attacks), cfg.gate
    out: list[tuple[Attack, str]] = []

    def pgd(eps: float, norm: Norm) -> PGD:
        return PGD(
            eps=eps,
            steps=cfg.pgd_steps,
            norm=norm,
            alpha=cfg.pgd_alpha(eps),
            random_start=cfg.random_start,
            restarts=cfg.restarts,
            seed=cfg.seed,
        )

    for eps in sorted({float(e) for e in cfg.eps_linf} | {gate}):
        if "fgsm" in chosen:
            out.append((FGSM(eps=eps), f"fgsm L∞ ε={eps:g}"))
        if "pgd" in chosen:
            out.append((pgd(eps, "linf"), f"pgd L∞ ε={eps:g}"))
    if "pgd-l2" in chosen:
        out += [(pgd(eps, "l2"), f"pgd L2 ε={eps:g}") for eps in sorted(float(e) for e in cfg.eps_l2)]
    for loss in ("ce", "dlr"):
        if f"apgd-{loss}" in chosen and num_classes >= (3 if loss == "dlr" else 2):
            atk = APGD(eps=gate, steps=cfg.apgd_steps, loss=loss, restarts=cfg.restarts, seed=cfg.seed)
            out.append((atk, f"apgd-{loss} L∞ ε={gate:g}"))
    if "cw" in chosen:
        out.append((CarliniWagnerL2(steps=cfg.cw_steps, lr=cfg.cw_lr), "cw-l2 (minimal L2)"))
    if "deepfool" in chosen:
        out.append((DeepFool(), "deepfool (minimal L2)"))
    return out


def assess(
    model: Model,
    data: Dataset,
    cfg: AssessConfig | None = None,
    progress: Progress | None = None,
    runner: AttackRunner | None = None,
    data_observer: DataObserver | None = None,
) -> tuple[AssessmentResult, ExampleGrid | None]:
    """Assess ``model`` on ``data``; return the result and an example grid for image data.

    ``runner`` runs the per-sample attacks elsewhere (``assess.sharded.RayShards``); everything else (clean
    accuracy, curves, certification, detectors, sanity checks, findings) runs here on the whole set, so the
    report is the one a single process writes.

    An attack the model raises inside becomes an error record and the others still run; white-box attacks on
    a model without usable input gradients are recorded as not applicable while black-box attacks run.
    ``cfg.privacy`` adds the built-in membership audit (``assess.privacy``), which trains its own pair of models;
    ``data_observer`` (a data-access monitor) watches the DP twin's training.
    """
    cfg = cfg or AssessConfig()
    cfg.validate()
    if len(data) == 0:
        raise InputError("the evaluation data is empty")
    model.check_inputs(data.x, data.y)
    _check_budgets(cfg, model.bounds)
    st = _Assessment(model, data, cfg, progress, runner)
    st.progress("clean accuracy", 1)
    gate = cfg.gate

    if model.white_box:
        for atk, desc in _white_box_attacks(cfg, model.num_classes):
            st.attempt(atk, desc)

    if "square" in cfg.attacks:
        atk = Square(eps=gate, n_queries=cfg.square_queries, seed=cfg.seed)
        if not model.has_scores:  # asked for, but a score-based attack has nothing to search on: say so
            reason = CapabilityError(f"{type(model).__name__} answers with labels only; Square searches class scores")
            st.errors.append(attack_error(atk, "not-applicable", reason))
        else:
            run = st.attempt(atk, f"square L∞ ε={gate:g}, {cfg.square_queries} queries")
            if run is not None and run.queries is not None:
                st.curves.append(_query_curve(atk.name, "linf", gate, run, st.correct, cfg.square_queries))
    if "hopskipjump" in cfg.attacks:
        _run_hopskipjump(st)

    certified = certify_model(st.model, st.x, st.y, cfg, st.progress) if cfg.certify else []
    detectors = (
        evaluate_model_detectors(st.model, st.x, st.y, cfg, gate, st.progress)
        if cfg.detectors and model.white_box and not white_box_skipped(st.errors)
        else []
    )
    result = AssessmentResult(
        version=modelshield.__version__,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        command=cfg.command,
        model={
            **cfg.model_info,
            "kind": type(model).__name__,
            **({"abstained": n} if (n := getattr(model, "abstained", 0)) else {}),  # a guarded endpoint withheld n
            "white_box": model.white_box,
            "has_scores": model.has_scores,
            "num_classes": model.num_classes,
            "input_shape": list(model.input_shape),
            "bounds": list(model.bounds),
        },
        data={"name": data.name, "samples": len(data), "bounds": list(data.bounds)},
        clean_accuracy=float(st.correct.float().mean()),
        attacks=st.records,
        errors=st.errors,
        query_curves=st.curves,
        perturbation_l2=st.l2,
        certified=certified,
        detectors=detectors,
    )
    if cfg.privacy:  # imported here: DP training and its accountant load only when asked for
        from modelshield.assess.privacy import demo_privacy

        result.privacy, result.privacy_roc = demo_privacy(cfg.seed, st.progress, data_observer)
    result.gating = _gating(result, gate, cfg.fail_under)
    adversarials = [(r.attack, st.x if r.idx is None else st.x[r.idx], r.x_adv) for r in st.runs]
    probe = slice(0, cfg.batch_size)  # the checks query the model in one call: at most one batch
    result.sanity = run_sanity_checks(SanityContext(model, st.x[probe], st.y[probe], result, adversarials))
    result.verdict = decide(result)
    result.passed = result.verdict in ("PASSED", "NO GATE") or (result.verdict == "UNTRUSTED" and cfg.allow_untrusted)
    result.findings = build_findings(result, st.x)
    return result, _examples(st, gate)


def _check_budgets(cfg: AssessConfig, bounds: tuple[float, float]) -> None:
    """Refuse ε that exceed the input box: every input is reachable, so robust accuracy is 0 by construction."""
    width = bounds[1] - bounds[0]
    too_big = sorted({e for e in (*cfg.eps_linf, cfg.gate) if e > width})
    if too_big:
        raise InputError(
            f"--eps {too_big} exceed the input range [{bounds[0]:g}, {bounds[1]:g}] (width {width:g})",
            hint="ε is in input units; see --bounds",
        )


def decide(result: AssessmentResult) -> Verdict:
    """The verdict: a failed gate fails; masked gradients make it UNTRUSTED, and so does a set gate that
    measured nothing or lost an attack at its budget to an error; without ``fail_under`` nothing was decided."""
    gate = result.gating
    robust, fail_under = gate.get("robust_accuracy"), gate.get("fail_under")
    if robust is not None and fail_under is not None and robust < fail_under:
        return "FAILED"
    if gradients_masked(result) or (fail_under is not None and (robust is None or gate_incomplete(result))):
        return "UNTRUSTED"
    return "NO GATE" if fail_under is None else "PASSED"


def _run_hopskipjump(st: _Assessment) -> None:
    """Decision-based attack on a subset at growing budgets: how fast the perturbation shrinks."""
    cfg = st.cfg
    first = min(cfg.hsj_samples, len(st.x))
    x, correct = st.x[:first], st.correct[:first]
    eps_l2 = sorted(cfg.eps_l2)[len(cfg.eps_l2) // 2] if cfg.eps_l2 else 1.0
    n_correct = int(correct.sum())
    budgets, successes = [], []
    for budget in sorted(cfg.hsj_budgets):
        atk = HopSkipJump(max_queries=int(budget), seed=cfg.seed)
        run = st.attempt(atk, f"hopskipjump {budget} queries × {first} samples", first)
        if run is None:
            continue
        small = run.fooled & correct & (_l2(run.x_adv - x) <= eps_l2)
        budgets.append(int(budget))
        successes.append(float(small.sum()) / n_correct if n_correct else 0.0)
    if budgets:
        st.curves.append(
            QueryCurve(attack="hopskipjump", norm="l2", eps=eps_l2, budgets=budgets, success_rate=successes)
        )


def _query_curve(name: str, norm: str, eps: float, run: _Run, correct: Tensor, budget: int) -> QueryCurve:
    """Success rate among correctly classified samples for every budget up to the one spent."""
    budgets = sorted({b for b in (1, 3, 10, 30, 100, 300, 1000, 3000, 10000) if b < budget} | {budget})
    n_correct = int(correct.sum())
    ok = run.fooled & correct
    assert run.queries is not None
    q = run.queries.to(ok.device)
    rates = [float((ok & (q <= b)).sum()) / n_correct if n_correct else 0.0 for b in budgets]
    return QueryCurve(attack=name, norm=norm, eps=eps, budgets=budgets, success_rate=rates)


def _gating(result: AssessmentResult, gate: float, fail_under: float | None) -> dict[str, object]:
    """What the gate measured: the worst robust accuracy of any L∞ attack (white- or black-box) at the gating ε."""
    at_gate = [r for r in result.attacks if r.norm == "linf" and r.eps is not None and abs(r.eps - gate) < 1e-12]
    if not at_gate:
        return {"eps": gate, "norm": "linf", "attack": None, "robust_accuracy": None, "fail_under": fail_under}
    worst = min(at_gate, key=lambda r: r.robust_accuracy)
    return {
        "eps": gate,
        "norm": "linf",
        "attack": worst.attack,
        "robust_accuracy": worst.robust_accuracy,
        "fail_under": fail_under,
    }


def _examples(st: _Assessment, gate: float) -> ExampleGrid | None:
    """Clean/adversarial pairs the strongest gating attack fooled, for image data only."""
    if not st.data.is_image or st.cfg.examples < 1:
        return None
    candidates = [r for r in st.runs if r.idx is None and r.attack.norm == "linf" and r.attack.eps == gate]
    if not candidates:
        return None
    run = max(candidates, key=lambda r: int((r.fooled & st.correct).sum()))
    idx = torch.nonzero(run.fooled & st.correct).flatten()[: st.cfg.examples]
    if idx.numel() == 0:
        return None
    adv = run.x_adv[idx]
    return ExampleGrid(
        clean=st.x[idx].cpu().numpy(),
        adversarial=adv.cpu().numpy(),
        true_labels=st.y[idx].cpu().numpy(),
        clean_pred=st.clean_pred[idx].cpu().numpy(),
        adv_pred=st.model.predict(adv).cpu().numpy(),
        attack=run.attack.name,
        eps=gate,
        bounds=st.model.bounds,
        class_names=st.data.class_names,
    )


__all__ = [
    "AssessConfig",
    "AttackRunner",
    "Progress",
    "assess",
    "attack_error",
    "decide",
    "planned_steps",
    "run_attack",
]
