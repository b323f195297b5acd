"""Poisoning defences on digits, side by side with IBM ART's, on the same poisoned data in one run.

1. Backdoor detection: the digits training split (1,347 images) poisoned by modelshield's BadNets
   (3×3 checkerboard, bottom-right, target class 0) at each ``--rates``; one DigitsCNN trained on it
   (Adam, ``--epochs``); every detector sees that model and data. modelshield's spectral signatures,
   activation clustering (in memory and streamed in batches of ``--batch``), STRIP screening the
   training set offline (fitted on 150 clean test images at 5 % FRR), Isolation Forest and median/MAD
   on the pixels; ART 1.20's ``SpectralSignatureDefense`` (expected_pp_poison = the poison rate,
   eps_multiplier 1.5, the settings ours gets) and ``ActivationDefence`` (2 clusters, FastICA to 10
   dims, "smaller" analysis: its defaults). Precision/recall/F1 against the poison mask, wall time and
   peak traced memory (tracemalloc: Python and numpy allocations, measured in a second run so that
   tracing does not slow the timed one).
2. Sanitisation: drop each detector's flagged rows, retrain the same CNN from the same seed, and
   measure clean accuracy and backdoor success (ASR: triggered non-target test images sent to class 0)
   on 300 held-out test images. Fine-pruning repairs the poisoned model with the 150 trusted images.
3. Label flips: 20 % random flips of all 1,797 digits; confident learning (cleanlab) and trimmed loss,
   in memory and streamed.

    python bench/poisoning_defences.py --markdown
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from threadpoolctl import threadpool_limits  # noqa: E402

from bench.certify import machine_name  # noqa: E402
from modelshield.attacks.poisoning import BadNets, PoisonResult, RandomLabelFlip, evaluate_poisoning  # noqa: E402
from modelshield.core.datasets import Dataset, sklearn_dataset  # noqa: E402
from modelshield.core.model import TorchModel  # noqa: E402
from modelshield.defenses.poisoning import evaluate_detection  # noqa: E402
from modelshield.defenses.poisoning.clustering import ActivationClustering  # noqa: E402
from modelshield.defenses.poisoning.labels import ConfidentLearning  # noqa: E402
from modelshield.defenses.poisoning.outliers import IsolationForestScreen  # noqa: E402
from modelshield.defenses.poisoning.pruning import FinePruning  # noqa: E402
from modelshield.defenses.poisoning.robust import MADScreen, TrimmedLoss  # noqa: E402
from modelshield.defenses.poisoning.spectral import SpectralSignatures  # noqa: E402
from modelshield.defenses.poisoning.strip import STRIP  # noqa: E402
from modelshield.demo import DigitsCNN, train_digits_cnn  # noqa: E402

Flagger = Callable[[], np.ndarray]


def measure(run: Flagger) -> tuple[np.ndarray, float, float]:
    """The flagged mask, wall seconds (untraced run) and peak traced MiB (second, traced run)."""
    t0 = time.perf_counter()
    flagged = run()
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return np.asarray(flagged, bool), seconds, peak


def batches(x: np.ndarray, y: np.ndarray | None, size: int) -> Callable[[], list[tuple[Any, Any]]]:
    return lambda: [(x[i : i + size], None if y is None else y[i : i + size]) for i in range(0, len(x), size)]


def art_detectors(net: DigitsCNN, x: np.ndarray, y: np.ndarray, rate: float) -> dict[str, Flagger]:
    """ART's two activation defences on the same network (wrapped once) and data."""
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        model=net, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10, clip_values=(0.0, 1.0)
    )
    onehot = np.eye(10, dtype=np.float32)[y]
    xf = x.astype(np.float32)

    def ss() -> np.ndarray:
        d = SpectralSignatureDefense(clf, xf, onehot, batch_size=128, eps_multiplier=1.5, expected_pp_poison=rate)
        return np.asarray(d.detect_poison()[1]) == 0

    def ac() -> np.ndarray:
        d = ActivationDefence(clf, xf, onehot)
        return (
            np.asarray(d.detect_poison(nb_clusters=2, nb_dims=10, reduce="FastICA", cluster_analysis="smaller")[1]) == 0
        )

    return {"ART SpectralSignatureDefense": ss, "ART ActivationDefence": ac}


