"""Data poisoning attacks: label flipping, backdoors and clean-label poisoning, numpy in and out.

Every attack is configured once and poisons a training set with ``poison(x, y)``, returning a
:class:`PoisonResult` (poisoned ``x``/``y``, the mask of touched rows, the trigger for test time);
:func:`evaluate_poisoning` measures a model trained on it. See docs/poisoning.md.
"""

from modelshield.attacks.poisoning.backdoor import BadNets, Blend, TabularBackdoor, TextBackdoor
from modelshield.attacks.poisoning.base import PoisonAttack, PoisonResult, Trigger
from modelshield.attacks.poisoning.clean_label import FeatureCollision
from modelshield.attacks.poisoning.evaluation import PoisonEvaluation, evaluate_poisoning
from modelshield.attacks.poisoning.label_flip import LossMaxLabelFlip, RandomLabelFlip, TargetedLabelFlip
from modelshield.attacks.poisoning.triggers import BlendTrigger, FeatureTrigger, PatchTrigger, TokenTrigger

__all__ = [
    "BadNets",
    "Blend",
    "BlendTrigger",
    "FeatureCollision",
    "FeatureTrigger",
    "LossMaxLabelFlip",
    "PatchTrigger",
    "PoisonAttack",
    "PoisonEvaluation",
    "PoisonResult",
    "RandomLabelFlip",
    "TabularBackdoor",
    "TargetedLabelFlip",
    "TextBackdoor",
    "TokenTrigger",
    "Trigger",
    "evaluate_poisoning",
]
