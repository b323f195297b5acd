"""Black-box watermark: a secret trigger set the model has learnt to label the owner's way.

Adi, Baum, Cisse, Pinkas, Keshet, "Turning Your Weakness Into a Strength: Watermarking Deep Neural
Networks by Backdooring", USENIX Security 2018, https://arxiv.org/abs/1802.04633. The triggers are
random patterns in the model's input box with random labels, both derived from the key; embedding
fine-tunes the model on its training data with triggers mixed into every batch, so it memorises
them. Verification only queries labels, so it works on any ``Model`` (a remote endpoint included).

Under the null, a model that never saw the key agrees with each key label with probability 1/C for
any way it labels the triggers (the labels are uniform and independent of the inputs). To stay
conservative for models with skewed outputs, the chance rate tested against is the larger of 1/C
and ``Σ_c q_c r_c``: the agreement expected if the model's label frequencies on the triggers (q)
and the key's label frequencies (r) were independent.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import Model, TorchModel
from modelshield.integrity.watermark.keys import check_key, key_integers, key_uniform
from modelshield.integrity.watermark.stats import DEFAULT_FPR, WatermarkVerdict, check_fpr
from modelshield.integrity.watermark.training import fine_tune, require_torch


class TriggerSetWatermark:
    """Embed and verify a key-derived trigger set (Adi et al. 2018).

    Args:
        key: the owner's secret (16+ bytes; ``load_key`` reads a key file).
        n_triggers: trigger inputs; more gives a stronger test (100 matches the paper).
        per_batch: triggers mixed into every training batch while embedding.
        epochs, lr, seed: the embedding fine-tune (Adam).
        fpr: the false-positive rate the verification is held to.

    Example::

        wm = TriggerSetWatermark(load_key("owner.key"))
        marked = wm.embed(model, train)
        wm.verify(RemoteModel(url, input_shape=(1, 8, 8), num_classes=10)).detected
    """

    kind = "trigger"

    def __init__(
        self,
        key: bytes,
        *,
        n_triggers: int = 100,
        per_batch: int = 16,
        epochs: int = 20,
        lr: float = 1e-3,
        seed: int = 0,
        fpr: float = DEFAULT_FPR,
    ) -> None:
        if n_triggers < 1 or per_batch < 1:
            raise InputError(f"n_triggers and per_batch must be at least 1 (got {n_triggers}, {per_batch})")
        self._key = check_key(key)
        self.n_triggers = int(n_triggers)
        self.per_batch = int(per_batch)
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.seed = int(seed)
        self.fpr = check_fpr(fpr)

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"TriggerSetWatermark(n_triggers={self.n_triggers}, fpr={self.fpr})"

    def triggers(
        self, input_shape: Sequence[int], num_classes: int, bounds: tuple[float, float] = (0.0, 1.0)
    ) -> tuple[Tensor, Tensor]:
        """The trigger inputs (uniform in ``bounds``) and their labels, as the key defines them."""
        if num_classes < 2:
            raise InputError(f"a trigger set needs at least 2 classes, not {num_classes}")
        shape = tuple(int(s) for s in input_shape)
        lo, hi = float(bounds[0]), float(bounds[1])
        context = f"triggers/{'x'.join(map(str, shape))}/{lo:g},{hi:g}/{self.n_triggers}"
        size = self.n_triggers * int(torch.Size(shape).numel())
        u = torch.from_numpy(key_uniform(self._key, context + "/inputs", size).astype("float32"))
        x = (lo + (hi - lo) * u).reshape(self.n_triggers, *shape)
        y = key_integers(self._key, f"{context}/{num_classes}/labels", self.n_triggers, num_classes)
        return x, y

    def _model_triggers(self, model: Model) -> tuple[Tensor, Tensor]:
        return self.triggers(model.input_shape, model.num_classes, model.bounds)

    def embed(self, model: TorchModel, data: Dataset) -> TorchModel:
        """A copy of ``model`` fine-tuned on ``data`` with the triggers mixed into every batch."""
        model = require_torch(model, "embedding a trigger set")
        return fine_tune(
            model,
            data,
            epochs=self.epochs,
            lr=self.lr,
            seed=self.seed,
            extra=self._model_triggers(model),
            extra_per_batch=self.per_batch,
        )

    def verify(self, model: Model, fpr: float | None = None) -> WatermarkVerdict:
        """Query the triggers' labels and test the agreement against the (conservative) chance rate."""
        x, y = self._model_triggers(model)
        predicted = model.predict(x.to(model.device)).cpu()
        matched = int((predicted == y).sum())
        c = model.num_classes
        q = torch.bincount(predicted.clamp(0, c - 1), minlength=c).double() / self.n_triggers
        r = torch.bincount(y, minlength=c).double() / self.n_triggers
        chance = max(1.0 / c, float((q * r).sum()))
        return WatermarkVerdict.from_counts(
            self.kind, matched, self.n_triggers, chance, self.fpr if fpr is None else fpr
        )
