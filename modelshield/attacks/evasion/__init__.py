"""Evasion attacks: white-box gradient attacks, minimum-norm attacks and black-box searches.

=================  ===========  =================  ==========================
class              norm         knowledge          budget
=================  ===========  =================  ==========================
``FGSM``           L∞ / L2      gradients          fixed ε
``PGD``            L∞ / L2      gradients          fixed ε
``APGD``           L∞ / L2      gradients          fixed ε
``CarliniWagnerL2``  L2         gradients          minimum norm
``DeepFool``       L2           gradients          minimum norm
``Square``         L∞ / L2      scores             fixed ε, query budget
``HopSkipJump``    L2 / L∞      labels only        query budget (optional ε)
=================  ===========  =================  ==========================
"""

from __future__ import annotations

from modelshield.attacks.evasion.apgd import APGD
from modelshield.attacks.evasion.carlini_wagner import CarliniWagnerL2
from modelshield.attacks.evasion.deepfool import DeepFool
from modelshield.attacks.evasion.hop_skip_jump import HopSkipJump
from modelshield.attacks.evasion.pgd import FGSM, PGD
from modelshield.attacks.evasion.square import Square

__all__ = ["APGD", "FGSM", "PGD", "CarliniWagnerL2", "DeepFool", "HopSkipJump", "Square"]
