"""Black-box watermark on the demo CNN: detected through a label-only HTTP endpoint, robust, silent on clean models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import torch
from fastapi import FastAPI
from pydantic import BaseModel
from watermark_keys import OTHER_KEY, OWNER_KEY

from modelshield.core.adapters import RemoteModel
from modelshield.core.datasets import Dataset
from modelshield.core.model import TorchModel
from modelshield.integrity.watermark import TriggerSetWatermark, accuracy, calibrate, fine_tune, magnitude_prune

if TYPE_CHECKING:
    from conftest import ServeAsgi

FPR = 1e-3


class Batch(BaseModel):
    inputs: list


def label_service(models: dict[str, TorchModel]) -> FastAPI:
    """Each model behind POST /<name>, answering labels only: all a black-box verifier sees."""
    app = FastAPI()

    def route(model: TorchModel):
        def labels(batch: Batch) -> dict:
            return {"labels": model.predict(torch.tensor(batch.inputs, dtype=torch.float32)).tolist()}

        return labels

    for name, model in models.items():
        app.post(f"/{name}")(route(model))
    return app


@pytest.fixture(scope="module")
def service(trigger_marked: TorchModel, digits_model: TorchModel, serve_asgi: ServeAsgi) -> Iterator[str]:
    with serve_asgi(label_service({"marked": trigger_marked, "clean": digits_model})) as port:
        yield f"http://127.0.0.1:{port}"


def test_embedded_trigger_set_is_learnt_at_little_cost(
    trigger_marked: TorchModel, digits_model: TorchModel, digits_test: Dataset
) -> None:
    verdict = TriggerSetWatermark(OWNER_KEY).verify(trigger_marked)
    assert verdict.detected and verdict.matched >= 95 and verdict.p_value <= FPR
    assert accuracy(digits_model, digits_test) - accuracy(trigger_marked, digits_test) <= 0.01


def test_triggers_are_key_derived_inputs_in_the_model_box() -> None:
    x, y = TriggerSetWatermark(OWNER_KEY).triggers((1, 8, 8), 10, (0.0, 1.0))
    x2, _ = TriggerSetWatermark(OTHER_KEY).triggers((1, 8, 8), 10, (0.0, 1.0))
    assert x.shape == (100, 1, 8, 8) and y.shape == (100,) and 0 <= float(x.min()) and float(x.max()) < 1
    assert not torch.equal(x, x2)
    assert torch.equal(TriggerSetWatermark(OWNER_KEY).triggers((1, 8, 8), 10)[1], y)


def test_verifies_through_a_label_only_remote_endpoint(service: str) -> None:
    wm = TriggerSetWatermark(OWNER_KEY)
    marked = RemoteModel(f"{service}/marked", input_shape=(1, 8, 8), num_classes=10)
    clean = RemoteModel(f"{service}/clean", input_shape=(1, 8, 8), num_classes=10)
    assert wm.verify(marked).detected and marked.queries == 100
    assert not marked.has_scores  # only labels crossed the wire
    assert not wm.verify(clean).detected


def test_survives_fine_tuning_and_pruning(trigger_marked: TorchModel, train: Dataset) -> None:
    wm = TriggerSetWatermark(OWNER_KEY)
    assert wm.verify(fine_tune(trigger_marked, train, epochs=5, lr=3e-3, seed=1), fpr=FPR).detected
    assert wm.verify(magnitude_prune(trigger_marked, 0.3), fpr=FPR).detected


def test_unwatermarked_models_never_verify_and_the_null_holds(
    clean_models: list[TorchModel], trigger_marked: TorchModel
) -> None:
    for model in clean_models:
        assert not TriggerSetWatermark(OWNER_KEY).verify(model).detected
    assert not TriggerSetWatermark(OTHER_KEY).verify(trigger_marked).detected
    cal = calibrate(lambda key: TriggerSetWatermark(key), [*clean_models, trigger_marked], n_keys=100)
    mean, _ = cal.match_mean_var()
    assert abs(mean - 10) < 0.6  # chance agreement 1/10 of 100 triggers; SE of the mean is about 0.15
    assert cal.rate(0.05) <= 0.05 + 3 * (0.05 * 0.95 / cal.trials) ** 0.5
    assert cal.rate(FPR) <= 2 / cal.trials


def test_chance_rate_is_never_below_uniform(clean_models: list[TorchModel], trigger_marked: TorchModel) -> None:
    for model in [*clean_models, trigger_marked]:
        assert TriggerSetWatermark(OWNER_KEY).verify(model).chance >= 0.1
