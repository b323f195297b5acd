"""Noise keyed by sample index: the same numbers for a sample however the data is cut."""

from __future__ import annotations

import itertools

import pytest
import torch

from modelshield.attacks.noise import SampleNoise


@pytest.mark.parametrize(("shape", "n"), [((3,), 2500), ((1, 8, 8), 2500), ((40, 3, 32, 32), 20)])  # 3, 3 and 3 blocks
def test_a_samples_numbers_do_not_depend_on_its_batch(shape, n) -> None:
    whole = SampleNoise(9, torch.arange(n)).uniform(shape)
    cuts = sorted({0, 1, n // 3, n // 2 + 1, n - 1, n})
    pieces = torch.cat([SampleNoise(9, torch.arange(a, b)).uniform(shape) for a, b in itertools.pairwise(cuts)])
    assert torch.equal(whole, pieces)
    rows = torch.tensor([n - 1, 3, n // 2])
    assert torch.equal(SampleNoise(9, torch.arange(n)).rows(rows).uniform(shape), whole[rows])


def test_keys_kinds_shapes_and_seeds_give_different_numbers() -> None:
    noise = SampleNoise(9, torch.arange(20))
    base = noise.uniform((5,))
    assert torch.equal(base, noise.uniform((5,)))  # stateless: the same draw twice
    for other in (
        noise.keyed(1).uniform((5,)),
        SampleNoise(10, torch.arange(20)).uniform((5,)),
        noise.uniform((6,))[:, :5],
        noise.normal((5,)),
    ):
        assert not torch.isclose(base, other).any()
    assert not torch.equal(noise.keyed(1).uniform((5,)), noise.keyed(2).uniform((5,)))


def test_rows_are_independent_and_well_spread() -> None:
    u = SampleNoise(0, torch.arange(256)).uniform((1000,), dtype=torch.float64)
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005
    corr = torch.corrcoef(u)  # 256 samples × 1000 draws each: no two samples (in a block or not) move together
    off = corr - torch.eye(256, dtype=corr.dtype)
    assert float(off.abs().max()) < 0.2
    z = SampleNoise(0, torch.arange(64)).normal((2000,), dtype=torch.float64)
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