def ours(model: TorchModel, p: PoisonResult, x_ref: np.ndarray, rate: float, batch: int) -> dict[str, Flagger]:
    x, y = p.x, p.y
    flat = x.reshape(len(x), -1)
    return {
        "modelshield SpectralSignatures": lambda: SpectralSignatures(model, eps=rate).fit_predict(x, y),
        f"modelshield SpectralSignatures, streamed ({batch}/batch)": lambda: _streamed(
            SpectralSignatures(model, eps=rate), x, y, batch
        ),
        "modelshield ActivationClustering": lambda: ActivationClustering(model).fit_predict(x, y),
        f"modelshield ActivationClustering, streamed ({batch}/batch)": lambda: _streamed(
            ActivationClustering(model), x, y, batch
        ),
        "modelshield STRIP (offline, 150 trusted)": lambda: STRIP(model).fit(x_ref).predict(x),
        "modelshield IsolationForest (pixels)": lambda: IsolationForestScreen(rate).fit_predict(flat),
        "modelshield MAD z>8 (pixels)": lambda: MADScreen(8).fit_predict(flat),
    }


def _streamed(detector: Any, x: np.ndarray, y: np.ndarray, batch: int) -> np.ndarray:
    detector.fit_stream(batches(x, y, batch))
    return np.concatenate(list(detector.predict_stream(batches(x, y, batch)())))


def train(x: np.ndarray, y: np.ndarray, epochs: int) -> TorchModel:
    net = train_digits_cnn(Dataset(torch.from_numpy(x), torch.from_numpy(y), "digits"), epochs=epochs, seed=0)
    return TorchModel(net, input_shape=(1, 8, 8), num_classes=10)


def predictor(model: TorchModel) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: model.predict(torch.from_numpy(np.asarray(x, np.float32))).numpy()


def backdoor_run(rate: float, args: argparse.Namespace, test: Dataset) -> dict[str, Any]:
    train_set = sklearn_dataset("digits", "train")
    p = BadNets(target=0, rate=rate, seed=0).poison(train_set.x.numpy(), train_set.y.numpy())
    x_ref, y_ref = test.x.numpy()[:150], test.y.numpy()[:150]
    x_eval, y_eval = test.x.numpy()[150:], test.y.numpy()[150:]
    model = train(p.x, p.y, args.epochs)
    assert isinstance(model.module, DigitsCNN)
    base = evaluate_poisoning(predictor(model), p, x_eval, y_eval)
    model.predict(torch.from_numpy(p.x[:64]))  # warm up torch before timing
    rows = []
    detectors = {**ours(model, p, x_ref, rate, args.batch), **art_detectors(model.module, p.x, p.y, rate)}
    for name, run in detectors.items():
        flagged, seconds, peak = measure(run)
        report = evaluate_detection(flagged, p.poisoned, name)
        row: dict[str, Any] = {**report.as_dict(), "seconds": seconds, "peak_mib": peak}
        if "streamed" not in name and not args.no_retrain:
            keep = ~flagged
            repaired = train(p.x[keep], p.y[keep], args.epochs)
            ev = evaluate_poisoning(predictor(repaired), p, x_eval, y_eval)
            row |= {"sanitised_accuracy": ev.clean_accuracy, "sanitised_asr": ev.attack_success_rate}
        rows.append(row)
    t0 = time.perf_counter()
    fp = FinePruning().fit(model, x_ref, y_ref)
    assert fp.model_ is not None
    fp_ev = evaluate_poisoning(predictor(fp.model_), p, x_eval, y_eval)
    return {
        "rate": rate,
        "poisoned": int(p.poisoned.sum()),
        "target_class_rows": int((p.y == 0).sum()),
        "clean_accuracy": base.clean_accuracy,
        "asr": base.attack_success_rate,
        "detectors": rows,
        "fine_pruning": {
            "accuracy": fp_ev.clean_accuracy,
            "asr": fp_ev.attack_success_rate,
            "pruned": len(fp.pruned_),
            "seconds": time.perf_counter() - t0,
        },
    }


