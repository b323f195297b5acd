"""Adversarial-input detectors on the digits demo model: AUC and TPR at 5% FPR, standard vs adaptive.

Run from the repo root::

    .venv/bin/python bench/detectors.py                          # all five detectors, ε = 0.1
    .venv/bin/python bench/detectors.py --detectors energy,max-softmax --samples 120   # quicker

Part 1 — detection. ``evaluate_detectors`` (the library call ``modelshield assess --detectors``
makes) on the demo CNN and the digits test split: each detector is fitted on one half and
calibrated on the other; FGSM, PGD-``steps`` and C&W-L2 examples are made from the correctly
classified inputs of the evaluation half, and only successful ones are scored. Each detector
then faces ``AdaptivePGD``, the attacker who knows it (C&W 2017 combined hinged objective, BPDA
through non-differentiable steps) at the same ε. The library has one adaptive attack (PGD-based),
so the adaptive column stands beside the PGD one: the fair comparison is PGD vs adaptive PGD.

Part 2 — cost. Per detector, ``fit`` on half the split and ``score`` on the other half, timed
separately with the detector API (LID's fit includes the PGD examples it generates for itself).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.certify import machine_name  # noqa: E402
from modelshield.assess.catalog import DETECTOR_NAMES  # noqa: E402
from modelshield.defenses.detection import EVAL_ATTACKS, evaluate_detectors, make_detector  # noqa: E402
from modelshield.demo import demo_model_and_data  # noqa: E402

GATE = 0.1  # the demo's gating L∞ ε (modelshield assess --demo)


def costs(model: Any, x: torch.Tensor, y: torch.Tensor, names: list[str]) -> dict[str, tuple[float, float]]:
    """Seconds to fit each detector on the first half of ``x`` and to score the second half."""
    half = len(x) // 2
    out = {}
    for name in names:
        det = make_detector(name, model)
        t0 = time.perf_counter()
        det.fit(x[:half], y[:half])
        t1 = time.perf_counter()
        det.score(x[half:])
        out[name] = (t1 - t0, time.perf_counter() - t1)
    return out


def _cell(record: Any) -> str:
    if record is None or record.auc is None:
        return "— | —"
    return f"{record.auc:.3f} | {100 * record.tpr_at_fpr_005:.0f}% (n={record.samples})"


def markdown(records: list[Any], cost: dict[str, tuple[float, float]], names: list[str], scored: int) -> str:
    attacks = [*EVAL_ATTACKS, "adaptive-pgd"]
    by_key = {(r.name, r.attack): r for r in records}
    head = " | ".join(f"{a} AUC | {a} TPR@5%" for a in attacks)
    lines = [
        f"| detector | {head} | fit ms | score ms ({scored} inputs) |",
        "| --- | " + " | ".join("---: | ---:" for _ in attacks) + " | ---: | ---: |",
    ]
    for name in names:
        cells = " | ".join(_cell(by_key.get((name, a))) for a in attacks)
        fit_s, score_s = cost[name]
        lines.append(f"| {name} | {cells} | {1000 * fit_s:.1f} | {1000 * score_s:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detectors", default=",".join(DETECTOR_NAMES), help="comma-separated detector names")
    parser.add_argument("--eps", type=float, default=GATE)
    parser.add_argument("--steps", type=int, default=20, help="PGD steps (the adaptive attack uses max(steps, 40))")
    parser.add_argument("--cw-steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=0, help="use only the first SAMPLES test images (0: all 450)")
    parser.add_argument("--no-adaptive", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    t0 = time.perf_counter()
    model, test = demo_model_and_data()
    x, y = (test.x[: args.samples], test.y[: args.samples]) if args.samples else (test.x, test.y)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    records = evaluate_detectors(
        model, x, y, names, eps=args.eps, steps=args.steps, cw_steps=args.cw_steps, adaptive=not args.no_adaptive
    )
    eval_s = time.perf_counter() - t0
    cost = costs(model, x, y, names)
    print(
        f"{machine_name()}; torch {torch.__version__} ({args.threads} thread(s)); demo CNN trained in {train_s:.1f} s; "
        f"{len(x)} digits test images, fit on {len(x) // 2}, scored on {len(x) - len(x) // 2}; L∞ ε={args.eps}, "
        f"PGD-{args.steps}, C&W-L2 {args.cw_steps} steps; evaluate_detectors took {eval_s:.1f} s"
    )
    print()
    print(markdown(records, cost, names, len(x) - len(x) // 2))


if __name__ == "__main__":
    main()
