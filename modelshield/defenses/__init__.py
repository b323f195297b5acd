"""Defences that make a model harder to attack.

``modelshield.defenses.training`` holds robust training: PGD adversarial training, TRADES,
fast and free adversarial training and defensive distillation, run by one resumable loop.
``modelshield.defenses.poisoning`` finds poisoned training records (schema, outlier, robust-statistics,
confident-learning, spectral, clustering and STRIP detectors, in memory or streamed) and repairs
backdoored models (fine-pruning).
This package imports nothing heavy, so ``import modelshield.defenses`` stays cheap; each
subpackage loads torch only when it is imported.
"""
