"""What the server sees: single updates, the SecAgg sum, clipped and noised updates (real digits gradients)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from fed_data import client_gradient, tiny_mlp

from modelshield.attacks.federated import clip_update, privatize_update, secure_aggregate, server_view, update_norm
from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.core.datasets import Dataset


@pytest.fixture(scope="module")
def updates(digits_train: Dataset) -> list[list[np.ndarray]]:
    """Ten clients' gradients, one digit each."""
    model = tiny_mlp()
    return [client_gradient(model, digits_train.x[i : i + 1], digits_train.y[i : i + 1]) for i in range(10)]


def test_without_secagg_the_server_sees_each_update(updates: list[list[np.ndarray]]) -> None:
    view = server_view(updates)
    assert len(view) == 10
    for seen, sent in zip(view, updates, strict=True):
        for a, b in zip(seen, sent, strict=True):
            np.testing.assert_array_equal(a, b)


def test_with_secagg_only_the_sum(updates: list[list[np.ndarray]]) -> None:
    (seen,) = server_view(updates, secagg=True)
    for j, a in enumerate(seen):
        np.testing.assert_allclose(a, np.sum([u[j] for u in updates], axis=0), rtol=1e-5, atol=1e-7)
    assert seen[0].dtype == np.float32


def test_clipping_bounds_the_whole_update_norm(updates: list[list[np.ndarray]]) -> None:
    norm = update_norm(updates[0])
    clipped = clip_update(updates[0], clip=norm / 2)
    assert update_norm(clipped) == pytest.approx(norm / 2, rel=1e-5)
    np.testing.assert_allclose(clipped[1] * 2, updates[0][1], rtol=1e-5)
    np.testing.assert_array_equal(clip_update(updates[0], clip=norm * 2)[0], updates[0][0])  # short: unchanged


def test_local_dp_noise_has_std_z_c_and_distributed_shares_add_up(updates: list[list[np.ndarray]]) -> None:
    c, z = 1.0, 0.5
    clipped = clip_update(updates[0], clip=c)
    noisy = privatize_update(updates[0], clip=c, noise_multiplier=z, rng=np.random.default_rng(0))
    noise = np.concatenate([(n - k).ravel() for n, k in zip(noisy, clipped, strict=True)])
    assert noise.std() == pytest.approx(z * c, rel=0.05)
    (total,) = server_view(updates, secagg=True, clip=c, noise_multiplier=z, rng=np.random.default_rng(0))
    exact = secure_aggregate([clip_update(u, clip=c) for u in updates])
    summed_noise = np.concatenate([(t - e).ravel() for t, e in zip(total, exact, strict=True)])
    assert summed_noise.std() == pytest.approx(z * c, rel=0.05)  # k shares of zC/√k


def test_central_dp_view_is_the_clipped_update(updates: list[list[np.ndarray]]) -> None:
    view = server_view(updates[:2], clip=0.1)
    assert update_norm(view[0]) == pytest.approx(0.1, rel=1e-5)


def test_bad_views_are_refused(updates: list[list[np.ndarray]]) -> None:
    with pytest.raises(InputError, match="clipping norm"):
        server_view(updates, noise_multiplier=1.0)
    with pytest.raises(InputError, match="shapes"):
        secure_aggregate([updates[0], updates[1][:-1]])
    with pytest.raises(InputError):
        clip_update(updates[0], clip=0)
    with pytest.raises(InputError):
        privatize_update(updates[0], clip=1, noise_multiplier=-1, rng=np.random.default_rng(0))
