"""STRIP: a triggered input keeps its (target) prediction whatever is superimposed on it.

Gao, Xu, Wang, Chen, Ranasinghe, Nepal, "STRIP: A Defence Against Trojan Attacks on Deep Neural
Networks", ACSAC 2019, https://arxiv.org/abs/1902.06531.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from modelshield.core.errors import InputError
from modelshield.defenses.poisoning._activations import as_inputs, torch_model
from modelshield.defenses.poisoning._sketch import Reservoir
from modelshield.defenses.poisoning.base import PoisonDetector


class STRIP(PoisonDetector):
    """Run-time trojan detection by the entropy of predictions on superimposed inputs; two passes.

    Each input is superimposed with ``n_overlays`` clean inputs (added pixel-wise and clipped to
    the model's bounds, as the authors' code does) and the mean entropy of the model's predictions
    on the blends is its score: a clean input's prediction scatters, a triggered one's stays on the
    target, so low entropy is suspicious. ``fit`` on clean data draws the overlays (pass 1, a
    reservoir of ``n_overlays`` inputs) and sets the threshold at the entropy below which a
    fraction ``frr`` of clean inputs lie (pass 2, a reservoir of entropies), so about ``frr`` of
    clean inputs are rejected. The same overlays serve every input, so a score does not depend on
    the batch it comes in. It also screens a training set offline: poisoned rows carry the trigger.

    ``score_samples`` is the negated entropy (higher is more suspicious).

    Args:
        model: the deployed (possibly backdoored) ``TorchModel``.
        frr: false rejection rate on clean inputs, in (0, 0.5) (default 0.05).
        n_overlays: clean inputs superimposed on each input (default 32; the paper uses 100).
        capacity: reservoir of clean entropies for the threshold (default 100,000).
        seed: seed of the overlay draw.
        batch_size: blends per forward.
    """

    name = "strip"
    passes = 2

    def __init__(
        self,
        model: Any,
        *,
        frr: float = 0.05,
        n_overlays: int = 32,
        capacity: int = 100_000,
        seed: int = 0,
        batch_size: int = 2048,
    ) -> None:
        super().__init__()
        self.model = torch_model(model, self.name)
        if not 0 < frr < 0.5:
            raise InputError(f"frr is the share of clean inputs rejected, in (0, 0.5); got {frr}")
        if n_overlays < 2:
            raise InputError(f"STRIP needs at least 2 overlays, got {n_overlays}")
        self.frr, self.n_overlays, self.capacity, self.seed, self.batch_size = (
            frr,
            n_overlays,
            capacity,
            seed,
            batch_size,
        )

    def _start(self) -> None:
        self._pool = Reservoir(self.n_overlays, self.seed)
        self._entropies = Reservoir(self.capacity, self.seed)

    def _update(self, pass_index: int, x: Any, y: Any) -> None:
        if pass_index == 0:
            self._pool.add(as_inputs(self.model, x, self.name).cpu().numpy())
        else:
            self._entropies.add(self.entropy(x))

    def _finish(self, pass_index: int) -> None:
        if pass_index == 0:
            if self._pool.seen < self.n_overlays:
                raise InputError(
                    f"STRIP needs at least n_overlays={self.n_overlays} clean inputs, got {self._pool.seen}"
                )
            self.overlays_ = torch.from_numpy(self._pool.sample.copy()).to(self.model.device)
            return
        self.threshold_ = -float(np.quantile(self._entropies.sample, self.frr))

    def entropy(self, x: Any) -> np.ndarray:
        """Mean prediction entropy (nats) of each input superimposed with the overlays."""
        xs = as_inputs(self.model, x, self.name)
        lo, hi = self.model.bounds
        per_chunk = max(1, self.batch_size // self.n_overlays)
        out = []
        with torch.no_grad():
            for i in range(0, xs.shape[0], per_chunk):
                chunk = xs[i : i + per_chunk]
                blends = (chunk[:, None] + self.overlays_[None]).clamp_(lo, hi).flatten(0, 1)
                p = self.model.predict_proba(blends)
                h = -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)
                out.append(h.reshape(chunk.shape[0], self.n_overlays).mean(dim=1).double().cpu())
        return torch.cat(out).numpy() if out else np.zeros(0)

    def _score(self, x: Any, y: Any) -> np.ndarray:
        return -self.entropy(x)


__all__ = ["STRIP"]