def label_flip_run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    p = RandomLabelFlip(0.2, seed=0).poison(x / 16.0, y)
    runs: dict[str, Flagger] = {
        "ConfidentLearning (cleanlab, 5-fold logistic regression)": lambda: ConfidentLearning().fit_predict(p.x, p.y),
        f"ConfidentLearning, streamed ({args.batch}/batch, SGD folds)": lambda: (
            ConfidentLearning(n_classes=10).fit_stream(batches(p.x, p.y, args.batch)).label_issues_
        ),
        "TrimmedLoss (ITLM, logistic regression)": lambda: TrimmedLoss(0.2).fit_predict(p.x, p.y),
        f"TrimmedLoss, streamed ({args.batch}/batch, SGD)": lambda: (
            TrimmedLoss(0.2, n_classes=10).fit_stream(batches(p.x, p.y, args.batch)).predict(p.x, p.y)
        ),
    }
    rows = []
    for name, run in runs.items():
        flagged, seconds, peak = measure(run)
        rows.append({**evaluate_detection(flagged, p.poisoned, name).as_dict(), "seconds": seconds, "peak_mib": peak})
    return rows


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def markdown(result: dict[str, Any]) -> str:
    out = [f"Machine: {result['machine']}; torch threads {result['threads']}, BLAS 1 thread; {result['load']}.", ""]
    for run in result["backdoor"]:
        out += [
            f"**BadNets {run['rate']:.0%}** ({run['poisoned']} poisoned rows, {run['target_class_rows']} rows labelled 0: "
            f"{run['poisoned'] / run['target_class_rows']:.0%} of the target class is poison). "
            f"Undefended: clean accuracy {_pct(run['clean_accuracy'])}, ASR {_pct(run['asr'])}.",
            "",
            "| detector | flagged | precision | recall | F1 | time s | peak MiB | retrained: accuracy | retrained: ASR |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in run["detectors"]:
            acc = _pct(r["sanitised_accuracy"]) if "sanitised_accuracy" in r else "–"
            asr = _pct(r["sanitised_asr"]) if "sanitised_asr" in r else "–"
            out.append(
                f"| {r['detector']} | {r['flagged']} | {r['precision']:.2f} | {r['recall']:.2f} | {r['f1']:.2f} "
                f"| {r['seconds']:.2f} | {r['peak_mib']:.1f} | {acc} | {asr} |"
            )
        fp = run["fine_pruning"]
        out += [
            "",
            f"Fine-pruning (150 trusted images, {fp['pruned']} of 32 conv channels pruned, 20 epochs): "
            f"clean accuracy {_pct(fp['accuracy'])}, ASR {_pct(fp['asr'])}, {fp['seconds']:.1f} s.",
            "",
        ]
    out += [
        "**20 % random label flips** (1,797 digits, 359 flipped):",
        "",
        "| detector | flagged | precision | recall | F1 | time s | peak MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["label_flips"]:
        out.append(
            f"| {r['detector']} | {r['flagged']} | {r['precision']:.2f} | {r['recall']:.2f} | {r['f1']:.2f} "
            f"| {r['seconds']:.2f} | {r['peak_mib']:.1f} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="0.1,0.03", help="BadNets poison rates, comma-separated")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128, help="rows per batch in the streamed runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-retrain", action="store_true", help="skip the sanitise-and-retrain columns")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with open("/proc/loadavg") as f:
        load = f"load average {f.read().split()[0]} at start"
    test = sklearn_dataset("digits", "test")
    with threadpool_limits(1):
        result = {
            "machine": machine_name(),
            "threads": args.threads,
            "load": load,
            "backdoor": [backdoor_run(float(r), args, test) for r in args.rates.split(",")],
            "label_flips": label_flip_run(args),
        }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(markdown(result) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
