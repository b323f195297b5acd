"""Checkpoints, resuming, early stopping and refused input: what a long training run relies on."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from training_settings import GATE, quick

from modelshield.core.adapters import SklearnModel
from modelshield.core.datasets import Dataset
from modelshield.core.errors import CapabilityError, FormatError, InputError
from modelshield.core.model import TorchModel
from modelshield.defenses.training import Distillation, FreeTraining, PGDTraining, StandardTraining, Trainer

Factory = Callable[[], TorchModel]


@pytest.fixture(scope="module")
def small_train(digits_train: Dataset) -> Dataset:
    """320 training images: enough for every code path, quick enough to train several times."""
    return digits_train.subset(320, seed=1)


def weights(model: TorchModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "make",
    [
        lambda: PGDTraining(eps=GATE, steps=3),
        lambda: FreeTraining(eps=GATE, replays=2),
        lambda: Distillation(temperature=5.0, teacher_epochs=1),
    ],
    ids=["pgd", "free", "distill"],
)
def test_resume_continues_exactly_like_an_uninterrupted_run(
    make: Callable[[], Trainer], fresh_model: Factory, small_train: Dataset, tmp_path: Path
) -> None:
    settings = {"val_fraction": 0.2, "val_eps": GATE, "val_steps": 3}
    straight = fresh_model()
    whole = make().fit(straight, small_train, quick(3, **settings))

    interrupted = fresh_model()
    make().fit(interrupted, small_train, quick(2, checkpoint_dir=tmp_path, **settings))
    resumed = fresh_model()  # a new process: fresh weights, and the global RNG moved on
    torch.manual_seed(1234)
    rest = make().fit(resumed, small_train, quick(3, checkpoint_dir=tmp_path, resume=True, **settings))

    assert rest.resumed_from_epoch == 2
    assert [h.epoch for h in rest.history] == [1, 2, 3]
    assert [h.loss for h in rest.history] == [h.loss for h in whole.history]
    assert same(weights(resumed), weights(straight))
    # nothing pickled: tensors in safetensors, the rest in JSON
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003.safetensors", "latest.json"]


def test_checkpoint_refuses_other_settings_tampering_and_overwrite(
    fresh_model: Factory, small_train: Dataset, tmp_path: Path
) -> None:
    PGDTraining(eps=GATE, steps=2).fit(fresh_model(), small_train, quick(1, checkpoint_dir=tmp_path))
    with pytest.raises(InputError, match="already holds a training checkpoint"):
        PGDTraining(eps=GATE, steps=2).fit(fresh_model(), small_train, quick(1, checkpoint_dir=tmp_path))
    with pytest.raises(InputError, match="eps"):
        PGDTraining(eps=0.2, steps=2).fit(fresh_model(), small_train, quick(2, checkpoint_dir=tmp_path, resume=True))
    with pytest.raises(InputError, match="batch_size"):
        PGDTraining(eps=GATE, steps=2).fit(
            fresh_model(), small_train, quick(2, checkpoint_dir=tmp_path, resume=True, batch_size=32)
        )
    meta = json.loads((tmp_path / "latest.json").read_text())
    tensors = tmp_path / meta["tensors"]
    blob = bytearray(tensors.read_bytes())
    blob[-1] ^= 0xFF
    tensors.write_bytes(bytes(blob))
    with pytest.raises(FormatError, match="altered"):
        PGDTraining(eps=GATE, steps=2).fit(fresh_model(), small_train, quick(2, checkpoint_dir=tmp_path, resume=True))

    # a latest.json pointing outside its folder is refused: resuming would read that file and then delete it
    victim = tmp_path.parent / f"{tmp_path.name}-victim.safetensors"
    victim.write_bytes(b"keep me")
    for edit in ({"tensors": f"../{victim.name}"}, {"optimizer": None}):
        (tmp_path / "latest.json").write_text(json.dumps({**meta, **edit}))
        with pytest.raises(FormatError, match="tensor file|optimizer"):
            PGDTraining(eps=GATE, steps=2).fit(
                fresh_model(), small_train, quick(2, checkpoint_dir=tmp_path, resume=True)
            )
    assert victim.read_bytes() == b"keep me"


def test_early_stopping_stops_and_restores_the_best_epoch(fresh_model: Factory, small_train: Dataset) -> None:
    settings = {"val_fraction": 0.2, "val_eps": GATE, "val_steps": 3}
    first = fresh_model()
    StandardTraining().fit(first, small_train, quick(1, **settings))
    model = fresh_model()
    # no epoch can beat the first by 100 points, so patience 1 stops the run at epoch 2
    result = StandardTraining().fit(model, small_train, quick(10, patience=1, min_delta=1.0, **settings))
    assert result.stopped_early and len(result.history) == 2 and result.best_epoch == 1
    assert all(h.robust_accuracy is not None and h.seconds > 0 for h in result.history)
    assert same(weights(model), weights(first))


def test_refuses_bad_models_data_and_settings(fresh_model: Factory, small_train: Dataset) -> None:
    from sklearn.dummy import DummyClassifier

    flat = small_train.x.flatten(1).numpy()
    sk = SklearnModel(DummyClassifier().fit(flat, small_train.y.numpy()), input_shape=(64,), num_classes=10)
    with pytest.raises(CapabilityError, match="PyTorch"):
        StandardTraining().fit(sk, small_train, quick(1))  # type: ignore[arg-type]
    nan = Dataset(small_train.x.clone(), small_train.y, "nan")
    nan.x[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        PGDTraining(eps=GATE).fit(fresh_model(), nan, quick(1))
    with pytest.raises(InputError, match="epochs.*lr"):
        PGDTraining(eps=GATE).fit(fresh_model(), small_train, quick(0, lr=-1.0))
    with pytest.raises(InputError, match="early stopping needs validation"):
        PGDTraining(eps=GATE).fit(fresh_model(), small_train, quick(1, patience=2))
    with pytest.raises(InputError, match="eps"):
        PGDTraining(eps=-0.1)
