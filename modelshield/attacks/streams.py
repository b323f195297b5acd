"""One random stream per sample, so an attack's result never depends on how the data was batched.

A batch-wide generator hands sample 600 different noise when the data is cut into batches of 512
than of 1024. Here every sample draws from its own generator, seeded from the attack's seed and the
sample's index in the whole data set, so its random starts, windows and probes are the same
whatever batch it lands in and whichever other samples are still being attacked beside it.
Draws happen on the CPU and move to the model's device, so they also match across devices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1


def stream_seed(seed: int, index: int) -> int:
    """A well-mixed 64-bit seed for sample ``index`` under ``seed`` (SplitMix64's finaliser)."""
    z = (int(seed) * 0x9E3779B97F4A7C15 + int(index) + 1) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def fresh_seed() -> int:
    """A seed drawn from torch's global RNG: what ``seed=None`` means (reproducible under ``torch.manual_seed``)."""
    return int(torch.randint(0, 2**62, (1,)).item())


class SampleRNG:
    """Random streams for the samples of one batch, row ``r`` keyed by ``(seed, index[r])``.

    Generators are created on first use and advance as their sample draws, so a restart or the
    next iteration continues where the sample left off. :meth:`rows` gives a view over some rows
    that shares their generators.
    """

    def __init__(
        self,
        seed: int,
        index: Sequence[int],
        device: torch.device | str = "cpu",
        generators: Sequence[torch.Generator | None] | None = None,
    ) -> None:
        self.seed = int(seed)
        self.index = [int(i) for i in index]
        self.device = torch.device(device)
        self._gens: list[torch.Generator | None] = (
            list(generators) if generators is not None else [None] * len(self.index)
        )

    def __len__(self) -> int:
        return len(self.index)

    def rows(self, rows: Tensor) -> SampleRNG:
        """The streams of rows ``rows`` (a view: drawing from it advances these samples' streams)."""
        self._create_all()
        picked = rows.tolist()
        return SampleRNG(self.seed, [self.index[r] for r in picked], self.device, [self._gens[r] for r in picked])

    def _create_all(self) -> None:
        for r, g in enumerate(self._gens):
            if g is None:
                self._gens[r] = torch.Generator().manual_seed(stream_seed(self.seed, self.index[r]))

    def _draw(self, kind: str, shape: Sequence[int], dtype: torch.dtype) -> Tensor:
        self._create_all()
        size = tuple(int(s) for s in shape)
        fn = torch.rand if kind == "uniform" else torch.randn
        if not self._gens:
            return torch.empty((0, *size), dtype=dtype, device=self.device)
        out = torch.stack([fn(size, generator=g, dtype=dtype) for g in self._gens])
        return out.to(self.device)

    def uniform(self, shape: Sequence[int] = (), dtype: torch.dtype = torch.float32) -> Tensor:
        """(rows, *shape) uniform on [0, 1), each row from its own sample's stream."""
        return self._draw("uniform", shape, dtype)

    def normal(self, shape: Sequence[int] = (), dtype: torch.dtype = torch.float32) -> Tensor:
        """(rows, *shape) standard normal, each row from its own sample's stream."""
        return self._draw("normal", shape, dtype)

    def signs(self, shape: Sequence[int] = (), dtype: torch.dtype = torch.float32) -> Tensor:
        """(rows, *shape) of ±1, each with probability ½."""
        return torch.where(self.uniform(shape) < 0.5, -1.0, 1.0).to(dtype)
