"""Defences against poisoned training data: find the poison, or repair the model it made.

Every detector keeps the contract of :mod:`modelshield.defenses.poisoning.base`: scikit-learn's
``fit``/``predict`` (``predict`` is a boolean *suspicious* mask, ``score_samples`` a per-row
suspicion score) and ``fit_stream`` over batches with bounded memory. Submodules import torch,
scikit-learn or cleanlab only when they are imported.
"""

from modelshield.defenses.poisoning.base import (
    Batch,
    BatchFactory,
    DetectionReport,
    PoisonDetector,
    evaluate_detection,
)

__all__ = ["Batch", "BatchFactory", "DetectionReport", "PoisonDetector", "evaluate_detection"]
