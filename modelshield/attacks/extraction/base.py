"""What every extraction attack shares: a budgeted oracle over the victim, the result, and substitute training.

An extraction attack sees the victim only through ``Model`` queries (a local model or a ``RemoteModel`` in
front of a gateway). The :class:`Oracle` is the attacker's side of that channel: it spends at most
``budget`` samples, counts every one the victim answered, calls ``on_query`` after each answer (progress,
logging, a red-team trace), and turns a victim that stops answering — rate limit, quota, authorisation,
outage — into a :class:`VictimRefusedError` that ends the attack cleanly. Whatever was stolen up to then
is kept: the result holds the stolen model, its fidelity/accuracy curve against queries spent, and why
the attack stopped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from modelshield.core.errors import InputError, ModelShieldError, RemoteModelError
from modelshield.core.model import Model, TorchModel

StopReason = Literal["budget", "complete", "refused", "victim_error"]
Refusal = Literal["rate_limited", "denied", "unavailable"]
QueryCallback = Callable[[int, int], None]
"""Called after every answered batch with (queries spent so far, budget)."""

_HTTP_STATUS = re.compile(r"answered HTTP (\d{3})")


class VictimRefusedError(ModelShieldError):
    """The victim stopped answering: rate limited or over quota (429), denied (401/403), or unavailable.

    ``kind`` says which, ``status`` is the HTTP status where there was one. An extraction attack records
    it in its result (``stop_reason = "refused"``) with everything obtained before it, instead of raising.
    """

    hint = "the victim refused further queries; the result holds what was extracted until then"

    def __init__(self, message: str, *, kind: Refusal, status: int | None = None) -> None:
        super().__init__(message)
        self.kind: Refusal = kind
        self.status = status


def refusal_of(exc: RemoteModelError) -> VictimRefusedError | None:
    """The refusal behind a ``RemoteModelError`` (429, 401/403, 5xx, unreachable), or None for a bad answer."""
    message = str(exc)
    if " unreachable: " in message:
        return VictimRefusedError(message, kind="unavailable")
    found = _HTTP_STATUS.search(message)
    if found is None:
        return None
    status = int(found.group(1))
    if status == 429:
        return VictimRefusedError(message, kind="rate_limited", status=status)
    if status in (401, 403):
        return VictimRefusedError(message, kind="denied", status=status)
    if status >= 500:
        return VictimRefusedError(message, kind="unavailable", status=status)
    return None


class QueryStop(Exception):
    """Internal: the oracle can answer no more (budget spent, victim refused or failed)."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason)
        self.reason: StopReason = reason


@dataclass
class Answers:
    """The victim's answers to one batch: ``targets`` are probabilities, or one-hot labels for a label-only victim.

    ``kept`` indexes the asked samples that were answered (all of them unless the victim withheld some).
    """

    x: Tensor
    labels: Tensor
    targets: Tensor
    kept: Tensor


