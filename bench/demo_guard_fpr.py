"""Clean false-positive rate of the `modelshield serve --demo` guard on digits' test split.

Run from the repo root::

    .venv/bin/python bench/demo_guard_fpr.py

Builds the guard exactly as the demo gateway does (``DEMO_GUARD`` through ``serve.guarding.build_guard``: 2-bit
feature squeezing, fitted on half of digits' training split and calibrated on the other half for 5% false
positives) around the demo CNN (seed 0), inspects the 450 clean test digits, and prints how many it flags
(the gateway answers those with label -1) and which test digit the demo's curl example uses.
"""

from __future__ import annotations

import tomllib

import torch

from modelshield.cli.serve import DEMO_GUARD
from modelshield.demo import demo_model_and_data
from modelshield.serve.config import GuardConfig
from modelshield.serve.guarding import build_guard


def main() -> None:
    torch.set_num_threads(1)
    model, test = demo_model_and_data(seed=0)
    guard = build_guard("demo", model, GuardConfig(**tomllib.loads(DEMO_GUARD)["guard"]))
    flagged = [i for i, v in enumerate(guard.guard.inspect(test.x)) if v.action != "accept"]
    right = (model.predict(test.x) == test.y).tolist()
    example = next(i for i in range(len(test)) if i not in flagged and right[i])
    print(
        f"guard flags {len(flagged)} of {len(test)} clean test digits: {len(flagged) / len(test):.1%} "
        f"(target 5%); flagged among the first 30: {sum(i < 30 for i in flagged)}; curl example: test digit {example}"
    )


if __name__ == "__main__":
    main()
