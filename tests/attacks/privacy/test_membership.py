"""Reference-model attacks (LiRA, RMIA, shadow models) and the label-only attack on an overfit digits MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from privacy_helpers import Audit, mlp_train_fn

from modelshield.attacks.privacy import RMIA, LabelOnly, LiRA, LossThreshold, ReferenceModels, ShadowModels
from modelshield.core.errors import InputError
from modelshield.core.model import TorchModel


def test_every_sample_is_in_exactly_half_the_reference_models(audit: Audit, references: ReferenceModels) -> None:
    assert (references.in_mask.sum(axis=0) == 2).all()
    shuffled = torch.randperm(len(audit.y), generator=torch.Generator().manual_seed(0))
    assert (references.membership(audit.x[shuffled], audit.y[shuffled]) == references.in_mask[:, shuffled]).all()
    # a row with another label is another sample: OUT for every model
    assert not references.membership(audit.x[:1], (audit.y[:1] + 1) % 10).any()


def test_lira_beats_the_loss_threshold_at_low_fpr(
    audit: Audit, overfit: TorchModel, references: ReferenceModels
) -> None:
    loss = LossThreshold().evaluate(overfit, audit.x, audit.y, audit.is_member)
    online = LiRA(references).evaluate(overfit, audit.x, audit.y, audit.is_member)
    offline = LiRA(references, online=False).evaluate(overfit, audit.x, audit.y, audit.is_member)
    assert online.tpr_at_fpr_0_01 >= loss.tpr_at_fpr_0_01 + 0.08
    assert online.auc > loss.auc + 0.05
    assert offline.tpr_at_fpr_0_01 > loss.tpr_at_fpr_0_01 + 0.05
    assert LiRA(references).fixed_variance  # 2 IN / 2 OUT per sample: a per-sample variance is noise
    per_sample = LiRA(references, fixed_variance=False).evaluate(overfit, audit.x, audit.y, audit.is_member)
    assert loss.auc < per_sample.auc < online.auc


def test_online_lira_refuses_samples_no_reference_model_trained_on(
    audit: Audit, overfit: TorchModel, references: ReferenceModels
) -> None:
    outside = audit.extra_x[:20], audit.extra_y[:20]
    with pytest.raises(InputError, match="20 of 20 are not"):
        LiRA(references).scores(overfit, *outside)
    assert np.isfinite(LiRA(references, online=False).scores(overfit, *outside)).all()


def test_rmia_and_shadow_find_members(audit: Audit, overfit: TorchModel, references: ReferenceModels) -> None:
    loss = LossThreshold().evaluate(overfit, audit.x, audit.y, audit.is_member)
    for attack in (RMIA(references), RMIA(references, online=False)):
        s = attack.evaluate(overfit, audit.x, audit.y, audit.is_member)
        assert s.auc > 0.65 and s.tpr_at_fpr_0_01 > loss.tpr_at_fpr_0_01, attack.name
    # with an outside population the score is the share of population samples x dominates
    population = (audit.extra_x[:100], audit.extra_y[:100])
    scores = RMIA(references, population=population).scores(overfit, audit.x, audit.y)
    assert ((scores >= 0) & (scores <= 1)).all() and len(np.unique(scores)) > 20
    assert ShadowModels(references).evaluate(overfit, audit.x, audit.y, audit.is_member).auc > 0.6


def test_label_only_finds_members_from_labels_alone(audit: Audit, overfit: TorchModel) -> None:
    s = LabelOnly(draws=4).evaluate(overfit, audit.x, audit.y, audit.is_member)
    assert s.auc > 0.58
    # images get translations too: the digits as 1x8x8 images
    images = TorchModel(torch.nn.Sequential(torch.nn.Flatten(), overfit.module), input_shape=(1, 8, 8), num_classes=10)
    x_img = audit.x.reshape(-1, 1, 8, 8)
    assert len(LabelOnly(draws=1, sigmas=(0.05,))._variants(images, x_img)) == 1 + 1 + 8
    assert LabelOnly(draws=2).evaluate(images, x_img, audit.y, audit.is_member).auc > 0.58


def test_reference_models_need_pairs() -> None:
    with pytest.raises(InputError, match="even integer"):
        ReferenceModels.train(mlp_train_fn(), torch.zeros(4, 64), torch.zeros(4, dtype=torch.long), n_models=3)
    with pytest.raises(InputError, match="lacks some of its 2 classes"):  # one sample of class 1: in half the models
        ReferenceModels.train(mlp_train_fn(), torch.zeros(4, 64), torch.tensor([0, 0, 0, 1]), n_models=2)
