"""Random numbers keyed by sample, so an attack's result never depends on how the data was batched.

A batch-wide generator hands sample 600 different noise when the data is cut into batches of 512
than of 1024. Here every number an attack draws is a function of the attack's seed, a key naming
the draw (which restart, which block of steps), the draw's kind and shape, and the sample's index
in the whole data set, so a sample's random starts, windows and probes are the same whatever batch
it lands in and whichever other samples are attacked beside it.

Samples are grouped in fixed blocks of consecutive indices (the block size depends only on the
shape drawn) and a block's numbers come from one generator seeded from all of the above: one
generator call per block, not per sample. Draws happen on the CPU and move to the model's device,
so they also match across devices.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1
_MAX_BLOCK = 1024  # samples per generator call, at most
_BLOCK_ELEMENTS = 1 << 20  # numbers per generator call, at most (unless one sample needs more)
_KINDS = {"uniform": 1, "normal": 2}


def mix_seed(*parts: int) -> int:
    """A well-mixed 64-bit seed from integers (SplitMix64's finaliser folded over ``parts``)."""
    z = 0
    for part in parts:
        z = (z ^ (int(part) & _MASK64)) * 0x9E3779B97F4A7C15 & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z ^= z >> 31
    return z


def fresh_seed() -> int:
    """A seed drawn from torch's global RNG: what ``seed=None`` means (reproducible under ``torch.manual_seed``)."""
    return int(torch.randint(0, 2**62, (1,)).item())


class SampleNoise:
    """Random numbers for the samples of one batch: row ``r`` is a function of ``(seed, key, index[r])``.

    Stateless: asking twice with the same key, kind and shape gives the same numbers, so a caller
    that draws repeatedly names each draw with :meth:`keyed` (e.g. the restart number).
    """

    def __init__(
        self, seed: int, index: Sequence[int] | Tensor, device: torch.device | str = "cpu", key: tuple[int, ...] = ()
    ) -> None:
        self.seed = int(seed)
        self.index = torch.as_tensor(index, dtype=torch.long, device="cpu").reshape(-1)
        self.device = torch.device(device)
        self.key = tuple(int(k) for k in key)

    def __len__(self) -> int:
        return int(self.index.numel())

    def rows(self, rows: Tensor) -> SampleNoise:
        """The same noise for a subset of the rows."""
        return SampleNoise(self.seed, self.index[rows.cpu()], self.device, self.key)

    def keyed(self, *parts: int) -> SampleNoise:
        """Fresh noise for a further named draw (a restart, a block of steps), for the same rows."""
        return SampleNoise(self.seed, self.index, self.device, self.key + tuple(int(p) for p in parts))

    def uniform(self, shape: Sequence[int] = (), dtype: torch.dtype = torch.float32) -> Tensor:
        """(rows, *shape) uniform on [0, 1)."""
        return self._draw("uniform", shape, dtype)

    def normal(self, shape: Sequence[int] = (), dtype: torch.dtype = torch.float32) -> Tensor:
        """(rows, *shape) standard normal."""
        return self._draw("normal", shape, dtype)

    def signs(self, shape: Sequence[int] = (), dtype: torch.dtype = torch.float32) -> Tensor:
        """(rows, *shape) of ±1, each with probability ½ (from :meth:`uniform` with the same key and shape)."""
        return torch.where(self.uniform(shape) < 0.5, -1.0, 1.0).to(dtype)

    def _draw(self, kind: str, shape: Sequence[int], dtype: torch.dtype) -> Tensor:
        size = tuple(int(s) for s in shape)
        block = max(1, min(_MAX_BLOCK, _BLOCK_ELEMENTS // max(prod(size), 1)))
        fn = torch.rand if kind == "uniform" else torch.randn
        blocks = torch.div(self.index, block, rounding_mode="floor")
        needed = blocks.unique()  # sorted
        head = (self.seed, len(self.key), *self.key, _KINDS[kind], len(size), *size, block)
        values = [
            fn((block, *size), generator=torch.Generator().manual_seed(mix_seed(*head, b)), dtype=dtype)
            for b in needed.tolist()
        ]
        if not values:
            return torch.empty((0, *size), dtype=dtype, device=self.device)
        where = torch.searchsorted(needed, blocks) * block + self.index % block
        return torch.cat(values)[where].to(self.device)
