"""Update poisoning on a real client update: one SGD step of a tiny network on a digits batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from fed_data import client_gradient, tiny_mlp

from modelshield.attacks.federated import boost_update, gaussian_update, sign_flip
from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.core.datasets import Dataset


@pytest.fixture(scope="module")
def update(digits_train: Dataset) -> list[np.ndarray]:
    """local - global after one step of SGD (lr 0.1) on 32 digits."""
    model = tiny_mlp()
    return [-0.1 * g for g in client_gradient(model, digits_train.x[:32], digits_train.y[:32])]


def test_sign_flip_reverses_and_scales(update: list[np.ndarray]) -> None:
    flipped = sign_flip(update, scale=3.0)
    assert [a.shape for a in flipped] == [a.shape for a in update]
    assert all(f.dtype == np.float32 for f in flipped)
    for f, u in zip(flipped, update, strict=True):
        np.testing.assert_allclose(f, -3.0 * u, rtol=1e-6)
    np.testing.assert_array_equal(sign_flip(update)[0], -update[0])


def test_boost_update_is_model_replacement_at_n_over_eta(update: list[np.ndarray]) -> None:
    """With 10 clients and η = 1, γ = 10 puts the global model on the attacker's when the others send 0."""
    global_params = [np.ones_like(u) for u in update]
    boosted = boost_update(update, factor=10 / 1.0)
    new_global = [g + 1.0 / 10 * (b + 9 * np.zeros_like(b)) for g, b in zip(global_params, boosted, strict=True)]
    for ng, g, u in zip(new_global, global_params, update, strict=True):
        np.testing.assert_allclose(ng, g + u, rtol=1e-6, atol=1e-7)


def test_gaussian_update_is_noise_of_the_given_scale(update: list[np.ndarray]) -> None:
    noisy = gaussian_update(update, sigma=2.0, rng=np.random.default_rng(0))
    values = np.concatenate([a.ravel() for a in noisy])
    assert [a.shape for a in noisy] == [a.shape for a in update] and noisy[0].dtype == np.float32
    assert abs(values.std() - 2.0) < 0.1 and abs(values.mean()) < 0.1
    again = gaussian_update([u * 100 for u in update], sigma=2.0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(noisy[0], again[0])  # the honest values play no part


def test_integer_buffers_pass_through(update: list[np.ndarray]) -> None:
    steps = np.array(5, dtype=np.int64)  # BatchNorm's num_batches_tracked in a state-dict update
    for out in (
        sign_flip([*update, steps]),
        boost_update([*update, steps], factor=4),
        gaussian_update([*update, steps], sigma=1, rng=np.random.default_rng(0)),
    ):
        assert out[-1].dtype == np.int64 and int(out[-1]) == 5


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), True])
def test_parameters_must_be_positive(update: list[np.ndarray], bad: float) -> None:
    with pytest.raises(InputError):
        boost_update(update, factor=bad)
    with pytest.raises(InputError):
        sign_flip(update, scale=bad)


def test_an_update_is_a_list_of_numeric_arrays() -> None:
    with pytest.raises(InputError, match="update"):
        sign_flip([])
    with pytest.raises(InputError, match="update"):
        boost_update([np.array(["a"])], factor=2)
