"""Knockoff Nets (Orekondy, Schiele and Fritz, "Knockoff Nets: Stealing Functionality of Black-Box Models",
CVPR 2019, arXiv:1812.02766).

The attacker owns a pool of inputs from *another* distribution (the surrogate set, e.g. natural-image
patches against a digits model), asks the victim about some of them, and trains a substitute on the
answers. ``random`` draws from the pool uniformly without replacement. ``adaptive`` learns which parts of
the pool are worth asking about: the pool's classes (or k-means clusters when it has none) are the arms of
a gradient bandit (Sutton and Barto §2.8), and each answer's reward is the sum of the paper's three
signals, each normalised by its running range — certainty (the victim's top-1 minus top-2 probability),
diversity (how far the answer moves away from the recent answers' mean) and loss (how badly the current
substitute predicts it).

The substitute trains in rounds (``rounds`` evenly spaced checkpoints over the budget), warm-started, on
every answer so far; each round adds a point to the fidelity curve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from modelshield.attacks.extraction.base import (
    Answers,
    EvalSet,
    ExtractionResult,
    Oracle,
    QueryCallback,
    QueryStop,
    Tracker,
    fit_substitute,
    stolen_model,
)
from modelshield.attacks.extraction.substitutes import MLP, arch_of
from modelshield.core.errors import InputError
from modelshield.core.model import Model

Strategy = Literal["random", "adaptive"]
SubstituteFactory = Callable[[Model], tuple[nn.Module, dict[str, object]]]


def default_substitute(victim: Model) -> tuple[nn.Module, dict[str, object]]:
    """An MLP over the victim's flattened inputs, with the ``arch`` that rebuilds it."""
    net = MLP(victim.input_shape, victim.num_classes)
    return net, arch_of(net, input_shape=list(victim.input_shape), num_classes=victim.num_classes)


class KnockoffNets:
    """Steal a classifier's behaviour by querying it on a surrogate data set and imitating its answers.

    Args:
        surrogate: (M, ...) pool of attacker-owned inputs inside the victim's bounds, M ≥ the budget.
        surrogate_labels: (M,) the pool's own labels (classes of the *surrogate* data set, not the victim's),
            the adaptive strategy's arms; None = ``actions`` k-means clusters of the pool.
        strategy: ``random`` or ``adaptive``.
        substitute: builds the network to train, with its ``arch`` record (default: a 256-128 MLP).
        rounds: training rounds over the budget (one fidelity measurement each).
        epochs: substitute epochs per round (warm-started).
        batch_size: samples per request to the victim; the adaptive strategy also picks this many per step.
        use_scores: learn from probabilities when the victim gives them (None = whenever it does).
        actions: k-means clusters when ``surrogate_labels`` is None.
        bandit_lr: the gradient bandit's step size.
        seed: draws from the pool, initialises the substitute.
    """

    name = "knockoff"

    def __init__(
        self,
        surrogate: Tensor,
        *,
        surrogate_labels: Tensor | None = None,
        strategy: Strategy = "random",
        substitute: SubstituteFactory = default_substitute,
        rounds: int = 8,
        epochs: int = 20,
        lr: float = 1e-3,
        batch_size: int = 64,
        use_scores: bool | None = None,
        actions: int = 16,
        bandit_lr: float = 0.1,
        seed: int = 0,
    ) -> None:
        if strategy not in ("random", "adaptive"):
            raise InputError(f"strategy must be random or adaptive, not {strategy!r}")
        if surrogate_labels is not None and surrogate_labels.shape != (surrogate.shape[0],):
            raise InputError(f"surrogate_labels must have shape ({surrogate.shape[0]},)")
        if rounds < 1 or epochs < 1 or actions < 2:
            raise InputError("rounds and epochs must be >= 1 and actions >= 2")
        self.surrogate = surrogate.detach().float().cpu()
        self.surrogate_labels = surrogate_labels
        self.strategy = strategy
        self.substitute = substitute
        self.rounds, self.epochs, self.lr = rounds, epochs, lr
        self.batch_size = batch_size
        self.use_scores = use_scores
        self.actions = actions
        self.bandit_lr = bandit_lr
        self.seed = seed

    def __call__(
        self,
        victim: Model,
        *,
        budget: int,
        evaluation: EvalSet | None = None,
        on_query: QueryCallback | None = None,
        record: bool = False,
    ) -> ExtractionResult:
        """Query up to ``budget`` pool samples and return the substitute trained on the answers."""
        pool = self.surrogate
        victim.check_inputs(pool[:1])
        if pool.shape[0] < budget:
            raise InputError(f"the surrogate pool holds {pool.shape[0]} samples, fewer than the budget of {budget}")
        if evaluation is not None:  # asked before the attack: not charged to its budget
            evaluation = evaluation.labelled(victim)
        oracle = Oracle(
            victim, budget, batch_size=self.batch_size, use_scores=self.use_scores, on_query=on_query, record=record
        )
        tracker = Tracker(f"{self.name}-{self.strategy}", oracle, evaluation)
        torch.manual_seed(self.seed)
        net, arch = self.substitute(victim)
        picker = _RandomPicker(pool, self.seed) if self.strategy == "random" else self._bandit(pool)
        checkpoints = sorted({max(1, round(budget * (r + 1) / self.rounds)) for r in range(self.rounds)})
        xs: list[Tensor] = []
        ts: list[Tensor] = []
        opt: torch.optim.Optimizer | None = None
        asked = 0
        try:
            for goal in checkpoints:
                while asked < goal:
                    idx = picker.pick(min(self.batch_size, goal - asked))
                    asked += len(idx)
                    answers = oracle.ask(pool[idx])
                    picker.feedback(idx, answers, net)
                    xs.append(answers.x)
                    ts.append(answers.targets)
                opt = self._train(net, xs, ts, opt, tracker)
        except QueryStop:
            self._train(net, xs, ts, opt, tracker)
        details: dict[str, object] = {"strategy": self.strategy, "soft_labels": bool(oracle._soft)}
        if isinstance(picker, _BanditPicker):
            details["arm_probabilities"] = [round(float(p), 4) for p in picker.policy()]
        return tracker.result(net, stolen_model(net, victim), oracle.stop_reason, arch, details)

    def _train(
        self,
        net: nn.Module,
        xs: list[Tensor],
        ts: list[Tensor],
        opt: torch.optim.Optimizer | None,
        tracker: Tracker,
    ) -> torch.optim.Optimizer | None:
        if not xs or sum(len(x) for x in xs) == 0:
            return opt
        opt = fit_substitute(
            net, torch.cat(xs), torch.cat(ts), epochs=self.epochs, lr=self.lr, seed=self.seed, optimizer=opt
        )
        tracker.measure(net)
        return opt

    def _bandit(self, pool: Tensor) -> _BanditPicker:
        if self.surrogate_labels is not None:
            arms = self.surrogate_labels.cpu().numpy().astype(np.int64)
        else:
            from sklearn.cluster import KMeans

            flat = pool.reshape(pool.shape[0], -1).numpy()
            arms = KMeans(self.actions, n_init=3, random_state=self.seed).fit_predict(flat)
        return _BanditPicker(pool, arms, self.bandit_lr, self.seed)


