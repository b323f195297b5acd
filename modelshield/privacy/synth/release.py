"""One call from a private table to a synthetic one and the report that goes with it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from modelshield.core.errors import InputError
from modelshield.privacy.synth.domain import Domain, infer_domain
from modelshield.privacy.synth.evaluate import distribution_shift, tstr
from modelshield.privacy.synth.mst import MSTSynthesizer

if TYPE_CHECKING:
    import pandas as pd

#: share of the real rows held out (never shown to the synthesizer) to test TSTR on
HOLDOUT = 0.2


def synthesize(
    frame: pd.DataFrame,
    *,
    epsilon: float,
    delta: float = 1e-9,
    rows: int | None = None,
    domain: Domain | None = None,
    label: str | None = None,
    seed: int | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """MST synthetic rows from ``frame`` and a report: budget, domain provenance, shift, TSTR.

    With ``label`` a random 20 % of the rows is held out first: the synthesizer sees only the rest,
    and both classifiers are tested on the held-out rows."""
    domain = domain or infer_domain(frame)
    if label is not None and label not in domain.names:
        raise InputError(f"--label {label!r} is not a column of the table")
    train, test = frame, None
    if label is not None:
        if len(frame) < 10:
            raise InputError("--label needs at least 10 rows to hold some out for testing")
        test = frame.sample(frac=HOLDOUT, random_state=seed)
        train = frame.drop(test.index)
    started = time.perf_counter()
    model = MSTSynthesizer(epsilon, delta, seed).fit(train, domain)
    synthetic = model.sample(rows)
    seconds = time.perf_counter() - started
    assert model.ledger_ is not None
    report: dict[str, Any] = {
        "method": "MST (McKenna, Miklau & Sheldon 2021), tree fitted by marginal fusion + IPF",
        "rows_real": len(train),
        "rows_synthetic": len(synthetic),
        "seconds": seconds,
        "privacy": model.ledger_.summary(),
        "domain_inferred_from_data": list(domain.inferred),
        "tree": [[domain.names[i], domain.names[j]] for i, j in model.edges_],
        "shift": distribution_shift(train, synthetic, domain, model.edges_),
    }
    if domain.inferred:
        report["warning"] = (
            "the domain of these columns was read from the private table and is not covered by the DP "
            "guarantee; declare it with --domain: " + ", ".join(domain.inferred)
        )
    if label is not None and test is not None:
        report["utility"] = tstr(train, test, synthetic, domain, label, seed or 0)
    return synthetic, report
