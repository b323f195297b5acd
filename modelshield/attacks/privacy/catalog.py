"""Membership attacks by name, as the CLI and audits choose them."""

from __future__ import annotations

from collections.abc import Sequence

from modelshield.attacks.privacy.base import MembershipAttack
from modelshield.attacks.privacy.label_only import LabelOnly
from modelshield.attacks.privacy.lira import LiRA
from modelshield.attacks.privacy.reference import ReferenceModels
from modelshield.attacks.privacy.rmia import RMIA
from modelshield.attacks.privacy.shadow import ShadowModels
from modelshield.attacks.privacy.threshold import ConfidenceThreshold, LossThreshold
from modelshield.core.errors import InputError

#: attacks that only query the target
STANDALONE = ("loss", "confidence", "label-only")
#: attacks that also need reference models trained with the target's recipe
WITH_REFERENCES = ("lira", "lira-offline", "rmia", "rmia-offline", "shadow")
MEMBERSHIP_ATTACKS = STANDALONE + WITH_REFERENCES


def needs_references(names: Sequence[str]) -> bool:
    """Whether any of the named attacks trains reference models."""
    return any(n in WITH_REFERENCES for n in names)


def membership_attacks(
    names: Sequence[str], references: ReferenceModels | None = None, *, seed: int = 0
) -> list[MembershipAttack]:
    """The named attacks, in order; reference-model attacks share ``references``."""
    unknown = [n for n in names if n not in MEMBERSHIP_ATTACKS]
    if unknown:
        raise InputError(f"unknown membership attack {unknown[0]!r}; choose from {', '.join(MEMBERSHIP_ATTACKS)}")
    if references is None and needs_references(names):
        needing = ", ".join(n for n in names if n in WITH_REFERENCES)
        raise InputError(f"{needing} need reference models trained like the target")
    out: list[MembershipAttack] = []
    for name in names:
        if name == "loss":
            out.append(LossThreshold())
        elif name == "confidence":
            out.append(ConfidenceThreshold())
        elif name == "label-only":
            out.append(LabelOnly(seed=seed))
        else:
            assert references is not None
            if name.startswith("lira"):
                out.append(LiRA(references, online=name == "lira"))
            elif name.startswith("rmia"):
                out.append(RMIA(references, online=name == "rmia"))
            else:
                out.append(ShadowModels(references))
    return out


__all__ = ["MEMBERSHIP_ATTACKS", "STANDALONE", "WITH_REFERENCES", "membership_attacks", "needs_references"]