class Oracle:
    """The victim behind a query budget: counts, reports and stops; never asks for more than ``budget`` samples.

    ``use_scores``: train on the victim's probabilities when it gives them (None = whenever it does), else on
    its labels. A batch the victim answers unusably (e.g. a gateway guard that abstains on one input, which
    ``RemoteModel`` refuses as a whole) is asked again one sample at a time, and the samples that still get no
    usable answer are dropped; they were charged, so they count against the budget.
    """

    def __init__(
        self,
        victim: Model,
        budget: int,
        *,
        batch_size: int = 64,
        use_scores: bool | None = None,
        on_query: QueryCallback | None = None,
        record: bool = False,
    ) -> None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise InputError(f"the query budget must be an integer >= 1, got {budget!r}")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.victim = victim
        self.budget = budget
        self.batch_size = batch_size
        self.on_query = on_query
        self.spent = 0
        self.dropped = 0
        self._sent_before = victim.queries
        self.refusal: VictimRefusedError | None = None
        self.error: ModelShieldError | None = None
        self._use_scores = use_scores
        self._soft: bool | None = None
        self._stopped: QueryStop | None = None
        self.log: list[tuple[np.ndarray, np.ndarray]] | None = [] if record else None

    @property
    def remaining(self) -> int:
        """Samples the attacker may still ask about."""
        return self.budget - self.spent

    @property
    def sent(self) -> int:
        """Samples the victim adapter counted since the attack began (refused requests and probes included)."""
        return self.victim.queries - self._sent_before

    def transcript(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The recorded queries and answers, in order (None unless ``record``)."""
        if self.log is None:
            return None
        if not self.log:
            return np.empty((0, *self.victim.input_shape), np.float32), np.empty((0, self.victim.num_classes))
        return np.concatenate([x for x, _ in self.log]), np.concatenate([a for _, a in self.log])

    @property
    def exhausted(self) -> bool:
        """True once the oracle will answer no more: budget spent, or the victim refused or failed."""
        return self.remaining <= 0 or self._stopped is not None

    @property
    def stop_reason(self) -> StopReason:
        """Why the oracle answers no more: refused, victim_error, budget, or complete (it still would)."""
        if self.refusal is not None:
            return "refused"
        if self.error is not None:
            return "victim_error"
        return "budget" if self.remaining <= 0 else "complete"

    @property
    def soft(self) -> bool:
        """Whether answers carry the victim's probabilities (decided once, on first use)."""
        if self._soft is None:  # a RemoteModel may send a one-sample probe here (counted in ``sent``)
            offers = bool(self.victim.has_scores)
            self._soft = offers if self._use_scores is None else bool(self._use_scores and offers)
        return self._soft

    def ask(self, x: Tensor) -> Answers:
        """The victim's answers for as much of ``x`` as the budget allows.

        A call that is cut short (budget, refusal, failure) returns what it obtained; the next call, or one
        that obtains nothing, raises ``QueryStop``.
        """
        if self._stopped is not None:
            raise self._stopped
        if self.remaining <= 0:
            raise QueryStop("budget")
        x = x[: self.remaining].detach()
        kept: list[Tensor] = []
        labels: list[Tensor] = []
        targets: list[Tensor] = []
        for i in range(0, x.shape[0], self.batch_size):
            try:
                answered = self._answer(x[i : i + self.batch_size], i)
            except QueryStop as stop:  # keep what this call obtained; the next call raises
                self._stopped = stop
                if not kept:
                    raise
                break
            for rows, lab, tgt in answered:
                kept.append(rows)
                labels.append(lab)
                targets.append(tgt)
        if not kept:
            empty = torch.empty(0, dtype=torch.long)
            return Answers(x[:0], empty, torch.empty(0, self.victim.num_classes), empty)
        rows = torch.cat(kept)
        return Answers(x[rows], torch.cat(labels), torch.cat(targets), rows)

    def _answer(self, chunk: Tensor, offset: int) -> list[tuple[Tensor, Tensor, Tensor]]:
        try:
            labels, targets = self._query(chunk)
        except RemoteModelError as exc:
            refused = refusal_of(exc)
            if refused is not None:
                self._refused(refused)
            if chunk.shape[0] == 1:  # an answer we cannot use for this one sample: charged, dropped
                self._charge(1)
                self.dropped += 1
                return []
            return [a for j in range(chunk.shape[0]) for a in self._answer(chunk[j : j + 1], offset + j)]
        except VictimRefusedError as exc:
            self._refused(exc)
        except ModelShieldError as exc:
            self._fail(exc)
        self._charge(chunk.shape[0])
        if self.log is not None:
            self.log.append((chunk.cpu().numpy(), targets.cpu().numpy()))
        return [(torch.arange(offset, offset + chunk.shape[0]), labels, targets)]

    def _query(self, chunk: Tensor) -> tuple[Tensor, Tensor]:
        v = self.victim
        if self.soft:
            probs = v.predict_proba(chunk.to(v.device)).float().cpu()
            return probs.argmax(dim=1), probs
        labels = v.predict(chunk.to(v.device)).long().cpu()
        return labels, nn.functional.one_hot(labels, v.num_classes).float()

    def _charge(self, n: int) -> None:
        self.spent += n
        if self.on_query is not None:
            self.on_query(self.spent, self.budget)

    def _refused(self, exc: VictimRefusedError) -> None:
        self.refusal = exc
        raise QueryStop("refused") from exc

    def _fail(self, exc: ModelShieldError) -> Any:
        self.error = exc
        raise QueryStop("victim_error") from exc


@dataclass
class EvalSet:
    """Where fidelity and accuracy are measured: inputs, their true labels (optional) and the victim's labels.

    The victim's labels are the reference for fidelity. Give them when you have them (a local copy, an
    earlier run): otherwise :meth:`labelled` asks the victim once, outside the attack's budget.
    """

    x: Tensor
    y: Tensor | None = None
    victim_labels: Tensor | None = None

    def labelled(self, victim: Model, batch_size: int = 256) -> EvalSet:
        """This set with the victim's labels filled in (one pass over ``x``, not charged to any attack)."""
        if self.victim_labels is not None:
            return self
        return EvalSet(self.x, self.y, victim.predict(self.x.to(victim.device), batch_size).cpu())


@dataclass(frozen=True)
class CurvePoint:
    """The stolen model's fidelity (agreement with the victim) and accuracy after ``queries`` answered samples."""

    queries: int
    fidelity: float
    accuracy: float | None
    seconds: float


@dataclass
class ExtractionResult:
    """What an extraction attack obtained.

    Attributes:
        attack: the attack's name.
        stolen: the extracted model (a white-box ``TorchModel``), also when the attack stopped early.
        queries: samples the victim answered (and charged) during the attack, at most ``budget``.
        queries_sent: samples the victim adapter counted, refused requests and capability probes included.
        budget: the query budget the attack ran under.
        curve: fidelity and accuracy on the evaluation set after each training round, by queries spent.
        stop_reason: ``budget`` (all spent), ``complete`` (the attack needed no more), ``refused`` (the victim
            stopped answering: see ``refusal``) or ``victim_error`` (it failed: see ``error``).
        refusal: the typed refusal when ``stop_reason == "refused"``.
        error: one line on the failure when ``stop_reason == "victim_error"``.
        arch: how to rebuild ``stolen``'s network (``package.module:Class`` and keyword arguments).
        details: attack-specific figures (e.g. the parameter error of equation solving).
    """

    attack: str
    stolen: TorchModel
    queries: int
    queries_sent: int
    budget: int
    curve: list[CurvePoint]
    stop_reason: StopReason
    seconds: float
    arch: dict[str, Any]
    refusal: VictimRefusedError | None = None
    error: str | None = None
    dropped: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    transcript: tuple[np.ndarray, np.ndarray] | None = None
    """With ``record=True``: every answered query in order, inputs (N, ...) and answers (N, C)."""

    @property
    def fidelity(self) -> float | None:
        """The last measured fidelity."""
        return self.curve[-1].fidelity if self.curve else None

    @property
    def accuracy(self) -> float | None:
        """The last measured accuracy (None without true labels)."""
        return self.curve[-1].accuracy if self.curve else None

    def queries_to(self, fidelity: float) -> int | None:
        """The fewest queries after which the curve reached ``fidelity``, or None if it never did."""
        return next((p.queries for p in self.curve if p.fidelity >= fidelity), None)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (the stolen weights are saved separately)."""
        refusal = (
            None
            if self.refusal is None
            else {"kind": self.refusal.kind, "status": self.refusal.status, "message": str(self.refusal)}
        )
        return {
            "attack": self.attack,
            "queries": self.queries,
            "queries_sent": self.queries_sent,
            "budget": self.budget,
            "stop_reason": self.stop_reason,
            "refusal": refusal,
            "error": self.error,
            "dropped": self.dropped,
            "seconds": round(self.seconds, 3),
            "fidelity": self.fidelity,
            "accuracy": self.accuracy,
            "curve": [
                {"queries": p.queries, "fidelity": p.fidelity, "accuracy": p.accuracy, "seconds": round(p.seconds, 3)}
                for p in self.curve
            ],
            "arch": self.arch,
            "details": self.details,
        }


class Tracker:
    """Measures the stolen model on the evaluation set after each training round and assembles the result."""

    def __init__(self, attack: str, oracle: Oracle, evaluation: EvalSet | None) -> None:
        self.attack = attack
        self.oracle = oracle
        self.evaluation = evaluation
        self.curve: list[CurvePoint] = []
        self.started = time.perf_counter()

    def measure(self, stolen: nn.Module) -> None:
        """Append a curve point for ``stolen`` at the queries spent so far (no victim queries)."""
        ev = self.evaluation
        if ev is None or ev.victim_labels is None:
            return
        pred = predict_labels(stolen, ev.x)
        fidelity = float((pred == ev.victim_labels.cpu()).float().mean())
        accuracy = None if ev.y is None else float((pred == ev.y.cpu()).float().mean())
        point = CurvePoint(self.oracle.spent, fidelity, accuracy, time.perf_counter() - self.started)
        if self.curve and self.curve[-1].queries == point.queries:
            self.curve[-1] = point
        else:
            self.curve.append(point)

    def result(
        self,
        stolen: nn.Module,
        model: TorchModel,
        reason: StopReason,
        arch: dict[str, Any],
        details: dict[str, Any] | None = None,
    ) -> ExtractionResult:
        """The result; the stolen model is measured once more so the curve ends where the attack did."""
        self.measure(stolen)
        o = self.oracle
        return ExtractionResult(
            attack=self.attack,
            stolen=model,
            queries=o.spent,
            queries_sent=o.sent,
            budget=o.budget,
            curve=self.curve,
            stop_reason=reason,
            seconds=time.perf_counter() - self.started,
            arch=arch,
            refusal=o.refusal,
            error=None if o.error is None else o.error.diagnostics(),
            dropped=o.dropped,
            details=details or {},
            transcript=o.transcript(),
        )


def predict_labels(net: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Labels from a substitute network, in batches, without gradients, on CPU."""
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            out.append(net(x[i : i + batch_size]).argmax(dim=1).cpu())
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def fit_substitute(
    net: nn.Module,
    x: Tensor,
    targets: Tensor,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
) -> torch.optim.Optimizer:
    """Train ``net`` to match the victim's answers (soft cross-entropy: probabilities or one-hot labels).

    Warm starts: pass the optimizer back in to continue where the last round stopped.
    """
    opt = optimizer or torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    n = x.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            logp = nn.functional.log_softmax(net(x[idx]), dim=1)
            loss = -(targets[idx] * logp).sum(dim=1).mean()
            loss.backward()
            opt.step()
    net.eval()
    return opt


def stolen_model(net: nn.Module, victim: Model) -> TorchModel:
    """The substitute network as a white-box ``Model`` over the victim's inputs."""
    return TorchModel(
        net, input_shape=victim.input_shape, num_classes=victim.num_classes, bounds=victim.bounds, device="cpu"
    )


__all__ = [
    "Answers",
    "CurvePoint",
    "EvalSet",
    "ExtractionResult",
    "Oracle",
    "QueryCallback",
    "QueryStop",
    "StopReason",
    "Tracker",
    "VictimRefusedError",
    "fit_substitute",
    "predict_labels",
    "refusal_of",
    "stolen_model",
]
