"""Sizes and budgets shared by the real-world matrix (a module of its own: tests must not import conftest).

Every dataset holds 64 samples and every run uses ``--batch-size 16``: four batches for the attacks on
the whole set and 2.5 for HopSkipJump's 40-sample subset, so any per-batch state that leaks shows.
"""

N = 64
BATCH = 16
HSJ_SAMPLES = 40  # AssessConfig.hsj_samples: HopSkipJump's subset
# Small budgets so a run takes seconds. Fast white-box runs leave out the attacks whose budgets no flag sets
# (C&W: 100 steps × 5 searches, APGD-DLR, HopSkipJump on 40 samples); the slow runs keep the default list.
QUICK = ["--eps", "0.03", "--steps", "5", "--queries", "50"]
FAST_WHITE_BOX = ["--attacks", "fgsm,pgd,apgd-ce,deepfool,square"]
