"""Yeom et al.'s threshold attacks find the members of an overfit model and not of a generalising one."""

from __future__ import annotations

import torch
from privacy_helpers import Audit

from modelshield.attacks.privacy import ConfidenceThreshold, LossThreshold
from modelshield.core.model import TorchModel


def test_overfit_model_leaks_generalising_one_much_less(
    audit: Audit, overfit: TorchModel, generalising: TorchModel
) -> None:
    leaky = LossThreshold().evaluate(overfit, audit.x, audit.y, audit.is_member)
    tight = LossThreshold().evaluate(generalising, audit.x, audit.y, audit.is_member)
    assert leaky.auc > 0.62
    assert tight.auc < 0.57 and leaky.auc - tight.auc > 0.08


def test_confidence_needs_no_label(audit: Audit, overfit: TorchModel) -> None:
    scores = ConfidenceThreshold().scores(overfit, audit.x, audit.y)
    shuffled = ConfidenceThreshold().scores(overfit, audit.x, audit.y.roll(1))
    assert (scores == shuffled).all()
    assert ConfidenceThreshold().evaluate(overfit, audit.x, audit.y, audit.is_member).auc > 0.58
    # the loss attack uses the label: the wrong one makes members look like non-members
    assert LossThreshold().evaluate(overfit, audit.x, torch.roll(audit.y, 1), audit.is_member).auc < 0.55
