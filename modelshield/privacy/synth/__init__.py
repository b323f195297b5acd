"""Differentially private statistics and synthetic data from marginals (issue 18).

- :mod:`.zcdp`: ρ-zCDP budgets, converted to (ε, δ) by Google's ``dp-accounting``.
- :mod:`.stats`: DP counts, histograms, clipped means and quantiles.
- :mod:`.domain`: declared (public) or inferred column domains; numeric columns are binned.
- :mod:`.mst`: MST synthetic data (1-way marginals, a private maximum spanning tree, 2-way marginals).
- :mod:`.evaluate`: distribution shift (TVD, Wasserstein) and train-synthetic-test-real utility::

    from modelshield.privacy.synth import synthesize

    synthetic, report = synthesize(frame, epsilon=3.0, delta=1e-9, label="target")
"""

from __future__ import annotations

from modelshield.privacy.synth.domain import Categorical, Domain, Numeric, infer_domain, load_domain
from modelshield.privacy.synth.evaluate import distribution_shift, tstr
from modelshield.privacy.synth.mst import MSTSynthesizer
from modelshield.privacy.synth.release import synthesize
from modelshield.privacy.synth.stats import Release, dp_count, dp_histogram, dp_mean, dp_quantile
from modelshield.privacy.synth.zcdp import ZcdpLedger, epsilon_for_rho, gaussian_sigma, rho_for_epsilon

__all__ = [
    "Categorical",
    "Domain",
    "MSTSynthesizer",
    "Numeric",
    "Release",
    "ZcdpLedger",
    "distribution_shift",
    "dp_count",
    "dp_histogram",
    "dp_mean",
    "dp_quantile",
    "epsilon_for_rho",
    "gaussian_sigma",
    "infer_domain",
    "load_domain",
    "rho_for_epsilon",
    "synthesize",
    "tstr",
]
