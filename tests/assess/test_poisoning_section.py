"""report.json's poisoning rows on digits: the demo's BadNets and label flips, measured for real."""

from __future__ import annotations

from typing import Any

import pytest
from threadpoolctl import threadpool_limits

from modelshield.assess.poisoning import DEFENCES, Scenario, assess_poisoning, demo_scenarios
from modelshield.attacks.poisoning import TargetedLabelFlip
from modelshield.core.datasets import Dataset, sklearn_dataset
from modelshield.core.errors import InputError
from modelshield.core.model import TorchModel
from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, train_digits_cnn

KEYS = {
    "attack",
    "poison_rate",
    "clean_accuracy",
    "attack_success_rate",
    "defence",
    "defended_attack_success_rate",
    "defended_clean_accuracy",
    "detection_precision",
    "detection_recall",
    "detection_f1",
}


def fit(ds: Dataset) -> TorchModel:
    """The demo CNN, trained for 8 epochs instead of 15 to keep the test short."""
    net = train_digits_cnn(ds, epochs=8, seed=0)
    return TorchModel(net, input_shape=DEMO_INPUT_SHAPE, num_classes=DEMO_NUM_CLASSES, bounds=(0.0, 1.0))


@pytest.fixture(scope="module")
def splits() -> tuple[Dataset, Dataset]:
    return sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")


@pytest.fixture(scope="module")
def demo_rows(splits: tuple[Dataset, Dataset]) -> list[dict[str, Any]]:
    return assess_poisoning(*splits, fit, seed=0)


def test_badnets_row_shows_the_backdoor_and_strip_removing_it(demo_rows: list[dict[str, Any]]) -> None:
    row = next(r for r in demo_rows if r["attack"] == "badnets")
    assert set(row) == KEYS and row["defence"] == "strip"
    assert row["poison_rate"] == pytest.approx(0.1, abs=0.001)
    assert row["attack_success_rate"] >= 0.9
    assert row["defended_attack_success_rate"] <= 0.1
    assert row["detection_recall"] >= 0.95
    assert row["defended_clean_accuracy"] >= row["clean_accuracy"] - 0.03


def test_label_flip_row_detects_the_flips(demo_rows: list[dict[str, Any]]) -> None:
    row = next(r for r in demo_rows if r["attack"] == "random-flip")
    assert set(row) == KEYS and row["defence"] == "confident-learning"
    assert row["poison_rate"] == pytest.approx(0.2, abs=0.001)
    assert row["detection_f1"] >= 0.8
    assert row["attack_success_rate"] == pytest.approx(1 - row["clean_accuracy"])


def test_an_undefended_scenario_gives_one_row_without_defence_figures(splits: tuple[Dataset, Dataset]) -> None:
    def quick(ds: Dataset) -> TorchModel:  # one epoch: this test checks the row, not the effect
        net = train_digits_cnn(ds, epochs=1, seed=0)
        return TorchModel(net, input_shape=DEMO_INPUT_SHAPE, num_classes=DEMO_NUM_CLASSES, bounds=(0.0, 1.0))

    with threadpool_limits(1):
        rows = assess_poisoning(*splits, quick, [Scenario(TargetedLabelFlip({1: 7}, rate=0.05))])
    assert len(rows) == 1 and rows[0]["attack"] == "targeted-flip" and rows[0]["defence"] is None
    assert all(rows[0][k] is None for k in KEYS if k.startswith(("defended", "detection")))


def test_unknown_defence_is_refused_with_the_choices() -> None:
    with pytest.raises(InputError, match="strip"):
        Scenario(demo_scenarios()[0].attack, ("sanitise-everything",))
    assert {"strip", "confident-learning", "spectral-signatures", "activation-clustering"} <= set(DEFENCES)
