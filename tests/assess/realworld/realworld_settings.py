"""Sizes and budgets shared by the real-world matrix (a module of its own: tests must not import conftest).

Every dataset holds 64 samples and every run uses ``--batch-size 16``: four batches for the attacks on
the whole set and 2.5 for HopSkipJump's 40-sample subset, so any per-batch state that leaks shows.
"""

N = 64
BATCH = 16
HSJ_SAMPLES = 40  # AssessConfig.hsj_samples: HopSkipJump's subset
# Small budgets so a default-attack run takes seconds; the attack list itself stays the default.
QUICK = ["--eps", "0.03", "--steps", "5", "--queries", "50"]
