"""Extraction signal: synthetic stealing attacks on a digits classifier are flagged, dataset traffic is not."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from modelshield.core.errors import InputError
from modelshield.serve.extraction import ExtractionMonitor


@pytest.fixture(scope="module")
def target() -> tuple[LogisticRegression, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, _ = train_test_split(x / 16, y, test_size=0.5, random_state=0)
    return LogisticRegression(max_iter=2000).fit(x_train, y_train), x_test


def jacobian_augmentation(model: LogisticRegression, seeds: np.ndarray, n: int, lam: float = 0.1) -> np.ndarray:
    """Papernot et al. 2017: grow a substitute's training set along the sign of its Jacobian."""
    queries = list(seeds)
    while len(queries) < n:
        s = np.array(queries)
        labels = model.predict(s)  # the oracle's answers
        substitute = LogisticRegression(max_iter=60).fit(s, labels)
        p = substitute.predict_proba(s)
        cols = np.searchsorted(substitute.classes_, labels)
        grads = p[np.arange(len(s)), cols, None] * (substitute.coef_[cols] - p @ substitute.coef_)
        queries += list(np.clip(s + lam * np.sign(grads), 0, 1))
    return np.array(queries[:n])


def boundary_search(model: LogisticRegression, pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Binary searches for the decision boundary between pairs of differently classified inputs."""
    queries: list[np.ndarray] = []
    while len(queries) < n:
        a, b = pool[rng.integers(len(pool), size=2)]
        ca = model.predict(a[None])[0]
        if ca == model.predict(b[None])[0]:
            continue
        lo, hi = 0.0, 1.0
        for _ in range(8):
            mid = (lo + hi) / 2
            q = (1 - mid) * a + mid * b
            queries.append(q)
            lo, hi = (mid, hi) if model.predict(q[None])[0] == ca else (lo, mid)
    return np.array(queries[:n])


def replay(monitor: ExtractionMonitor, subject: str, model: LogisticRegression, queries: np.ndarray) -> float:
    probs = model.predict_proba(queries)
    score = 0.0
    for i in range(len(queries)):
        score = monitor.observe(subject, queries[i : i + 1], probs[i : i + 1])
    return score


def test_normal_traffic_is_not_flagged(target: tuple[LogisticRegression, np.ndarray]) -> None:
    model, pool = target
    rng = np.random.default_rng(0)
    for trial in range(5):
        monitor = ExtractionMonitor()
        score = replay(monitor, "user", model, pool[rng.permutation(len(pool))[:256]])
        assert score < 0.3 and not monitor.flagged("user"), (trial, monitor.signal("user"))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_jacobian_augmentation_is_flagged(target: tuple[LogisticRegression, np.ndarray]) -> None:
    model, pool = target
    monitor = ExtractionMonitor()
    seeds = pool[np.random.default_rng(1).permutation(len(pool))[:10]]
    replay(monitor, "thief", model, jacobian_augmentation(model, seeds, 256))
    sig = monitor.signal("thief")
    assert sig.flagged and sig.near_duplicate_share > 0.5 and sig.prada_w is not None and sig.prada_w < 0.85


def test_boundary_probing_is_flagged(target: tuple[LogisticRegression, np.ndarray]) -> None:
    model, pool = target
    monitor = ExtractionMonitor()
    replay(monitor, "prober", model, boundary_search(model, pool, 256, np.random.default_rng(2)))
    sig = monitor.signal("prober")
    assert sig.flagged and sig.low_margin_share > 0.5


def test_callers_are_scored_separately_and_windows_expire(target: tuple[LogisticRegression, np.ndarray]) -> None:
    model, pool = target
    now = [0.0]
    monitor = ExtractionMonitor(window_seconds=60, clock=lambda: now[0])
    rng = np.random.default_rng(3)
    attack = np.clip(pool[rng.integers(len(pool), size=8)].repeat(24, axis=0) + rng.normal(0, 0.03, (192, 64)), 0, 1)
    normal = pool[rng.permutation(len(pool))[:192]]
    pa, pn = model.predict_proba(attack), model.predict_proba(normal)
    for i in range(192):  # interleaved, as on a real server
        monitor.observe("thief", attack[i : i + 1], pa[i : i + 1])
        monitor.observe("user", normal[i : i + 1], pn[i : i + 1])
    assert monitor.flagged("thief") and not monitor.flagged("user")
    assert monitor.observe("thief", attack[:16], pa[:16]) >= 0.5  # batches count query by query
    now[0] += 61
    assert monitor.signal("thief").queries == 0 and not monitor.flagged("thief")
    assert monitor.signal("nobody").score == 0.0
    with pytest.raises(InputError):
        monitor.observe("x", attack[:2], pa[:3])
