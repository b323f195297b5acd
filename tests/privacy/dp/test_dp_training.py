"""DP-SGD training on real data: accuracy at ε = 8, the budget it stops at, Poisson batches, the record it leaves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_model as load_weights
from torch import Tensor, nn

from modelshield.core.datasets import sklearn_dataset
from modelshield.core.errors import InputError
from modelshield.demo import DigitsCNN
from modelshield.privacy.dp import epsilon, read_dp_metadata, registry_metadata, save_dp_model, train_dp
from modelshield.privacy.dp.clipping import per_sample_cross_entropy


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2))


def test_digits_cnn_reaches_80_percent_at_epsilon_8() -> None:
    """The recipe of docs/dp.md (Adam, lr 0.01, batch 128, 20 epochs, C = 1): ~90 % on the digits test split."""
    train, test = sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")
    torch.manual_seed(0)
    net, report = train_dp(
        DigitsCNN(), train.x, train.y, epsilon=8.0, delta=1e-5, epochs=20, batch_size=128, optimizer="adam", lr=0.01
    )
    accuracy = float((net(test.x).argmax(1) == test.y).float().mean())
    assert accuracy >= 0.80, accuracy
    assert report.epsilon <= 8.0 and report.steps == report.planned_steps and not report.stopped_at_target
    assert not net.training


def test_training_stops_before_exceeding_the_target() -> None:
    """With σ fixed and a target ε, the run ends at the last step inside the budget."""
    data = sklearn_dataset("breast_cancer", "train")
    net, report = train_dp(
        _mlp(), data.x, data.y, epsilon=2.0, noise_multiplier=2.0, epochs=40, batch_size=64, optimizer="adam", lr=0.01
    )
    assert report.stopped_at_target and 0 < report.steps < report.planned_steps
    assert report.epsilon <= 2.0 < epsilon(2.0, report.sample_rate, report.steps + 1, 1e-5)
    assert report.history[-1].steps == report.steps


def test_batches_are_poisson_sampled() -> None:
    """Batch sizes vary around q·N (fixed batches would not match the accountant's analysis)."""
    data = sklearn_dataset("breast_cancer", "train")
    sizes: list[int] = []

    def loss(out: Tensor, y: Tensor) -> Tensor:
        sizes.append(len(y))
        return per_sample_cross_entropy(out, y)

    _, report = train_dp(_mlp(), data.x, data.y, noise_multiplier=1.0, epochs=6, batch_size=64, loss_fn=loss)
    sizes = sizes[2:]  # the first batch is also run twice by the one-time gradient check
    mean = sum(sizes) / len(sizes)
    assert len(set(sizes)) > 3 and abs(mean - 64) < 12
    assert report.target_epsilon is None and report.epsilon > 0


def test_budget_is_recorded_in_the_weights_the_sidecar_and_the_registry(tmp_path: Path) -> None:
    data = sklearn_dataset("breast_cancer", "train")
    net, report = train_dp(_mlp(), data.x, data.y, epsilon=2.0, epochs=3, batch_size=64)
    paths = save_dp_model(net, report, tmp_path / "out", {"arch": "torch.nn:Sequential"})
    meta = read_dp_metadata(paths["weights"])
    assert meta is not None and meta["epsilon"] == report.epsilon <= 2.0
    assert meta["delta"] == 1e-5 and meta["noise_multiplier"] == report.noise_multiplier and meta["accountant"] == "rdp"
    assert json.loads(paths["model"].read_text())["privacy"]["steps"] == report.steps
    twin = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2))  # the weights load as usual
    load_weights(twin, str(paths["weights"]))
    torch.testing.assert_close(twin(data.x[:5]), net(data.x[:5]))

    from modelshield.registry.store import Registry

    with Registry.open(f"sqlite:///{tmp_path / 'reg.db'}") as reg:
        reg.register("dp-mlp", paths["weights"], owner="tests", metadata=registry_metadata(report))
        stored = reg.get("dp-mlp", 1).metadata["privacy"]
    assert stored["epsilon"] == report.epsilon and stored["sample_rate"] == report.sample_rate


def test_plain_weights_carry_no_budget(tmp_path: Path) -> None:
    from modelshield.core.loading import save_torch_model

    path = save_torch_model(_mlp(), tmp_path / "plain.safetensors")
    assert read_dp_metadata(path) is None


def test_neither_epsilon_nor_sigma_is_an_input_error() -> None:
    data = sklearn_dataset("breast_cancer", "train")
    with pytest.raises(InputError, match="target ε"):
        train_dp(_mlp(), data.x, data.y, epochs=1, batch_size=64)
    with pytest.raises(InputError, match="batch size"):
        train_dp(_mlp(), data.x, data.y, epsilon=1.0, batch_size=10_000)
