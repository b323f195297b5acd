"""Run an evasion assessment: clean accuracy, ε sweeps, minimal perturbations, black-box budgets.

``assess(model, data, AssessConfig(...))`` is what ``modelshield assess`` calls; it returns an
``AssessmentResult`` (plus example images for the report) whose findings say what broke.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

import modelshield
from modelshield.assess.catalog import ALL_ATTACKS, DETECTOR_NAMES
from modelshield.assess.defences import certify_model, evaluate_model_detectors
from modelshield.assess.findings import build_findings
from modelshield.assess.results import AssessmentResult, AttackRecord, QueryCurve
from modelshield.assess.sanity import SanityContext, run_sanity_checks
from modelshield.attacks.base import Attack
from modelshield.attacks.evasion import APGD, FGSM, PGD, CarliniWagnerL2, DeepFool, HopSkipJump, Square
from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import Model
from modelshield.report.examples import ExampleGrid

Progress = Callable[[str, int], None]
"""Called with a description and a step count to advance; the CLI draws a progress bar from it."""


@dataclass
class AssessConfig:
    """What to run. ε values are in the model's input units (e.g. 8/255 for pixels in [0, 1])."""

    eps_linf: Sequence[float] = (0.01, 0.03, 0.05, 0.1, 0.2, 0.3)
    eps_l2: Sequence[float] = (0.25, 0.5, 1.0, 2.0)
    gating_eps: float | None = None
    fail_under: float | None = None
    attacks: Sequence[str] = ALL_ATTACKS
    pgd_steps: int = 20
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
    alpha: float = 0.001
    certify_samples: int = 100
    detectors: Sequence[str] = ()

    def validate(self) -> None:
        """Refuse nonsense before any work starts, with every problem named."""
        problems = []
        for name, values in (("eps", self.eps_linf), ("eps-l2", self.eps_l2)):
            if any(not (v > 0) for v in values):
                problems.append(f"{name} values must be positive, got {list(values)}")
        if self.gating_eps is not None and not self.gating_eps > 0:
            problems.append(f"gating eps must be positive, got {self.gating_eps}")
        if self.fail_under is not None and not 0.0 <= self.fail_under <= 1.0:
            problems.append(f"fail-under is a fraction in [0, 1], got {self.fail_under}")
        unknown = sorted(set(self.attacks) - set(ALL_ATTACKS))
        if unknown:
            problems.append(f"unknown attacks {unknown}; choose from {', '.join(ALL_ATTACKS)}")
        if self.certify and not self.sigma > 0:
            problems.append(f"sigma must be positive, got {self.sigma}")
        if self.certify and not 0 < self.alpha < 1:
            problems.append(f"alpha must be in (0, 1), got {self.alpha}")
        unknown_detectors = sorted(set(self.detectors) - set(DETECTOR_NAMES))
        if unknown_detectors:
            problems.append(f"unknown detectors {unknown_detectors}; choose from {', '.join(DETECTOR_NAMES)}")
        for name in ("pgd_steps", "apgd_steps", "cw_steps", "square_queries", "batch_size", "hsj_samples", "n0", "n",
                     "certify_samples"):
            if getattr(self, name) < 1:
                problems.append(f"{name.replace('_', '-')} must be at least 1")
        if problems:
            raise InputError("; ".join(problems))

    @property
    def gate(self) -> float:
        """The L∞ ε the pass/fail decision is taken at: given, or the middle of the sweep."""
        if self.gating_eps is not None:
            return float(self.gating_eps)
        sweep = sorted(self.eps_linf)
        return float(sweep[len(sweep) // 2]) if sweep else 0.1


def _batched(model: Model, attack: Attack, x: Tensor, y: Tensor, batch_size: int) -> Tensor:
    """Run an attack batch by batch so memory stays flat on large evaluation sets."""
    return torch.cat([attack(model, x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)])


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


class _Assessment:
    """The state of one assessment while its attacks run."""

    def __init__(self, model: Model, data: Dataset, cfg: AssessConfig, progress: Progress | None) -> None:
        self.model, self.data, self.cfg = model, data, cfg
        self.progress = progress or (lambda _desc, _n: None)
        self.x, self.y = data.x.to(model.device), data.y.to(model.device)
        self.clean_pred = model.predict(self.x, cfg.batch_size)
        self.correct = self.clean_pred == self.y
        self.records: list[AttackRecord] = []
        self.curves: list[QueryCurve] = []
        self.l2: dict[str, list[float]] = {}
        self.runs: list[_Run] = []

    def run(self, attack: Attack, idx: Tensor | None = None) -> _Run:
        """Attack the samples ``idx`` (default all), timing it and counting queries."""
        x, y = (self.x, self.y) if idx is None else (self.x[idx], self.y[idx])
        torch.manual_seed(self.cfg.seed)
        self.model.reset_queries()
        start = time.perf_counter()
        x_adv = _batched(self.model, attack, x, y, self.cfg.batch_size)
        seconds = time.perf_counter() - start
        spent = self.model.queries
        fooled = self.model.predict(x_adv, self.cfg.batch_size) != y
        queries = getattr(attack, "queries_per_sample", None) if attack.black_box else None
        result = _Run(attack, idx, x_adv, fooled, seconds, queries, spent if attack.black_box else None)
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
        n += len({float(e) for e in cfg.eps_linf} | {cfg.gate}) * (("fgsm" in chosen) + ("pgd" in chosen)) + len(cfg.eps_l2) * ("pgd-l2" in chosen)
        n += ("apgd-ce" in chosen) + ("apgd-dlr" in chosen) + ("cw" in chosen) + ("deepfool" in chosen)
    n += ("square" in chosen) + len(cfg.hsj_budgets) * ("hopskipjump" in chosen)
    n += cfg.certify + (len(cfg.detectors) * 2 + 3 if cfg.detectors and white_box else 0)
    return n


def assess(
    model: Model, data: Dataset, cfg: AssessConfig | None = None, progress: Progress | None = None
) -> tuple[AssessmentResult, ExampleGrid | None]:
    """Assess ``model`` on ``data``; return the result and an example grid for image data."""
    cfg = cfg or AssessConfig()
    cfg.validate()
    if len(data) == 0:
        raise InputError("the evaluation data is empty")
    model.check_inputs(data.x, data.y)
    st = _Assessment(model, data, cfg, progress)
    st.progress("clean accuracy", 1)
    chosen = set(cfg.attacks)
    gate = cfg.gate
    linf = sorted({float(e) for e in cfg.eps_linf} | {gate})

    if model.white_box:
        for eps in linf:
            for name in ("fgsm", "pgd"):
                if name in chosen:
                    atk: Attack = FGSM(eps=eps) if name == "fgsm" else PGD(eps=eps, steps=cfg.pgd_steps, seed=cfg.seed)
                    st.progress(f"{name} L∞ ε={eps:g}", 0)
                    st.record(atk, st.run(atk))
                    st.progress(f"{name} L∞ ε={eps:g}", 1)
        if "pgd-l2" in chosen:
            for eps in sorted(float(e) for e in cfg.eps_l2):
                atk = PGD(eps=eps, steps=cfg.pgd_steps, norm="l2", seed=cfg.seed)
                st.progress(f"pgd L2 ε={eps:g}", 0)
                st.record(atk, st.run(atk))
                st.progress(f"pgd L2 ε={eps:g}", 1)
        for loss in ("ce", "dlr"):
            if f"apgd-{loss}" in chosen and model.num_classes >= (3 if loss == "dlr" else 2):
                atk = APGD(eps=gate, steps=cfg.apgd_steps, loss=loss, seed=cfg.seed)
                st.progress(f"apgd-{loss} L∞ ε={gate:g}", 0)
                st.record(atk, st.run(atk))
                st.progress(f"apgd-{loss} L∞ ε={gate:g}", 1)
        for name, make in (("cw", lambda: CarliniWagnerL2(steps=cfg.cw_steps, lr=cfg.cw_lr)), ("deepfool", lambda: DeepFool())):
            if name in chosen:
                atk = make()
                st.progress(f"{atk.name} (minimal L2)", 0)
                st.record(atk, st.run(atk))
                st.progress(f"{atk.name} (minimal L2)", 1)

    if "square" in chosen and model.has_scores:
        atk = Square(eps=gate, n_queries=cfg.square_queries, seed=cfg.seed)
        st.progress(f"square L∞ ε={gate:g}, {cfg.square_queries} queries", 0)
        run = st.run(atk)
        st.record(atk, run)
        st.curves.append(_query_curve(atk.name, "linf", gate, run, st.correct, cfg.square_queries))
        st.progress(f"square L∞ ε={gate:g}", 1)
    if "hopskipjump" in chosen:
        _run_hopskipjump(st)

    certified = certify_model(st.model, st.x, st.y, cfg, st.progress) if cfg.certify else []
    detectors = (evaluate_model_detectors(st.model, st.x, st.y, cfg, gate, st.progress)
                 if cfg.detectors and model.white_box else [])
    result = AssessmentResult(
        version=modelshield.__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        command=cfg.command,
        model={**cfg.model_info, "kind": type(model).__name__, "white_box": model.white_box,
               "num_classes": model.num_classes, "input_shape": list(model.input_shape), "bounds": list(model.bounds)},
        data={"name": data.name, "samples": len(data), "bounds": list(data.bounds)},
        clean_accuracy=float(st.correct.float().mean()),
        attacks=st.records,
        query_curves=st.curves,
        perturbation_l2=st.l2,
        certified=certified,
        detectors=detectors,
    )
    result.gating = _gating(result, gate, cfg.fail_under)
    adversarials = [(r.attack, st.x if r.idx is None else st.x[r.idx], r.x_adv) for r in st.runs]
    result.sanity = run_sanity_checks(SanityContext(model, st.x, st.y, result, adversarials))
    result.findings = build_findings(result, st.x)
    result.passed = result.gating.get("passed", True)
    return result, _examples(st, gate)


def _run_hopskipjump(st: _Assessment) -> None:
    """Decision-based attack on a subset at growing budgets: how fast the perturbation shrinks."""
    cfg = st.cfg
    idx = torch.arange(min(cfg.hsj_samples, len(st.x)), device=st.x.device)
    x, correct = st.x[idx], st.correct[idx]
    eps_l2 = sorted(cfg.eps_l2)[len(cfg.eps_l2) // 2] if cfg.eps_l2 else 1.0
    n_correct = int(correct.sum())
    successes = []
    for budget in sorted(cfg.hsj_budgets):
        atk = HopSkipJump(max_queries=int(budget), seed=cfg.seed)
        st.progress(f"hopskipjump {budget} queries × {len(idx)} samples", 0)
        run = st.run(atk, idx)
        st.record(atk, run, idx)
        small = run.fooled & correct & (_l2(run.x_adv - x) <= eps_l2)
        successes.append(float(small.sum()) / n_correct if n_correct else 0.0)
        st.progress(f"hopskipjump {budget} queries", 1)
    st.curves.append(
        QueryCurve(attack="hopskipjump", norm="l2", eps=eps_l2, budgets=sorted(int(b) for b in cfg.hsj_budgets),
                   success_rate=successes)
    )


def _query_curve(name: str, norm: str, eps: float, run: _Run, correct: Tensor, budget: int) -> QueryCurve:
    """Success rate among correctly classified samples for every budget up to the one spent."""
    budgets = sorted({b for b in (1, 3, 10, 30, 100, 300, 1000, 3000, 10000) if b < budget} | {budget})
    n_correct = int(correct.sum())
    ok = run.fooled & correct
    assert run.queries is not None
    q = run.queries.to(ok.device)
    rates = [float((ok & (q <= b)).sum()) / n_correct if n_correct else 0.0 for b in budgets]
    return QueryCurve(attack=name, norm=norm, eps=eps, budgets=budgets, success_rate=rates)  # type: ignore[arg-type]


def _gating(result: AssessmentResult, gate: float, fail_under: float | None) -> dict[str, object]:
    """The pass/fail decision: the worst robust accuracy of any L∞ attack at the gating ε."""
    at_gate = [r for r in result.attacks if r.norm == "linf" and r.eps is not None and abs(r.eps - gate) < 1e-12]
    if not at_gate:
        return {"eps": gate, "norm": "linf", "attack": None, "robust_accuracy": None, "fail_under": fail_under,
                "passed": True}
    worst = min(at_gate, key=lambda r: r.robust_accuracy)
    passed = fail_under is None or worst.robust_accuracy >= fail_under
    return {"eps": gate, "norm": "linf", "attack": worst.attack, "robust_accuracy": worst.robust_accuracy,
            "fail_under": fail_under, "passed": passed}


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
