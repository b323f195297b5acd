"""Model extraction: steal a victim's behaviour through its prediction interface, under a query budget.

``EquationSolving`` recovers linear softmax models exactly (Tramèr et al. 2016), ``JacobianAugmentation``
trains a substitute on a seed set grown along its boundaries (Papernot et al. 2017), ``KnockoffNets``
imitates the victim on a surrogate data set (Orekondy et al. 2019). Each returns an ``ExtractionResult``:
the stolen model, its fidelity and accuracy against queries spent, and why it stopped.
"""

from modelshield.attacks.extraction.base import (
    CurvePoint,
    EvalSet,
    ExtractionResult,
    Oracle,
    VictimRefusedError,
)
from modelshield.attacks.extraction.equation_solving import EquationSolving, parameter_error
from modelshield.attacks.extraction.jacobian import JacobianAugmentation
from modelshield.attacks.extraction.knockoff import KnockoffNets
from modelshield.attacks.extraction.surrogate import natural_patches

__all__ = [
    "CurvePoint",
    "EquationSolving",
    "EvalSet",
    "ExtractionResult",
    "JacobianAugmentation",
    "KnockoffNets",
    "Oracle",
    "VictimRefusedError",
    "natural_patches",
    "parameter_error",
]
