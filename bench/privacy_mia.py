"""Membership inference: modelshield's attacks against ART's ``MembershipInferenceBlackBox``, same overfit models.

Setup (Carlini et al. 2022's evaluation, https://arxiv.org/abs/2112.03570, at CPU scale): a pool of
``--pool`` digits (scikit-learn, pixels / 16, flattened); ``--models`` MLPs (64-256-10, full-batch Adam,
``--epochs`` epochs, no regularisation: they memorise) each trained on a random half of the pool, every
sample in exactly half of them. Each of the first ``--targets`` models is attacked in turn, the others
being its reference models (LiRA, RMIA, shadow); the target's members are its half of the pool.

ART's attack is supervised: for each target it trains its attack classifier on the target's outputs on
half of its members and half of its non-members (a stronger threat model: the attacker knows some true
members of *this* model), so every attack is scored on the other half only, pooled over the targets.
That gives about ``targets × pool/4`` non-members (1,200 by default): enough to observe 0.1 % FPR.

Reported per attack: AUC, TPR at 0.1 % and 1 % FPR (interpolated on the pooled ROC), and the seconds it
took over all targets (model training excluded; ART's includes fitting its attack model, shadow's its
attack classifiers). One run, one process.

    python bench/privacy_mia.py --markdown
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelshield.attacks.privacy import (  # noqa: E402
    RMIA,
    ConfidenceThreshold,
    LabelOnly,
    LiRA,
    LossThreshold,
    MembershipAttack,
    ReferenceModels,
    ShadowModels,
    roc_summary,
)
from modelshield.core.datasets import Dataset  # noqa: E402
from modelshield.core.model import TorchModel  # noqa: E402
from modelshield.defenses.training import StandardTraining, TrainConfig  # noqa: E402


def train(x: Tensor, y: Tensor, epochs: int, seed: int) -> TorchModel:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    model = TorchModel(net, input_shape=(64,), num_classes=10)
    cfg = TrainConfig(epochs=epochs, batch_size=len(x), lr=1e-2, val_fraction=0.0, progress=False, seed=seed)
    StandardTraining().fit(model, Dataset(x, y, "digits"), cfg)
    return model


def art_scores(model: TorchModel, x: Tensor, y: Tensor, fit_rows: np.ndarray, member: np.ndarray, kind: str) -> Any:
    """ART 1.20.1 MembershipInferenceBlackBox on the target's probabilities; attack fitted on ``fit_rows``."""
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        model=model.module, loss=nn.CrossEntropyLoss(), input_shape=(64,), nb_classes=10, clip_values=(0.0, 1.0)
    )
    attack = MembershipInferenceBlackBox(clf, input_type="prediction", attack_model_type=kind)
    xs, ys = x.numpy(), y.numpy()
    ins, outs = fit_rows & member, fit_rows & ~member
    attack.fit(xs[ins], ys[ins], xs[outs], ys[outs])
    rest = ~fit_rows
    return attack.infer(xs[rest], ys[rest], probabilities=True).reshape(-1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    from sklearn.datasets import load_digits

    data_x, data_y = load_digits(return_X_y=True)
    order = np.random.default_rng(args.seed).permutation(len(data_x))[: args.pool]
    x = torch.from_numpy((data_x[order] / 16).astype(np.float32))
    y = torch.from_numpy(data_y[order])
    keys = np.random.default_rng(args.seed + 1).random((args.models, args.pool))
    in_mask = keys.argsort(axis=0).argsort(axis=0) < args.models // 2
    start = time.perf_counter()
    models = [
        train(x[torch.from_numpy(np.flatnonzero(m))], y[m], args.epochs, args.seed + k) for k, m in enumerate(in_mask)
    ]
    train_seconds = time.perf_counter() - start
    eval_rng = np.random.default_rng(args.seed + 2)

    scores: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}
    truth: list[np.ndarray] = []
    test_acc = []
    for t in range(args.targets):
        target, member = models[t], in_mask[t]
        others = [k for k in range(args.models) if k != t]
        refs = ReferenceModels([models[k] for k in others], in_mask[others], x, y)
        fit_rows = np.zeros(args.pool, bool)  # ART's attack-training half, balanced per membership
        for side in (member, ~member):
            idx = np.flatnonzero(side)
            fit_rows[eval_rng.choice(idx, len(idx) // 2, replace=False)] = True
        rest = ~fit_rows
        truth.append(member[rest])
        test_acc.append(float((target.predict(x[~member]) == y[~member]).float().mean()))
        attacks: list[tuple[str, MembershipAttack]] = [
            ("loss threshold (Yeom)", LossThreshold()),
            ("confidence threshold", ConfidenceThreshold()),
            ("label-only (noise)", LabelOnly(seed=args.seed)),
            ("LiRA online", LiRA(refs)),
            ("LiRA offline", LiRA(refs, online=False)),
            ("RMIA online", RMIA(refs)),
            ("shadow models (Shokri)", ShadowModels(refs)),
        ]
        for name, attack in attacks:
            start = time.perf_counter()
            s = attack.scores(target, x, y)[rest]
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            scores.setdefault(name, []).append(s)
        for kind in args.art:
            name = f"ART black-box ({kind})"
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = art_scores(target, x, y, fit_rows, member, kind)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            scores.setdefault(name, []).append(s)
    is_member = np.concatenate(truth)
    rows = []
    for name, parts in scores.items():
        roc = roc_summary(np.concatenate(parts), is_member)
        rows.append({"attack": name, **roc.to_dict(), "seconds": round(seconds[name], 2)})
    return {
        "rows": rows,
        "train_seconds": round(train_seconds, 1),
        "test_accuracy": round(float(np.mean(test_acc)), 4),
        "members": int(is_member.sum()),
        "non_members": int((~is_member).sum()),
    }


def markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        f"Digits MLP (64-256-10, {args.epochs} full-batch epochs, no regularisation) on random halves of a "
        f"{args.pool}-digit pool; {args.models} models, each of the first {args.targets} attacked with the other "
        f"{args.models - 1} as reference models; mean non-member accuracy {result['test_accuracy']:.1%} "
        f"(members: 100 %). Scored on the half ART did not train its attack on, pooled: "
        f"{result['members']} members, {result['non_members']} non-members (FPR resolution "
        f"{1 / result['non_members']:.2%}). {args.models} models trained in {result['train_seconds']} s. "
        f"{os.cpu_count()}-core {cpu}, torch on {args.threads} thread(s), one run.",
        "",
        "| attack | AUC | TPR @ 0.1 % FPR | TPR @ 1 % FPR | seconds (all targets) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        star = "*" if 0.001 in r["unresolved_fprs"] else ""
        lines.append(
            f"| {r['attack']} | {r['auc']:.3f} | {r['tpr_at_fpr_0.001']:.1%}{star} | {r['tpr_at_fpr_0.01']:.1%} "
            f"| {r['seconds']:.1f} |"
        )
    if any(0.001 in r["unresolved_fprs"] for r in result["rows"]):
        lines.append("\n\\* below the FPR resolution of this many non-members: interpolated, not observed.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=400)
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--targets", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--art", default="nn,rf", help="ART attack model types, comma-separated (nn, rf, gb, lr)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    args.art = [k for k in args.art.split(",") if k]
    if args.models % 2 or args.targets > args.models:
        parser.error("--models must be even and at least --targets")
    result = run(args)
    if args.markdown:
        print(markdown(result, args))
    else:
        for r in result["rows"]:
            print(r)


if __name__ == "__main__":
    main()