class _RandomPicker:
    """The random strategy: the pool in one random order, without replacement."""

    def __init__(self, pool: Tensor, seed: int) -> None:
        self.order = np.random.default_rng(seed).permutation(pool.shape[0])
        self.next = 0

    def pick(self, n: int) -> np.ndarray:
        idx = self.order[self.next : self.next + n]
        self.next += n
        return idx

    def feedback(self, idx: np.ndarray, answers: Answers, net: nn.Module) -> None:
        """The random strategy learns nothing from answers."""


class _BanditPicker:
    """The adaptive strategy: a gradient bandit over the pool's arms, rewarded per answer."""

    def __init__(self, pool: Tensor, arms: np.ndarray, lr: float, seed: int, history: int = 32) -> None:
        self.rng = np.random.default_rng(seed)
        self.labels, arms = np.unique(arms, return_inverse=True)
        self.members = [list(self.rng.permutation(np.flatnonzero(arms == a))) for a in range(len(self.labels))]
        self.pref = np.zeros(len(self.labels))
        self.lr = lr
        self.baseline, self.steps = 0.0, 0
        self.recent: list[np.ndarray] = []
        self.history = history
        self.ranges = np.array([[np.inf, -np.inf]] * 3)
        self.arm_of: dict[int, int] = {}

    def policy(self, live_only: bool = False) -> np.ndarray:
        """π: the softmax of the preferences; with ``live_only``, over the arms with samples left to draw."""
        live = np.array([len(m) > 0 for m in self.members]) if live_only else np.ones(len(self.pref), dtype=bool)
        logits = np.where(live, self.pref, -np.inf)
        p = np.exp(logits - logits[live].max())
        return p / p.sum()

    def pick(self, n: int) -> np.ndarray:
        chosen = []
        for _ in range(n):
            arm = int(self.rng.choice(len(self.pref), p=self.policy(live_only=True)))
            i = int(self.members[arm].pop())
            self.arm_of[i] = arm
            chosen.append(i)
        return np.asarray(chosen)

    def feedback(self, idx: np.ndarray, answers: Answers, net: nn.Module) -> None:
        """Reward each answered sample's arm: certainty + diversity + substitute loss, each scaled to [0, 1]."""
        answered = dict(zip(idx[answers.kept.numpy()].tolist(), range(len(answers.kept)), strict=True))
        if not answered:
            for i in idx:
                self.arm_of.pop(int(i))
            return
        y = answers.targets.numpy().astype(np.float64)
        top2 = np.sort(y, axis=1)[:, -2:]
        certainty = top2[:, 1] - top2[:, 0]
        mean = np.mean(self.recent, axis=0) if self.recent else np.zeros(y.shape[1])
        diversity = np.maximum(0.0, y - mean).sum(axis=1)
        with torch.no_grad():
            logp = nn.functional.log_softmax(net(answers.x), dim=1).numpy()
        loss = -(y * logp).sum(axis=1)
        signals = np.stack([certainty, diversity, loss])
        self.ranges[:, 0] = np.minimum(self.ranges[:, 0], signals.min(axis=1))
        self.ranges[:, 1] = np.maximum(self.ranges[:, 1], signals.max(axis=1))
        span = np.maximum(self.ranges[:, 1] - self.ranges[:, 0], 1e-12)
        rewards = ((signals - self.ranges[:, :1]) / span[:, None]).sum(axis=0)
        reward_of = {i: float(rewards[k]) for i, k in answered.items()}
        for i in idx:
            arm = self.arm_of.pop(int(i))
            if int(i) not in reward_of:  # withheld by the victim: no reward, no update
                continue
            r = reward_of[int(i)]
            self.steps += 1
            self.baseline += (r - self.baseline) / self.steps
            pi = self.policy()
            step = self.lr * (r - self.baseline)
            self.pref -= step * pi
            self.pref[arm] += step
        self.recent = ([*self.recent, *y])[-self.history :]
