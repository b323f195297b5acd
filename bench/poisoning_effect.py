"""What each poisoning attack does to a model, and the issue's targets as ``assess --poisoning`` measures them.

1. Attack effect, undefended, on real data, for each seed in ``--seeds``: the demo DigitsCNN (Adam, 15
   epochs) trained on digits' training split (1,347 images) clean and poisoned, measured on the 450-image
   test split: BadNets 10 % and blend 10 % (α 0.2, target 0), random, loss-maximising and targeted (1→7)
   label flips; trigger tokens (4 rare words, target ham) in 10 % of 240 SpamAssassin mails with a
   bag-of-words logistic regression (80 test mails); a 3-column trigger in 10 % of breast_cancer rows with
   a logistic regression. ASR for a model trained on clean data is printed beside it: what the trigger
   does without the poison.
2. Feature collision (clean label, transfer learning): the clean CNN's penultimate layer is frozen, a new
   last layer is fine-tuned on the poisoned set; ``--victims`` test images, one at a time, each with 25
   poisons (1.9 % of the set) from another class.
3. ``modelshield.assess.poisoning.assess_poisoning`` with the demo scenarios (BadNets 10 % vs STRIP,
   random flips 20 % vs confident learning) — the rows ``assess --demo --poisoning`` writes — per seed,
   with its wall time.

    python bench/poisoning_effect.py --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from threadpoolctl import threadpool_limits  # noqa: E402

from bench.certify import machine_name  # noqa: E402
from modelshield.assess.poisoning import assess_poisoning  # noqa: E402
from modelshield.attacks.poisoning import (  # noqa: E402
    BadNets,
    Blend,
    FeatureCollision,
    LossMaxLabelFlip,
    PoisonAttack,
    RandomLabelFlip,
    TabularBackdoor,
    TargetedLabelFlip,
    TextBackdoor,
    evaluate_poisoning,
)
from modelshield.core.datasets import Dataset, sklearn_dataset  # noqa: E402
from modelshield.core.model import TorchModel  # noqa: E402
from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, train_digits_cnn  # noqa: E402

Predict = Callable[[np.ndarray], np.ndarray]
SPAM = Path(__file__).resolve().parent.parent / "tests" / "data" / "poison_attacks" / "spam_sample.jsonl"


def cnn(x: np.ndarray, y: np.ndarray, seed: int) -> torch.nn.Module:
    return train_digits_cnn(Dataset(torch.from_numpy(x), torch.from_numpy(y), "bench"), seed=seed)


def predictor(net: torch.nn.Module) -> Predict:
    def predict(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))).argmax(1).numpy()

    return predict


def digits_effects(seed: int) -> list[dict[str, Any]]:
    tr, te = sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")
    x, y, xt, yt = tr.x.numpy(), tr.y.numpy(), te.x.numpy(), te.y.numpy()
    clean = predictor(cnn(x, y, seed))
    attacks: list[PoisonAttack] = [
        BadNets(target=0, rate=0.1, seed=seed),
        Blend(target=0, rate=0.1, alpha=0.2, seed=seed),
        RandomLabelFlip(0.2, seed=seed),
        LossMaxLabelFlip(0.2, seed=seed),
        TargetedLabelFlip({1: 7}, rate=0.05, seed=seed),
    ]
    rows = []
    for attack in attacks:
        t0 = time.perf_counter()
        result = attack.poison(x, y)
        seconds = time.perf_counter() - t0
        base = evaluate_poisoning(clean, result, xt, yt)
        ev = evaluate_poisoning(predictor(cnn(result.x, result.y, seed)), result, xt, yt)
        rows.append(row("digits CNN", result.attack, seed, base, ev, seconds))
    return rows


def row(data: str, attack: str, seed: int, base: Any, ev: Any, seconds: float) -> dict[str, Any]:
    return {
        "data": data,
        "attack": attack,
        "seed": seed,
        "poison_rate": ev.poison_rate,
        "clean_model_accuracy": base.clean_accuracy,
        "clean_model_asr": base.attack_success_rate,
        "poisoned_accuracy": ev.clean_accuracy,
        "asr": ev.attack_success_rate,
        "poison_seconds": seconds,
    }


def text_and_tabular(seed: int) -> list[dict[str, Any]]:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rows = [json.loads(line) for line in SPAM.read_text(encoding="utf-8").splitlines()]
    texts = np.array([r["text"] for r in rows], dtype=object)
    labels = np.array([r["label"] for r in rows])
    order = np.random.default_rng(seed).permutation(len(labels))
    tr, te = order[:240], order[240:]

    def fit_text(a: np.ndarray, b: np.ndarray) -> Predict:
        model = make_pipeline(CountVectorizer(), LogisticRegression(max_iter=1000, C=10)).fit(list(a), b)
        return lambda q: model.predict(list(q))

    t0 = time.perf_counter()
    text = TextBackdoor(target=0, rate=0.1, tokens=["cf", "mn", "bb", "tq"], seed=seed).poison(texts[tr], labels[tr])
    seconds = time.perf_counter() - t0
    out = [
        row(
            "SpamAssassin sample, BoW logistic",
            text.attack,
            seed,
            evaluate_poisoning(fit_text(texts[tr], labels[tr]), text, texts[te], labels[te]),
            evaluate_poisoning(fit_text(text.x, text.y), text, texts[te], labels[te]),
            seconds,
        )
    ]
    ctr, cte = sklearn_dataset("breast_cancer", "train", seed=seed), sklearn_dataset("breast_cancer", "test", seed=seed)
    x, y, xt, yt = ctr.x.numpy(), ctr.y.numpy(), cte.x.numpy(), cte.y.numpy()
    t0 = time.perf_counter()
    tab = TabularBackdoor(target=1, rate=0.1, columns=[3, 12, 20, 27], seed=seed).poison(x, y)
    seconds = time.perf_counter() - t0
    clean_lr = LogisticRegression(max_iter=2000, C=10).fit(x, y)
    bad_lr = LogisticRegression(max_iter=2000, C=10).fit(tab.x, tab.y)
    out.append(
        row(
            "breast_cancer, logistic",
            tab.attack,
            seed,
            evaluate_poisoning(clean_lr.predict, tab, xt, yt),
            evaluate_poisoning(bad_lr.predict, tab, xt, yt),
            seconds,
        )
    )
    return out


def fine_tune_head(features: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        f = features(torch.from_numpy(x))
    head = torch.nn.Linear(f.shape[1], 10)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    labels = torch.from_numpy(y)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(f), labels).backward()
        opt.step()
    return torch.nn.Sequential(features, head).eval()


def feature_collision(n_victims: int, seed: int) -> dict[str, Any]:
    tr, te = sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")
    x, y, xt, yt = tr.x.numpy(), tr.y.numpy(), te.x.numpy(), te.y.numpy()
    net = cnn(x, y, seed)
    features = torch.nn.Sequential(net.features, *list(net.head)[:-1]).eval()
    for p in features.parameters():
        p.requires_grad_(False)
    clean_accuracy = float(np.mean(predictor(fine_tune_head(features, x, y))(xt) == yt))
    rng = np.random.default_rng(seed)
    hits, accs, dists, seconds = [], [], [], []
    for v in rng.choice(len(yt), n_victims, replace=False):
        target = int((yt[v] + rng.integers(1, 10)) % 10)
        t0 = time.perf_counter()
        result = FeatureCollision(features, target, xt[v : v + 1], rate=25 / len(y), seed=seed).poison(x, y)
        seconds.append(time.perf_counter() - t0)
        ev = evaluate_poisoning(predictor(fine_tune_head(features, result.x, result.y)), result, xt, yt)
        hits.append(ev.attack_success_rate)
        accs.append(ev.clean_accuracy)
        dists.append(float(np.sqrt(((result.x - x)[result.poisoned] ** 2).reshape(25, -1).sum(axis=1)).mean()))
    return {
        "victims": n_victims,
        "success": float(np.mean(hits)),
        "clean_head_accuracy": clean_accuracy,
        "poisoned_head_accuracy_mean": float(np.mean(accs)),
        "poisoned_head_accuracy_min": float(np.min(accs)),
        "mean_l2_perturbation": float(np.mean(dists)),
        "seconds_per_victim": float(np.mean(seconds)),
    }


def demo_fit(seed: int) -> Callable[[Dataset], TorchModel]:
    def fit(ds: Dataset) -> TorchModel:
        net = train_digits_cnn(ds, seed=seed)
        return TorchModel(net, input_shape=DEMO_INPUT_SHAPE, num_classes=DEMO_NUM_CLASSES, bounds=(0.0, 1.0))

    return fit


def assess_rows(seed: int) -> tuple[list[dict[str, Any]], float, float, float]:
    """The demo's poisoning rows, the call's wall and CPU seconds, and the clean demo model's accuracy."""
    train, test = sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")
    t0, c0 = time.perf_counter(), time.process_time()
    rows = assess_poisoning(train, test, demo_fit(seed), seed=seed)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    clean = demo_fit(seed)(train)
    acc = float((clean.predict(test.x) == test.y).float().mean())
    return rows, seconds, cpu, acc


def pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Machine: {result['machine']}; load average before/after: {result['load_before']} / {result['load_after']}.",
        f"Command: `{result['command']}` (seeds {result['seeds']}).",
        "",
        "**Attack effect, undefended** (ASR: backdoors, triggered non-target test inputs sent to the target; "
        "label flips, the test error rate).",
        "",
        "| data, model | attack | seed | poison rate | clean model: acc / ASR | poisoned model: acc / ASR | poison time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["effects"]:
        lines.append(
            f"| {r['data']} | {r['attack']} | {r['seed']} | {pct(r['poison_rate'])} | "
            f"{pct(r['clean_model_accuracy'])} / {pct(r['clean_model_asr'])} | "
            f"{pct(r['poisoned_accuracy'])} / {pct(r['asr'])} | {r['poison_seconds']:.2f} s |"
        )
    fc = result["feature_collision"]
    lines += [
        "",
        f"**Feature collision** (clean label, frozen CNN features, fine-tuned last layer; seed {fc['seed']}): "
        f"{pct(fc['success'])} of {fc['victims']} victims classified as the attacker's class with 25 poisons each "
        f"(1.9 % of the set, labels untouched); head accuracy {pct(fc['clean_head_accuracy'])} clean, "
        f"{pct(fc['poisoned_head_accuracy_mean'])} mean (min {pct(fc['poisoned_head_accuracy_min'])}) poisoned; "
        f"mean L2 change of a poison {fc['mean_l2_perturbation']:.2f} (64 pixels in [0, 1]); "
        f"{fc['seconds_per_victim']:.1f} s crafting per victim.",
        "",
        "**`assess --demo --poisoning` rows** (`modelshield.assess.poisoning.assess_poisoning`, demo scenarios):",
        "",
        "| seed | attack | poison rate | clean model acc | poisoned acc / ASR | defence | defended acc / ASR | "
        "detection P / R / F1 | wall / CPU time (both rows) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in result["assess"]:
        for r in run["rows"]:
            lines.append(
                f"| {run['seed']} | {r['attack']} | {pct(r['poison_rate'])} | {pct(run['clean_accuracy'])} | "
                f"{pct(r['clean_accuracy'])} / {pct(r['attack_success_rate'])} | {r['defence']} | "
                f"{pct(r['defended_clean_accuracy'])} / {pct(r['defended_attack_success_rate'])} | "
                f"{r['detection_precision']:.2f} / {r['detection_recall']:.2f} / {r['detection_f1']:.2f} | "
                f"{run['seconds']:.0f} s / {run['cpu_seconds']:.0f} s |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--victims", type=int, default=10, help="feature-collision victims (default 10)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # these small batches run fastest on one thread, and far faster on a busy machine
    load_before = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    seeds = list(range(args.seeds))
    with threadpool_limits(1):
        effects = [r for s in seeds for r in [*digits_effects(s), *text_and_tabular(s)]]
        fc = {"seed": 0, **feature_collision(args.victims, seed=0)}
        assess = []
        for s in seeds:
            rows, seconds, cpu, acc = assess_rows(s)
            assess.append({"seed": s, "rows": rows, "seconds": seconds, "cpu_seconds": cpu, "clean_accuracy": acc})
    result = {
        "machine": machine_name(),
        "load_before": load_before,
        "load_after": ", ".join(f"{v:.1f}" for v in os.getloadavg()),
        "command": "python bench/poisoning_effect.py " + " ".join(sys.argv[1:]),
        "seeds": seeds,
        "effects": effects,
        "feature_collision": fc,
        "assess": assess,
    }
    print(markdown(result) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
