"""Defences that make a model harder to attack.

``modelshield.defenses.training`` holds robust training: PGD adversarial training, TRADES,
fast and free adversarial training and defensive distillation, run by one resumable loop.
This package imports nothing heavy, so ``import modelshield.defenses`` stays cheap; each
subpackage loads torch only when it is imported.
"""
