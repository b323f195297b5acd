"""Defences against poisoned training data: find the poison, or repair the model it made.

Every detector keeps the contract of :mod:`modelshield.defenses.poisoning.base`: scikit-learn's
``fit``/``predict`` (``predict`` is a boolean *suspicious* mask, ``score_samples`` a per-row
suspicion score) and ``fit_stream`` over batches with bounded memory. The detectors live in
submodules, imported by name, so that this package stays cheap to import:

* :mod:`.schema` ``SchemaValidator``, ``Schema`` — column kinds, ranges, categories, nulls;
* :mod:`.outliers` ``IsolationForestScreen``, ``LocalOutlierFactorScreen`` (scikit-learn);
* :mod:`.robust` ``MADScreen`` (median/MAD), ``TrimmedLoss`` (iterative trimmed loss);
* :mod:`.labels` ``ConfidentLearning`` (cleanlab);
* :mod:`.spectral` ``SpectralSignatures``; :mod:`.clustering` ``ActivationClustering``;
* :mod:`.strip` ``STRIP`` (run time, or offline on a training set);
* :mod:`.pruning` ``FinePruning`` (repairs a model rather than flagging rows).
"""

from modelshield.defenses.poisoning.base import (
    Batch,
    BatchFactory,
    DetectionReport,
    PoisonDetector,
    evaluate_detection,
)

__all__ = ["Batch", "BatchFactory", "DetectionReport", "PoisonDetector", "evaluate_detection"]
